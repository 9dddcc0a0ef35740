"""The planner's part of a participant's history: inputs only it keeps, and its decisions.

`planner_input` and `planner_published` say what one stored event stands for; the history
pages here and the audit trail (`stepout_audit`) both read stored events through them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stepout_contract.envelope import make_event
from stepout_contract.vocabulary import rfc3339
from stepout_runtime.erasure import erased_record
from stepout_runtime.history_pages import Key, PageEntry, read_entries
from stepout_runtime.outbox import Output
from stepout_runtime.personal_events import ErasedData

from .plan import from_platform, plan_id


def planner_input(stored: Any, user_id: str) -> dict[str, Any] | None:
    """The platform input a stored decision records, rebuilt from its cause and command; None for
    anything but a decision, and for a decision made of the tracker's outputs (those are the
    tracker's own history)."""
    if type(stored).__name__ != "Decided" or not from_platform(stored.cause):
        return None
    cause = stored.cause
    data = {k: v for k, v in stored.command["body"].items() if k != "at"}
    data["user_id"] = user_id
    return make_event(
        event_id=cause["id"],
        source=cause["source"],
        type_=cause["type"],
        user_id=user_id,
        time=datetime.fromisoformat(cause.get("time") or cause["received_at"]),
        data=data,
    )


def planner_published(app: Any, stored: Any) -> list[dict[str, Any]]:
    """The CloudEvents one stored event was published as (the outbox's own mapping, so with the
    published ids); an erasure as its erasure record."""
    if type(stored).__name__ == "Erased":
        return [erased_record("planner", stored)]
    return [effect.event for effect in app.effects_of(stored) if isinstance(effect, Output)]


def planner_entries(app: Any, record: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(recorded_at, CloudEvent) for what one stored decision adds to the participant's history: the
    platform input it decided (every participant input is recorded here, even one that changed
    nothing; the tracker's part adds the attempts) and the published decisions. Nothing for what an
    erasure made unreadable, and the erasure record for the erasure itself."""
    try:
        stored = app.mapper.to_domain_event(record)
    except ErasedData:
        return []
    given = planner_input(stored, user_id)
    recorded_at = rfc3339(stored.timestamp)
    shown = ([given] if given is not None else []) + planner_published(app, stored)
    return [(recorded_at, event) for event in shown]


def planner_page(app: Any, user_id: str, after: Key, limit: int) -> tuple[list[PageEntry], bool] | None:
    """Up to `limit` of the planner's history entries after `after`; None for an unknown participant."""
    key = plan_id(user_id)
    erased = app.erased(key)

    def expand(record: Any) -> list[tuple[str, dict[str, Any]]]:
        if erased and not record.topic.endswith(".Erased"):
            return []  # of an erased participant, only the erasure's record
        return planner_entries(app, record, user_id)

    return read_entries(app.recorder, key, expand, after, limit)
