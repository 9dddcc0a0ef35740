"""What the tracker decides, as events: each input's decision is a short list of them, stored
together, and `tracking.evolve` folds them into the participant's `TrackerState`. Values, never
changed once built; not frozen dataclasses for the cost of building one (`stepout_domain.values`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepout_domain.attempts import Attempt
from stepout_domain.warnings import Clearing, Warning


@dataclass(slots=True)
class Enrolled:
    """The first enrolment. `coach_id`: the participant's coach (None when enrolled without one,
    and in the events stored before enrolments kept it)."""

    user_id: str
    timezone: str
    at: datetime
    coach_id: str | None = None


@dataclass(slots=True)
class EnrolmentChanged:
    """A later enrolment: its settings, the coach included, are in force from now on."""

    timezone: str
    at: datetime
    coach_id: str | None = None


@dataclass(slots=True)
class AttemptRecorded:
    """An attempt placed in the history. `restart_after_days` is the break (rule set's
    `return_after_days`) the decision was made with: after it, the run at a level restarts."""

    attempt: Attempt
    reported_at: datetime
    restart_after_days: int | None = None


@dataclass(slots=True)
class WarningRaised:
    warning: Warning


@dataclass(slots=True)
class WarningCleared:
    clearing: Clearing


@dataclass(slots=True)
class ProgressUpdated:
    """The progress view after the decision: what `progress.updated` publishes."""

    view: dict[str, Any]


@dataclass(slots=True)
class Reviewed:
    reviewed_at: datetime


@dataclass(slots=True)
class Withdrawn:
    erase: bool
    at: datetime


TrackerEvent = (
    Enrolled
    | EnrolmentChanged
    | AttemptRecorded
    | WarningRaised
    | WarningCleared
    | ProgressUpdated
    | Reviewed
    | Withdrawn
)
