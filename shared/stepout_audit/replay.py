"""A participant as of a time, rebuilt from their trail.

"As of TIME" means every stored event whose store timestamp is at or before TIME: the
tracker's last published progress view and active warning, the planner's plan folded from
its stored decisions by the planner's own `evolve`, and the decisions (assignments, pauses,
warnings, clearings) published so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stepout_contract import wire
from stepout_contract.vocabulary import rfc3339
from stepout_domain.plan_state import PlanState, evolve, initial_state
from stepout_domain.progress import erased_view
from stepout_planner.plan import erased_state
from stepout_planner.records import event_from

from .entries import Entry
from .merge import Row
from .trail import Trail

# The published decisions a replay lists, by CloudEvent type: what each is called.
DECISION_KINDS = {
    "stepout.challenge.assigned.v1": "assignment",
    "stepout.plan.paused.v1": "pause",
    "stepout.plan.resumed.v1": "resume",
    "stepout.plan.notice.v1": "notice",
    "stepout.overload.warning.v1": "warning",
    "stepout.overload.cleared.v1": "clearing",
}


def state_as_of(trail: Trail, at: datetime) -> dict[str, Any]:
    """The participant's progress, plan, active warning and decisions from events stored at or before `at`."""
    tracker = tracker_as_of(trail.user_id, trail.tracker, at)
    planner = planner_as_of(trail.user_id, trail.planner, at)
    rows = [row for row in trail.rows() if row.timestamp <= at]
    return {
        "user_id": trail.user_id,
        "as_of": rfc3339(at),
        "progress": tracker["progress"],
        "plan": planner["plan"],
        "active_warning": tracker["active_warning"],
        "decisions": decisions_of(rows),
        "inputs": sum(1 for row in rows if row.is_input),
        "stored_events": tracker["stored_events"] + planner["stored_events"],
    }


def tracker_as_of(user_id: str, entries: Sequence[Entry], at: datetime) -> dict[str, Any]:
    """The tracker's part as of `at`: its last published progress view and its active warning."""
    # What an erasure made unreadable is left out; the erasure records what it left.
    tracker = [e for e in entries if e.event is not None and e.timestamp <= at]
    erased = next((e.event for e in tracker if e.name == "Erased"), None)
    published = [o for e in tracker for o in e.outputs]
    progress = next((o["data"] for o in reversed(published) if o["type"] == "stepout.progress.updated.v1"), None)
    if erased is not None:
        progress = erased_view(user_id, erased.summary, "erased")
    warning: dict[str, Any] | None = None
    for output in published:
        if output["type"] == "stepout.overload.warning.v1":
            warning = output["data"]
        elif output["type"] == "stepout.overload.cleared.v1" and warning is not None:
            if output["data"]["warning_id"] == warning["warning_id"]:
                warning = None
    return {
        "progress": progress,
        "active_warning": warning,
        "stored_events": len(tracker),
        "erased": erased is not None,
    }


def planner_as_of(user_id: str, entries: Sequence[Entry], at: datetime) -> dict[str, Any]:
    """The planner's part as of `at`: the plan folded from its stored decisions by its own `evolve`."""
    planner = [e for e in entries if e.event is not None and e.timestamp <= at]
    plan = initial_state(user_id)
    for entry in planner:
        if entry.name == "Decided":
            for record in entry.event.events:
                plan = evolve(plan, event_from(record))
        elif entry.name == "Erased":
            plan = erased_state(plan)
    return {
        "plan": plan_as_of(plan, at) if plan.enrolled else None,
        "stored_events": len(planner),
        "erased": plan.erased,
    }


def decisions_of(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The published decisions among `rows`, each with its kind and the rule set it was decided under."""
    return [
        {
            "time": row.event["time"],
            "kind": DECISION_KINDS[row.event["type"]],
            "id": row.event["id"],
            "ruleset_version": row.ruleset_version,
            "data": row.event["data"],
        }
        for row in rows
        if not row.is_input and row.event["type"] in DECISION_KINDS
    ]


def plan_as_of(plan: PlanState, at: datetime) -> dict[str, Any]:
    """The plan as the `plan` query shows it, plus ease-off and the warning it is responding to.

    A pause with an end is over once `at` passes the end (no timer ends it in the store)."""
    status, paused_until, reason = plan.status, plan.paused_until, plan.pause_reason
    if status == "paused" and paused_until is not None and paused_until <= at:
        status, paused_until, reason = "active", None, None
    return {
        "status": status,
        "level": plan.level,
        "open_assignment": wire.assignment(plan.open_assignment) if plan.open_assignment is not None else None,
        "paused_until": rfc3339(paused_until) if paused_until is not None else None,
        "pause_reason": reason if status == "paused" else None,
        "ease_off_until": rfc3339(plan.ease_off_until) if plan.easing_off_at(at) and plan.ease_off_until else None,
        "active_warning": (
            {"warning_id": plan.active_warning_id, "severity": str(plan.active_severity)}
            if plan.active_warning_id is not None
            else None
        ),
    }
