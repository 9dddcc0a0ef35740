"""The `history` query: a participant's inputs and decisions as CloudEvents, notes left out.

`tracker_input` and `tracker_published` say what one stored event stands for; the history
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

from .participant import participant_id

# Stored events of the previous release that record an input (the rest record decisions).
INPUTS = frozenset({"Enrolled", "EnrolmentChanged", "AttemptRecorded", "Reviewed", "Withdrawn"})
# Of those, the inputs the planner keeps too: its part of the history shows them.
_PLANNER_KEEPS = INPUTS - {"AttemptRecorded"}


def tracker_input(domain_event: Any, user_id: str) -> dict[str, Any] | None:
    """The input CloudEvent one stored event records: the attempt a decision recorded, or an input
    the previous release stored as an event of its own. None for anything else (the planner keeps
    every other input of this release itself)."""
    name = type(domain_event).__name__
    if name == "Decided":
        return input_event(domain_event, user_id) if domain_event.command["kind"] == "RecordAttempt" else None
    if name in INPUTS and getattr(domain_event, "envelope", None) is not None:
        return input_event(domain_event, user_id)
    return None


def tracker_published(app: Any, domain_event: Any) -> list[dict[str, Any]]:
    """The CloudEvents one stored event was published as (the outbox's own mapping, so with the
    published ids); an erasure as its erasure record."""
    if type(domain_event).__name__ == "Erased":
        return [erased_record("tracker", domain_event)]
    return [effect.event for effect in app.effects_of(domain_event) if isinstance(effect, Output)]


def tracker_entries(app: Any, record: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(recorded_at, CloudEvent) for the input and the published decisions one stored event records;
    nothing for what an erasure made unreadable, and the erasure record for the erasure itself."""
    try:
        domain_event = app.mapper.to_domain_event(record)
    except ErasedData:
        return []
    given = tracker_input(domain_event, user_id)
    if type(domain_event).__name__ in _PLANNER_KEEPS:
        given = None  # the planner's part of the history has it; the tracker's adds the attempts
    recorded_at = rfc3339(domain_event.timestamp)
    shown = ([given] if given is not None else []) + tracker_published(app, domain_event)
    return [(recorded_at, event) for event in shown]


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
    """A stored input as the CloudEvent it arrived as, its note left out."""
    if hasattr(domain_event, "cause"):  # a decision: its cause, and the attempt it recorded
        envelope = domain_event.cause
        data = {**domain_event.command["body"]["attempt"], "user_id": user_id}
    else:  # stored by the previous release, one event per input
        envelope = domain_event.envelope
        data = (
            {**domain_event.attempt, "user_id": user_id}
            if hasattr(domain_event, "attempt")
            else dict(domain_event.data)
        )
    # The note is sealed apart and never shown.
    return make_event(
        event_id=envelope["id"],
        source=envelope["source"],
        type_=envelope["type"],
        user_id=user_id,
        time=datetime.fromisoformat(envelope.get("time") or envelope["received_at"]),
        data=data,
    )
