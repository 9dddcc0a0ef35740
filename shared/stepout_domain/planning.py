"""The planner policy (DOMAIN.md "Start", "Step size", "Step down", "Planner response") as a decider.

`decide(state, command, rules, catalog)` returns the events a command causes
(`plan_commands`, `plan_events`) and `plan_state.evolve` folds them; both are pure,
so an audit replays a plan by calling them again. The time of every decision is
the command's `at` (the triggering event's recorded time), raised to the latest
time already seen so that a late event never schedules into the past. There are no timers: whenever a pause with an end
is decided, the `resume` assignment is issued at once with `not_before` = the end of
the pause, and the pause itself is marked over by the first command after that end.

Choices where DOMAIN.md leaves room:
- An attempt naming an assignment other than the open one (a cancelled or an older
  one) is recorded but closes nothing: the open assignment is still the one to do.
  While the plan is paused no attempt closes the pre-issued `resume` assignment.
- A `caution` leaves the open assignment alone: it is raised by the attempt that is
  about to close it, so the very next assignment is already an `ease_off` one.
  Ease-off lasts `ease_off_days` local days from `raised_at`; during it `repeat`,
  `step_up` and `resume` assignments become `ease_off` one level below the plan
  level and the plan level does not rise; `step_down` keeps its own level.
- A step up also needs the last assignment to have been at the plan level, so after
  an ease-off the participant is back at the level for one assignment first and no
  assignment is ever more than `max_step_up` above the previous one.
- `high` and `crisis` lower the plan level by one when observed (not again while a
  hold or a crisis pause is already running) and cancel the open assignment. A
  `high` whose hold is already over when observed only lowers the level.
- A participant's pause can lengthen an overload hold but not shorten it, and their
  resume ends only a participant pause. A `crisis` pause ends only when the tracker
  clears the crisis warning `by="review"`: the tracker alone judges whether a review
  covers the crisis (a review repeated later, or one older than the crisis, does not),
  and the plan follows that clearing, so the two services never disagree, once the planner
  has itself accepted a review by the participant's coach made at or after the crisis was
  raised (in whichever order the two arrive). The second key holds where the tracker cannot
  tell the coach: participants it enrolled before it kept the coach accept any review there.
- Cancelled assignments give their day's slot back to the daily limit.
- A review from another coach than the participant's (the `coach_id` of the enrolment in force)
  is refused (`refusals.review_refusal`): `decide` returns the `Refusal` instead of events, and the
  planner dead-letters the input. The tracker refuses it too, so it never clears a crisis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain.catalog import MAX_LEVEL, MIN_LEVEL, Catalog
from stepout_domain.plan_commands import (
    Enrol,
    LastAttempt,
    ObserveClearing,
    ObserveProgress,
    ObserveWarning,
    PauseByParticipant,
    PlanCommand,
    Resume,
    Review,
    Withdraw,
)
from stepout_domain.plan_events import (
    Assignment,
    AssignmentCancelled,
    AssignmentClosed,
    AssignmentReason,
    CancelReason,
    ChallengeAssigned,
    ClearingObserved,
    Enrolled,
    EnrolmentChanged,
    PlanEvent,
    PlanPaused,
    PlanResumed,
    ProgressObserved,
    Reviewed,
    WarningObserved,
    WarningRule,
    Withdrawn,
    assignment_id_for,
)
from stepout_domain.plan_state import (
    PlanState,
    evolve,
    initial_state,
    local_day,
    local_days_later,
    next_local_midnight,
)
from stepout_domain.refusals import Refusal, review_refusal
from stepout_domain.ruleset import RuleSet

__all__ = [
    "Assignment",
    "Enrol",
    "LastAttempt",
    "ObserveClearing",
    "ObserveProgress",
    "ObserveWarning",
    "PauseByParticipant",
    "PlanCommand",
    "PlanEvent",
    "PlanState",
    "Refusal",
    "Resume",
    "Review",
    "WarningRule",
    "Withdraw",
    "assignment_id_for",
    "awaited",
    "decide",
    "evolve",
    "initial_state",
    "replay",
]

# Reasons that ease-off turns into `ease_off` one level below the plan level.
_EASED: frozenset[str] = frozenset({"repeat", "step_up", "resume"})


class _Decision:
    """The events of one decision so far, and the state they lead to."""

    def __init__(self, state: PlanState, rules: RuleSet, catalog: Catalog, at: datetime) -> None:
        self.state = state
        self.rules = rules
        self.catalog = catalog
        at = at.astimezone(UTC)
        self.now = at if state.clock is None else max(at, state.clock)
        self.events: list[PlanEvent] = []

    def emit(self, event: PlanEvent) -> None:
        self.events.append(event)
        self.state = evolve(self.state, event)


def decide(state: PlanState, command: PlanCommand, rules: RuleSet, catalog: Catalog) -> list[PlanEvent] | Refusal:
    """The events `command` causes for the plan in `state`; equal arguments give equal events.

    Nothing happens before enrolment (except enrolling), after withdrawal, or for a
    redelivered progress (`position` already seen) or warning (`warning_id` already seen).
    A review by another coach than the participant's is refused: the `Refusal`, and no event.
    """
    if not state.enrolled and not isinstance(command, Enrol):
        return []
    if state.status == "withdrawn":
        # Erasure may be asked for after leaving: the only thing a withdrawn plan still decides.
        if isinstance(command, Withdraw) and command.erase and not state.erased:
            return [Withdrawn(True, at=max(command.at.astimezone(UTC), state.clock or command.at))]
        return []
    if isinstance(command, Review) and (refused := review_refusal(state.coach_id, command.coach_id)) is not None:
        return refused
    if isinstance(command, ObserveProgress) and command.position <= state.last_position:
        return []
    if isinstance(command, ObserveWarning) and command.warning_id in state.seen_warning_ids:
        return []
    decision = _Decision(state, rules, catalog, command.at)
    if state.enrolled:
        _end_elapsed_pause(decision)
    handler: Callable[[_Decision, Any], None] = _HANDLERS[type(command)]
    handler(decision, command)
    return decision.events


def awaited(state: PlanState, command: PlanCommand) -> str | None:
    """What the tracker published before `command` that the plan has not observed yet, if anything.

    The tracker publishes a participant's outputs in order, but a delivery lost with a connection
    (a NATS restart, a network cut) comes back only after the consumer's ack wait, behind later
    ones. A progress whose position skips one, or the clearing of a warning not seen yet, is to be
    decided after what it follows: `decide` would otherwise take the later progress and drop the
    earlier one as already seen, losing its assignment, or ignore a clearing whose warning then
    pauses the plan with nothing left to lift it.
    """
    if not state.enrolled or state.status == "withdrawn":
        return None
    if isinstance(command, ObserveProgress) and command.position > state.last_position + 1:
        return f"the progress at position {state.last_position + 1}"
    if isinstance(command, ObserveClearing) and command.warning_id not in state.seen_warning_ids:
        return f"the warning {command.warning_id}"
    return None


def _enrol(d: _Decision, command: Enrol) -> None:
    s = d.state
    categories = tuple(command.categories)
    if not s.enrolled:
        d.emit(
            Enrolled(
                user_id=command.user_id,
                starting_level=command.starting_level,
                daily_limit=command.daily_limit,
                categories=categories,
                timezone=command.timezone,
                coach_id=command.coach_id,
                at=d.now,
            )
        )
        _issue(d, "start", command.starting_level, earliest=d.now)
        return
    changed = (command.daily_limit, categories, command.timezone, command.coach_id)
    if changed != (s.daily_limit, s.categories, s.timezone, s.coach_id):
        d.emit(EnrolmentChanged(*changed, at=d.now))


def _observe_progress(d: _Decision, command: ObserveProgress) -> None:
    attempt = command.last_attempt
    d.emit(
        ProgressObserved(
            position=command.position,
            level=command.level,
            level_ready=command.level_ready,
            attempt_id=attempt.attempt_id,
            assignment_id=attempt.assignment_id,
            challenge_id=attempt.challenge_id,
            attempt_level=attempt.level,
            outcome=attempt.outcome,
            suds_peak=attempt.suds_peak,
            at=d.now,
            occurred_at=attempt.occurred_at.astimezone(UTC),
        )
    )
    open_assignment = d.state.open_assignment
    if d.state.status != "active":
        return
    if open_assignment is not None:
        if attempt.assignment_id not in (None, open_assignment.assignment_id):
            return
        d.emit(
            AssignmentClosed(
                assignment_id=open_assignment.assignment_id,
                attempt_id=attempt.attempt_id,
                outcome=attempt.outcome,
                level=open_assignment.level,
                at=d.now,
            )
        )
    reason, plan_level = _next_step(d, command)
    _issue(d, reason, plan_level, earliest=d.now)


def _next_step(d: _Decision, command: ObserveProgress) -> tuple[AssignmentReason, int]:
    """Step down, step up or repeat after an attempt (DOMAIN.md "Step down", "Ready to step up")."""
    s, rules, attempt = d.state, d.rules, command.last_attempt
    peak = attempt.suds_peak
    if attempt.after_break and rules.return_after_days is not None:
        return "returning", max(MIN_LEVEL, s.level - 1)
    if (
        (peak is not None and peak >= rules.step_down_peak)
        or (attempt.outcome == Outcome.ESCAPED and peak is not None and peak >= rules.step_down_escape_peak)
        or s.skipped_in_a_row_at_level >= rules.step_down_skipped_assignments
    ):
        return "step_down", max(MIN_LEVEL, s.level - 1)
    if command.level_ready and command.level == s.level and s.level < MAX_LEVEL and s.last_assigned_level == s.level:
        return "step_up", min(MAX_LEVEL, s.level + rules.max_step_up)
    return "repeat", s.level


def _observe_warning(d: _Decision, command: ObserveWarning) -> None:
    s = d.state
    hold = s.hold_pending_at(d.now)
    crisis_paused = s.pause_reason == "crisis"
    severity = Severity(command.severity)
    raised_at = command.raised_at.astimezone(UTC)
    lowers = severity is not Severity.CAUTION and hold is None and not crisis_paused
    ease_off_until = None
    if severity is Severity.CAUTION:
        ease_off_until = local_days_later(raised_at, d.rules.ease_off_days, s.timezone)
    d.emit(
        WarningObserved(
            warning_id=command.warning_id,
            severity=severity,
            raised_at=raised_at,
            escalate=command.escalate,
            level=max(MIN_LEVEL, s.level - 1) if lowers else s.level,
            ease_off_until=ease_off_until,
            at=d.now,
            rules=command.rules,
            evidence=command.evidence,
            ruleset_version=command.ruleset_version,
        )
    )
    if severity is Severity.CAUTION or crisis_paused:
        return
    if severity is Severity.CRISIS:
        _cancel_open(d, "paused")
        d.emit(PlanPaused("crisis", None, command.warning_id, at=d.now))
        return
    end = raised_at + timedelta(hours=d.rules.high_pause_hours)
    new_hold = end if hold is None else max(hold, end)
    if new_hold == hold:
        return
    if new_hold <= d.now:
        # The hold was over before it was observed: only the lower level remains.
        if lowers:
            _reschedule(d, "rescheduled")
        return
    if s.pause_reason == "participant" and (s.paused_until is None or s.paused_until > new_hold):
        pause = PlanPaused("participant", s.paused_until, command.warning_id, at=d.now, hold_until=new_hold)
    else:
        pause = PlanPaused("overload", new_hold, command.warning_id, at=d.now, hold_until=new_hold)
    _repause(d, pause)


def _observe_clearing(d: _Decision, command: ObserveClearing) -> None:
    if command.warning_id != d.state.active_warning_id:
        return
    d.emit(ClearingObserved(command.warning_id, command.cleared_at.astimezone(UTC), command.by, at=d.now))
    if command.by == "review" and d.state.pause_reason == "crisis" and d.state.crisis_reviewed:
        # The tracker decides whether a review covers the crisis; the plan follows its clearing once
        # this planner has accepted a review by the participant's coach since the crisis itself.
        _end_crisis_pause(d)


def _end_crisis_pause(d: _Decision) -> None:
    d.emit(PlanResumed(at=d.now, reason="review"))
    _reschedule(d, "resumed")


def _pause_by_participant(d: _Decision, command: PauseByParticipant) -> None:
    s = d.state
    until = None if command.until is None else command.until.astimezone(UTC)
    if s.pause_reason == "crisis" or (until is not None and until <= d.now):
        return
    hold = s.hold_pending_at(d.now)
    if hold is not None and until is not None and until <= hold:
        if s.pause_reason == "participant":
            # A shorter participant pause leaves the overload hold underneath it.
            _repause(d, PlanPaused("overload", hold, s.pause_warning_id, at=d.now, hold_until=hold))
        return
    if s.pause_reason == "participant" and s.paused_until == until:
        return
    _repause(d, PlanPaused("participant", until, s.pause_warning_id if hold else None, at=d.now, hold_until=hold))


def _resume(d: _Decision, command: Resume) -> None:
    s = d.state
    if s.status != "paused" or s.pause_reason != "participant":
        return
    hold = s.hold_pending_at(d.now)
    if hold is not None:
        _repause(d, PlanPaused("overload", hold, s.pause_warning_id, at=d.now, hold_until=hold))
        return
    _cancel_open(d, "resumed")
    d.emit(PlanResumed(at=d.now, reason="participant"))
    _reschedule(d, "resumed")


def _review(d: _Decision, command: Review) -> None:
    # At the time the review says it was made, not when it arrived: a review made before a crisis does
    # not cover it, however late it comes.
    d.emit(Reviewed(command.coach_id, at=command.at))
    s = d.state
    if s.pause_reason == "crisis" and s.crisis_cleared and s.crisis_reviewed:
        # The tracker's clearing came first (its outputs and the platform's inputs arrive apart).
        _end_crisis_pause(d)


def _withdraw(d: _Decision, command: Withdraw) -> None:
    _cancel_open(d, "withdrawn")
    d.emit(PlanPaused("withdrawn", None, None, at=d.now))
    d.emit(Withdrawn(command.erase, at=d.now))


_HANDLERS: dict[type, Callable[[_Decision, Any], None]] = {
    Enrol: _enrol,
    ObserveProgress: _observe_progress,
    ObserveWarning: _observe_warning,
    ObserveClearing: _observe_clearing,
    PauseByParticipant: _pause_by_participant,
    Resume: _resume,
    Review: _review,
    Withdraw: _withdraw,
}


def _end_elapsed_pause(d: _Decision) -> None:
    """A pause whose end has passed is over; its `resume` assignment was issued when it began."""
    s = d.state
    if s.status == "paused" and s.paused_until is not None and d.now >= s.paused_until:
        d.emit(PlanResumed(at=s.paused_until, reason="pause_ended"))


def _repause(d: _Decision, pause: PlanPaused) -> None:
    """Cancel the open assignment before the pause starts, so none ever falls inside it."""
    _cancel_open(d, "paused")
    d.emit(pause)
    _reschedule(d, "paused")


def _cancel_open(d: _Decision, reason: CancelReason) -> None:
    if d.state.open_assignment is not None:
        d.emit(AssignmentCancelled(d.state.open_assignment.assignment_id, reason, at=d.now))


def _reschedule(d: _Decision, reason: CancelReason) -> None:
    """Replace the open assignment by a `resume` one at the plan level: now, at the pause end, or not yet."""
    _cancel_open(d, reason)
    s = d.state
    if s.status == "active":
        _issue(d, "resume", s.level, earliest=d.now)
    elif s.status == "paused" and s.paused_until is not None:
        _issue(d, "resume", s.level, earliest=s.paused_until)


def _issue(d: _Decision, reason: AssignmentReason, plan_level: int, earliest: datetime) -> None:
    """Issue the next assignment: the first moment the daily limit allows, eased off if it falls in ease-off."""
    s = d.state
    not_before = _first_free_moment(s, max(earliest, d.now), d.rules)
    level = plan_level
    if reason in _EASED and s.easing_off_at(not_before):
        reason = "ease_off"
        plan_level = min(plan_level, s.level)
        level = max(MIN_LEVEL, plan_level - 1)
    n = s.assignments_issued + 1
    challenge = d.catalog.choose(level, s.categories, avoid=s.last_challenge_id, key=f"{s.user_id}/{n}")
    assignment = Assignment(
        assignment_id=assignment_id_for(s.user_id, n),
        user_id=s.user_id,
        challenge_id=challenge.id,
        title=challenge.title,
        category=challenge.category,
        level=level,
        reason=reason,
        not_before=not_before,
        ruleset_version=d.rules.version,
        issued_at=d.now,
    )
    d.emit(ChallengeAssigned(assignment, plan_level, at=d.now))


def _first_free_moment(s: PlanState, moment: datetime, rules: RuleSet) -> datetime:
    """`moment`, or the next local midnight after which a day still has room under the daily limit:
    of assignments issued, or (rule sets counting attempts) of attempts completed that day."""
    counted = s.completed_on if rules.daily_limit_counts == "attempts" else s.assignments_on
    while counted(local_day(moment, s.timezone)) >= s.daily_limit:
        moment = next_local_midnight(moment, s.timezone)
    return moment


def replay(state: PlanState, events: Sequence[PlanEvent]) -> PlanState:
    """Fold `events` into `state`."""
    for event in events:
        state = evolve(state, event)
    return state
