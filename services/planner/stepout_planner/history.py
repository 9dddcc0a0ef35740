"""The planner's part of a participant's history: inputs only it keeps, and its decisions."""

from __future__ import annotations

from typing import Any

from stepout_contract.vocabulary import rfc3339
from stepout_runtime.erasure import erased_record
from stepout_runtime.history_pages import Key, PageEntry, read_entries
from stepout_runtime.personal_events import ErasedData

from .plan import from_platform, plan_id


def planner_input(decided: Any, user_id: str) -> dict[str, Any] | None:
    """The platform input a decision records, rebuilt from its cause and command; None when the
    decision came from the tracker's outputs (those are the tracker's own history)."""
    cause = decided.cause
    if not from_platform(cause):
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


def planner_entries(app: Any, record: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(recorded_at, CloudEvent) for what one stored decision adds to the participant's history: the
    platform input it decided (every participant input is recorded here, even one that changed
    nothing; the tracker's part adds the attempts) and the published decisions. Nothing for what an
    erasure made unreadable, and the erasure record for the erasure itself."""
    try:
        decided = app.mapper.to_domain_event(record)
    except ErasedData:
        return []
    if type(decided).__name__ == "Erased":
        return [(rfc3339(decided.timestamp), erased_record("planner", decided))]
    if not hasattr(decided, "cause"):
        return []
    recorded_at = rfc3339(decided.timestamp)
    found: list[tuple[str, dict[str, Any]]] = []
    given = planner_input(decided, user_id)
    if given is not None:
        found.append((recorded_at, given))
    found.extend((recorded_at, output.event) for output in app.effects_of(decided) if hasattr(output, "event"))
    return found


def planner_page(app: Any, user_id: str, after: Key, limit: int) -> tuple[list[PageEntry], bool] | None:
    """Up to `limit` of the planner's history entries after `after`; None for an unknown participant."""
    key = plan_id(user_id)
    erased = app.erased(key)

    def expand(record: Any) -> list[tuple[str, dict[str, Any]]]:
        if erased and not record.topic.endswith(".Erased"):
            return []  # of an erased participant, only the erasure's record
        return planner_entries(app, record, user_id)

    return read_entries(app.recorder, key, expand, after, limit)
