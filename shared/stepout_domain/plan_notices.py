"""Why an input the planner accepted did not do what it asked: told back to the platform.

An input is either recorded or dead-lettered, never neither; but a recorded input may still change
nothing (a resume during a crisis pause, a pause whose end has passed, the same input twice) or do
less than it seems to (an attempt naming an assignment that is not the open one). `notice_for` says
which and why, in plain words, from the plan as it was before the input and the events it caused;
the planner publishes it as `plan.notice`. Pure, like the decider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from stepout_contract.vocabulary import NoticeReason, rfc3339
from stepout_domain.plan_commands import Enrol, ObserveProgress, PauseByParticipant, PlanCommand, Resume, Withdraw
from stepout_domain.plan_events import PlanEvent, PlanPaused, PlanResumed
from stepout_domain.plan_state import PlanState


@dataclass(frozen=True, slots=True)
class Notice:
    reason: NoticeReason
    detail: str


STALE = Notice(
    "stale", "an input of this kind that says it happened later is recorded already: this one changes nothing"
)


def notice_for(
    state: PlanState, command: PlanCommand, events: Sequence[PlanEvent], stale: bool = False
) -> Notice | None:
    """The notice an input deserves, given the plan before it (`state`) and what it caused (`events`)."""
    if stale:
        return STALE
    if not state.enrolled:
        return None
    match command:
        case PauseByParticipant():
            return _pause(state, command, events)
        case Resume():
            return _resume(state, command, events)
        case Enrol() if not events:
            return Notice("no_change", "the enrolment in force has these settings already")
        case Withdraw() if not events:
            if command.erase:
                return Notice("already_withdrawn", "the participant was erased already")
            return Notice("already_withdrawn", "the participant has withdrawn already")
        case ObserveProgress():
            return _attempt(state, command)
    return None


def _now(state: PlanState, command: PauseByParticipant | Resume) -> datetime:
    at = command.at.astimezone(UTC)
    return at if state.clock is None else max(at, state.clock)


def _pause(state: PlanState, command: PauseByParticipant, events: Sequence[PlanEvent]) -> Notice | None:
    if any(isinstance(e, PlanPaused) and e.reason == "participant" for e in events):
        return None
    if state.pause_reason == "crisis":
        return Notice("crisis_pause", "the plan is paused for a crisis until a coach's review: a pause changes nothing")
    now = _now(state, command)
    until = None if command.until is None else command.until.astimezone(UTC)
    if until is not None and until <= now:
        return Notice("pause_over", "until has passed: the pause would be over already")
    hold = state.hold_pending_at(now)
    if hold is not None:
        return Notice("overload_hold", f"an overload pause holds the plan until {rfc3339(hold)}, longer than asked")
    return Notice("already_paused", "the plan is paused until then already")


def _resume(state: PlanState, command: Resume, events: Sequence[PlanEvent]) -> Notice | None:
    if any(isinstance(e, PlanResumed) and e.reason == "participant" for e in events):
        return None
    if state.pause_reason == "crisis":
        return Notice("crisis_pause", "the plan is paused for a crisis: only a coach's review resumes it")
    hold = state.hold_pending_at(_now(state, command))
    if hold is not None:
        return Notice("overload_hold", f"an overload pause holds the plan until {rfc3339(hold)}: it resumes then")
    return Notice("not_paused", "the plan is not paused by the participant: nothing to resume")


def _attempt(state: PlanState, command: ObserveProgress) -> Notice | None:
    attempt = command.last_attempt
    if state.status != "active":
        return None  # the pause was told as `plan.paused`: no assignment follows until it ends
    open_assignment = state.open_assignment
    if attempt.assignment_id is None:
        return None
    if open_assignment is None or attempt.assignment_id != open_assignment.assignment_id:
        return Notice(
            "assignment_not_open",
            "the attempt names an assignment that is not the open one (closed, replaced or unknown): it closes nothing",
        )
    if attempt.challenge_id != open_assignment.challenge_id:
        return Notice(
            "challenge_not_assigned",
            "the attempt names the open assignment but another challenge: it closes the assignment all the same",
        )
    return None
