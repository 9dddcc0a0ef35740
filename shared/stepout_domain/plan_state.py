"""The plan of one participant as an event-sourced state, and how each event changes it.

`evolve(state, event)` is the only way a `PlanState` changes; `planning.decide` emits
the events. Times are timezone-aware and kept in UTC; "days" are local calendar days
in the participant's `timezone` (DOMAIN.md), computed with `zoneinfo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain.attempts import COMPLETED_OUTCOMES
from stepout_domain.catalog import CATEGORIES
from stepout_domain.plan_events import (
    Assignment,
    AssignmentCancelled,
    AssignmentClosed,
    ChallengeAssigned,
    ClearingObserved,
    Enrolled,
    EnrolmentChanged,
    PauseReason,
    PlanEvent,
    PlanPaused,
    PlanResumed,
    ProgressObserved,
    Reviewed,
    WarningObserved,
    Withdrawn,
)
from stepout_domain.values import changer

PlanStatus = Literal["active", "paused", "withdrawn"]


def local_day(moment: datetime, timezone: str) -> date:
    """The participant's calendar day that `moment` falls on."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def next_local_midnight(moment: datetime, timezone: str) -> datetime:
    """The start of the participant's next calendar day after `moment`, in UTC."""
    zone = ZoneInfo(timezone)
    tomorrow = moment.astimezone(zone).date() + timedelta(days=1)
    # In a DST gap at midnight, fold=0 maps to the first instant of the new day.
    return datetime.combine(tomorrow, time(0), tzinfo=zone).astimezone(UTC)


def local_days_later(moment: datetime, days: int, timezone: str) -> datetime:
    """The same local clock time `days` calendar days after `moment`, in UTC (DST-aware)."""
    return (moment.astimezone(ZoneInfo(timezone)) + timedelta(days=days)).astimezone(UTC)


@dataclass(slots=True)
class PlanState:
    """Everything the planner needs to decide the next step for one participant; a value, never
    changed once built (`changed` builds another: `stepout_domain.values`).

    `day_counts` holds (local day, live assignments whose `not_before` falls on it)
    for today and later days only; `clock` is the latest event time seen, so that a
    late event never schedules into the past.
    """

    user_id: str
    enrolled: bool = False
    status: PlanStatus = "active"
    level: int = 3
    daily_limit: int = 3
    categories: tuple[str, ...] = CATEGORIES
    timezone: str = "UTC"
    coach_id: str | None = None
    open_assignment: Assignment | None = None
    assignments_issued: int = 0
    last_challenge_id: str | None = None
    last_assigned_level: int | None = None
    day_counts: tuple[tuple[date, int], ...] = ()
    paused_until: datetime | None = None
    pause_reason: PauseReason | None = None
    pause_warning_id: str | None = None
    hold_until: datetime | None = None
    ease_off_until: datetime | None = None
    active_warning_id: str | None = None
    active_severity: Severity | None = None
    crisis: bool = False
    skipped_in_a_row_at_level: int = 0
    last_position: int = 0
    seen_warning_ids: frozenset[str] = frozenset()
    clock: datetime | None = None
    erased: bool = False
    # (local day, completed attempts that occurred on it), today and later: the daily limit in attempts.
    completed_by_day: tuple[tuple[date, int], ...] = ()
    # A crisis pause ends on two keys: the tracker's clearing by review (`crisis_cleared`) and a review
    # the planner accepted itself, from the participant's coach, made at or after the crisis was raised.
    crisis_raised_at: datetime | None = None
    crisis_cleared: bool = False
    reviewed_at: datetime | None = None

    @property
    def crisis_reviewed(self) -> bool:
        """Whether the participant's coach reviewed them (a review this planner accepted, by the time the
        review says it was made) since the crisis. A crisis pause loaded from a snapshot taken before the
        planner kept the crisis's time takes any review accepted since."""
        if self.reviewed_at is None:
            return False
        return self.crisis_raised_at is None or self.reviewed_at >= self.crisis_raised_at

    def assignments_on(self, day: date) -> int:
        """How many live assignments have their `not_before` on local `day`."""
        return dict(self.day_counts).get(day, 0)

    def completed_on(self, day: date) -> int:
        """How many completed attempts occurred on local `day`."""
        return dict(self.completed_by_day).get(day, 0)

    def easing_off_at(self, moment: datetime) -> bool:
        return self.ease_off_until is not None and moment < self.ease_off_until

    def hold_pending_at(self, moment: datetime) -> datetime | None:
        """The end of an overload hold still running at `moment`, if any."""
        if self.hold_until is not None and self.hold_until > moment:
            return self.hold_until
        return None


changed = changer(PlanState)


def initial_state(user_id: str) -> PlanState:
    """The plan of a participant not yet enrolled."""
    return PlanState(user_id=user_id)


def evolve(state: PlanState, event: PlanEvent) -> PlanState:
    """The state after `event`; pure, so folding a stored history rebuilds the plan exactly."""
    applied = _apply(state, event)
    clock = event.at if applied.clock is None else max(applied.clock, event.at)
    if applied.clock == clock:
        return applied
    if applied is state:
        return changed(state, clock=clock)
    applied.clock = clock  # built just now by `_apply` and seen by no one yet: one construction, not two
    return applied


