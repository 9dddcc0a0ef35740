"""`stepout replay --user U [--as-of TIME] [--json]`: a participant as of TIME, rebuilt from the
event stores (`stepout_audit.replay.state_as_of`), printed as JSON or as text."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stepout_audit.describe import decision_text, warning_text
from stepout_audit.entries import UnreadableEvent
from stepout_audit.replay import state_as_of
from stepout_contract.settings import Settings

from .bars import stderr_console
from .stores import trail_of

TEXT_WIDTH = 200


def replay(settings: Settings, user_id: str, as_of: datetime | None, as_json: bool) -> int:
    """Print the participant as of `as_of` (now when None). Exit 1 when the stores do not know them."""
    at = as_of or datetime.now(UTC)
    try:
        trail = trail_of(settings, user_id, stderr_console())
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


# Text -----------------------------------------------------------------------------------------


def _render(state: dict[str, Any], console: Console) -> None:
    def line(label: str, text: str) -> None:
        console.print(f"{label:<10} {text}", markup=False)

    console.print(f"{state['user_id']} as of {state['as_of']}", markup=False, style="bold")
    line("progress", _progress_text(state["progress"]))
    line("plan", _plan_text(state["plan"]))
    warning = state["active_warning"]
    line("warning", warning_text(warning) if warning else "none")
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
        cells = (d["time"], d["kind"], decision_text(d["kind"], d["data"]), d["ruleset_version"] or "-")
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
        parts.append(f"open: {decision_text('assignment', assignment)}")
    return " · ".join(parts)
