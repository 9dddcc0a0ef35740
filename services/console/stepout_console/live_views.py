"""The live views open (the escalations page's event streams): at most TOTAL at once, and at most
PER_ACCOUNT of one account however many sessions it has, so that no one account holds the slots
the others need; each told to end the moment its session is signed out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

TOTAL = 200
PER_ACCOUNT = 4


class LiveViewRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class LiveView:
    account: str
    session: str  # the session's key
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class LiveViews:
    def __init__(self, total: int = TOTAL, per_account: int = PER_ACCOUNT) -> None:
        self.total = total
        self.per_account = per_account
        self._open: set[LiveView] = set()

    def open(self, account: str, session: str) -> LiveView:
        """A live view counted from now on (viewers arriving together cannot pass a cap); LiveViewRefused
        with 503 when all are taken, 429 when the account has its share open."""
        if len(self._open) >= self.total:
            raise LiveViewRefused(503, "too many live views open; reload later")
        if sum(view.account == account for view in self._open) >= self.per_account:
            raise LiveViewRefused(
                429, f"at most {self.per_account} live views are open per account: close one, then reload"
            )
        view = LiveView(account, session)
        self._open.add(view)
        return view

    def close(self, view: LiveView) -> None:
        self._open.discard(view)

    def end_session(self, session: str) -> None:
        """Tells every live view of the session to end."""
        for view in self._open:
            if view.session == session:
                view.ended.set()

    def __len__(self) -> int:
        return len(self._open)
