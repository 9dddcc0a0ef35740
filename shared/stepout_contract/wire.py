"""From domain values to the wire: the contract's output models are the one serializer.

Each function builds the output model of CONTRACT §4 from a domain value and returns its JSON
form; nothing else writes an output's data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stepout_domain.overload import RuleHit
from stepout_domain.plan_events import Assignment
from stepout_domain.warnings import Clearing, Warning

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
from .vocabulary import NoticeReason, PauseReason, ResumeReason


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
