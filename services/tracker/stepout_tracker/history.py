"""The `history` query: a participant's inputs and decisions as CloudEvents, notes left out."""

from __future__ import annotations

from typing import Any

from stepout_contract.vocabulary import rfc3339
from stepout_runtime.erasure import erased_record
from stepout_runtime.history_pages import Key, PageEntry, read_entries
from stepout_runtime.personal_events import ErasedData

from .participant import participant_id

# Stored events that record an input (the rest record decisions).
_INPUTS = frozenset({"Enrolled", "EnrolmentChanged", "Reviewed", "Withdrawn", "AttemptRecorded"})


def tracker_entries(app: Any, record: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(recorded_at, CloudEvent) for the input and the published decisions one stored event records;
    nothing for what an erasure made unreadable, and the erasure record for the erasure itself."""
    try:
        domain_event = app.mapper.to_domain_event(record)
    except ErasedData:
        return []
    recorded_at = rfc3339(domain_event.timestamp)
    name = type(domain_event).__name__
    if name == "Erased":
        return [(recorded_at, erased_record("tracker", domain_event))]
    if name in _INPUTS:
        # The planner keeps every participant input itself; the tracker's history part adds the attempts.
        return [(recorded_at, input_event(domain_event, user_id))] if name == "AttemptRecorded" else []
    return [(recorded_at, o.event) for o in app.effects_of(domain_event) if hasattr(o, "event")]


def tracker_page(app: Any, user_id: str, after: Key, limit: int) -> tuple[list[PageEntry], bool] | None:
    """Up to `limit` of the tracker's history entries after `after`; None for an unknown participant.
    Of an erased participant, only the erasure's record (nothing stored before it is shown)."""
    key = participant_id(user_id)
    erased = app.erased(key)

    def expand(record: Any) -> list[tuple[str, dict[str, Any]]]:
        if erased and not record.topic.endswith(".Erased"):
            return []
        return tracker_entries(app, record, user_id)

    return read_entries(app.recorder, key, expand, after, limit)


def input_event(domain_event: Any, user_id: str) -> dict[str, Any]:
    """A stored input as the CloudEvent it arrived as, its note left out (the audit export uses it too)."""
    envelope = domain_event.envelope
    if hasattr(domain_event, "attempt"):
        data = {**domain_event.attempt, "user_id": user_id}  # the note is stored apart, never shown
    else:
        data = dict(domain_event.data)
    return {
        "specversion": "1.0",
        "id": envelope["id"],
        "source": envelope["source"],
        "type": envelope["type"],
        "subject": user_id,
        "time": envelope.get("time") or envelope["received_at"],
        "datacontenttype": "application/json",
        "data": data,
    }
