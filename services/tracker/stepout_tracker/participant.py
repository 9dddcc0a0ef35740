"""The tracker's aggregate: one participant, as the decisions made for them.

Each stored `Decided` keeps the command (what came in, with its CloudEvent attributes as `cause`),
the rule-set version used and the events the domain decided (`tracking.decide`); folding them with
`tracking.evolve` rebuilds the participant, and an audit re-runs the decider and compares. The
participant's state does not grow with their history (`tracker_state`), and it is snapshotted, so
loading reads a bounded number of stored events.

Stores of the previous release kept one stored event per domain event (`AttemptRecorded`,
`WarningRaised`, ...); those classes stay, and fold through the same `evolve`.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from eventsourcing.domain import Aggregate, event
from pydantic import TypeAdapter

from stepout_domain import tracking
from stepout_domain.attempts import Attempt
from stepout_domain.tracker_events import (
    AttemptRecorded,
    Enrolled,
    EnrolmentChanged,
    Reviewed,
    TrackerEvent,
    WarningCleared,
    WarningRaised,
    Withdrawn,
)
from stepout_domain.tracker_state import initial_state, with_erasure, with_input
from stepout_domain.warnings import Clearing, Warning
from stepout_runtime.inbound import happened_at

from .records import EVENTS

PARTICIPANT_NAMESPACE = uuid.UUID("3c1f8a52-7d0e-5b4a-8e9f-1a2b3c4d5e6f")

ATTEMPT = TypeAdapter(Attempt)
WARNING = TypeAdapter(Warning)
CLEARING = TypeAdapter(Clearing)


@lru_cache(maxsize=16_384)  # asked for several times per input; a SHA-1 each time otherwise
def participant_id(user_id: str) -> uuid.UUID:
    return uuid.uuid5(PARTICIPANT_NAMESPACE, user_id)


class Participant(Aggregate):
    @staticmethod
    def create_id(user_id: str, **_: Any) -> uuid.UUID:
        return participant_id(user_id)

    @event("Enrolled")
    def __init__(
        self,
        user_id: str,
        timezone: str | None = None,
        envelope: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.user_id = user_id
        self.state = initial_state(user_id)
        if timezone is not None and envelope is not None:  # created by the previous release: its enrolment
            coach_id = (data or {}).get("coach_id")
            self._fold([Enrolled(user_id, timezone, happened_at(envelope), coach_id)], envelope.get("id"))

    def _fold(self, events: list[TrackerEvent], input_id: str | None) -> None:
        self.state = with_input(tracking.replay(self.state, events), input_id)

    @property
    def withdrawn(self) -> bool:
        return self.state.withdrawn

    class Decided(Aggregate.Event):
        """An input decided: the command, its cause, the rule set and the events decided; the
        attempt's note, if any, sealed on its own (reading the decision back never opens it)."""

        command: dict[str, Any]
        events: list[dict[str, Any]]
        cause: dict[str, Any]
        ruleset_version: str
        sealed_note: str | None = None

    @event(Decided)
    def decided(
        self,
        command: dict[str, Any],
        events: list[dict[str, Any]],
        cause: dict[str, Any],
        ruleset_version: str,
        sealed_note: str | None = None,
    ) -> None:
        # Attempts are told apart by their `attempt_id` (the store's index), not by the input id window.
        input_id = None if command["kind"] == "RecordAttempt" else cause.get("id")
        self._fold([EVENTS.read(record) for record in events], input_id)

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
        self.state = with_input(with_erasure(self.state), request_id)

    # --- Stored by the previous release, one domain event each ---------------------------------

    @event("EnrolmentChanged")
    def change_enrolment(self, timezone: str, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self._fold([EnrolmentChanged(timezone, happened_at(envelope), data.get("coach_id"))], envelope.get("id"))

    @event("AttemptRecorded")
    def record_attempt(
        self, attempt: dict[str, Any], sealed_note: str | None, envelope: dict[str, Any], digest: str | None = None
    ) -> None:
        self._fold([AttemptRecorded(ATTEMPT.validate_python(attempt), happened_at(envelope))], None)

    @event("WarningRaised")
    def raise_warning(self, warning: dict[str, Any]) -> None:
        self._fold([WarningRaised(WARNING.validate_python(warning))], None)

    @event("WarningCleared")
    def clear_warning(self, clearing: dict[str, Any]) -> None:
        self._fold([WarningCleared(CLEARING.validate_python(clearing))], None)

    @event("ProgressUpdated")
    def update_progress(self, view: dict[str, Any]) -> None:
        pass

    @event("Reviewed")
    def review(self, reviewed_at: Any, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self._fold([Reviewed(reviewed_at)], envelope.get("id"))

    @event("Withdrawn")
    def withdraw(self, erase: bool, stream_seq: int, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self._fold([Withdrawn(erase, happened_at(envelope))], envelope.get("id"))


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    return ATTEMPT.dump_python(attempt, mode="json")  # type: ignore[no-any-return]


def warning_record(warning: Warning) -> dict[str, Any]:
    return WARNING.dump_python(warning, mode="json")  # type: ignore[no-any-return]


def clearing_record(clearing: Clearing) -> dict[str, Any]:
    return CLEARING.dump_python(clearing, mode="json")  # type: ignore[no-any-return]
