"""The tracker's aggregate: one participant's enrolment, attempts and warnings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event
from pydantic import TypeAdapter

from stepout_domain.attempts import Attempt
from stepout_domain.warnings import Clearing, Warning

PARTICIPANT_NAMESPACE = uuid.UUID("3c1f8a52-7d0e-5b4a-8e9f-1a2b3c4d5e6f")

ATTEMPT = TypeAdapter(Attempt)
WARNING = TypeAdapter(Warning)
CLEARING = TypeAdapter(Clearing)


def participant_id(user_id: str) -> uuid.UUID:
    return uuid.uuid5(PARTICIPANT_NAMESPACE, user_id)


class Participant(Aggregate):
    """What the tracker knows of one participant. Inputs keep their CloudEvent attributes
    (`envelope`) so the history can show them as they arrived; notes are kept apart."""

    @staticmethod
    def create_id(user_id: str, **_: Any) -> uuid.UUID:
        return participant_id(user_id)

    @event("Enrolled")
    def __init__(self, user_id: str, timezone: str, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self.user_id = user_id
        self.timezone = timezone
        self.withdrawn = False
        self.erased = False
        self.attempts: list[Attempt] = []
        self.attempt_ids: set[str] = set()
        self.active_warning: Warning | None = None
        self.warnings_raised_at: list[datetime] = []
        self.last_review_at: datetime | None = None

    @event("EnrolmentChanged")
    def change_enrolment(self, timezone: str, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self.timezone = timezone

    @event("AttemptRecorded")
    def record_attempt(self, attempt: dict[str, Any], sealed_note: str | None, envelope: dict[str, Any]) -> None:
        recorded = ATTEMPT.validate_python(attempt)
        self.attempts.append(recorded)
        self.attempt_ids.add(recorded.attempt_id)

    @event("WarningRaised")
    def raise_warning(self, warning: dict[str, Any]) -> None:
        raised = WARNING.validate_python(warning)
        self.active_warning = raised
        self.warnings_raised_at.append(raised.raised_at)

    @event("WarningCleared")
    def clear_warning(self, clearing: dict[str, Any]) -> None:
        self.active_warning = None

    @event("ProgressUpdated")
    def update_progress(self, view: dict[str, Any]) -> None:
        pass

    @event("Reviewed")
    def review(self, reviewed_at: datetime, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self.last_review_at = reviewed_at

    @event("Withdrawn")
    def withdraw(self, erase: bool, stream_seq: int, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        self.withdrawn = True
        self.erased = erase


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    return ATTEMPT.dump_python(attempt, mode="json")  # type: ignore[no-any-return]


def warning_record(warning: Warning) -> dict[str, Any]:
    return WARNING.dump_python(warning, mode="json")  # type: ignore[no-any-return]


def clearing_record(clearing: Clearing) -> dict[str, Any]:
    return CLEARING.dump_python(clearing, mode="json")  # type: ignore[no-any-return]
