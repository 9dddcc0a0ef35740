"""Payloads stepout publishes (CONTRACT §4), used to document and to read them back."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

Reason = Literal["start", "repeat", "step_up", "step_down", "ease_off", "resume"]
PauseReason = Literal["overload", "crisis", "participant", "withdrawn"]
Severity = Literal["caution", "high", "crisis"]
Outcome = Literal["rejected", "accepted", "hostile", "escaped", "skipped"]


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChallengeAssigned(_Output):
    assignment_id: str
    user_id: str
    challenge_id: str
    title: str
    category: str
    level: int
    reason: Reason
    not_before: AwareDatetime
    ruleset_version: str


class PlanPaused(_Output):
    user_id: str
    reason: PauseReason
    until: AwareDatetime | None
    warning_id: str | None


class RuleHitView(_Output):
    rule: str
    observed: float
    threshold: float


class OverloadWarning(_Output):
    warning_id: str
    user_id: str
    severity: Severity
    rules: list[RuleHitView]
    evidence: list[str]
    escalate: bool
    raised_at: AwareDatetime
    ruleset_version: str


class OverloadCleared(_Output):
    warning_id: str
    user_id: str
    cleared_at: AwareDatetime
    by: Literal["rules", "review", "superseded"]


class AtLevel(_Output):
    attempts: int
    first_peak: int | None
    latest_peak: int | None


class ActiveWarning(_Output):
    warning_id: str
    severity: Severity
    rules: list[RuleHitView]


class LastAttempt(_Output):
    """Additive to CONTRACT §4: what the planner needs to decide a step down."""

    attempt_id: str
    assignment_id: str | None
    challenge_id: str
    level: int
    outcome: Outcome
    suds_peak: int | None
    occurred_at: AwareDatetime


class ProgressView(_Output):
    user_id: str
    level: int | None
    level_ready: bool
    attempts: dict[Outcome, int]
    completed: int
    at_level: AtLevel
    expectancy_last5: float | None
    streak_days: int
    active_warning: ActiveWarning | None
    last_attempt_at: AwareDatetime | None
    ruleset_version: str
    position: int
    last_attempt: LastAttempt | None = None


class PlanView(_Output):
    user_id: str
    status: Literal["active", "paused", "withdrawn"]
    level: int
    open_assignment: ChallengeAssigned | None
    paused_until: AwareDatetime | None


OUTPUT_TYPES: dict[str, tuple[str, str, type[_Output]]] = {
    "stepout.challenge.assigned.v1": ("challenge", "assigned", ChallengeAssigned),
    "stepout.plan.paused.v1": ("plan", "paused", PlanPaused),
    "stepout.progress.updated.v1": ("progress", "updated", ProgressView),
    "stepout.overload.warning.v1": ("overload", "warning", OverloadWarning),
    "stepout.overload.cleared.v1": ("overload", "cleared", OverloadCleared),
}
