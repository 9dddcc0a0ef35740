"""The tracker's decider under late data and repeated inputs: each of the six rules with a
late-synced attempt, crisis reports whenever they occurred, and reviews that cover only what
came before them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from test_overload_rules import DAY, HOUR, T0, attempt

from stepout_domain.attempts import Attempt
from stepout_domain.ruleset import DEFAULT_RULESET
from stepout_domain.tracker_commands import Enrol, RecordAttempt, Review
from stepout_domain.tracker_events import WarningCleared
from stepout_domain.tracker_state import INPUT_IDS_KEPT
from stepout_domain.tracking import TrackerState, decide, hits_of, initial_state, replay, with_input
from stepout_domain.warnings import Clearing

RULES = DEFAULT_RULESET
ARRIVAL = T0 + 30 * DAY  # when the late attempts arrive, after every one they are judged with


def enrolled() -> TrackerState:
    state = initial_state("u-1")
    return replay(state, decide(state, Enrol("UTC", T0 - DAY), RULES))


def record(state: TrackerState, new: Attempt, arrived: datetime | None = None) -> TrackerState:
    """Record `new` as the tracker does: decide, then fold what was decided."""
    reported_at = arrived if arrived is not None else new.occurred_at
    return replay(state, decide(state, RecordAttempt(new, reported_at), RULES))


def review(state: TrackerState, reviewed_at: datetime) -> tuple[TrackerState, Clearing | None]:
    """A coach's review decided and folded, with the clearing it made (if any)."""
    events = decide(state, Review(reviewed_at), RULES)
    cleared = next((e.clearing for e in events if isinstance(e, WarningCleared)), None)
    return replay(state, events), cleared


def recorded(attempts: Sequence[Attempt], late: Attempt) -> TrackerState:
    state = enrolled()
    for a in attempts:
        state = record(state, a)
    return record(state, late, ARRIVAL)


def rules_holding(state: TrackerState) -> set[str]:
    return {hit.rule for hit in hits_of(state, RULES)}


def test_a_late_attempt_is_placed_where_it_occurred() -> None:
    state = recorded([attempt(0, T0), attempt(1, T0 + 2 * HOUR)], attempt(2, T0 + HOUR))
    assert [a.attempt_id for a in state.history.recent] == ["a0", "a2", "a1"]


def test_high_distress_counts_a_late_attempt_inside_its_window_and_not_one_outside() -> None:
    newest = [attempt(0, T0 + 10 * DAY, peak=90)]
    assert "high_distress" in rules_holding(recorded(newest, attempt(1, T0 + 9 * DAY, peak=90)))
    assert "high_distress" not in rules_holding(recorded(newest, attempt(1, T0 + 2 * DAY, peak=90)))


def test_no_habituation_judges_the_newest_peak_whatever_arrived_last() -> None:
    run = [attempt(i, T0 + i * DAY, peak=p) for i, p in enumerate([60, 55, 50])]
    # A late attempt that occurred after the first, peaking high, is not the latest peak.
    assert "no_habituation" not in rules_holding(recorded(run, attempt(9, T0 + HOUR, peak=80)))
    # One that occurred last is, and it did not fall below the first.
    assert "no_habituation" in rules_holding(recorded(run, attempt(9, T0 + 5 * DAY, peak=60)))


def test_escapes_counts_only_the_last_five_attempts_by_when_they_occurred() -> None:
    recent = [attempt(i, T0 + (10 + i) * DAY, "escaped" if i == 1 else "rejected") for i in range(5)]
    assert "escapes" in rules_holding(recorded(recent, attempt(9, T0 + 12 * DAY + HOUR, "escaped")))
    assert "escapes" not in rules_holding(recorded(recent, attempt(9, T0, "escaped")))


def test_rejection_streak_never_counts_rejections_after_a_late_judged_attempt() -> None:
    streak = [attempt(i, T0 + 10 * DAY + i * HOUR) for i in range(4)]
    assert "rejection_streak" in rules_holding(recorded(streak, attempt(9, T0 + 10 * DAY - HOUR)))
    # Arriving last but three days older: outside the 24 h window back from the newest attempt.
    assert "rejection_streak" not in rules_holding(recorded(streak, attempt(9, T0 + 7 * DAY)))


def test_hostile_rejections_never_sees_a_negative_interval() -> None:
    newest = [attempt(0, T0 + 10 * DAY, "hostile")]
    assert "hostile_rejections" in rules_holding(recorded(newest, attempt(1, T0 + 5 * DAY, "hostile")))
    assert "hostile_rejections" not in rules_holding(recorded(newest, attempt(1, T0 + 2 * DAY, "hostile")))


def test_a_crisis_reported_by_a_late_attempt_raises_a_crisis_warning_whenever_it_occurred() -> None:
    state = recorded([attempt(0, T0 + 10 * DAY)], attempt(1, T0, crisis=True))
    assert state.active_warning is not None and state.active_warning.severity == "crisis"
    assert "a1" in state.active_warning.evidence


def test_a_late_crisis_that_occurred_before_a_review_but_arrived_after_it_still_raises() -> None:
    state = record(enrolled(), attempt(0, T0))
    reviewed_at = T0 + HOUR
    state, cleared = review(state, reviewed_at)
    assert cleared is None
    state = record(state, attempt(1, reviewed_at - HOUR / 6, crisis=True), T0 + 2 * HOUR)
    assert state.active_warning is not None and state.active_warning.severity == "crisis"


def crisis_then_review(reviewed_at: datetime) -> TrackerState:
    state = record(enrolled(), attempt(0, T0, crisis=True))
    state, cleared = review(state, reviewed_at)
    assert cleared is not None and cleared.by == "review"
    return state


def test_a_review_repeated_after_a_second_crisis_does_not_clear_it() -> None:
    first_review = T0 + HOUR
    state = crisis_then_review(first_review)
    assert "crisis_reported" not in rules_holding(state)
    state = record(state, attempt(1, T0 + 2 * HOUR, crisis=True))
    second = state.active_warning
    assert second is not None and second.severity == "crisis"
    assert decide(state, Review(first_review), RULES) == []  # the first review, once more
    assert "crisis_reported" in rules_holding(state)
    assert state.active_warning == second
    # A review made after the second crisis clears it.
    _, cleared = review(state, T0 + 3 * HOUR)
    assert cleared is not None and cleared.warning_id == second.warning_id


def test_a_review_older_than_the_crisis_report_covers_nothing() -> None:
    state = record(enrolled(), attempt(0, T0, crisis=True), arrived=T0 + HOUR)
    after, cleared = review(state, T0 + HOUR / 2)
    assert cleared is None
    assert "crisis_reported" in rules_holding(after)
    assert after.active_warning == state.active_warning


def test_an_enrolment_no_later_than_the_one_in_force_decides_nothing() -> None:
    state = enrolled()
    assert decide(state, Enrol("Europe/Berlin", T0 - DAY), RULES) == []
    assert decide(state, Enrol("Europe/Berlin", T0 - 2 * DAY), RULES) == []
    changed = replay(state, decide(state, Enrol("Europe/Berlin", T0), RULES))
    assert changed.timezone == "Europe/Berlin"


def test_input_ids_are_remembered_up_to_a_bound() -> None:
    state = initial_state("u-1")
    for n in range(INPUT_IDS_KEPT + 10):
        state = with_input(state, f"e{n}")
    assert state.handled(f"e{INPUT_IDS_KEPT + 9}") and state.handled("e10")
    assert not state.handled("e9")
    assert len(state.input_ids) == INPUT_IDS_KEPT
