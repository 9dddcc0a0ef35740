"""The `history` query: a participant's inputs and decisions as CloudEvents, notes left out."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Notification

from .participant import participant_id

# Stored input events and the CloudEvent type they arrived as.
_INPUT_TYPES = {
    "Enrolled": "stepout.participant.enrolled.v1",
    "EnrolmentChanged": "stepout.participant.enrolled.v1",
    "Reviewed": "stepout.participant.reviewed.v1",
    "Withdrawn": "stepout.participant.withdrawn.v1",
    "AttemptRecorded": "stepout.attempt.logged.v1",
}


def history_of(app: Any, user_id: str, limit: int) -> list[dict[str, Any]] | None:
    """Oldest first, at most `limit` events; None when the participant is unknown."""
    stored = app.recorder.select_events(participant_id(user_id))
    if not stored:
        return None
    events: list[dict[str, Any]] = []
    for record in stored:
        if record.topic.rsplit(".", 1)[1] in _INPUT_TYPES:
            events.append(input_event(app.mapper.to_domain_event(record), user_id))
        else:
            as_notification = Notification(
                id=0,
                originator_id=record.originator_id,
                originator_version=record.originator_version,
                topic=record.topic,
                state=record.state,
            )
            events.extend(o.event for o in app.to_outputs(as_notification) if hasattr(o, "event"))
        if len(events) >= limit:
            break
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
