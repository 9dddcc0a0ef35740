"""The events of a participant's plan, and the assignment they carry.

Every event carries `at`, the time of the decision that emitted it: the triggering
event's recorded time, never a clock. `plan_state.evolve` folds them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from stepout_contract.vocabulary import (
    AssignmentReason,
    ClearedBy,
    Outcome,
    PauseReason,
    ResumeReason,
    Severity,
)

CancelReason = Literal["paused", "resumed", "rescheduled", "withdrawn"]

# Fixed for ever: changing it would change every assignment id and break exactly-once publishing.
ASSIGNMENT_ID_NAMESPACE = uuid.UUID("5d7e2b1a-9c3f-5a4e-8b6d-1f0e2c3a4b5d")


def assignment_id_for(user_id: str, n: int) -> str:
    """The id of the participant's `n`-th assignment (1, 2, ...): the same on every replay."""
    return str(uuid.uuid5(ASSIGNMENT_ID_NAMESPACE, f"{user_id}/assignment/{n}"))


@dataclass(frozen=True, slots=True)
class Assignment:
    """One challenge given to one participant, not to be started before `not_before`."""

    assignment_id: str
    user_id: str
    challenge_id: str
    title: str
    category: str
    level: int
    reason: AssignmentReason
    not_before: datetime
    ruleset_version: str
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class Enrolled:
    user_id: str
    starting_level: int
    daily_limit: int
    categories: tuple[str, ...]
    timezone: str
    coach_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class EnrolmentChanged:
    """A second enrolment: only these four fields change (CONTRACT §3)."""

    daily_limit: int
    categories: tuple[str, ...]
    timezone: str
    coach_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ChallengeAssigned:
    """An assignment issued; `plan_level` is the plan's level from now on (ease-off keeps it above the assignment's)."""

    assignment: Assignment
    plan_level: int
    at: datetime


@dataclass(frozen=True, slots=True)
class AssignmentClosed:
    """The open assignment closed by an attempt; `level` is the assignment's level."""

    assignment_id: str
    attempt_id: str
    outcome: Outcome
    level: int
    at: datetime


@dataclass(frozen=True, slots=True)
class AssignmentCancelled:
    """The open assignment withdrawn by the planner before any attempt closed it (pause, resume, withdrawal)."""

    assignment_id: str
    reason: CancelReason
    at: datetime


@dataclass(frozen=True, slots=True)
class ProgressObserved:
    """The tracker folded an attempt: `position` attempts so far, the last one described here."""

    position: int
    level: int
    level_ready: bool
    attempt_id: str
    assignment_id: str | None
    challenge_id: str
    attempt_level: int
    outcome: Outcome
    suds_peak: int | None
    at: datetime
    occurred_at: datetime | None = None  # None in decisions recorded before it was


@dataclass(frozen=True, slots=True)
class WarningRule:
    """One rule of an observed warning as the tracker published it: what it saw against what threshold."""

    rule: str
    observed: int | float
    threshold: int | float


@dataclass(frozen=True, slots=True)
class WarningObserved:
    """A warning seen; `level` is the plan level after it, `ease_off_until` set by a caution."""

    warning_id: str
    severity: Severity
    raised_at: datetime
    escalate: bool
    level: int
    ease_off_until: datetime | None
    at: datetime
    # What the warning said, to be shown; empty in decisions recorded before they were kept.
    rules: tuple[WarningRule, ...] = ()
    evidence: tuple[str, ...] = ()
    ruleset_version: str | None = None


@dataclass(frozen=True, slots=True)
class ClearingObserved:
    warning_id: str
    cleared_at: datetime
    by: ClearedBy
    at: datetime


@dataclass(frozen=True, slots=True)
class PlanPaused:
    """The plan is paused until `until` (None: until a resume, a review or for ever).

    `reason` and `until` are the pause as a whole; `hold_until` is the end of the
    overload hold inside it, which a participant's resume cannot cut short.
    """

    reason: PauseReason
    until: datetime | None
    warning_id: str | None
    at: datetime
    hold_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanResumed:
    """The plan active again; `reason` is None in decisions recorded before reasons were."""

    at: datetime
    reason: ResumeReason | None = None


@dataclass(frozen=True, slots=True)
class Reviewed:
    coach_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Withdrawn:
    erase: bool
    at: datetime


PlanEvent = (
    Enrolled
    | EnrolmentChanged
    | ChallengeAssigned
    | AssignmentClosed
    | AssignmentCancelled
    | ProgressObserved
    | WarningObserved
    | ClearingObserved
    | PlanPaused
    | PlanResumed
    | Reviewed
    | Withdrawn
)
