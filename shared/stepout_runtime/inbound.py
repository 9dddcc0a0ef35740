"""Turning one JetStream message into a validated input, or into the reason it is a dead letter."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from stepout_contract.envelope import CloudEvent, rfc3339
from stepout_contract.subjects import Subjects, is_user_id

MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why an input cannot be accepted. `detail` never quotes personal data."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: redeliver later."""

    detail: str


Verdict = DeadLetter | Retry | None  # None: accepted (or harmlessly ignored)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded input: the envelope, its typed data and where it came from."""

    subject: str
    kind: str  # "<family>.<name>", e.g. "attempt.logged"
    user_id: str
    event: CloudEvent
    data: Any
    stream_seq: int
    delivered: int
    received_at: datetime

    def attributes(self) -> dict[str, Any]:
        """The input's CloudEvent attributes, kept with what it caused so history and audits can
        show it as it arrived (its data is stored apart, without the note)."""
        event = self.event
        return {
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "time": rfc3339(event.time) if event.time else None,
            "received_at": rfc3339(self.received_at),
        }

    @property
    def happened_at(self) -> datetime:
        """When the input says it happened (its CloudEvent `time`), never later than its arrival:
        a platform syncing late or replaying a history keeps its own timeline, and a clock
        running ahead cannot schedule into the future. Stored with the decision, so replays agree."""
        time = self.event.time
        return min(time, self.received_at) if time is not None else self.received_at


def _validation_detail(exc: ValidationError) -> str:
    # Only field paths and messages: never the input value, which may be a note.
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "(body)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


_PARTITION_TOKEN = re.compile(r"\.[0-9]{1,2}$")


def original_subject(subject: str, subjects: Subjects) -> str:
    """The subject a platform published to, without the partition token the stream may append."""
    head = f"{subjects.prefix}."
    if subject.startswith(head) and subject.count(".") - head.count(".") == 3:
        return _PARTITION_TOKEN.sub("", subject)
    return subject


def decode(
    body: bytes,
    subject: str,
    types: dict[str, tuple[str, str, type[BaseModel]]],
    subjects: Subjects,
    *,
    stream_seq: int,
    delivered: int,
    received_at: datetime,
) -> Inbound | DeadLetter:
    """Validate one message against the contract; every failure is a named dead-letter reason."""
    subject = original_subject(subject, subjects)
    if len(body) > MAX_MESSAGE_BYTES:
        return DeadLetter("too_large", f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return DeadLetter("invalid_json", f"body is not JSON: {type(exc).__name__}")
    if not isinstance(raw, dict):
        return DeadLetter("invalid_envelope", "body is not a JSON object")
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        return DeadLetter("invalid_envelope", _validation_detail(exc))
    known = types.get(event.type)
    if known is None:
        return DeadLetter("unknown_type", f"unknown type or version {event.type[:100]!r}")
    family, name, model = known
    user_token = subjects.user_of(subject)
    expected_prefix = f"{subjects.prefix}.{family}.{name}."
    if not subject.startswith(expected_prefix) or user_token is None or not is_user_id(user_token):
        return DeadLetter("invalid_subject", f"type {event.type} does not fit subject {subject[:200]!r}")
    try:
        data = model.model_validate(event.data)
    except ValidationError as exc:
        return DeadLetter("invalid_data", _validation_detail(exc))
    user_id = getattr(data, "user_id", None)
    if user_id != user_token:
        return DeadLetter("invalid_subject", "data.user_id differs from the subject's user id")
    if event.subject is not None and event.subject != user_token:
        return DeadLetter("invalid_subject", "CloudEvent subject differs from the subject's user id")
    checker = getattr(data, "check_not_in_future", None)
    if checker is not None:
        try:
            checker(received_at)
        except ValueError as exc:
            return DeadLetter("invalid_data", str(exc))
    return Inbound(
        subject=subject,
        kind=f"{family}.{name}",
        user_id=user_token,
        event=event,
        data=data,
        stream_seq=stream_seq,
        delivered=delivered,
        received_at=received_at,
    )
