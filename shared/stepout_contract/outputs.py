"""Payloads stepout publishes (CONTRACT §4), used to document and to read them back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer

from .vocabulary import AssignmentReason as Reason
from .vocabulary import ClearedBy, NoticeReason, Outcome, PauseReason, ResumeReason, Severity, rfc3339

# Every time on the wire is UTC with a `Z` (`vocabulary.rfc3339`), whatever offset it was read with.
Time = Annotated[AwareDatetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]


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
    not_before: Time
    ruleset_version: str


class PlanPaused(_Output):
    user_id: str
    reason: PauseReason
    until: Time | None
    warning_id: str | None


class RuleHitView(_Output):
    rule: str
    observed: int | float
    threshold: int | float


class OverloadWarning(_Output):
    warning_id: str
    user_id: str
    severity: Severity
    rules: list[RuleHitView]
    evidence: list[str]
    escalate: bool
    raised_at: Time
    ruleset_version: str


class OverloadCleared(_Output):
    warning_id: str
    user_id: str
    cleared_at: Time
    by: ClearedBy


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
    occurred_at: Time
    after_break: bool = False


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
    last_attempt_at: Time | None
    ruleset_version: str
    position: int
    last_attempt: LastAttempt | None = None
    practice_level: int | None = None
    streak_until: Time | None = None
    withdrawn: bool = False
    erased: bool = False


class ObservedWarning(_Output):
    """Additive: the warning the plan is responding to, as the tracker published it (`rules` and
    `evidence` are empty, `ruleset_version` null, for warnings observed before they were kept)."""

    warning_id: str
    severity: Severity
    escalate: bool
    raised_at: Time
    rules: list[RuleHitView]
    evidence: list[str]
    ruleset_version: str | None


class PlanView(_Output):
    user_id: str
    status: Literal["active", "paused", "withdrawn"]
    level: int | None
    open_assignment: ChallengeAssigned | None
    paused_until: Time | None
    plan_level: int | None = None
    erased: bool = False
    # Additive: the coach at enrolment, why the plan is paused, the warning it is responding to.
    coach_id: str | None = None
    pause_reason: PauseReason | None = None
    active_warning: ObservedWarning | None = None


class PlanResumed(_Output):
    """The plan active again: by the participant's resume, a coach's review ending a crisis pause,
    or a pause's end passing (`reason` null for decisions recorded before reasons were)."""

    user_id: str
    reason: ResumeReason | None
    resumed_at: Time


class PlanNotice(_Output):
    """An input that was recorded but changed nothing, or less than it asked, and why."""

    user_id: str
    input_type: str
    input_id: str | None
    attempt_id: str | None
    reason: NoticeReason
    detail: str


class ParticipantErased(_Output):
    """Not published: what history and audit exports show of an erased participant, per service."""

    user_id: str
    request_id: str
    summary: dict[str, Any]


ERASED_TYPE = "stepout.participant.erased.v1"


OUTPUT_TYPES: dict[str, tuple[str, str, type[_Output]]] = {
    "stepout.challenge.assigned.v1": ("challenge", "assigned", ChallengeAssigned),
    "stepout.plan.paused.v1": ("plan", "paused", PlanPaused),
    "stepout.plan.resumed.v1": ("plan", "resumed", PlanResumed),
    "stepout.plan.notice.v1": ("plan", "notice", PlanNotice),
    "stepout.progress.updated.v1": ("progress", "updated", ProgressView),
    "stepout.overload.warning.v1": ("overload", "warning", OverloadWarning),
    "stepout.overload.cleared.v1": ("overload", "cleared", OverloadCleared),
}
