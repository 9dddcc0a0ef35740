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
from .outputs import PlanView, ProgressView

HISTORY_LIMIT_DEFAULT = 100
HISTORY_LIMIT_MAX = 500


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
    ),
)
