"""Sign-in attempts per account name: after FAILURES_ALLOWED failures within WINDOW_S, that name is
refused until the window has passed, so that guessing a password takes days, not minutes. At most
NAMES_KEPT names are remembered (the oldest forgotten first): the memory is bounded."""

from __future__ import annotations

from collections import OrderedDict

FAILURES_ALLOWED = 5
WINDOW_S = 15 * 60.0
NAMES_KEPT = 10_000


class SignInThrottle:
    def __init__(self) -> None:
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, name: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(name, []) if now - t < WINDOW_S]
        if kept:
            self._failures[name] = kept
        else:
            self._failures.pop(name, None)
        return kept

    def refused(self, name: str, now: float) -> bool:
        """Whether `name` may not try now."""
        return len(self._recent(name, now)) >= FAILURES_ALLOWED

    def failed(self, name: str, now: float) -> None:
        self._failures[name] = [*self._recent(name, now), now]
        self._failures.move_to_end(name)
        while len(self._failures) > NAMES_KEPT:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
