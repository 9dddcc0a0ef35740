"""Properties of the planner over random histories: pacing, pauses, daily limits and replay."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepout_domain.attempts import Outcome
from stepout_domain.catalog import load_catalog
from stepout_domain.overload import Severity
from stepout_domain.plan_events import (
    Assignment,
    AssignmentCancelled,
    AssignmentClosed,
    ChallengeAssigned,
    PlanEvent,
    PlanPaused,
    PlanResumed,
)
from stepout_domain.plan_state import local_day
from stepout_domain.planning import (
    Enrol,
    LastAttempt,
    ObserveClearing,
    ObserveProgress,
    ObserveWarning,
    PauseByParticipant,
    PlanCommand,
    PlanState,
    Refusal,
    Resume,
    Review,
    Withdraw,
    decide,
    evolve,
    initial_state,
    replay,
)
from stepout_domain.ruleset import DEFAULT_RULESET

CATALOG = load_catalog()
USER = "u-prop"
# Zones with DST, half-hour and 45-minute offsets, and a DST gap at midnight (Santiago).
TIMEZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "America/Santiago", "Europe/Berlin"]
STALE_ID = "00000000-0000-0000-0000-000000000000"

minutes = st.integers(min_value=0, max_value=3 * 24 * 60)
attempts = st.tuples(
    st.just("attempt"),
    minutes,
    st.sampled_from(list(Outcome)),
    st.integers(min_value=0, max_value=100),
    st.sampled_from([True, True, False]),  # level_ready
    st.sampled_from([True, True, False]),  # readiness is for the plan level
    st.sampled_from(["open", "none", "stale"]),
)
warnings = st.tuples(
    st.just("warning"),
    minutes,
    st.sampled_from(list(Severity)),
    st.integers(min_value=0, max_value=6),  # warning id: small pool, so some arrive twice
    st.sampled_from([0, 0, 0, 30, 60 * 60]),  # minutes the warning was raised before it is observed
)
others = st.one_of(
    st.tuples(st.just("clearing"), minutes, st.integers(min_value=0, max_value=6)),
    st.tuples(st.just("pause"), minutes, st.one_of(st.none(), st.integers(min_value=1, max_value=120))),
    st.tuples(st.just("resume"), minutes),
    st.tuples(st.just("review"), minutes, st.sampled_from(["theirs", "theirs", "another"])),
    st.tuples(st.just("redeliver"), minutes),
    st.tuples(st.just("reenrol"), minutes, st.sampled_from([("social",), ("money", "play"), ()])),
)
steps = st.lists(
    st.one_of(attempts, attempts, attempts, warnings, others, st.tuples(st.just("withdraw"), minutes)).filter(
        lambda step: step[0] != "withdraw" or step[1] % 5 == 0  # withdrawals are rare
    ),
    max_size=45,
)
setups = st.tuples(
    st.integers(min_value=1, max_value=10),  # starting level
    st.integers(min_value=1, max_value=4),  # daily limit
    st.sampled_from(TIMEZONES),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
)


@dataclass
class Run:
    limit: int
    timezone: str
    commands: list[PlanCommand] = field(default_factory=list)
    per_command: list[list[PlanEvent]] = field(default_factory=list)  # a refused command's: none
    decisions: list[list[PlanEvent] | Refusal] = field(default_factory=list)
    states: list[PlanState] = field(default_factory=list)

    @property
    def events(self) -> list[PlanEvent]:
        return [event for events in self.per_command for event in events]


def _command(step: tuple[Any, ...], state: PlanState, now: datetime, previous: list[PlanCommand]) -> PlanCommand:
    kind = step[0]
    if kind == "attempt":
        _, _, outcome, peak, ready, at_plan_level, names = step
        open_assignment = state.open_assignment
        assignment_id = {"open": open_assignment.assignment_id if open_assignment else None, "none": None}.get(
            names, STALE_ID
        )
        position = state.last_position + 1
        last = LastAttempt(
            f"att-{position}",
            assignment_id,
            "some-challenge",
            open_assignment.level if open_assignment else state.level,
            outcome,
            None if outcome is Outcome.SKIPPED else peak,
            now,
        )
        level = state.level if at_plan_level else max(1, state.level - 1)
        return ObserveProgress(position, level, ready, last, now)
    if kind == "warning":
        _, _, severity, number, lag = step
        return ObserveWarning(f"w-{number}", severity, now - timedelta(minutes=lag), escalate=severity != "caution")
    if kind == "clearing":
        return ObserveClearing(f"w-{step[2]}", now, "rules")
    if kind == "pause":
        return PauseByParticipant(None if step[2] is None else now + timedelta(hours=step[2]), now)
    if kind == "resume":
        return Resume(now)
    if kind == "review":
        # Their coach's review, or another coach's (refused when they have a coach).
        return Review((state.coach_id or "coach-1") if step[2] == "theirs" else "coach-another", now)
    if kind == "reenrol":
        return Enrol(USER, 3, state.daily_limit, step[2], state.timezone, f"coach-{len(previous)}", now)
    if kind == "redeliver":
        again = [c for c in previous if isinstance(c, ObserveProgress | ObserveWarning)]
        return again[-1] if again else Resume(now)
    return Withdraw(erase=False, at=now)


def drive(setup: tuple[int, int, str, datetime], script: list[tuple[Any, ...]]) -> Run:
    level, limit, timezone, start = setup
    run = Run(limit, timezone)
    state = initial_state(USER)
    now = start
    command: PlanCommand = Enrol(USER, level, limit, ("social", "money"), timezone, None, now)
    for step in [None, *script]:
        if step is not None:
            now += timedelta(minutes=step[1])
            command = _command(step, state, now, run.commands)
        decision = decide(state, command, DEFAULT_RULESET, CATALOG)
        if isinstance(decision, Refusal):
            assert isinstance(command, Review) and state.coach_id not in (None, command.coach_id), decision
        events = [] if isinstance(decision, Refusal) else decision
        for event in events:
            state = evolve(state, event)
        run.commands.append(command)
        run.per_command.append(events)
        run.decisions.append(decision)
        run.states.append(state)
    return run


def _issued(run: Run) -> list[Assignment]:
    return [event.assignment for event in run.events if isinstance(event, ChallengeAssigned)]


fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(setups, steps)
def test_the_same_commands_give_the_same_events(setup: tuple[int, int, str, datetime], script: list[Any]) -> None:
    run = drive(setup, script)
    state = initial_state(USER)
    for command, decision, events in zip(run.commands, run.decisions, run.per_command, strict=True):
        assert decide(state, command, DEFAULT_RULESET, CATALOG) == decision
        state = replay(state, events)
    assert state == run.states[-1]


@fuzz
@given(setups, steps)
def test_levels_stay_on_the_ladder_and_never_rise_more_than_one_at_a_time(
    setup: tuple[int, int, str, datetime], script: list[Any]
) -> None:
    run = drive(setup, script)
    issued = [event for event in run.events if isinstance(event, ChallengeAssigned)]
    for event in issued:
        assert 1 <= event.assignment.level <= 10 and 1 <= event.plan_level <= 10
        assert event.assignment.level <= event.plan_level
    for before, after in pairwise(issued):
        assert after.assignment.level <= before.assignment.level + 1
        assert after.plan_level <= before.plan_level + 1
    assert all(1 <= state.level <= 10 for state in run.states)


@fuzz
@given(setups, steps)
def test_at_most_one_open_assignment_and_an_active_plan_always_has_one(
    setup: tuple[int, int, str, datetime], script: list[Any]
) -> None:
    run = drive(setup, script)
    open_id: str | None = None
    for event in run.events:
        if isinstance(event, ChallengeAssigned):
            assert open_id is None, "a second assignment while one is open"
            open_id = event.assignment.assignment_id
        elif isinstance(event, AssignmentClosed | AssignmentCancelled):
            assert event.assignment_id == open_id
            open_id = None
    # No timers: an active plan, or a pause with an end, always has the next assignment waiting.
    for state in run.states:
        if state.status == "active":
            assert state.open_assignment is not None
        elif state.status == "paused" and state.paused_until is not None:
            assert state.open_assignment is not None
            assert state.open_assignment.not_before >= state.paused_until
        else:
            assert state.open_assignment is None


@fuzz
@given(setups, steps)
def test_at_most_daily_limit_assignments_per_local_day(
    setup: tuple[int, int, str, datetime], script: list[Any]
) -> None:
    run = drive(setup, script)
    cancelled = {event.assignment_id for event in run.events if isinstance(event, AssignmentCancelled)}
    per_day: dict[object, int] = {}
    for assignment in _issued(run):
        if assignment.assignment_id not in cancelled:
            day = local_day(assignment.not_before, run.timezone)
            per_day[day] = per_day.get(day, 0) + 1
    assert all(count <= run.limit for count in per_day.values()), per_day


@fuzz
@given(setups, steps)
def test_no_live_assignment_has_not_before_inside_a_pause(
    setup: tuple[int, int, str, datetime], script: list[Any]
) -> None:
    run = drive(setup, script)
    events = run.events
    # Pause windows: from a PlanPaused to its `until`, cut short by the next PlanPaused or PlanResumed.
    windows: list[tuple[int, int, datetime, datetime | None]] = []  # (first index, last index, start, end)
    for index, event in enumerate(events):
        if not isinstance(event, PlanPaused):
            continue
        end, last = event.until, len(events)
        for later_index in range(index + 1, len(events)):
            later = events[later_index]
            if isinstance(later, PlanPaused | PlanResumed):
                last = later_index
                end = later.at if end is None else min(end, later.at)
                break
        windows.append((index, last, event.at, end))
    # Each assignment is live from its issue to its closing or cancelling event.
    for index, event in enumerate(events):
        if not isinstance(event, ChallengeAssigned):
            continue
        assignment = event.assignment
        gone = next(
            (
                later_index
                for later_index in range(index + 1, len(events))
                if isinstance(events[later_index], AssignmentClosed | AssignmentCancelled)
            ),
            len(events),
        )
        for first, last, start, end in windows:
            overlaps = index < last and first < gone
            inside = start <= assignment.not_before and (end is None or assignment.not_before < end)
            assert not (overlaps and inside), (assignment, start, end)


@fuzz
@given(setups, steps)
def test_withdrawal_is_final(setup: tuple[int, int, str, datetime], script: list[Any]) -> None:
    run = drive(setup, script)
    withdrawn = [i for i, state in enumerate(run.states) if state.status == "withdrawn"]
    if withdrawn:
        assert all(events == [] for events in run.per_command[withdrawn[0] + 1 :])


@fuzz
@given(setups, steps)
def test_evolving_builds_a_new_state_and_leaves_the_one_it_started_from_as_it_was(
    setup: tuple[int, int, str, datetime], script: list[Any]
) -> None:
    """States are values (not frozen only for the cost of building one): `evolve` never changes
    the state it is given, and the clock it sets is the latest event time seen."""
    run = drive(setup, script)
    state = initial_state(USER)
    for events in run.per_command:
        for event in events:
            before = [getattr(state, f.name) for f in fields(PlanState)]
            after = evolve(state, event)
            assert [getattr(state, f.name) for f in fields(PlanState)] == before
            assert after.clock == (event.at if state.clock is None else max(state.clock, event.at))
            state = after
    assert state == run.states[-1]
