"""What the tracker decides on: the platform's inputs, each with the time it says it happened
(never later than its arrival: docs/LATE-DATA.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stepout_domain.attempts import Attempt


@dataclass(frozen=True, slots=True)
class Enrol:
    timezone: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    """An attempt to record; `reported_at` is when its input says it was reported (capped at arrival)."""

    attempt: Attempt
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class Review:
    reviewed_at: datetime


@dataclass(frozen=True, slots=True)
class Withdraw:
    erase: bool
    at: datetime


TrackerCommand = Enrol | RecordAttempt | Review | Withdraw
