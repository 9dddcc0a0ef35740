"""What the tracker decides on: the platform's inputs, each with the time it says it happened
(never later than its arrival: docs/LATE-DATA.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stepout_domain.attempts import Attempt


@dataclass(frozen=True, slots=True)
class Enrol:
    """An enrolment, the first or a later one; `coach_id` is the participant's coach from then on
    (None: enrolled without one, or recorded before enrolments kept their coach)."""

    timezone: str
    at: datetime
    coach_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    """An attempt to record; `reported_at` is when its input says it was reported (capped at arrival)."""

    attempt: Attempt
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class Review:
    """A coach's review; `coach_id` is the coach it names (None: recorded before reviews kept it)."""

    reviewed_at: datetime
    coach_id: str | None = None


@dataclass(frozen=True, slots=True)
class Withdraw:
    erase: bool
    at: datetime


TrackerCommand = Enrol | RecordAttempt | Review | Withdraw
