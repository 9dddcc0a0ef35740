"""Queries (CONTRACT §6): NATS request-reply, a JSON object each way.

Every query is answered by its reply model or, when it cannot be answered, by `ErrorReply`;
a request that is not a JSON object is an `invalid_request`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from .dead_letters import absent_when_unset
from .envelope import CloudEvent
from .inputs import UserId
from .outputs import ChallengeAssigned, ObservedWarning, OverloadWarning, PlanView, ProgressView
from .vocabulary import PauseReason, Severity

HISTORY_LIMIT_DEFAULT = 100
HISTORY_LIMIT_MAX = 500
ESCALATIONS_LIMIT_DEFAULT = 100
ESCALATIONS_LIMIT_MAX = 500
AUDIT_DECISIONS_DEFAULT = 200
AUDIT_DECISIONS_MAX = 500


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserQuery(_Message):
    """A question about one participant."""

    user_id: UserId


class HistoryQuery(UserQuery):
    """A page of the participant's history, oldest first."""

    limit: int = Field(
        HISTORY_LIMIT_DEFAULT,
        ge=1,
        le=HISTORY_LIMIT_MAX,
        strict=True,
        description="most events in the reply (fewer when they would pass 256 KiB of JSON)",
    )
    cursor: str | SkipJsonSchema[None] = Field(
        None,
        description="the `next_cursor` of the page before; left out for the first page",
        json_schema_extra=absent_when_unset,
    )


HistoryKey = tuple[int, int]  # (stored version, index among the entries of that stored event)


class HistoryPlannerQuery(UserQuery):
    """The planner's part of a participant's history, after a key (asked by the tracker)."""

    after: HistoryKey = Field((0, -1), description="the key of the last entry already read; [0, -1] from the start")
    limit: int = Field(HISTORY_LIMIT_MAX, ge=1, le=HISTORY_LIMIT_MAX, description="most entries in the reply")


class HistoryReply(_Message):
    """A page of the participant's inputs and decisions as CloudEvents, oldest first, notes left out."""

    events: list[CloudEvent]
    next_cursor: str | None = Field(description="pass it as `cursor` for the next page; null when nothing follows")
    partial: bool = Field(
        False,
        description="present, and true, when the planner did not answer: the page then lacks the "
        "participant inputs and the planner's decisions",
    )


class HistoryEntry(_Message):
    key: HistoryKey
    recorded_at: AwareDatetime
    event: CloudEvent


class HistoryPlannerReply(_Message):
    """The planner's entries after the asked key, oldest first."""

    entries: list[HistoryEntry]
    more: bool = Field(description="whether more entries follow the last one")


class EscalationsQuery(_Message):
    """The participants with an active warning, of one coach or of everyone."""

    coach_id: str | SkipJsonSchema[None] = Field(
        None,
        min_length=1,
        max_length=64,
        description="only this coach's participants; left out for everyone's",
        json_schema_extra=absent_when_unset,
    )
    limit: int = Field(ESCALATIONS_LIMIT_DEFAULT, ge=1, le=ESCALATIONS_LIMIT_MAX, strict=True)


class Escalation(_Message):
    """A participant whose plan is responding to an active warning."""

    user_id: str
    coach_id: str | None
    status: Literal["active", "paused"]
    pause_reason: PauseReason | None
    paused_until: AwareDatetime | None
    warning: ObservedWarning


class EscalationsReply(_Message):
    """Most severe first, then oldest raised first; `total` counts all, `escalations` the first `limit`."""

    escalations: list[Escalation]
    total: int


class AuditQuery(UserQuery):
    """One service's store about a participant: its chain, and the participant as of a time."""

    as_of: AwareDatetime | SkipJsonSchema[None] = Field(
        None, description="RFC 3339 with an offset; left out for now", json_schema_extra=absent_when_unset
    )
    limit: int = Field(
        AUDIT_DECISIONS_DEFAULT,
        ge=1,
        le=AUDIT_DECISIONS_MAX,
        strict=True,
        description="most decisions in the reply: the latest ones up to `as_of`",
    )


