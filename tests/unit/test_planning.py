"""The planner policy (DOMAIN.md "Start", "Step size", "Step down", "Planner response"), example by example."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stepout_contract import wire
from stepout_domain.attempts import Outcome
from stepout_domain.catalog import Catalog, load_catalog
from stepout_domain.overload import Severity
from stepout_domain.plan_events import (
    Assignment,
    AssignmentCancelled,
    AssignmentClosed,
    ChallengeAssigned,
    ClearingObserved,
    Enrolled,
    EnrolmentChanged,
    PlanEvent,
    PlanPaused,
    PlanResumed,
    ProgressObserved,
    Reviewed,
    Withdrawn,
)
from stepout_domain.planning import (
    Enrol,
    LastAttempt,
    ObserveClearing,
    ObserveProgress,
    ObserveWarning,
    PauseByParticipant,
    PlanCommand,
    PlanState,
    Resume,
    Review,
    Withdraw,
    assignment_id_for,
    awaited,
    decide,
    evolve,
    initial_state,
    replay,
)
from stepout_domain.ruleset import DEFAULT_RULESET, RuleSet, parse_ruleset

CATALOG: Catalog = load_catalog()
OPEN = "open"


def assigned(events: list[PlanEvent]) -> list[Assignment]:
    return [event.assignment for event in events if isinstance(event, ChallengeAssigned)]


class Plan:
    """One participant: `send` decides a command and folds its events; `attempt` builds the progress command."""

    def __init__(
        self,
        start: datetime,
        *,
        user_id: str = "u-1",
        level: int = 3,
        daily_limit: int = 10,
        timezone: str = "UTC",
        categories: tuple[str, ...] = ("social", "money"),
        rules: RuleSet = DEFAULT_RULESET,
    ) -> None:
        self.rules = rules
        self.now = start
        self.state: PlanState = initial_state(user_id)
        self.position = 0
        self.events: list[PlanEvent] = []
        self.last_progress: ObserveProgress | None = None
        self.enrolment = self.send(Enrol(user_id, level, daily_limit, categories, timezone, "coach-1", start))

    @property
    def open(self) -> Assignment:
        assert self.state.open_assignment is not None
        return self.state.open_assignment

    def send(self, command: PlanCommand) -> list[PlanEvent]:
        events = decide(self.state, command, self.rules, CATALOG)
        assert decide(self.state, command, self.rules, CATALOG) == events, "decide is not deterministic"
        for event in events:
            self.state = evolve(self.state, event)
        self.events.extend(events)
        return events

    def later(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def attempt(
        self,
        outcome: Outcome = Outcome.REJECTED,
        peak: int | None = 40,
        *,
        ready: bool = False,
        progress_level: int | None = None,
        names: str | None = OPEN,
        at: datetime | None = None,
    ) -> list[PlanEvent]:
        """Log an attempt (an hour after the last command unless `at` is given) and observe its progress."""
        at = at or self.later(hours=1)
        self.position += 1
        open_assignment = self.state.open_assignment
        if names == OPEN:
            names = open_assignment.assignment_id if open_assignment else None
        level = open_assignment.level if open_assignment else self.state.level
        last = LastAttempt(f"att-{self.position}", names, "some-challenge", level, outcome, peak, at)
        command = ObserveProgress(self.position, progress_level or self.state.level, ready, last, at)
        self.last_progress = command
        return self.send(command)


T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def only_assignment(events: list[PlanEvent]) -> Assignment:
    issued = assigned(events)
    assert len(issued) == 1, events
    return issued[0]


# Start


def test_first_enrolment_assigns_a_start_challenge_at_the_starting_level_now() -> None:
    plan = Plan(T0, level=4)
    first = only_assignment(plan.enrolment)
    assert isinstance(plan.enrolment[0], Enrolled)
    assert (first.level, first.reason, first.not_before) == (4, "start", T0)
    assert first.assignment_id == assignment_id_for("u-1", 1)
    assert first.ruleset_version == DEFAULT_RULESET.version
    assert CATALOG.get(first.challenge_id) is not None
    assert first.category in ("social", "money")


def test_assignment_ids_are_uuid5_of_user_and_ordinal() -> None:
    assert assignment_id_for("u-1", 1) == assignment_id_for("u-1", 1)
    assert assignment_id_for("u-1", 1) != assignment_id_for("u-1", 2)
    assert uuid.UUID(assignment_id_for("u-1", 7)).version == 5


def test_an_assignment_on_the_wire_is_the_challenge_assigned_data_with_z_times() -> None:
    plan = Plan(datetime(2026, 11, 26, 7, 30, tzinfo=ZoneInfo("America/New_York")))
    data = wire.assignment(plan.open)
    assert set(data) == {
        "assignment_id",
        "user_id",
        "challenge_id",
        "title",
        "category",
        "level",
        "reason",
        "not_before",
        "ruleset_version",
    }
    assert data["not_before"] == "2026-11-26T12:30:00Z"
    assert data["reason"] == "start"


def test_every_assignment_carries_the_rule_set_version_that_made_it() -> None:
    rules = parse_ruleset({"version": "test.7"})
    plan = Plan(T0, rules=rules)
    plan.attempt()
    plan.attempt(ready=True)
    assert {a.ruleset_version for a in assigned(plan.events)} == {"test.7"}


# Repeat, step up


def test_attempt_closes_the_open_assignment_and_repeats_the_level() -> None:
    plan = Plan(T0)
    first = plan.open
    events = plan.attempt()
    closed = [e for e in events if isinstance(e, AssignmentClosed)]
    assert [(c.assignment_id, c.attempt_id) for c in closed] == [(first.assignment_id, "att-1")]
    nxt = only_assignment(events)
    assert (nxt.level, nxt.reason) == (3, "repeat")
    assert nxt.challenge_id != first.challenge_id


def test_self_chosen_attempt_closes_the_open_assignment_too() -> None:
    plan = Plan(T0)
    first = plan.open
    events = plan.attempt(names=None)
    assert any(isinstance(e, AssignmentClosed) and e.assignment_id == first.assignment_id for e in events)
    assert only_assignment(events).reason == "repeat"


def test_attempt_naming_another_assignment_is_recorded_but_leaves_the_open_one() -> None:
    plan = Plan(T0)
    first = plan.open
    events = plan.attempt(names="00000000-0000-0000-0000-000000000000")
    assert [type(e) for e in events] == [ProgressObserved]
    assert plan.open == first


def test_ready_at_the_plan_level_steps_up_exactly_one_level() -> None:
    plan = Plan(T0, level=3)
    nxt = only_assignment(plan.attempt(ready=True))
    assert (nxt.level, nxt.reason) == (4, "step_up")
    assert plan.state.level == 4


def test_not_ready_repeats_the_level() -> None:
    plan = Plan(T0, level=3)
    assert only_assignment(plan.attempt(ready=False)).reason == "repeat"


def test_ready_for_another_level_than_the_plan_level_repeats() -> None:
    plan = Plan(T0, level=3)
    nxt = only_assignment(plan.attempt(ready=True, progress_level=5))
    assert (nxt.level, nxt.reason) == (3, "repeat")


def test_step_up_never_goes_above_ten() -> None:
    plan = Plan(T0, level=9)
    assert only_assignment(plan.attempt(ready=True)).level == 10
    nxt = only_assignment(plan.attempt(ready=True))
    assert (nxt.level, nxt.reason) == (10, "repeat")


# Step down


@pytest.mark.parametrize(("peak", "reason", "level"), [(90, "step_down", 4), (89, "repeat", 5), (100, "step_down", 4)])
def test_a_peak_of_90_steps_down_and_89_does_not(peak: int, reason: str, level: int) -> None:
    plan = Plan(T0, level=5)
    nxt = only_assignment(plan.attempt(Outcome.REJECTED, peak))
    assert (nxt.reason, nxt.level) == (reason, level)


@pytest.mark.parametrize(("peak", "reason", "level"), [(70, "step_down", 4), (69, "repeat", 5)])
def test_an_escape_peaking_at_70_steps_down_and_69_does_not(peak: int, reason: str, level: int) -> None:
    plan = Plan(T0, level=5)
    nxt = only_assignment(plan.attempt(Outcome.ESCAPED, peak))
    assert (nxt.reason, nxt.level) == (reason, level)


def test_two_skipped_assignments_at_the_level_step_down_and_one_does_not() -> None:
    plan = Plan(T0, level=5)
    assert only_assignment(plan.attempt(Outcome.SKIPPED, None)).reason == "repeat"
    nxt = only_assignment(plan.attempt(Outcome.SKIPPED, None))
    assert (nxt.reason, nxt.level) == ("step_down", 4)


def test_skips_separated_by_a_completed_attempt_do_not_step_down() -> None:
    plan = Plan(T0, level=5)
    plan.attempt(Outcome.SKIPPED, None)
    plan.attempt(Outcome.REJECTED, 30)
    assert only_assignment(plan.attempt(Outcome.SKIPPED, None)).reason == "repeat"


def test_step_down_never_goes_below_one() -> None:
    plan = Plan(T0, level=1)
    nxt = only_assignment(plan.attempt(Outcome.REJECTED, 95))
    assert (nxt.reason, nxt.level) == ("step_down", 1)


# Daily limit


def test_the_assignment_beyond_the_daily_limit_waits_for_the_next_local_midnight() -> None:
    new_york = ZoneInfo("America/New_York")
    # 22:00 in New York is already the next day in UTC: the limit must count New York days.
    plan = Plan(datetime(2026, 11, 26, 22, 0, tzinfo=new_york), daily_limit=2, timezone="America/New_York")
    second = only_assignment(plan.attempt(at=datetime(2026, 11, 26, 22, 10, tzinfo=new_york)))
    third = only_assignment(plan.attempt(at=datetime(2026, 11, 26, 22, 20, tzinfo=new_york)))
    assert second.not_before == datetime(2026, 11, 26, 22, 10, tzinfo=new_york)
    assert third.not_before == datetime(2026, 11, 27, 0, 0, tzinfo=new_york)
    assert third.not_before == datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    assert third.not_before.tzinfo is not None


def test_the_next_local_midnight_follows_daylight_saving_time() -> None:
    new_york = ZoneInfo("America/New_York")
    # 2026-11-01 is the end of DST in New York: that day has 25 hours.
    plan = Plan(datetime(2026, 10, 31, 23, 0, tzinfo=new_york), daily_limit=1, timezone="America/New_York")
    nxt = only_assignment(plan.attempt(at=datetime(2026, 10, 31, 23, 30, tzinfo=new_york)))
    assert nxt.not_before == datetime(2026, 11, 1, 0, 0, tzinfo=new_york) == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


# Overload: caution


def test_caution_eases_off_one_level_lower_for_two_days_then_back() -> None:
    plan = Plan(T0, level=5)
    events = plan.send(ObserveWarning("w-1", Severity.CAUTION, plan.later(minutes=30), escalate=False))
    assert not assigned(events)
    first = only_assignment(plan.attempt(ready=True))
    assert (first.reason, first.level) == ("ease_off", 4)
    assert plan.state.level == 5
    plan.later(hours=40)
    assert only_assignment(plan.attempt(ready=True)).reason == "ease_off"
    plan.later(hours=8)
    after = only_assignment(plan.attempt(ready=True))
    assert (after.reason, after.level) == ("repeat", 5)
    # Back at the level for one assignment: now a step up is one level above it.
    assert only_assignment(plan.attempt(ready=True)).level == 6


def test_step_down_during_ease_off_keeps_its_own_level() -> None:
    plan = Plan(T0, level=5)
    plan.send(ObserveWarning("w-1", Severity.CAUTION, plan.later(minutes=30), escalate=False))
    nxt = only_assignment(plan.attempt(Outcome.REJECTED, 95))
    assert (nxt.reason, nxt.level) == ("step_down", 4)


# Overload: high


def test_high_pauses_48_hours_then_resumes_one_level_lower_at_the_end() -> None:
    plan = Plan(T0, level=5)
    raised = plan.later(minutes=30)
    stale = plan.open
    events = plan.send(ObserveWarning("w-1", Severity.HIGH, raised, escalate=True))
    pauses = [e for e in events if isinstance(e, PlanPaused)]
    assert [(p.reason, p.until, p.warning_id) for p in pauses] == [("overload", raised + timedelta(hours=48), "w-1")]
    assert any(isinstance(e, AssignmentCancelled) and e.assignment_id == stale.assignment_id for e in events)
    resume = only_assignment(events)
    assert (resume.reason, resume.level, resume.not_before) == ("resume", 4, raised + timedelta(hours=48))
    assert plan.state.status == "paused"
    # The attempt that raised it names the cancelled assignment: recorded, nothing new.
    assert not assigned(plan.attempt(names=stale.assignment_id))
    assert plan.open == resume
    # The first command after the end marks the pause over; the resume assignment stays open.
    events = plan.attempt(names=None, at=raised + timedelta(hours=49))
    assert isinstance(events[0], PlanResumed) and events[0].at == raised + timedelta(hours=48)
    assert plan.state.status == "active"
    assert only_assignment(events).level == 4


def test_attempts_during_an_overload_pause_issue_nothing() -> None:
    plan = Plan(T0, level=5)
    plan.send(ObserveWarning("w-1", Severity.HIGH, plan.later(minutes=30), escalate=True))
    resume = plan.open
    for _ in range(5):
        assert not assigned(plan.attempt(names=None))
    assert plan.open == resume


def test_a_participant_cannot_resume_an_overload_pause_early() -> None:
    plan = Plan(T0, level=5)
    raised = plan.later(minutes=30)
    plan.send(ObserveWarning("w-1", Severity.HIGH, raised, escalate=True))
    assert plan.send(Resume(plan.later(hours=1))) == []
    assert plan.state.status == "paused"


def test_a_participant_pause_beyond_an_overload_hold_extends_it_and_resume_falls_back_to_the_hold() -> None:
    plan = Plan(T0, level=5)
    raised = plan.later(minutes=30)
    plan.send(ObserveWarning("w-1", Severity.HIGH, raised, escalate=True))
    hold_end = raised + timedelta(hours=48)
    events = plan.send(PauseByParticipant(None, plan.later(hours=1)))
    assert [(e.reason, e.until) for e in events if isinstance(e, PlanPaused)] == [("participant", None)]
    assert plan.state.open_assignment is None
    events = plan.send(Resume(plan.later(hours=1)))
    assert [(e.reason, e.until) for e in events if isinstance(e, PlanPaused)] == [("overload", hold_end)]
    assert (plan.open.not_before, plan.open.level) == (hold_end, 4)


def test_a_high_warning_observed_after_its_hold_is_over_only_lowers_the_level() -> None:
    plan = Plan(T0, level=5)
    late = plan.later(hours=60)
    plan.attempt(at=late)
    events = plan.send(ObserveWarning("w-1", Severity.HIGH, late - timedelta(hours=50), escalate=True))
    assert not [e for e in events if isinstance(e, PlanPaused)]
    nxt = only_assignment(events)
    assert (nxt.reason, nxt.level, nxt.not_before) == ("resume", 4, late)


# Overload: crisis


def test_crisis_pauses_with_no_end_and_nothing_is_issued_until_a_review() -> None:
    plan = Plan(T0, level=5)
    events = plan.send(ObserveWarning("w-1", Severity.CRISIS, plan.later(minutes=30), escalate=True))
    assert [(e.reason, e.until, e.warning_id) for e in events if isinstance(e, PlanPaused)] == [("crisis", None, "w-1")]
    assert not assigned(events)
    assert plan.state.open_assignment is None and plan.state.crisis
    plan.later(days=30)
    for _ in range(3):
        assert not assigned(plan.attempt(names=None))
    assert plan.send(Resume(plan.later(hours=1))) == []
    assert plan.send(PauseByParticipant(None, plan.later(hours=1))) == []
    reviewed_at = plan.later(hours=1)
    events = plan.send(Review("coach-1", reviewed_at))
    assert [type(e) for e in events] == [Reviewed]  # the tracker judges the review, the plan follows it
    assert plan.state.status == "paused" and plan.state.crisis
    events = plan.send(ObserveClearing("w-1", reviewed_at, "review"))
    assert any(isinstance(e, PlanResumed) for e in events)
    resume = only_assignment(events)
    assert (resume.reason, resume.level, resume.not_before) == ("resume", 4, reviewed_at)
    assert plan.state.status == "active" and not plan.state.crisis


def test_a_crisis_pause_ignores_a_clearing_of_another_warning_and_one_by_rules() -> None:
    plan = Plan(T0, level=5)
    plan.send(ObserveWarning("w-1", Severity.CRISIS, plan.later(minutes=30), escalate=True))
    assert plan.send(ObserveClearing("w-other", plan.later(hours=1), "review")) == []
    events = plan.send(ObserveClearing("w-1", plan.later(hours=1), "superseded"))
    assert not any(isinstance(e, PlanResumed) for e in events)
    assert plan.state.status == "paused" and plan.state.crisis


def test_a_review_of_an_active_plan_issues_nothing() -> None:
    plan = Plan(T0)
    events = plan.send(Review("coach-1", plan.later(hours=1)))
    assert [type(e) for e in events] == [Reviewed]


# Participant pause


def test_participant_pause_without_end_waits_for_resume_then_resumes_at_the_same_level() -> None:
    plan = Plan(T0, level=5)
    stale = plan.open
    events = plan.send(PauseByParticipant(None, plan.later(hours=1)))
    assert [(e.reason, e.until, e.warning_id) for e in events if isinstance(e, PlanPaused)] == [
        ("participant", None, None)
    ]
    assert any(isinstance(e, AssignmentCancelled) and e.assignment_id == stale.assignment_id for e in events)
    assert plan.state.open_assignment is None
    plan.later(days=10)
    assert not assigned(plan.attempt(names=None))
    resumed_at = plan.later(hours=1)
    events = plan.send(Resume(resumed_at))
    resume = only_assignment(events)
    assert (resume.reason, resume.level, resume.not_before) == ("resume", 5, resumed_at)


def test_participant_pause_with_an_end_issues_the_resume_assignment_at_the_end() -> None:
    plan = Plan(T0, level=5)
    until = T0 + timedelta(days=3)
    events = plan.send(PauseByParticipant(until, plan.later(hours=1)))
    resume = only_assignment(events)
    assert (resume.reason, resume.level, resume.not_before) == ("resume", 5, until)
    events = plan.attempt(names=None, at=until + timedelta(hours=1))
    assert isinstance(events[0], PlanResumed)
    assert plan.state.status == "active"


def test_resuming_before_the_end_replaces_the_resume_assignment_with_one_now() -> None:
    plan = Plan(T0, level=5)
    plan.send(PauseByParticipant(T0 + timedelta(days=3), plan.later(hours=1)))
    resumed_at = plan.later(hours=5)
    events = plan.send(Resume(resumed_at))
    assert any(isinstance(e, AssignmentCancelled) for e in events)
    assert only_assignment(events).not_before == resumed_at


def test_cancelled_assignments_give_their_day_slot_back() -> None:
    plan = Plan(datetime(2026, 11, 26, 9, 0, tzinfo=UTC), daily_limit=2)
    plan.send(PauseByParticipant(datetime(2026, 11, 26, 15, 0, tzinfo=UTC), plan.later(hours=1)))
    resumed_at = plan.later(hours=1)
    assert only_assignment(plan.send(Resume(resumed_at))).not_before == resumed_at
    # Start and the first resume were cancelled: today still has room for one more.
    nxt = only_assignment(plan.attempt())
    assert nxt.not_before == plan.now
    assert only_assignment(plan.attempt()).not_before == datetime(2026, 11, 27, tzinfo=UTC)


def test_resume_of_an_active_plan_does_nothing() -> None:
    plan = Plan(T0)
    assert plan.send(Resume(plan.later(hours=1))) == []


# Withdrawal


def test_withdrawal_is_final() -> None:
    plan = Plan(T0)
    events = plan.send(Withdraw(erase=False, at=plan.later(hours=1)))
    assert [(e.reason, e.until) for e in events if isinstance(e, PlanPaused)] == [("withdrawn", None)]
    assert isinstance(events[-1], Withdrawn)
    assert plan.state.status == "withdrawn" and plan.state.open_assignment is None
    assert plan.attempt(names=None) == []
    assert plan.send(Resume(plan.later(hours=1))) == []
    assert plan.send(Review("coach-1", plan.later(hours=1))) == []
    assert plan.send(ObserveWarning("w-1", Severity.CRISIS, plan.later(hours=1), escalate=True)) == []
    assert plan.send(Enrol("u-1", 3, 3, ("play",), "UTC", None, plan.later(hours=1))) == []


# Enrolment, idempotency


def test_second_enrolment_changes_only_its_four_fields_and_issues_nothing() -> None:
    plan = Plan(T0, level=4)
    plan.attempt(ready=True)
    before = plan.state
    events = plan.send(Enrol("u-1", 9, 1, ("career",), "Europe/Berlin", "coach-2", plan.later(hours=1)))
    assert len(events) == 1 and isinstance(events[0], EnrolmentChanged)
    after = plan.state
    assert (after.daily_limit, after.categories, after.timezone, after.coach_id) == (
        1,
        ("career",),
        "Europe/Berlin",
        "coach-2",
    )
    assert after.level == before.level == 5
    assert after.open_assignment == before.open_assignment
    assert after.assignments_issued == before.assignments_issued
    # The same enrolment again changes nothing at all.
    assert plan.send(Enrol("u-1", 9, 1, ("career",), "Europe/Berlin", "coach-2", plan.later(hours=1))) == []


def test_commands_before_enrolment_do_nothing() -> None:
    state = initial_state("u-2")
    assert decide(state, Resume(T0), DEFAULT_RULESET, CATALOG) == []
    assert decide(state, ObserveWarning("w", Severity.HIGH, T0, True), DEFAULT_RULESET, CATALOG) == []


def test_redelivered_progress_produces_no_events() -> None:
    plan = Plan(T0)
    plan.attempt()
    assert plan.last_progress is not None
    assert plan.send(plan.last_progress) == []
    older = replace(plan.last_progress, position=plan.last_progress.position - 1)
    assert plan.send(older) == []


def test_redelivered_warning_produces_no_events() -> None:
    plan = Plan(T0, level=5)
    warning = ObserveWarning("w-1", Severity.HIGH, plan.later(minutes=30), escalate=True)
    assert plan.send(warning)
    assert plan.send(warning) == []
    plan.later(days=5)
    assert plan.send(warning) == []
    assert plan.state.level == 4


def test_clearing_of_the_active_warning_is_recorded_once() -> None:
    plan = Plan(T0)
    raised = plan.later(minutes=30)
    plan.send(ObserveWarning("w-1", Severity.CAUTION, raised, escalate=False))
    clearing = ObserveClearing("w-1", plan.later(days=1), "rules")
    assert [type(e) for e in plan.send(clearing)] == [ClearingObserved]
    assert plan.state.active_warning_id is None
    assert plan.send(clearing) == []


def test_folding_the_events_again_rebuilds_the_same_state() -> None:
    plan = Plan(T0, level=5, daily_limit=2, timezone="Asia/Kolkata")
    plan.attempt(ready=True)
    plan.send(ObserveWarning("w-1", Severity.HIGH, plan.later(minutes=30), escalate=True))
    plan.attempt(names=None, at=plan.later(days=3))
    assert replay(initial_state("u-1"), plan.events) == plan.state


# Order: what the tracker published before


def test_a_progress_that_skips_a_position_awaits_the_one_it_skips() -> None:
    plan = Plan(T0)
    plan.attempt()
    at = plan.later(hours=1)
    last = LastAttempt("att-3", None, "some-challenge", 3, Outcome.REJECTED, 40, at)
    skipping = ObserveProgress(3, 3, False, last, at)
    assert awaited(plan.state, skipping) == "the progress at position 2"
    following = ObserveProgress(2, 3, False, replace(last, attempt_id="att-2"), at)
    assert awaited(plan.state, following) is None
    assert plan.last_progress is not None
    assert awaited(plan.state, plan.last_progress) is None  # the same one again: nothing awaited


def test_a_clearing_awaits_its_warning() -> None:
    plan = Plan(T0)
    clearing = ObserveClearing("w-1", plan.later(hours=1), "review")
    assert awaited(plan.state, clearing) == "the warning w-1"
    plan.send(ObserveWarning("w-1", Severity.CRISIS, plan.later(minutes=1), escalate=True))
    assert awaited(plan.state, clearing) is None


def test_nothing_is_awaited_before_enrolment_or_after_withdrawal() -> None:
    at = T0 + timedelta(hours=1)
    last = LastAttempt("att-5", None, "some-challenge", 3, Outcome.REJECTED, 40, at)
    assert awaited(initial_state("u-1"), ObserveProgress(5, 3, False, last, at)) is None
    plan = Plan(T0)
    plan.send(Withdraw(False, plan.later(hours=1)))
    assert awaited(plan.state, ObserveProgress(5, 3, False, last, at)) is None
