"""Known advisories against every version pinned in requirements/*.txt, checked with the network closed.

`requirements/advisories.json` is a snapshot of what PyPI lists for each pinned version (advisory ids,
aliases, fixed versions), with the time it was taken. `make advisories` (`python -m stepout_advisories
refresh`) writes it; `make lint` (`python -m stepout_advisories check`) reads the locks and fails,
naming the lock, package, version and advisory, when a pinned version is affected, unless
`requirements/advisories.ignore` lets that advisory pass with a reason. When PyPI answers, the
check asks it again and fails on what was published since the snapshot; when it does not, it says so
and the snapshot alone decides.

A development tool, kept out of the image like the rest of tools/.
"""

from .check import Ignore, Report, check, read_ignores
from .locks import Pin, read_locks
from .snapshot import Advisory, Entry, Snapshot

__all__ = ["Advisory", "Entry", "Ignore", "Pin", "Report", "Snapshot", "check", "read_ignores", "read_locks"]
