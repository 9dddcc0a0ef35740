"""The console's sign-in throttle: a name refused after five failures, for fifteen minutes, with bounded memory."""

from __future__ import annotations

from stepout_console import throttle
from stepout_console.throttle import FAILURES_ALLOWED, WINDOW_S, SignInThrottle


def test_a_name_is_refused_after_the_allowed_failures_until_the_window_passes() -> None:
    guard = SignInThrottle()
    for n in range(FAILURES_ALLOWED):
        assert not guard.refused("ann", float(n))
        guard.failed("ann", float(n))
    assert guard.refused("ann", FAILURES_ALLOWED + 1.0)
    assert not guard.refused("bob", FAILURES_ALLOWED + 1.0)  # another name is not held back
    assert not guard.refused("ann", WINDOW_S + FAILURES_ALLOWED)  # each failure ages out of the window


def test_a_success_forgets_the_failures() -> None:
    guard = SignInThrottle()
    for n in range(FAILURES_ALLOWED - 1):
        guard.failed("ann", float(n))
    guard.succeeded("ann")
    guard.failed("ann", 10.0)
    assert not guard.refused("ann", 11.0)


def test_the_names_remembered_are_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(throttle, "NAMES_KEPT", 3)
    guard = SignInThrottle()
    for name in ("a", "b", "c", "d"):
        for n in range(FAILURES_ALLOWED):
            guard.failed(name, float(n))
    assert not guard.refused("a", 6.0)  # the oldest name was forgotten
    assert all(guard.refused(name, 6.0) for name in ("b", "c", "d"))
