"""When the escalations change: a version the live escalations pages wait on.

A warning raised or cleared on the output stream changes the planner's `escalations` answer once
the planner has read that output too; the board asks the participant's `plan` until it shows the
change (or a few seconds pass), then moves its version on, and every open escalations page reads
`escalations` again. It also moves on every REFRESH_EVERY_S, which heals what a lost connection
missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .contract_client import ContractClient, NotFound, Unavailable

log = logging.getLogger(__name__)

REFRESH_EVERY_S = 30.0
CATCH_UP_S = 5.0


class Board:
    def __init__(self, client: ContractClient) -> None:
        self.client = client
        self.version = 0
        # Set when the version moves on, then replaced: waiters hold no lock, so a waiter cancelled
        # (a page closed) can never leave one held for the others.
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def moved_on(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_changed(self, seen: int, timeout: float, ended: asyncio.Event | None = None) -> int:
        """The board's version once it is past `seen`, or `seen` after `timeout` seconds or once
        `ended` is set, whichever comes first."""
        if self.version > seen or (ended is not None and ended.is_set()):
            return self.version
        waits = {asyncio.ensure_future(self._changed.wait())}
        if ended is not None:
            waits.add(asyncio.ensure_future(ended.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.version

    async def observed(self, kind: str, data: dict[str, Any]) -> None:
        """An output seen on the stream: move on once the planner shows it (in the background)."""
        task = asyncio.create_task(self._after_planner(kind, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_planner(self, kind: str, data: dict[str, Any]) -> None:
        user_id, warning_id = data.get("user_id"), data.get("warning_id")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_S
        while loop.time() < deadline:
            try:
                active = (await self.client.plan(str(user_id))).get("active_warning") or {}
            except (NotFound, Unavailable):
                break
            if (active.get("warning_id") == warning_id) == (kind == "warning"):
                break
            await asyncio.sleep(0.2)
        await self.moved_on()

    async def run(self) -> None:
        """Listen to the warnings, and move on every REFRESH_EVERY_S."""
        await self.client.on_warnings(self.observed)
        while True:
            await asyncio.sleep(REFRESH_EVERY_S)
            await self.moved_on()
