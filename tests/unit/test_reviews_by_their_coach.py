"""A coach's review counts only when it is the participant's coach's (CONTRACT §3 `participant.reviewed`):
the `coach_id` of the enrolment in force. Another coach's review is refused by both deciders (the
services dead-letter it `not_their_coach`) and changes nothing; a participant enrolled without a
coach takes a review naming any coach.

Both deciders are driven together as the services drive them: the tracker's warnings and
clearings are observed by the plan."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepout_contract.dead_letters import REASON_CODES
from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain import planning, tracking
from stepout_domain.attempts import Attempt
from stepout_domain.catalog import load_catalog
from stepout_domain.plan_events import ChallengeAssigned, Reviewed
from stepout_domain.plan_state import PlanState
from stepout_domain.refusals import NOT_THEIR_COACH, Refusal
from stepout_domain.ruleset import DEFAULT_RULESET
from stepout_domain.tracker_commands import Enrol, RecordAttempt, Review
from stepout_domain.tracker_events import Enrolled, EnrolmentChanged, WarningCleared, WarningRaised
from stepout_domain.tracker_state import TrackerState
from stepout_runtime.transcodings import DataclassAsJSON
from stepout_tracker.records import COMMANDS, EVENTS

RULES = DEFAULT_RULESET
CATALOG = load_catalog()
USER = "u-coached"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
COACH_A, COACH_B = "coach-a", "coach-b"


@dataclass
class Participant:
    """One participant in both deciders; each input goes to both, and the tracker's warnings and
    clearings on to the plan, as the planner observes them."""

    tracker: TrackerState
    plan: PlanState
    now: datetime
    attempts: int = 0
    assigned: list[ChallengeAssigned] = field(default_factory=list)

    @classmethod
    def enrolled(cls, coach_id: str | None) -> Participant:
        participant = cls(tracking.initial_state(USER), planning.initial_state(USER), T0)
        participant.enrol(coach_id)
        return participant

    def later(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def enrol(self, coach_id: str | None) -> None:
        at = self.later(minutes=1)
        self._track(tracking.decide(self.tracker, Enrol("UTC", at, coach_id), RULES))
        command = planning.Enrol(USER, 5, 10, ("social", "money"), "UTC", coach_id, at)
        self._plan(planning.decide(self.plan, command, RULES, CATALOG))

    def crisis(self) -> None:
        """An attempt reporting a crisis: the tracker raises a crisis warning, the plan pauses."""
        self.attempts += 1
        at = self.later(hours=1)
        attempt = Attempt(f"a{self.attempts}", at, 5, Outcome.REJECTED, "c-5", None, 20, 60, 30, crisis_reported=True)
        self._track(tracking.decide(self.tracker, RecordAttempt(attempt, at), RULES))
        assert self.crisis_paused

    def review(self, coach_id: str, at: datetime | None = None) -> Refusal | None:
        """A review in both services; the refusal when they refuse it (both alike, or the test fails)."""
        at = at or self.later(hours=1)
        tracked = tracking.decide(self.tracker, Review(at, coach_id), RULES)
        planned = planning.decide(self.plan, planning.Review(coach_id, at), RULES, CATALOG)
        if isinstance(tracked, Refusal) or isinstance(planned, Refusal):
            assert tracked == planned, f"the tracker decided {tracked}, the planner {planned}"
            assert isinstance(tracked, Refusal)
            return tracked
        self._plan(planned)
        self._track(tracked)
        return None

    @property
    def crisis_paused(self) -> bool:
        active = self.tracker.active_warning
        paused = self.plan.status == "paused" and self.plan.pause_reason == "crisis"
        assert paused == (active is not None and active.severity is Severity.CRISIS), "the services disagree"
        return paused

    def _track(self, events: list[tracking.TrackerEvent] | Refusal) -> None:
        assert not isinstance(events, Refusal), events
        self.tracker = tracking.replay(self.tracker, events)
        for event in events:
            if isinstance(event, WarningRaised):
                warning = event.warning
                observed = planning.ObserveWarning(
                    warning.warning_id, warning.severity, warning.raised_at, warning.escalate
                )
                self._plan(planning.decide(self.plan, observed, RULES, CATALOG))
            elif isinstance(event, WarningCleared):
                clearing = event.clearing
                observed_clearing = planning.ObserveClearing(clearing.warning_id, clearing.cleared_at, clearing.by)
                self._plan(planning.decide(self.plan, observed_clearing, RULES, CATALOG))

    def _plan(self, events: list[planning.PlanEvent] | Refusal) -> list[planning.PlanEvent]:
        assert not isinstance(events, Refusal), events
        self.plan = planning.replay(self.plan, events)
        self.assigned += [e for e in events if isinstance(e, ChallengeAssigned)]
        return events


# The refusal itself


def test_the_refusal_is_a_documented_dead_letter_reason_and_names_no_one() -> None:
    assert NOT_THEIR_COACH.reason == "not_their_coach" and NOT_THEIR_COACH.reason in REASON_CODES
    participant = Participant.enrolled(COACH_A)
    refusal = participant.review(COACH_B)
    assert refusal == NOT_THEIR_COACH
    for named in (USER, COACH_A, COACH_B):
        assert named not in refusal.detail


# Planner


def test_the_planner_refuses_a_review_by_another_coach_and_its_plan_stays_as_it_was() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    before = participant.plan
    assert planning.decide(before, planning.Review(COACH_B, participant.later(hours=1)), RULES, CATALOG) == (
        NOT_THEIR_COACH
    )
    assert participant.plan == before and participant.crisis_paused


def test_the_planner_records_a_review_by_their_coach() -> None:
    participant = Participant.enrolled(COACH_A)
    events = planning.decide(participant.plan, planning.Review(COACH_A, participant.later(hours=1)), RULES, CATALOG)
    assert isinstance(events, list) and [type(e) for e in events] == [Reviewed]


def test_the_planner_refuses_nothing_for_a_participant_it_does_not_plan_for() -> None:
    """Never enrolled, or withdrawn: the planner's own refusals (`not_enrolled`, `withdrawn`) come first."""
    unknown = planning.initial_state(USER)
    assert planning.decide(unknown, planning.Review(COACH_B, T0), RULES, CATALOG) == []
    plan = Participant.enrolled(COACH_A).plan
    withdrawal = planning.decide(plan, planning.Withdraw(False, T0 + timedelta(hours=1)), RULES, CATALOG)
    assert isinstance(withdrawal, list)
    withdrawn = planning.replay(plan, withdrawal)
    assert planning.decide(withdrawn, planning.Review(COACH_B, T0 + timedelta(hours=2)), RULES, CATALOG) == []


