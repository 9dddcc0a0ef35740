"""Payloads a platform sends to stepout (CONTRACT §3) and their validation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from .bounds import KNOWN_TIMEZONES, ZONE_NAME_MAX_CHARS, BoundedTime
from .subjects import USER_ID_PATTERN
from .vocabulary import CATEGORIES, Category, Outcome

OUTCOMES = tuple(outcome.value for outcome in Outcome)
FUTURE_TOLERANCE = timedelta(minutes=5)
NOTE_MAX_CHARS = 2000

UserId = Annotated[str, Field(pattern=USER_ID_PATTERN)]
Suds = Annotated[int, Field(ge=0, le=100, strict=True)]
Level = Annotated[int, Field(ge=1, le=10, strict=True)]


def _known_timezone(name: str) -> str:
    # Checked against the tz database's own list, never by opening a file named by the input.
    if name not in KNOWN_TIMEZONES:
        raise ValueError("must be an IANA timezone name such as Europe/Berlin")
    return name


UUID_WORDS = "must be a UUID such as 3f1c0e4e-5b7a-4c1e-9d0a-2b1f6f0f9a11"


def _uuid_text(value: str) -> str:
    if not 32 <= len(value) <= 45:
        raise ValueError(UUID_WORDS)
    try:
        return str(UUID(value))
    except ValueError:
        raise ValueError(UUID_WORDS) from None


UuidText = Annotated[StrictStr, AfterValidator(_uuid_text)]


class _Input(BaseModel):
    # Unknown fields are ignored (CONTRACT §2); known ones must have the right type.
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: UserId


class ParticipantEnrolled(_Input):
    starting_level: Level = 3
    daily_limit: Annotated[int, Field(ge=1, le=10, strict=True)] = 3
    categories: tuple[Category, ...] = CATEGORIES
    timezone: Annotated[str, Field(max_length=ZONE_NAME_MAX_CHARS), AfterValidator(_known_timezone)] = "UTC"
    coach_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _some_categories(self) -> ParticipantEnrolled:
        if not self.categories:
            raise ValueError("categories must name at least one category")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must not repeat")
        return self


class ParticipantPaused(_Input):
    until: BoundedTime | None = None


class ParticipantResumed(_Input):
    pass


class ParticipantReviewed(_Input):
    coach_id: Annotated[str, Field(min_length=1, max_length=64)]


class ParticipantWithdrawn(_Input):
    erase: StrictBool = False


class AttemptLogged(_Input):
    attempt_id: UuidText
    assignment_id: UuidText | None = None
    challenge_id: Annotated[str, Field(min_length=1, max_length=64)]
    level: Level | None = None
    outcome: Outcome
    suds_before: Suds | None = None
    suds_peak: Suds | None = None
    suds_after: Suds | None = None
    predicted_suds: Suds | None = None
    prediction_came_true: Suds | None = None
    crisis_reported: StrictBool = False
    occurred_at: BoundedTime
    note: Annotated[str, Field(max_length=NOTE_MAX_CHARS)] | None = None

    @model_validator(mode="after")
    def _suds_consistent(self) -> AttemptLogged:
        readings = (self.suds_before, self.suds_peak, self.suds_after)
        if self.outcome != "skipped" and any(r is None for r in readings):
            raise ValueError("suds_before, suds_peak and suds_after are required unless skipped")
        if self.suds_peak is not None:
            for name, value in (("suds_before", self.suds_before), ("suds_after", self.suds_after)):
                if value is not None and value > self.suds_peak:
                    raise ValueError(f"suds_peak must be at least {name}")
        return self

    def check_not_in_future(self, now: datetime) -> None:
        """`occurred_at` may be at most 5 minutes ahead of the receiving clock."""
        if self.occurred_at > now + FUTURE_TOLERANCE:
            raise ValueError("occurred_at is more than 5 minutes in the future")


InputModel = type[_Input]

# CloudEvent type -> (subject family, subject event name, data model)
INPUT_TYPES: dict[str, tuple[str, str, InputModel]] = {
    "stepout.participant.enrolled.v1": ("participant", "enrolled", ParticipantEnrolled),
    "stepout.participant.paused.v1": ("participant", "paused", ParticipantPaused),
    "stepout.participant.resumed.v1": ("participant", "resumed", ParticipantResumed),
    "stepout.participant.reviewed.v1": ("participant", "reviewed", ParticipantReviewed),
    "stepout.participant.withdrawn.v1": ("participant", "withdrawn", ParticipantWithdrawn),
    "stepout.attempt.logged.v1": ("attempt", "logged", AttemptLogged),
}
