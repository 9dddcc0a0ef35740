"""Wiring of the console: settings -> accounts and sessions, one NATS connection, the escalations
board, HTTP."""

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
from .sessions import SESSIONS_FILE, SessionStore
from .settings import load_console_settings, secure_cookies

log = logging.getLogger("stepout.console")


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM. SettingsError for accounts, a secret or a setting that cannot be used."""
    accounts, secret = accounts_of(settings), session_secret(settings)
    console_settings = load_console_settings()
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
    sessions = SessionStore(settings.data_dir / SESSIONS_FILE, secret, idle_s=console_settings.idle_minutes * 60)
    ended = sessions.end_changed(accounts)  # a password (or role, or coach) changed since: signed out
    secure = secure_cookies(settings)
    app = build_app(Console(client, board, accounts, sessions, secure=secure))
    server = make_server(app, settings.http_host, settings.console_port)
    board_task = asyncio.create_task(board.run(), name="board")
    http_task = asyncio.create_task(server.serve(), name="http")
    while not server.started and not http_task.done():
        await asyncio.sleep(0.05)
    if http_task.done():
        http_task.result()  # the port is taken, say: the error ends the process
    log.info(
        f"console at http://{settings.http_host}:{bound_port(server)}",
        extra={
            "service": "console",
            "port": bound_port(server),
            "accounts": len(accounts),
            "sessions_ended": ended,
            "secure_cookies": secure,
            "idle_minutes": console_settings.idle_minutes,
        },
    )
    if secure:
        log.info(
            "console cookies are Secure: browsers send them over HTTPS only (a TLS proxy in front), "
            "or set STEPOUT_CONSOLE_SECURE_COOKIES=false",
            extra={"service": "console"},
        )
    await asyncio.wait([asyncio.ensure_future(stop.wait()), http_task, board_task], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping", extra={"service": "console"})
    server.should_exit = True
    board_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(http_task, 5.0)
    closing.now = True
    await nc.close()
    sessions.close()
    if board_task.done() and not board_task.cancelled() and board_task.exception() is not None:
        raise board_task.exception()  # type: ignore[misc]
