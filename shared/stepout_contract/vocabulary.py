"""The words of the wire, defined once: every enumeration the contract names (CONTRACT §3, §4) and
the one way a time is written. The domain uses these same definitions; nothing defines them again."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal


class Outcome(StrEnum):
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    HOSTILE = "hostile"
    ESCAPED = "escaped"
    SKIPPED = "skipped"


class Severity(StrEnum):
    CAUTION = "caution"
    HIGH = "high"
    CRISIS = "crisis"


Category = Literal["money", "favours", "social", "play", "performance", "career"]
CATEGORIES: tuple[Category, ...] = ("money", "favours", "social", "play", "performance", "career")
AssignmentReason = Literal["start", "repeat", "step_up", "step_down", "ease_off", "resume", "returning"]
PauseReason = Literal["overload", "crisis", "participant", "withdrawn"]
# Why a pause ended: the participant's resume, a coach's review clearing a crisis, or its end passing.
ResumeReason = Literal["participant", "review", "pause_ended"]
ClearedBy = Literal["rules", "review", "superseded"]
# Why a recorded input changed nothing, or less than it asked (`plan.notice`).
NoticeReason = Literal[
    "stale",
    "no_change",
    "pause_over",
    "crisis_pause",
    "overload_hold",
    "already_paused",
    "not_paused",
    "already_withdrawn",
    "assignment_not_open",
    "challenge_not_assigned",
]
# Why a decider refuses an input: a dead-letter reason (`dead_letters.REASONS`) that the domain decides.
RefusalReason = Literal["not_their_coach"]


def rfc3339(moment: datetime) -> str:
    """UTC with a `Z`; microseconds only when not zero."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