class ChainStatus(_Message):
    """Whether the hash chain of the participant's stored events holds in this store."""

    holds: bool
    broken_at_version: int | None = Field(description="the first stored event that breaks it")
    reason: str | None


class AuditDecision(_Message):
    """A published decision, with the rule set it was decided under (null for those that name none)."""

    time: AwareDatetime
    kind: Literal["assignment", "pause", "resume", "notice", "warning", "clearing"]
    id: str
    ruleset_version: str | None
    data: dict[str, object]


class ActiveWarningAsOf(_Message):
    warning_id: str
    severity: Severity


class PlanAsOf(_Message):
    """The plan as of the asked time, folded from the planner's stored decisions."""

    status: Literal["active", "paused", "withdrawn"]
    level: int
    open_assignment: ChallengeAssigned | None
    paused_until: AwareDatetime | None
    pause_reason: PauseReason | None
    ease_off_until: AwareDatetime | None
    active_warning: ActiveWarningAsOf | None


class AuditReply(_Message):
    """What one service's store holds of the participant as of `as_of`. Notes are never shown;
    of an erased participant only what the erasure left."""

    service: Literal["tracker", "planner"]
    user_id: str
    as_of: AwareDatetime
    chain: ChainStatus
    unreadable: str | None = Field(description="a stored event that does not read, which stops the replay")
    stored_events: int = Field(description="stored events at or before `as_of`")
    erased: bool
    inputs: int = Field(description="inputs this store recorded at or before `as_of`")
    decisions: list[AuditDecision] = Field(description="the latest `limit` decisions up to `as_of`, oldest first")
    decisions_total: int
    progress: ProgressView | None = Field(None, description="tracker only: the last progress view published")
    active_warning: OverloadWarning | None = Field(None, description="tracker only: the warning active then")
    plan: PlanAsOf | None = Field(None, description="planner only: the plan then (null before the enrolment)")


class ErrorDetail(_Message):
    code: Literal["not_found", "invalid_request"]
    message: str


class ErrorReply(_Message):
    """The reply to a query that cannot be answered: an unknown participant or a bad request."""

    error: ErrorDetail


@dataclass(frozen=True, slots=True)
class Query:
    """A query subject `P.query.{name}`: what it asks, what it answers, and who answers it."""

    name: str
    request: type[BaseModel]
    reply: type[BaseModel]
    answered_by: str
    description: str
    # The service that asks it, when only a service does (its answer goes to that service's inbox only);
    # None for the queries outside parties ask (answered to their inboxes, never to a service's).
    asked_by: str | None = None


QUERIES: tuple[Query, ...] = (
    Query("progress", UserQuery, ProgressView, "tracker", "The participant's progress view."),
    Query("plan", UserQuery, PlanView, "planner", "The participant's plan: status, level, open assignment, pause end."),
    Query(
        "history",
        HistoryQuery,
        HistoryReply,
        "tracker",
        "The participant's inputs and decisions as CloudEvents, a page at a time, from both services.",
    ),
    Query(
        "history-planner",
        HistoryPlannerQuery,
        HistoryPlannerReply,
        "planner",
        "The planner's part of `history`, asked by the tracker; not meant for platforms.",
        asked_by="tracker",
    ),
    Query(
        "escalations",
        EscalationsQuery,
        EscalationsReply,
        "planner",
        "The participants with an active warning, of one coach or all: most severe, then oldest, first.",
    ),
    Query(
        "audit",
        AuditQuery,
        AuditReply,
        "tracker",
        "The tracker's store about a participant: its hash chain, and the participant as of a time.",
    ),
    Query(
        "audit-planner",
        AuditQuery,
        AuditReply,
        "planner",
        "The planner's store about a participant: its hash chain, and the plan as of a time.",
    ),
)
