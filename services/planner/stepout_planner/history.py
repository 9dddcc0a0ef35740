"""The planner's part of a participant's history: inputs only it keeps, and its decisions."""

from __future__ import annotations

from typing import Any

from stepout_contract.envelope import SOURCE_TRACKER, rfc3339

from .plan import plan_id


def planner_input(decided: Any, user_id: str) -> dict[str, Any] | None:
    """The platform input a decision records, rebuilt from its cause and command; None when the
    decision came from the tracker's outputs (those are the tracker's own history)."""
    cause = decided.cause
    if cause.get("source") == SOURCE_TRACKER:
        return None
    data = {k: v for k, v in decided.command["body"].items() if k != "at"}
    data["user_id"] = user_id
    return {
        "specversion": "1.0",
        "id": cause["id"],
        "source": cause["source"],
        "type": cause["type"],
        "subject": user_id,
        "time": cause.get("time") or cause["received_at"],
        "datacontenttype": "application/json",
        "data": data,
    }


def planner_history(app: Any, user_id: str) -> list[dict[str, Any]] | None:
    """`{"recorded_at", "event"}` for each input and published decision, in store order;
    None for an unknown participant."""
    stored = app.recorder.select_events(plan_id(user_id))
    if not stored:
        return None
    found: list[dict[str, Any]] = []
    for record in stored:
        decided = app.mapper.to_domain_event(record)
        if not hasattr(decided, "cause"):
            continue
        recorded_at = rfc3339(decided.timestamp)
        given = planner_input(decided, user_id)
        if given is not None:
            found.append({"recorded_at": recorded_at, "event": given})
        found.extend({"recorded_at": recorded_at, "event": output.event} for output in app.effects_of(decided))
    return found
