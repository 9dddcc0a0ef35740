"""The outputs a platform receives (CONTRACT §4), as one tagged union of CloudEvents.

Each output is a CloudEvent whose `type` names its data model; `OutputEvent` is the union of them,
told apart by `type`, and `parse` reads one message body into it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stepout_contract.outputs import (
    OUTPUT_TYPES,
    ChallengeAssigned,
    OverloadCleared,
    OverloadWarning,
    PlanNotice,
    PlanPaused,
    PlanResumed,
    ProgressView,
    Time,
)

Kind = Literal[
    "challenge.assigned",
    "plan.paused",
    "plan.resumed",
    "plan.notice",
    "progress.updated",
    "overload.warning",
    "overload.cleared",
]
"""An output's kind: its subject's family and event name (`P.<family>.<event>.<user_id>`)."""


class _Output(BaseModel):
    """The envelope of an output; `data` is typed by the subclass."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    source: str
    subject: str = Field(description="the participant's user id")
    time: Time

    @property
    def user_id(self) -> str:
        return self.subject

    @property
    def kind(self) -> Kind:
        type_: str = getattr(self, "type")  # noqa: B009 - every subclass declares `type`
        family, name, _ = OUTPUT_TYPES[type_]
        return f"{family}.{name}"  # type: ignore[return-value]


class ChallengeAssignedEvent(_Output):
    type: Literal["stepout.challenge.assigned.v1"]
    data: ChallengeAssigned


class PlanPausedEvent(_Output):
    type: Literal["stepout.plan.paused.v1"]
    data: PlanPaused


class PlanResumedEvent(_Output):
    type: Literal["stepout.plan.resumed.v1"]
    data: PlanResumed


class PlanNoticeEvent(_Output):
    type: Literal["stepout.plan.notice.v1"]
    data: PlanNotice


class ProgressUpdatedEvent(_Output):
    type: Literal["stepout.progress.updated.v1"]
    data: ProgressView


class OverloadWarningEvent(_Output):
    type: Literal["stepout.overload.warning.v1"]
    data: OverloadWarning


class OverloadClearedEvent(_Output):
    type: Literal["stepout.overload.cleared.v1"]
    data: OverloadCleared


OutputEvent = Annotated[
    ChallengeAssignedEvent
    | PlanPausedEvent
    | PlanResumedEvent
    | PlanNoticeEvent
    | ProgressUpdatedEvent
    | OverloadWarningEvent
    | OverloadClearedEvent,
    Field(discriminator="type"),
]
"""Any output, told apart by its CloudEvent `type`: `match event: case ChallengeAssignedEvent(): ...`."""

_ADAPTER: TypeAdapter[OutputEvent] = TypeAdapter(OutputEvent)
KINDS: frozenset[str] = frozenset(f"{family}.{name}" for family, name, _ in OUTPUT_TYPES.values())


def parse(body: bytes) -> OutputEvent | None:
    """The output in a message body; None for a type this client does not know (a newer contract)."""
    try:
        return _ADAPTER.validate_json(body)
    except ValidationError:
        return None
