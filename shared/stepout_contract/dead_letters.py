"""Dead letters (CONTRACT §5): the reasons an input is refused, and the headers that say why.

An input that cannot be accepted is published, body as sent, to `P.deadletter.{service}` with
the headers below. These names document the wire; a test checks that every reason the services
give is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator
from pydantic.json_schema import SkipJsonSchema

# The services that dead-letter their inputs: `P.deadletter.{service}`.
SERVICES = ("tracker", "planner")

# A body larger than this is not kept: the dead letter has an empty body, its digest and its size.
KEPT_BODY_MAX_BYTES = 64 * 1024

MSG_ID = "Nats-Msg-Id"
REASON = "Stepout-Reason"
DETAIL = "Stepout-Detail"
ORIGINAL_SUBJECT = "Stepout-Original-Subject"
BODY_SHA256 = "Stepout-Body-Sha256"
BODY_SIZE = "Stepout-Body-Size"
HEADER_TEXT_MAX_CHARS = 1000


def absent_when_unset(schema: dict[str, Any]) -> None:
    """For a field that is left out rather than null: its schema shows no `default: null`."""
    schema.pop("default", None)


@dataclass(frozen=True, slots=True)
class Reason:
    """A `Stepout-Reason` code and what it means."""

    code: str
    meaning: str


REASONS: tuple[Reason, ...] = (
    Reason("too_large", f"the message is larger than {KEPT_BODY_MAX_BYTES} bytes; its body is not kept"),
    Reason("invalid_json", "the body is not JSON, or is nested too deeply to parse"),
    Reason(
        "invalid_envelope",
        "the body is not a CloudEvent: not an object, an attribute missing, ill-typed or out of bounds, "
        "or a platform input claiming a `urn:stepout:` source",
    ),
    Reason("unknown_type", "a CloudEvent `type` (name or version) the service does not read"),
    Reason(
        "invalid_subject",
        "the subject does not fit the type, its user id is not valid, or it differs from `data.user_id` "
        "or the CloudEvent `subject`",
    ),
    Reason(
        "invalid_data",
        "`data` breaks its model (a field missing, ill-typed or out of range), or an attempt names a "
        "challenge outside the catalog without a `level`",
    ),
    Reason("invalid_input", "the input could not be read in any other way"),
    Reason("not_enrolled", "the participant was never enrolled"),
    Reason("withdrawn", "the participant has withdrawn"),
    Reason("erased", "the participant was erased: nothing more is recorded for them"),
    Reason("attempt_conflict", "the `attempt_id` was already used for an attempt with other content"),
    Reason(
        "not_their_coach",
        "a `participant.reviewed` names another coach than the participant's: the `coach_id` of the "
        "enrolment in force (a participant enrolled without one takes a review naming any coach)",
    ),
    Reason(
        "retries_exhausted",
        "the input still failed transiently (store busy, NATS down) on its last allowed delivery",
    ),
)
REASON_CODES: tuple[str, ...] = tuple(reason.code for reason in REASONS)


class DeadLetterHeaders(BaseModel):
    """The NATS headers of a dead letter. NATS may add headers of its own (`Nats-Expected-Stream`)."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        json_schema_extra={"dependentRequired": {BODY_SHA256: [BODY_SIZE], BODY_SIZE: [BODY_SHA256]}},
    )

    msg_id: str = Field(
        alias=MSG_ID,
        description="derived from the input's stream and sequence, so a dead letter published twice is kept once",
    )
    reason: str = Field(
        alias=REASON,
        description="why the input was refused: "
        + "; ".join(f"`{reason.code}`: {reason.meaning}" for reason in REASONS),
        json_schema_extra={"enum": list(REASON_CODES)},
    )
    detail: str = Field(
        alias=DETAIL,
        max_length=HEADER_TEXT_MAX_CHARS,
        description="what is wrong, in words: the field and what it must be, never a value or personal data",
    )
    original_subject: str = Field(
        alias=ORIGINAL_SUBJECT,
        max_length=HEADER_TEXT_MAX_CHARS,
        description="the subject the input was published to",
    )
    body_sha256: str | SkipJsonSchema[None] = Field(
        None,
        alias=BODY_SHA256,
        pattern=r"^[0-9a-f]{64}$",
        description="only when the body was too large to keep: the hex SHA-256 of the body as sent",
        json_schema_extra=absent_when_unset,
    )
    body_size: str | SkipJsonSchema[None] = Field(
        None,
        alias=BODY_SIZE,
        pattern=r"^[0-9]+$",
        description="only when the body was too large to keep: its size in bytes",
        json_schema_extra=absent_when_unset,
    )

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str) -> str:
        if value not in REASON_CODES:
            raise ValueError(f"must be one of {', '.join(REASON_CODES)}")
        return value


class DeadLetterBody(RootModel[str]):
    """The input exactly as it was published (usually a CloudEvent, but any bytes); empty when the
    input was larger than 64 KiB (then `Stepout-Body-Sha256` and `Stepout-Body-Size` say what it was)."""

    root: str = Field(max_length=KEPT_BODY_MAX_BYTES)
