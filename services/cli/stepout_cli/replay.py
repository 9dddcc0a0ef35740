"""`stepout replay --user U [--as-of TIME] [--json]`: a participant as of TIME, rebuilt from the event stores.

"As of TIME" means every stored event whose store timestamp is at or before TIME: the
tracker's last progress view and active warning, the planner's plan folded from its
stored decisions, and the decisions (assignments, pauses, warnings, clearings) made so far.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stepout_contract.settings import Settings
from stepout_contract.vocabulary import rfc3339
from stepout_domain.plan_state import PlanState, evolve, initial_state
from stepout_domain.progress import erased_view
from stepout_planner.plan import erased_state
from stepout_planner.records import event_from

from .bars import stderr_console
from .trail import Trail, UnreadableEvent, read_trail

TEXT_WIDTH = 200
DECISION_KINDS = {
    "stepout.challenge.assigned.v1": "assignment",
    "stepout.plan.paused.v1": "pause",
    "stepout.plan.resumed.v1": "resume",
    "stepout.plan.notice.v1": "notice",
    "stepout.overload.warning.v1": "warning",
    "stepout.overload.cleared.v1": "clearing",
}


def replay(settings: Settings, user_id: str, as_of: datetime | None, as_json: bool) -> int:
    """Print the participant as of `as_of` (now when None). Exit 1 when the stores do not know them."""
    at = as_of or datetime.now(UTC)
    try:
        trail = read_trail(settings, user_id, stderr_console())
    except UnreadableEvent as exc:
        print(f"stepout: {exc.naming(user_id)}", file=sys.stderr)
        return 1
    if not trail.known:
        print(f"stepout: participant {user_id!r} is in neither event store", file=sys.stderr)
        return 1
    for service, found in trail.breaks:  # shown, not fatal: `audit export` and `audit decisions` fail on it
        print(f"warning: chain broken: {service} store, event version {found.version}: {found.reason}", file=sys.stderr)
    state = state_as_of(trail, at)
    summary = (
        f"replayed {state['stored_events']} stored events of {user_id} as of {state['as_of']}: "
        f"{state['inputs']} inputs, {len(state['decisions'])} decisions"
    )
    if as_json:
        print(json.dumps(state, indent=2, ensure_ascii=False))
        print(summary, file=sys.stderr)
    else:
        console = Console(highlight=False)
        if not console.is_terminal:
            console.width = TEXT_WIDTH  # a pipe or a file: no terminal to wrap for
        _render(state, console)
        print(summary)
    return 0


def state_as_of(trail: Trail, at: datetime) -> dict[str, Any]:
    """The participant's progress, plan, active warning and decisions from events stored at or before `at`."""
    # What an erasure made unreadable is left out; the erasure records what it left.
    tracker = [e for e in trail.tracker if e.event is not None and e.timestamp <= at]
    planner = [e for e in trail.planner if e.event is not None and e.timestamp <= at]
    erased = next((e.event for e in tracker if e.name == "Erased"), None)
    progress = next((e.event.view for e in reversed(tracker) if e.name == "ProgressUpdated"), None)
    if erased is not None:
        progress = erased_view(trail.user_id, erased.summary, "erased")
    warning: dict[str, Any] | None = None
    for entry in tracker:
        if entry.name == "WarningRaised":
            warning = entry.outputs[0]["data"]
        elif entry.name == "WarningCleared" and warning is not None:
            if entry.event.clearing["warning_id"] == warning["warning_id"]:
                warning = None
    plan = initial_state(trail.user_id)
    for entry in planner:
        if entry.name == "Decided":
            for record in entry.event.events:
                plan = evolve(plan, event_from(record))
        elif entry.name == "Erased":
            plan = erased_state(plan)
    rows = [row for row in trail.rows() if row.timestamp <= at]
    decisions = [
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
    return {
        "user_id": trail.user_id,
        "as_of": rfc3339(at),
        "progress": progress,
        "plan": plan_as_of(plan, at) if plan.enrolled else None,
        "active_warning": warning,
        "decisions": decisions,
        "inputs": sum(1 for row in rows if row.is_input),
        "stored_events": len(tracker) + len(planner),
    }


def plan_as_of(plan: PlanState, at: datetime) -> dict[str, Any]:
    """The plan as the `plan` query shows it, plus ease-off and the warning it is responding to.

    A pause with an end is over once `at` passes the end (no timer ends it in the store)."""
    status, paused_until, reason = plan.status, plan.paused_until, plan.pause_reason
    if status == "paused" and paused_until is not None and paused_until <= at:
        status, paused_until, reason = "active", None, None
    return {
        "status": status,
        "level": plan.level,
        "open_assignment": plan.open_assignment.as_wire() if plan.open_assignment is not None else None,
        "paused_until": rfc3339(paused_until) if paused_until is not None else None,
        "pause_reason": reason if status == "paused" else None,
        "ease_off_until": rfc3339(plan.ease_off_until) if plan.easing_off_at(at) and plan.ease_off_until else None,
        "active_warning": (
            {"warning_id": plan.active_warning_id, "severity": str(plan.active_severity)}
            if plan.active_warning_id is not None
            else None
        ),
    }


# Text -----------------------------------------------------------------------------------------


def _render(state: dict[str, Any], console: Console) -> None:
    def line(label: str, text: str) -> None:
        console.print(f"{label:<10} {text}", markup=False)

    console.print(f"{state['user_id']} as of {state['as_of']}", markup=False, style="bold")
    line("progress", _progress_text(state["progress"]))
    line("plan", _plan_text(state["plan"]))
    warning = state["active_warning"]
    line("warning", _warning_text(warning) if warning else "none")
    table = Table(
        "time",
        "kind",
        "decision",
        "rule set",
        title=f"decisions ({len(state['decisions'])})",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    for d in state["decisions"]:
        cells = (d["time"], d["kind"], _decision_text(d["kind"], d["data"]), d["ruleset_version"] or "-")
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


def _progress_text(view: dict[str, Any] | None) -> str:
    if view is None:
        return "no attempt yet"
    if view.get("erased"):
        counts = ", ".join(f"{k} {v}" for k, v in view["attempts"].items())
        return f"erased · position {view['position']} · {counts}"
    counts = ", ".join(f"{k} {v}" for k, v in view["attempts"].items())
    return (
        f"position {view['position']} · level {view['level']} (ready: {'yes' if view['level_ready'] else 'no'}) · "
        f"{counts} · streak {view['streak_days']} day(s) · rule set {view['ruleset_version']}"
    )


def _plan_text(plan: dict[str, Any] | None) -> str:
    if plan is None:
        return "not enrolled"
    parts = [plan["status"] + (f" ({plan['pause_reason']})" if plan["pause_reason"] else ""), f"level {plan['level']}"]
    if plan["paused_until"]:
        parts.append(f"paused until {plan['paused_until']}")
    if plan["ease_off_until"]:
        parts.append(f"easing off until {plan['ease_off_until']}")
    assignment = plan["open_assignment"]
    if assignment is not None:
        parts.append(f"open: {_decision_text('assignment', assignment)}")
    return " · ".join(parts)


def _warning_text(warning: dict[str, Any]) -> str:
    rules = ", ".join(r["rule"] for r in warning["rules"])
    escalate = ", escalated" if warning.get("escalate") else ""
    return f"{warning['severity']} ({rules}{escalate}) raised {warning['raised_at']}, id {warning['warning_id']}"


def _decision_text(kind: str, data: dict[str, Any]) -> str:
    if kind == "assignment":
        return f"{data['reason']} level {data['level']}: {data['title']} (not before {data['not_before']})"
    if kind == "pause":
        return f"{data['reason']} {_pause_end(data)}"
    if kind == "resume":
        return f"resumed ({data['reason'] or 'reason not recorded'}) at {data['resumed_at']}"
    if kind == "notice":
        return f"{data['reason']}: {data['detail']}"
    if kind == "warning":
        return _warning_text(data)
    return f"cleared {data['warning_id']} by {data['by']}"


# What ends a pause that has no end time, by its reason.
_OPEN_ENDED = {
    "crisis": "until a coach's review",
    "withdrawn": "for good",
    "participant": "until the participant resumes",
}


def _pause_end(data: dict[str, Any]) -> str:
    if data["until"]:
        return f"until {data['until']}"
    return _OPEN_ENDED.get(data["reason"], "with no end set")