def _apply(state: PlanState, event: PlanEvent) -> PlanState:
    match event:
        case Enrolled():
            return changed(
                state,
                enrolled=True,
                level=event.starting_level,
                daily_limit=event.daily_limit,
                categories=event.categories,
                timezone=event.timezone,
                coach_id=event.coach_id,
            )
        case EnrolmentChanged():
            return changed(
                state,
                daily_limit=event.daily_limit,
                categories=event.categories,
                timezone=event.timezone,
                coach_id=event.coach_id,
            )
        case ChallengeAssigned():
            return _assigned(state, event)
        case AssignmentClosed():
            skipped = state.skipped_in_a_row_at_level
            if event.level == state.level:
                skipped = skipped + 1 if event.outcome == Outcome.SKIPPED else 0
            return changed(state, open_assignment=None, skipped_in_a_row_at_level=skipped)
        case AssignmentCancelled():
            return _cancelled(state)
        case ProgressObserved():
            return _observed(state, event)
        case WarningObserved():
            ease_off_until = state.ease_off_until
            if event.ease_off_until is not None:
                ease_off_until = (
                    event.ease_off_until if ease_off_until is None else max(ease_off_until, event.ease_off_until)
                )
            crisis = event.severity is Severity.CRISIS
            crisis_raised_at = event.raised_at if crisis else state.crisis_raised_at
            # A new crisis needs its own clearing: one of an earlier crisis does not lift it.
            crisis_cleared = state.crisis_cleared and not crisis
            return changed(
                state,
                level=event.level,
                seen_warning_ids=state.seen_warning_ids | {event.warning_id},
                active_warning_id=event.warning_id,
                active_severity=event.severity,
                ease_off_until=ease_off_until,
                crisis_raised_at=crisis_raised_at,
                crisis_cleared=crisis_cleared,
            )
        case ClearingObserved():
            if event.warning_id != state.active_warning_id:
                return state
            cleared = state.crisis_cleared or (event.by == "review" and state.pause_reason == "crisis")
            return changed(state, active_warning_id=None, active_severity=None, crisis_cleared=cleared)
        case PlanPaused():
            return changed(
                state,
                status="paused",
                pause_reason=event.reason,
                paused_until=event.until,
                pause_warning_id=event.warning_id,
                hold_until=event.hold_until,
                crisis=event.reason == "crisis",
                crisis_cleared=state.crisis_cleared and event.reason == "crisis" and state.pause_reason == "crisis",
            )
        case PlanResumed():
            return changed(
                state,
                status="active",
                pause_reason=None,
                paused_until=None,
                pause_warning_id=None,
                hold_until=None,
                crisis=False,
                crisis_cleared=False,
            )
        case Reviewed():
            return changed(
                state, reviewed_at=event.at if state.reviewed_at is None else max(state.reviewed_at, event.at)
            )
        case Withdrawn():
            return changed(state, status="withdrawn", open_assignment=None, erased=state.erased or event.erase)


def _assigned(state: PlanState, event: ChallengeAssigned) -> PlanState:
    assignment = event.assignment
    today = local_day(assignment.issued_at, state.timezone)
    day = local_day(assignment.not_before, state.timezone)
    counts = {d: n for d, n in state.day_counts if d >= today}
    counts[day] = counts.get(day, 0) + 1
    level_changed = event.plan_level != state.level or assignment.reason == "step_down"
    return changed(
        state,
        open_assignment=assignment,
        assignments_issued=state.assignments_issued + 1,
        last_challenge_id=assignment.challenge_id,
        last_assigned_level=assignment.level,
        level=event.plan_level,
        day_counts=tuple(sorted(counts.items())),
        skipped_in_a_row_at_level=0 if level_changed else state.skipped_in_a_row_at_level,
    )


def _observed(state: PlanState, event: ProgressObserved) -> PlanState:
    state = changed(state, last_position=max(state.last_position, event.position))
    if event.occurred_at is None or event.outcome not in COMPLETED_OUTCOMES:
        return state
    today = local_day(event.at, state.timezone)
    counts = {d: n for d, n in state.completed_by_day if d >= today}
    day = local_day(event.occurred_at, state.timezone)
    if day >= today:  # an attempt synced late counts for its own day, which is over
        counts[day] = counts.get(day, 0) + 1
    return changed(state, completed_by_day=tuple(sorted(counts.items())))


def _cancelled(state: PlanState) -> PlanState:
    """A cancelled assignment gives its day's slot back: only live assignments count toward the limit."""
    counts = dict(state.day_counts)
    if state.open_assignment is not None:
        day = local_day(state.open_assignment.not_before, state.timezone)
        if counts.get(day, 0) > 1:
            counts[day] -= 1
        else:
            counts.pop(day, None)
    return changed(state, open_assignment=None, day_counts=tuple(sorted(counts.items())))
