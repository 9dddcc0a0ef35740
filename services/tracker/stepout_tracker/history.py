"""The `history` query: a participant's inputs and decisions as CloudEvents, notes left out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stepout_contract.envelope import rfc3339

from .participant import participant_id

# Stored events that record an input (the rest record decisions).
_INPUTS = frozenset({"Enrolled", "EnrolmentChanged", "Reviewed", "Withdrawn", "AttemptRecorded"})


def tracker_history(app: Any, user_id: str) -> list[dict[str, Any]] | None:
    """`{"recorded_at", "event"}` for each input and published decision, in store order;
    None when the participant is unknown."""
    stored = app.recorder.select_events(participant_id(user_id))
    if not stored:
        return None
    found: list[dict[str, Any]] = []
    for record in stored:
        domain_event = app.mapper.to_domain_event(record)
        recorded_at = rfc3339(domain_event.timestamp)
        if type(domain_event).__name__ in _INPUTS:
            found.append({"recorded_at": recorded_at, "event": input_event(domain_event, user_id)})
        else:
            outputs = app.effects_of(domain_event)
            found.extend({"recorded_at": recorded_at, "event": o.event} for o in outputs if hasattr(o, "event"))
    return found


def merged(*histories: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Both services' histories as one, in the order things were recorded, each event once
    (an input both services stored keeps its first copy), the oldest `limit` of them."""
    entries = [entry for history in histories for entry in history]
    entries.sort(key=lambda entry: datetime.fromisoformat(entry["recorded_at"]))  # stable: store order kept
    seen: set[str] = set()
    events: list[dict[str, Any]] = []
    for entry in entries:
        if entry["event"]["id"] not in seen:
            seen.add(entry["event"]["id"])
            events.append(entry["event"])
    return events[:limit]


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
