"""The commands the planner decides on: what the platform and the tracker told it.

Each carries `at`, the time the triggering event was recorded (DOMAIN.md "Time").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stepout_contract.vocabulary import ClearedBy, Outcome, Severity
from stepout_domain.plan_events import WarningRule


@dataclass(frozen=True, slots=True)
class Enrol:
    user_id: str
    starting_level: int
    daily_limit: int
    categories: tuple[str, ...]
    timezone: str
    coach_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class LastAttempt:
    attempt_id: str
    assignment_id: str | None
    challenge_id: str
    level: int
    outcome: Outcome
    suds_peak: int | None
    occurred_at: datetime
    after_break: bool = False  # the first attempt after a break (rule sets with `return_after_days`)


@dataclass(frozen=True, slots=True)
class ObserveProgress:
    """The tracker folded an attempt; `at` should be the attempt's `occurred_at`."""

    position: int
    level: int
    level_ready: bool
    last_attempt: LastAttempt
    at: datetime


@dataclass(frozen=True, slots=True)
class ObserveWarning:
    """The tracker raised a warning. `rules`, `evidence` and `ruleset_version` are kept to be shown
    (the coach's escalations); decisions recorded before they were have them empty."""

    warning_id: str
    severity: Severity
    raised_at: datetime
    escalate: bool
    rules: tuple[WarningRule, ...] = ()
    evidence: tuple[str, ...] = ()
    ruleset_version: str | None = None

    @property
    def at(self) -> datetime:
        return self.raised_at


@dataclass(frozen=True, slots=True)
class ObserveClearing:
    warning_id: str
    cleared_at: datetime
    by: ClearedBy

    @property
    def at(self) -> datetime:
        return self.cleared_at


@dataclass(frozen=True, slots=True)
class PauseByParticipant:
    until: datetime | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Resume:
    at: datetime


@dataclass(frozen=True, slots=True)
class Review:
    coach_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Withdraw:
    erase: bool
    at: datetime


PlanCommand = (
    Enrol | ObserveProgress | ObserveWarning | ObserveClearing | PauseByParticipant | Resume | Review | Withdraw
)
