"""The tracker's aggregate: one participant's enrolment, attempts and warnings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event
from pydantic import TypeAdapter

from stepout_domain import tracking
from stepout_domain.attempts import Attempt
from stepout_domain.warnings import Clearing, Warning
from stepout_runtime.inbound import happened_at

PARTICIPANT_NAMESPACE = uuid.UUID("3c1f8a52-7d0e-5b4a-8e9f-1a2b3c4d5e6f")

ATTEMPT = TypeAdapter(Attempt)
WARNING = TypeAdapter(Warning)
CLEARING = TypeAdapter(Clearing)


def participant_id(user_id: str) -> uuid.UUID:
    return uuid.uuid5(PARTICIPANT_NAMESPACE, user_id)


class Participant(Aggregate):
    """What the tracker knows of one participant, as a `tracking.TrackerState` that every stored
    event changes through the domain's own `with_*` functions. Inputs keep their CloudEvent
    attributes (`envelope`) so the history can show them as they arrived; notes are kept apart."""

    @staticmethod
    def create_id(user_id: str, **_: Any) -> uuid.UUID:
        return participant_id(user_id)

    @event("Enrolled")
    def __init__(self, user_id: str, timezone: str, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self.user_id = user_id
        state = tracking.initial_state(user_id, timezone, happened_at(envelope))
        self.state = tracking.with_input(state, envelope.get("id"))

    @property
    def withdrawn(self) -> bool:
        return self.state.withdrawn

    @property
    def timezone(self) -> str:
        return self.state.timezone

    @event("EnrolmentChanged")
    def change_enrolment(self, timezone: str, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        state = tracking.with_enrolment(self.state, timezone, happened_at(envelope))
        self.state = tracking.with_input(state, envelope.get("id"))

    @event("AttemptRecorded")
    def record_attempt(
        self, attempt: dict[str, Any], sealed_note: str | None, envelope: dict[str, Any], digest: str | None = None
    ) -> None:
        # Attempts are told apart by their `attempt_id` (kept for every attempt), not by the id window.
        self.state = tracking.with_attempt(self.state, ATTEMPT.validate_python(attempt), happened_at(envelope), digest)

    @event("WarningRaised")
    def raise_warning(self, warning: dict[str, Any]) -> None:
        self.state = tracking.with_warning(self.state, WARNING.validate_python(warning))

    @event("WarningCleared")
    def clear_warning(self, clearing: dict[str, Any]) -> None:
        self.state = tracking.with_clearing(self.state)

    @event("ProgressUpdated")
    def update_progress(self, view: dict[str, Any]) -> None:
        pass

    @event("Reviewed")
    def review(self, reviewed_at: datetime, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self.state = tracking.with_input(tracking.with_review(self.state, reviewed_at), envelope.get("id"))

    @event("Withdrawn")
    def withdraw(self, erase: bool, stream_seq: int, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        state = tracking.with_withdrawal(self.state)
        # Erasing withdrawals are followed by `Erased`; one stored by the previous release erases here.
        self.state = tracking.with_input(tracking.with_erasure(state) if erase else state, envelope.get("id"))

    class Erased(Aggregate.Event):
        """A participant's erasure: what it leaves (counts, the rules of their warnings) and nothing
        personal, so it is sealed with the store's key and still reads once their key is destroyed."""

        personal = False
        user_id: str
        summary: dict[str, Any]
        stream_seq: int
        request_id: str

    @event(Erased)
    def erase(self, user_id: str, summary: dict[str, Any], stream_seq: int, request_id: str) -> None:
        self.state = tracking.with_input(tracking.with_erasure(self.state), request_id)


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    return ATTEMPT.dump_python(attempt, mode="json")  # type: ignore[no-any-return]


def warning_record(warning: Warning) -> dict[str, Any]:
    return WARNING.dump_python(warning, mode="json")  # type: ignore[no-any-return]


def clearing_record(clearing: Clearing) -> dict[str, Any]:
    return CLEARING.dump_python(clearing, mode="json")  # type: ignore[no-any-return]