# Tracker


def test_the_tracker_refuses_a_review_by_another_coach_and_the_crisis_stays() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    before = participant.tracker
    assert tracking.decide(before, Review(participant.later(hours=1), COACH_B), RULES) == NOT_THEIR_COACH
    assert participant.tracker == before
    assert before.active_warning is not None and before.crisis_count == 1


def test_the_tracker_learns_the_coach_from_each_enrolment() -> None:
    state = tracking.initial_state(USER)
    [enrolled] = tracking.decide(state, Enrol("UTC", T0, COACH_A), RULES)
    assert enrolled == Enrolled(USER, "UTC", T0, COACH_A)
    state = tracking.evolve(state, enrolled)
    assert state.coach_id == COACH_A
    [changed] = tracking.decide(state, Enrol("UTC", T0 + timedelta(days=1), COACH_B), RULES)
    assert changed == EnrolmentChanged("UTC", T0 + timedelta(days=1), COACH_B)
    assert tracking.evolve(state, changed).coach_id == COACH_B


def test_events_and_commands_stored_before_enrolments_kept_the_coach_still_read() -> None:
    """As the previous release's decisions were stored: no `coach_id` in them at all."""
    assert EVENTS.read({"kind": "Enrolled", "body": {"user_id": USER, "timezone": "UTC", "at": T0.isoformat()}}) == (
        Enrolled(USER, "UTC", T0)
    )
    assert EVENTS.read({"kind": "EnrolmentChanged", "body": {"timezone": "UTC", "at": T0.isoformat()}}) == (
        EnrolmentChanged("UTC", T0, None)
    )
    assert COMMANDS.read({"kind": "Review", "body": {"reviewed_at": T0.isoformat()}}) == Review(T0, None)
    # A review recorded before reviews kept their coach is replayed as it was decided then.
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    events = tracking.decide(participant.tracker, Review(participant.later(hours=1)), RULES)
    assert isinstance(events, list) and any(isinstance(e, WarningCleared) for e in events)


