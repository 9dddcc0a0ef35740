"""Sign-in attempts held back by where they come from, so that guessing a password is slow and nobody
can lock a coach out by guessing at their name.

Failures are counted per (name, address) within NAME_WINDOW_S, and per address (an IPv6 address by
its /64, which one client is given whole) within ADDRESS_WINDOW_S. Each is free for its first few
failures, then every next attempt waits a delay that doubles with each failure, up to a longest; an
address past ADDRESS_BUDGET failures in its window waits until its oldest leaves it. Nothing is
counted per name alone: failures from elsewhere never hold back the coach's own address. An attempt
counts as a failure from the moment it is let through until it succeeds, so that many sent at once
are held back as well as many in a row.

Times are given (`now`, seconds on any steady clock): the throttle reads no clock. At most KEYS_KEPT
pairs and addresses are remembered (the least recently failing forgotten first), each with at most
TIMES_KEPT failures (more would change no delay): the memory is bounded.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Hashable

# One name from one address: a few typos free, then 1 s, 2 s, 4 s ... 5 minutes, for a day (a success
# forgets them): about 12 guesses an hour.
NAME_WINDOW_S = 24 * 3600.0
NAME_FREE = 3
NAME_MAX_DELAY_S = 5 * 60.0
# One address, whatever the names: a few more free, then up to 30 s each, and 30 in 15 minutes at most.
ADDRESS_WINDOW_S = 15 * 60.0
ADDRESS_FREE = 10
ADDRESS_MAX_DELAY_S = 30.0
ADDRESS_BUDGET = 30
FIRST_DELAY_S = 1.0
KEYS_KEPT = 10_000
TIMES_KEPT = 32


class Failures:
    """The latest TIMES_KEPT failure times per key within `window_s`, for at most KEYS_KEPT keys."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: OrderedDict[Hashable, list[float]] = OrderedDict()

    def recent(self, key: Hashable, now: float) -> list[float]:
        kept = [t for t in self._times.get(key, []) if now - t < self.window_s]
        if kept:
            self._times[key] = kept
        else:
            self._times.pop(key, None)
        return kept

    def add(self, key: Hashable, now: float) -> None:
        self._times[key] = [*self.recent(key, now), now][-TIMES_KEPT:]
        self._times.move_to_end(key)
        while len(self._times) > KEYS_KEPT:
            self._times.popitem(last=False)

    def take_back(self, key: Hashable, at: float) -> None:
        times = self._times.get(key, [])
        if at in times:
            times.remove(at)

    def forget(self, key: Hashable) -> None:
        self._times.pop(key, None)


class SignInThrottle:
    def __init__(self) -> None:
        self._pairs = Failures(NAME_WINDOW_S)
        self._addresses = Failures(ADDRESS_WINDOW_S)

    def wait_s(self, name: str, address: str, now: float) -> float:
        """Seconds before `address` may try `name` again; 0.0: now."""
        where = network_of(address)
        pair = self._pairs.recent((name, where), now)
        from_there = self._addresses.recent(where, now)
        waits = [
            _backoff(pair, NAME_FREE, NAME_MAX_DELAY_S, now),
            _backoff(from_there, ADDRESS_FREE, ADDRESS_MAX_DELAY_S, now),
        ]
        if len(from_there) >= ADDRESS_BUDGET:
            waits.append(from_there[-ADDRESS_BUDGET] + ADDRESS_WINDOW_S - now)
        return max(0.0, *waits)

    def tried(self, name: str, address: str, now: float) -> None:
        """An attempt let through at `now`: a failure until `succeeded` says otherwise."""
        where = network_of(address)
        self._pairs.add((name, where), now)
        self._addresses.add(where, now)

    def succeeded(self, name: str, address: str, tried_at: float) -> None:
        """The attempt `tried` at `tried_at` succeeded: the name's failures from there are forgotten, and
        the attempt is no failure of the address (its earlier failures stay: signing in to one's own
        account does not clear guessing at others)."""
        where = network_of(address)
        self._pairs.forget((name, where))
        self._addresses.take_back(where, tried_at)


def network_of(address: str) -> str:
    """What one client holds: an IPv4 address, an IPv6 /64; anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _backoff(failures: list[float], free: int, longest: float, now: float) -> float:
    """The wait after the latest of `failures`: none for the first `free`, then 1 s, 2 s, 4 s ... up to `longest`."""
    if len(failures) < free:
        return 0.0
    delay = min(FIRST_DELAY_S * 2 ** min(len(failures) - free, 30), longest)
    return failures[-1] + delay - now
