"""From domain values to the wire: the contract's output models are the one serializer.

Each function builds the output model of CONTRACT §4 from a domain value and returns its JSON
form; nothing else writes an output's data. The domain values are named by what is read of them
(the protocols below), so the contract imports no other stepout package and ships on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from .outputs import (
    ActiveWarning,
    ChallengeAssigned,
    OverloadCleared,
    OverloadWarning,
    PlanNotice,
    PlanPaused,
    PlanResumed,
    RuleHitView,
)
from .vocabulary import AssignmentReason, ClearedBy, NoticeReason, PauseReason, ResumeReason, Severity


class RuleHit(Protocol):
    """A rule that holds (`stepout_domain.overload.RuleHit`)."""

    @property
    def rule(self) -> str: ...
    @property
    def observed(self) -> int | float: ...
    @property
    def threshold(self) -> int | float: ...


class Warning(Protocol):
    """A raised warning (`stepout_domain.warnings.Warning`)."""

    @property
    def warning_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def rules(self) -> Sequence[RuleHit]: ...
    @property
    def evidence(self) -> Sequence[str]: ...
    @property
    def escalate(self) -> bool: ...
    @property
    def raised_at(self) -> datetime: ...
    @property
    def ruleset_version(self) -> str: ...


class Clearing(Protocol):
    """A cleared warning (`stepout_domain.warnings.Clearing`)."""

    @property
    def warning_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def cleared_at(self) -> datetime: ...
    @property
    def by(self) -> ClearedBy: ...


class Assignment(Protocol):
    """A challenge given (`stepout_domain.plan_events.Assignment`)."""

    @property
    def assignment_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def challenge_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def reason(self) -> AssignmentReason: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def ruleset_version(self) -> str: ...


def _json(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json")  # type: ignore[no-any-return]


def rule_hit(hit: RuleHit) -> RuleHitView:
    return RuleHitView(rule=hit.rule, observed=hit.observed, threshold=hit.threshold)


def warning(w: Warning) -> dict[str, Any]:
    """The `overload.warning` data."""
    return _json(
        OverloadWarning(
            warning_id=w.warning_id,
            user_id=w.user_id,
            severity=w.severity,
            rules=[rule_hit(hit) for hit in w.rules],
            evidence=list(w.evidence),
            escalate=w.escalate,
            raised_at=w.raised_at,
            ruleset_version=w.ruleset_version,
        )
    )


def active_warning(w: Warning) -> dict[str, Any]:
    """The progress view's `active_warning`."""
    return _json(ActiveWarning(warning_id=w.warning_id, severity=w.severity, rules=[rule_hit(h) for h in w.rules]))


def clearing(c: Clearing) -> dict[str, Any]:
    """The `overload.cleared` data."""
    return _json(OverloadCleared(warning_id=c.warning_id, user_id=c.user_id, cleared_at=c.cleared_at, by=c.by))


def assignment(a: Assignment) -> dict[str, Any]:
    """The `challenge.assigned` data."""
    return _json(
        ChallengeAssigned(
            assignment_id=a.assignment_id,
            user_id=a.user_id,
            challenge_id=a.challenge_id,
            title=a.title,
            category=a.category,
            level=a.level,
            reason=a.reason,
            not_before=a.not_before,
            ruleset_version=a.ruleset_version,
        )
    )


def pause(user_id: str, reason: PauseReason, until: datetime | None, warning_id: str | None) -> dict[str, Any]:
    """The `plan.paused` data."""
    return _json(PlanPaused(user_id=user_id, reason=reason, until=until, warning_id=warning_id))


def resumed(user_id: str, reason: ResumeReason | None, at: datetime) -> dict[str, Any]:
    """The `plan.resumed` data."""
    return _json(PlanResumed(user_id=user_id, reason=reason, resumed_at=at))


def notice(
    user_id: str,
    input_type: str,
    input_id: str | None,
    attempt_id: str | None,
    reason: NoticeReason,
    detail: str,
) -> dict[str, Any]:
    """The `plan.notice` data."""
    return _json(
        PlanNotice(
            user_id=user_id,
            input_type=input_type,
            input_id=input_id,
            attempt_id=attempt_id,
            reason=reason,
            detail=detail,
        )
    )