# Both


def test_a_review_by_their_coach_clears_the_crisis_and_the_next_assignment_comes() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    issued = len(participant.assigned)
    assert participant.review(COACH_A) is None
    assert not participant.crisis_paused and participant.plan.status == "active"
    assert [a.assignment.reason for a in participant.assigned[issued:]] == ["resume"]


def test_a_second_enrolment_hands_the_participant_to_another_coach() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.enrol(COACH_B)
    participant.crisis()
    assert participant.review(COACH_A) == NOT_THEIR_COACH
    assert participant.crisis_paused
    assert participant.review(COACH_B) is None
    assert not participant.crisis_paused


def test_a_participant_enrolled_without_a_coach_takes_any_coachs_review() -> None:
    participant = Participant.enrolled(None)
    participant.crisis()
    assert participant.review("coach-anyone") is None
    assert not participant.crisis_paused
    participant.crisis()
    assert participant.review("coach-someone-else") is None
    assert not participant.crisis_paused


# Properties

other_coaches = st.sampled_from([COACH_B, "coach-c", "Coach-A", "coach-a ", "x"])
# A review by another coach: who, and when it says it happened (minutes from the crisis: before it too).
other_reviews = st.tuples(other_coaches, st.integers(-3 * 24 * 60, 3 * 24 * 60))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(other_reviews, max_size=12), st.data())
def test_no_reviews_by_other_coaches_ever_lift_a_crisis_pause(
    reviews: list[tuple[str, int]], data: st.DataObject
) -> None:
    """Any number of them, in any order, each sent any number of times, saying they happened before
    or after the crisis: every one is refused and nothing changes; then their coach's review lifts it."""
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    crisis_at = participant.now
    sent = [*reviews, *data.draw(st.lists(st.sampled_from(reviews), max_size=6) if reviews else st.just([]))]
    sent = data.draw(st.permutations(sent))
    tracker, plan = participant.tracker, participant.plan
    for coach_id, minutes in sent:
        assert participant.review(coach_id, crisis_at + timedelta(minutes=minutes)) == NOT_THEIR_COACH
        assert (participant.tracker, participant.plan) == (tracker, plan)
        assert participant.crisis_paused
    latest = max([crisis_at, *(crisis_at + timedelta(minutes=m) for _, m in sent)])
    assert participant.review(COACH_A, latest + timedelta(minutes=1)) is None
    assert not participant.crisis_paused


coaches = st.sampled_from([COACH_A, COACH_B, "coach-c", None])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("enrol"), coaches),
        st.tuples(st.just("crisis"), st.none()),
        st.tuples(st.just("review"), st.sampled_from([COACH_A, COACH_B, "coach-c"])),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coaches, steps)
def test_only_the_coach_of_the_latest_enrolment_lifts_a_crisis_pause(
    first_coach: str | None, script: list[tuple[str, str | None]]
) -> None:
    participant = Participant.enrolled(first_coach)
    coach = first_coach
    for kind, who in script:
        if kind == "enrol":
            participant.enrol(who)
            coach = who
        elif kind == "crisis":
            participant.crisis()
        else:
            assert who is not None
            paused = participant.crisis_paused
            refusal = participant.review(who)
            theirs = coach is None or who == coach
            assert refusal == (None if theirs else NOT_THEIR_COACH)
            if paused and not theirs:
                assert participant.crisis_paused
            if paused and theirs:
                assert not participant.crisis_paused  # a review after the crisis arrived covers it


