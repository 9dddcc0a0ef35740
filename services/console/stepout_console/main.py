"""Wiring of the console: settings -> accounts, one NATS connection, the escalations board, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects
from stepout_runtime.connection import CONSOLE_INBOX_PREFIX, closing, connect
from stepout_runtime.http import bound_port, make_server

from .accounts import accounts_of, session_secret
from .app import Console, build_app
from .board import Board
from .contract_client import ContractClient

log = logging.getLogger("stepout.console")


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM. SettingsError for accounts or a secret that cannot be used."""
    accounts, secret = accounts_of(settings), session_secret(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    connecting = asyncio.ensure_future(connect(settings, "stepout-console", CONSOLE_INBOX_PREFIX))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        log.info("stopped before NATS answered", extra={"service": "console"})
        return
    stopping.cancel()
    nc = connecting.result()
    client = ContractClient(nc, Subjects(settings.subject_prefix))
    board = Board(client)
    app = build_app(Console(client, board, accounts), secret, secure_cookies=settings.console_secure_cookies)
    server = make_server(app, settings.http_host, settings.console_port)
    board_task = asyncio.create_task(board.run(), name="board")
    http_task = asyncio.create_task(server.serve(), name="http")
    while not server.started and not http_task.done():
        await asyncio.sleep(0.05)
    if http_task.done():
        http_task.result()  # the port is taken, say: the error ends the process
    log.info(
        f"console at http://{settings.http_host}:{bound_port(server)}",
        extra={"service": "console", "port": bound_port(server), "accounts": len(accounts)},
    )
    await asyncio.wait([asyncio.ensure_future(stop.wait()), http_task, board_task], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping", extra={"service": "console"})
    server.should_exit = True
    board_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(http_task, 5.0)
    closing.now = True
    await nc.close()
    if board_task.done() and not board_task.cancelled() and board_task.exception() is not None:
        raise board_task.exception()  # type: ignore[misc]
