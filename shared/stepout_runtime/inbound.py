"""Turning one JetStream message into a validated input, or into the reason it is a dead letter."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from stepout_contract.envelope import STEPOUT_SOURCE_PREFIX, CloudEvent, rfc3339
from stepout_contract.subjects import Subjects, is_user_id

MAX_MESSAGE_BYTES = 64 * 1024
# Where an input came from is known by the stream that delivered it, never by what it says:
# "platform" for the input stream, "stepout" for the services' own output stream.
Origin = Literal["platform", "stepout"]


def body_digest(body: bytes) -> str:
    """Hex SHA-256 of a message body: what a dead letter keeps of a body too large to keep."""
    return hashlib.sha256(body).hexdigest()


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
    origin: Origin
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
            "time": rfc3339(event.time),
            "received_at": rfc3339(self.received_at),
            "origin": self.origin,
        }

    @property
    def happened_at(self) -> datetime:
        """When the input says it happened (its CloudEvent `time`), never later than its arrival:
        a platform syncing late or replaying a history keeps its own timeline, and a clock
        running ahead cannot schedule into the future. Stored with the decision, so replays agree."""
        return min(self.event.time, self.received_at)


def happened_at(attributes: dict[str, Any]) -> datetime:
    """`Inbound.happened_at` of an input as its stored attributes (`Inbound.attributes`) record it."""
    received = datetime.fromisoformat(attributes["received_at"])
    time = attributes.get("time")
    return min(datetime.fromisoformat(time), received) if time else received


USER_ID_WORDS = "1 to 64 characters of A-Z a-z 0-9 _ -"
_TYPE_WORDS = {
    "missing": "is required",
    "bool_type": "must be true or false (a JSON boolean)",
    "int_type": "must be a whole number (a JSON number, not text)",
    "int_from_float": "must be a whole number",
    "string_type": "must be text (a JSON string)",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "string_pattern_mismatch": "is not in the form it must have",
}


def plain_words(error: Any) -> str:
    """What a field must be, in plain words, from one pydantic error: never the value it had."""
    kind, ctx = error["type"], error.get("ctx") or {}
    field = str(error["loc"][-1]) if error["loc"] else ""
    if field in ("user_id", "subject") and kind in ("string_pattern_mismatch", "string_too_long", "string_too_short"):
        return f"is not a valid user id: it must be {USER_ID_WORDS}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', 'the values the contract lists')}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else f"must be at least {ctx.get('min_length')} characters"
        )
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return _TYPE_WORDS.get(kind, str(error["msg"]))


def _validation_detail(exc: ValidationError) -> str:
    # Field paths and what each must be: never the input value, which may be a note.
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "(body)"
        parts.append(f"{where}: {plain_words(error)}")
    return "; ".join(parts)[:500]


def original_subject(subject: str, subjects: Subjects) -> str:
    """The subject a platform published to, without the partition token the input stream puts
    after the prefix (`P.<k>.<family>.<event>.<user_id>`); only the stream's own mapping makes such
    a subject, as no stream takes one published."""
    tokens = subjects.tokens_of(subject)
    if tokens is not None and len(tokens) == 4 and tokens[0].isdigit():
        return f"{subjects.prefix}.{'.'.join(tokens[1:])}"
    return subject


def named_users(subject: str, body: bytes, subjects: Subjects) -> set[str]:
    """Every participant an input names, whatever else is wrong with it: the user id of its subject,
    its CloudEvent `subject` and its `data.user_id`, where each is a valid user id."""
    names: list[object] = [subjects.user_of(original_subject(subject, subjects))]
    if len(body) <= MAX_MESSAGE_BYTES:
        try:
            raw = json.loads(body)
        except Exception:  # noqa: BLE001 - unreadable: it names nobody more
            raw = None
        if isinstance(raw, dict):
            names.append(raw.get("subject"))
            data = raw.get("data")
            if isinstance(data, dict):
                names.append(data.get("user_id"))
    return {name for name in names if is_user_id(name)}  # type: ignore[misc]


def decode(
    body: bytes,
    subject: str,
    types: dict[str, tuple[str, str, type[BaseModel]]],
    subjects: Subjects,
    *,
    origin: Origin = "platform",
    stream_seq: int,
    delivered: int,
    received_at: datetime,
) -> Inbound | DeadLetter:
    """Validate one message against the contract; every failure is a named dead-letter reason.

    Nothing a message holds can make this raise: whatever its bytes, envelope or data, the
    answer is an accepted input or a dead letter, decided on its first delivery.
    """
    try:
        return _decode(
            body,
            subject,
            types,
            subjects,
            origin=origin,
            stream_seq=stream_seq,
            delivered=delivered,
            received_at=received_at,
        )
    except RecursionError:
        return DeadLetter("invalid_json", "body is nested too deeply")
    except Exception as exc:  # noqa: BLE001 - the edge must not be escaped, whatever the input
        return DeadLetter("invalid_input", f"input could not be read ({type(exc).__name__})")


def _decode(
    body: bytes,
    subject: str,
    types: dict[str, tuple[str, str, type[BaseModel]]],
    subjects: Subjects,
    *,
    origin: Origin,
    stream_seq: int,
    delivered: int,
    received_at: datetime,
) -> Inbound | DeadLetter:
    if len(body) > MAX_MESSAGE_BYTES:
        return DeadLetter("too_large", f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    subject = original_subject(subject, subjects)
    try:
        raw = json.loads(body)
    except RecursionError:
        return DeadLetter("invalid_json", "body is nested too deeply")
    except (UnicodeDecodeError, ValueError) as exc:
        return DeadLetter("invalid_json", f"body is not JSON: {type(exc).__name__}")
    if not isinstance(raw, dict):
        return DeadLetter("invalid_envelope", "body is not a JSON object")
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        return DeadLetter("invalid_envelope", _validation_detail(exc))
    if origin == "platform" and event.source.startswith(STEPOUT_SOURCE_PREFIX):
        return DeadLetter("invalid_envelope", f"source: an input's source must not start with {STEPOUT_SOURCE_PREFIX}")
    known = types.get(event.type)
    if known is None:
        return DeadLetter("unknown_type", "type: not a type this service reads (unknown name or version)")
    family, name, model = known
    tokens = subjects.tokens_of(subject)
    if tokens is None or tokens[:2] != [family, name]:
        return DeadLetter(
            "invalid_subject", f"subject must be {subjects.prefix}.{family}.{name}.<user_id> for {event.type}"
        )
    if len(tokens) != 3 or not is_user_id(tokens[2]):
        return DeadLetter(
            "invalid_subject",
            f"the user id in the subject is not valid: it must be one subject token of {USER_ID_WORDS}",
        )
    user_token = tokens[2]
    try:
        data = model.model_validate(event.data)
    except ValidationError as exc:
        return DeadLetter("invalid_data", _validation_detail(exc))
    user_id = getattr(data, "user_id", None)
    if user_id != user_token:
        return DeadLetter("invalid_subject", "data.user_id differs from the subject's user id")
    if event.subject != user_token:
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
        origin=origin,
        stream_seq=stream_seq,
        delivered=delivered,
        received_at=received_at,
    )
