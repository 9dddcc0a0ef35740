"""A typed Python client for platforms that use stepout (CONTRACT.md).

    async with await StepoutClient.connect("nats://127.0.0.1:4222", user="platform", password=...) as stepout:
        await stepout.enrol(user_id="u-123", starting_level=3, platform_id="enrolment-42")
        assigned = await stepout.next_assignment("u-123")

Inputs, outputs and query replies are the contract's own pydantic models (`stepout_contract`);
refusals are `StepoutError`s carrying the contract's reason codes. The HTTP reads are in
`stepout_client.over_http` (the `http` extra).
"""

from stepout_contract.inputs import (
    AttemptLogged,
    ParticipantEnrolled,
    ParticipantPaused,
    ParticipantResumed,
    ParticipantReviewed,
    ParticipantWithdrawn,
)
from stepout_contract.outputs import ChallengeAssigned, PlanNotice, PlanPaused, PlanView, ProgressView

from .client import StepoutClient, event_id
from .errors import (
    AttemptConflict,
    Erased,
    Forbidden,
    InvalidData,
    InvalidRequest,
    NotEnrolled,
    NotTheirCoach,
    Refused,
    StepoutError,
    Timeout,
    Unauthorized,
    Unavailable,
    Withdrawn,
)
from .events import (
    ChallengeAssignedEvent,
    Kind,
    OutputEvent,
    OverloadClearedEvent,
    OverloadWarningEvent,
    PlanNoticeEvent,
    PlanPausedEvent,
    PlanResumedEvent,
    ProgressUpdatedEvent,
)
from .refusals import RefusedInput
from .retry import Backoff

__all__ = [
    "AttemptConflict",
    "AttemptLogged",
    "Backoff",
    "ChallengeAssigned",
    "ChallengeAssignedEvent",
    "Erased",
    "Forbidden",
    "InvalidData",
    "InvalidRequest",
    "Kind",
    "NotEnrolled",
    "NotTheirCoach",
    "OutputEvent",
    "OverloadClearedEvent",
    "OverloadWarningEvent",
    "ParticipantEnrolled",
    "ParticipantPaused",
    "ParticipantResumed",
    "ParticipantReviewed",
    "ParticipantWithdrawn",
    "PlanNotice",
    "PlanNoticeEvent",
    "PlanPaused",
    "PlanPausedEvent",
    "PlanResumedEvent",
    "PlanView",
    "ProgressUpdatedEvent",
    "ProgressView",
    "Refused",
    "RefusedInput",
    "StepoutClient",
    "StepoutError",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "Withdrawn",
    "event_id",
]
