"""The `plan` read model (CONTRACT §6), folded from plan events alone, and the `escalations` rows
taken from it: the participants whose plan observed a warning that is still active."""

from __future__ import annotations

from typing import Any

from stepout_contract import wire
from stepout_contract.vocabulary import rfc3339
from stepout_domain.plan_events import (
    AssignmentCancelled,
    AssignmentClosed,
    ChallengeAssigned,
    ClearingObserved,
    Enrolled,
    EnrolmentChanged,
    PlanPaused,
    PlanResumed,
    WarningObserved,
    Withdrawn,
)


def apply(view: dict[str, Any] | None, user_id: str, event: Any) -> dict[str, Any] | None:
    """The view after `event`; None until the participant is enrolled."""
    if isinstance(event, Enrolled):
        return _named(
            {
                "user_id": user_id,
                "status": "active",
                "level": event.starting_level,
                "open_assignment": None,
                "paused_until": None,
                "pause_reason": None,
                "coach_id": event.coach_id,
                "active_warning": None,
                "erased": False,
            }
        )
    if view is None:
        return None
    return _named(_applied(dict(view), event))


def erased(view: dict[str, Any] | None, user_id: str) -> dict[str, Any]:
    """The view once the participant is erased: withdrawn, their plan level, nothing else."""
    level = view["level"] if view is not None else None
    return _named(
        {
            "user_id": user_id,
            "status": "withdrawn",
            "level": level,
            "open_assignment": None,
            "paused_until": None,
            "pause_reason": None,
            "coach_id": None,
            "active_warning": None,
            "erased": True,
        }
    )


def escalation(view: dict[str, Any]) -> dict[str, Any]:
    """The `escalations` row of a plan view: who, whose coach, the plan's state and its active warning."""
    return {
        "user_id": view["user_id"],
        "coach_id": view.get("coach_id"),
        "status": view["status"],
        "pause_reason": view.get("pause_reason"),
        "paused_until": view.get("paused_until"),
        "warning": view.get("active_warning"),
    }


def _named(view: dict[str, Any]) -> dict[str, Any]:
    # `level` is the plan level; `plan_level` says so by its name (the open assignment has its own).
    view["plan_level"] = view["level"]
    return view


def _applied(view: dict[str, Any], event: Any) -> dict[str, Any]:
    if isinstance(event, ChallengeAssigned):
        view["open_assignment"] = wire.assignment(event.assignment)
        view["level"] = event.plan_level
    elif isinstance(event, (AssignmentClosed, AssignmentCancelled)):
        open_assignment = view.get("open_assignment")
        if open_assignment is not None and open_assignment["assignment_id"] == event.assignment_id:
            view["open_assignment"] = None
    elif isinstance(event, EnrolmentChanged):
        view["coach_id"] = event.coach_id
    elif isinstance(event, WarningObserved):
        view["level"] = event.level
        view["active_warning"] = {
            "warning_id": event.warning_id,
            "severity": str(event.severity),
            "escalate": event.escalate,
            "raised_at": rfc3339(event.raised_at),
            "rules": [{"rule": r.rule, "observed": r.observed, "threshold": r.threshold} for r in event.rules],
            "evidence": list(event.evidence),
            "ruleset_version": event.ruleset_version,
        }
    elif isinstance(event, ClearingObserved):
        active = view.get("active_warning")
        if active is not None and active["warning_id"] == event.warning_id:
            view["active_warning"] = None
    elif isinstance(event, PlanPaused):
        if view["status"] != "withdrawn":
            view["status"] = "withdrawn" if event.reason == "withdrawn" else "paused"
        view["paused_until"] = rfc3339(event.until) if event.until else None
        view["pause_reason"] = event.reason
    elif isinstance(event, PlanResumed):
        if view["status"] == "paused":
            view["status"] = "active"
        view["paused_until"] = None
        view["pause_reason"] = None
    elif isinstance(event, Withdrawn):
        view["status"] = "withdrawn"
        view["paused_until"] = None
        view["pause_reason"] = "withdrawn"
    return view