# A tracker that does not know the coach (participants it enrolled before it kept the coach take any
# review there): the plan still waits for its own coach's review.


def tracker_without_coach(participant: Participant) -> None:
    """The tracker's state as a store written before the tracker kept the coach would fold it."""
    participant.tracker = replace(participant.tracker, coach_id=None)


def test_a_crisis_cleared_by_a_tracker_that_took_another_coachs_review_keeps_the_plan_paused() -> None:
    participant = Participant.enrolled(COACH_A)
    tracker_without_coach(participant)
    participant.crisis()
    at = participant.later(hours=1)
    # The tracker clears on coach B's review; the planner refuses that review.
    participant._track(tracking.decide(participant.tracker, Review(at, COACH_B), RULES))
    assert planning.decide(participant.plan, planning.Review(COACH_B, at), RULES, CATALOG) == NOT_THEIR_COACH
    assert participant.tracker.active_warning is None
    assert participant.plan.status == "paused" and participant.plan.pause_reason == "crisis"
    assert participant.plan.crisis_cleared
    assigned = len(participant.assigned)
    # Coach A's review, after the clearing: the plan resumes, and the next assignment comes.
    participant._plan(
        planning.decide(participant.plan, planning.Review(COACH_A, participant.later(hours=1)), RULES, CATALOG)
    )
    assert participant.plan.status == "active" and len(participant.assigned) == assigned + 1


def test_the_tracker_clearing_before_the_planner_saw_the_review_resumes_once_it_does() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    at = participant.later(hours=1)
    participant._track(tracking.decide(participant.tracker, Review(at, COACH_A), RULES))  # the tracker first
    assert participant.plan.pause_reason == "crisis" and participant.plan.crisis_cleared
    participant._plan(planning.decide(participant.plan, planning.Review(COACH_A, at), RULES, CATALOG))
    assert participant.plan.status == "active"


def test_a_review_from_before_the_crisis_does_not_lift_it_with_the_trackers_clearing() -> None:
    participant = Participant.enrolled(COACH_A)
    tracker_without_coach(participant)
    before = participant.later(minutes=5)
    participant._plan(planning.decide(participant.plan, planning.Review(COACH_A, before), RULES, CATALOG))
    participant.crisis()
    participant._track(tracking.decide(participant.tracker, Review(participant.later(hours=1), COACH_B), RULES))
    assert participant.plan.status == "paused" and participant.plan.pause_reason == "crisis"


def test_a_second_crisis_is_not_lifted_by_the_late_review_of_the_first() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    at = participant.later(hours=1)
    participant._track(tracking.decide(participant.tracker, Review(at, COACH_A), RULES))  # the tracker first
    assert participant.plan.crisis_cleared and participant.plan.pause_reason == "crisis"
    participant.crisis()  # a second crisis before the planner sees the review of the first
    participant._plan(planning.decide(participant.plan, planning.Review(COACH_A, at), RULES, CATALOG))
    assert participant.plan.status == "paused"


def test_a_review_made_before_the_crisis_and_delivered_after_it_does_not_cover_it() -> None:
    participant = Participant.enrolled(COACH_A)
    tracker_without_coach(participant)
    before = participant.later(minutes=5)
    participant.crisis()
    participant._plan(planning.decide(participant.plan, planning.Review(COACH_A, before), RULES, CATALOG))
    assert not participant.plan.crisis_reviewed
    participant._track(tracking.decide(participant.tracker, Review(participant.later(hours=1), COACH_B), RULES))
    assert participant.plan.status == "paused"


def test_a_crisis_pause_from_a_snapshot_of_the_previous_release_ends_with_the_coachs_review() -> None:
    participant = Participant.enrolled(COACH_A)
    participant.crisis()
    transcoding = DataclassAsJSON(PlanState)
    stored = transcoding.encode(participant.plan)
    for kept_since in ("crisis_raised_at", "crisis_cleared", "reviewed_at"):
        stored.pop(kept_since)
    participant.plan = transcoding.decode(stored)  # as a snapshot the previous release stored loads
    assert participant.review(COACH_A) is None
    assert participant.plan.status == "active"
