"""The `plan` read model (CONTRACT §6), folded from plan events alone."""

from __future__ import annotations

from typing import Any

from stepout_contract import wire
from stepout_contract.vocabulary import rfc3339
from stepout_domain.plan_events import (
    AssignmentCancelled,
    AssignmentClosed,
    ChallengeAssigned,
    Enrolled,
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
            "erased": True,
        }
    )


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
    elif isinstance(event, WarningObserved):
        view["level"] = event.level
    elif isinstance(event, PlanPaused):
        if view["status"] != "withdrawn":
            view["status"] = "withdrawn" if event.reason == "withdrawn" else "paused"
        view["paused_until"] = rfc3339(event.until) if event.until else None
    elif isinstance(event, PlanResumed):
        if view["status"] == "paused":
            view["status"] = "active"
        view["paused_until"] = None
    elif isinstance(event, Withdrawn):
        view["status"] = "withdrawn"
        view["paused_until"] = None
    return view
