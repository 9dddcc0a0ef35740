"""The console's sign-in throttle, on a clock the tests move: a delay that grows with the failures of
a name from one address and with the failures from one address, a budget per address, nothing per
name alone (a stranger cannot lock a coach out), attempts in flight counted, bounded memory."""

from __future__ import annotations

import pytest

from stepout_console import throttle
from stepout_console.throttle import (
    ADDRESS_BUDGET,
    ADDRESS_FREE,
    ADDRESS_MAX_DELAY_S,
    ADDRESS_WINDOW_S,
    NAME_FREE,
    NAME_MAX_DELAY_S,
    NAME_WINDOW_S,
    SignInThrottle,
    network_of,
)

STRANGER = "203.0.113.9"
COACH_DESK = "198.51.100.7"


def fail(guard: SignInThrottle, name: str, address: str, now: float) -> None:
    """A failed attempt let through at `now`."""
    assert guard.wait_s(name, address, now) == 0.0, f"{name} from {address} was held back at {now}"
    guard.tried(name, address, now)


def hammer(guard: SignInThrottle, name: str, address: str, attempts: int, start: float = 0.0) -> float:
    """`attempts` failures, each as soon as the throttle lets it through; the time after the last."""
    now = start
    for _ in range(attempts):
        now += guard.wait_s(name, address, now)
        fail(guard, name, address, now)
    return now


def test_the_first_failures_of_a_name_from_an_address_are_free_then_the_delay_doubles() -> None:
    guard = SignInThrottle()
    for n in range(NAME_FREE):
        fail(guard, "ann", STRANGER, float(n))
    last = NAME_FREE - 1.0
    delays = []
    for _ in range(12):
        wait = guard.wait_s("ann", STRANGER, last)
        delays.append(wait)
        last += wait
        fail(guard, "ann", STRANGER, last)
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == NAME_MAX_DELAY_S
    assert delays == sorted(delays)


def test_a_stranger_hammering_a_name_does_not_hold_back_the_coach_elsewhere() -> None:
    guard = SignInThrottle()
    now = hammer(guard, "coach-a", STRANGER, ADDRESS_BUDGET)
    assert guard.wait_s("coach-a", STRANGER, now) > 0
    # From the coach's own desk: nothing to wait, however long the stranger goes on.
    assert guard.wait_s("coach-a", COACH_DESK, now) == 0.0
    guard.tried("coach-a", COACH_DESK, now)
    guard.succeeded("coach-a", COACH_DESK, now)
    assert guard.wait_s("coach-a", COACH_DESK, now) == 0.0


def test_an_address_guessing_at_many_names_waits_however_new_each_name_is() -> None:
    guard = SignInThrottle()
    for n in range(ADDRESS_FREE):
        fail(guard, f"name-{n}", STRANGER, float(n))
    assert guard.wait_s("a-fresh-name", STRANGER, ADDRESS_FREE - 1.0) == 1.0
    assert guard.wait_s("a-fresh-name", COACH_DESK, ADDRESS_FREE - 1.0) == 0.0  # another address is not held back


def test_an_address_past_its_budget_waits_for_its_oldest_failure_to_leave_the_window() -> None:
    guard = SignInThrottle()
    first = now = 0.0
    for n in range(ADDRESS_BUDGET):
        now += guard.wait_s(f"name-{n}", STRANGER, now)
        fail(guard, f"name-{n}", STRANGER, now)
    assert now + ADDRESS_MAX_DELAY_S < ADDRESS_WINDOW_S  # the budget binds, not the delays alone
    wait = guard.wait_s("one-more", STRANGER, now)
    assert wait == pytest.approx(first + ADDRESS_WINDOW_S - now)
    assert wait > ADDRESS_MAX_DELAY_S
    assert guard.wait_s("one-more", STRANGER, now + wait) <= ADDRESS_MAX_DELAY_S


def test_failures_age_out_of_the_window() -> None:
    guard = SignInThrottle()
    now = hammer(guard, "ann", STRANGER, NAME_FREE + 3)
    assert guard.wait_s("ann", STRANGER, now) > 0
    assert guard.wait_s("ann", STRANGER, now + NAME_WINDOW_S) == 0.0


def test_a_success_forgets_the_names_failures_but_not_the_addresss() -> None:
    guard = SignInThrottle()
    for n in range(ADDRESS_FREE - 6):
        fail(guard, f"name-{n}", STRANGER, 0.0)
    for _ in range(NAME_FREE - 1):
        fail(guard, "mine", STRANGER, 0.0)
    guard.tried("mine", STRANGER, 0.0)
    guard.succeeded("mine", STRANGER, 0.0)
    # The name starts afresh from there: as many free failures again.
    for _ in range(NAME_FREE - 1):
        fail(guard, "mine", STRANGER, 0.0)
    assert guard.wait_s("mine", STRANGER, 0.0) == 0.0
    # The guesses at other names still count from there (the success itself does not).
    for n in range(2):
        fail(guard, f"other-{n}", STRANGER, 0.0)
    assert guard.wait_s("anyone", STRANGER, 0.0) == 1.0


def test_attempts_sent_together_are_held_back_as_they_are_let_through() -> None:
    guard = SignInThrottle()
    let_through = 0
    for _ in range(50):  # fifty at the same moment, none answered yet
        if guard.wait_s("ann", STRANGER, 0.0) == 0.0:
            guard.tried("ann", STRANGER, 0.0)
            let_through += 1
    assert let_through == NAME_FREE


def test_an_ipv6_client_is_its_64_and_a_mapped_ipv4_address_is_that_address() -> None:
    assert network_of("2001:db8:1:2::1") == network_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("::ffff:203.0.113.9") == STRANGER
    assert network_of("testclient") == "testclient"
    guard = SignInThrottle()
    now = hammer(guard, "ann", "2001:db8:1:2::1", NAME_FREE)
    assert guard.wait_s("ann", "2001:db8:1:2::beef", now) > 0


def test_the_keys_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "KEYS_KEPT", 3)
    guard = SignInThrottle()
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        hammer(guard, "ann", address, NAME_FREE)
    assert guard.wait_s("ann", "10.0.0.1", 0.0) == 0.0  # the oldest was forgotten
    assert all(guard.wait_s("ann", a, 0.0) > 0 for a in ("10.0.0.2", "10.0.0.3", "10.0.0.4"))
