"""Each overload rule of DOMAIN.md, exactly at its threshold (holds) and just below it (does not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stepout_contract import wire
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.history import History
from stepout_domain.overload import RULE_IDS, RuleHit, Severity, evaluate
from stepout_domain.ruleset import DEFAULT_RULESET

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def attempt(
    n: int,
    at: datetime,
    outcome: str = "rejected",
    peak: int | None = 50,
    level: int = 3,
    assigned: bool = True,
    crisis: bool = False,
) -> Attempt:
    result = Outcome(outcome)
    suds = None if result is Outcome.SKIPPED else peak
    return Attempt(
        attempt_id=f"a{n}",
        occurred_at=at,
        level=level,
        outcome=result,
        challenge_id="c-1",
        assignment_id=f"as{n}" if assigned else None,
        suds_before=None if suds is None else min(suds, 10),
        suds_peak=suds,
        suds_after=None if suds is None else min(suds, 10),
        crisis_reported=crisis,
    )


def hourly(*outcomes: str, peaks: list[int] | None = None) -> list[Attempt]:
    """Attempts one hour apart from T0 with the given outcomes (peak 50 unless given)."""
    peaks = peaks or [50] * len(outcomes)
    return [attempt(i, T0 + i * HOUR, o, p) for i, (o, p) in enumerate(zip(outcomes, peaks, strict=True))]


def by_peak(*peaks: int) -> list[Attempt]:
    """Attempts one day apart, alternating levels 3 and 4 so no_habituation never holds."""
    return [attempt(i, T0 + i * DAY, peak=p, level=3 + i % 2) for i, p in enumerate(peaks)]


def hit(history: list[Attempt], rule: str, crisis: tuple[tuple[str, ...], int] | None = None) -> RuleHit | None:
    return next((h for h in evaluate(History.of(history), DEFAULT_RULESET, crisis) if h.rule == rule), None)


def test_empty_history_holds_no_rule() -> None:
    assert evaluate(History(), DEFAULT_RULESET) == []


def test_rule_ids_follow_the_domain_table() -> None:
    assert RULE_IDS == (
        "high_distress",
        "no_habituation",
        "escapes",
        "rejection_streak",
        "hostile_rejections",
        "crisis_reported",
    )


# high_distress


def test_two_peaks_of_85_in_the_last_three_hold_high_distress() -> None:
    found = hit(by_peak(50, 85, 40, 85), "high_distress")
    assert found == RuleHit("high_distress", 2, 2, Severity.CAUTION, ("a1", "a3"))


def test_a_peak_of_84_does_not_count_as_high_distress() -> None:
    assert hit(by_peak(50, 84, 40, 85), "high_distress") is None


def test_one_high_peak_in_the_last_three_is_not_high_distress() -> None:
    assert hit(by_peak(90, 50, 40, 85), "high_distress") is None


def test_skipped_attempts_are_not_among_the_last_three_peaks() -> None:
    history = by_peak(85, 50, 85)
    history[1:1] = [attempt(10, T0 + DAY, "skipped"), attempt(11, T0 + DAY + HOUR, "skipped")]
    found = hit(history, "high_distress")
    assert found is not None and found.evidence == ("a0", "a2")


def test_high_peak_exactly_7_days_back_counts_for_high_distress() -> None:
    history = [attempt(0, T0, peak=90), attempt(1, T0 + 7 * DAY, peak=88, level=4)]
    assert hit(history, "high_distress") is not None


def test_high_peak_7_days_and_a_second_back_does_not_count() -> None:
    history = [attempt(0, T0, peak=90), attempt(1, T0 + 7 * DAY + SECOND, peak=88, level=4)]
    assert hit(history, "high_distress") is None


# no_habituation


def test_fourth_attempt_at_a_level_with_peak_not_below_the_first_holds_no_habituation() -> None:
    history = [attempt(i, T0 + i * DAY, peak=p) for i, p in enumerate([60, 50, 45, 60])]
    assert hit(history, "no_habituation") == RuleHit(
        "no_habituation", 60, 60, Severity.CAUTION, ("a0", "a1", "a2", "a3")
    )


def test_latest_peak_one_below_the_first_is_habituation() -> None:
    history = [attempt(i, T0 + i * DAY, peak=p) for i, p in enumerate([60, 50, 45, 59])]
    assert hit(history, "no_habituation") is None


def test_three_attempts_at_a_level_are_too_few_for_no_habituation() -> None:
    history = [attempt(i, T0 + i * DAY, peak=p) for i, p in enumerate([60, 70, 80])]
    assert hit(history, "no_habituation") is None


def test_no_habituation_counts_only_since_the_participant_last_arrived_at_the_level() -> None:
    peaks_and_levels = [(60, 3), (60, 3), (60, 3), (40, 4), (60, 3)]
    history = [attempt(i, T0 + i * DAY, peak=p, level=lv) for i, (p, lv) in enumerate(peaks_and_levels)]
    assert hit(history, "no_habituation") is None


def test_a_self_chosen_attempt_at_another_level_does_not_break_the_run() -> None:
    history = [attempt(i, T0 + i * DAY, peak=60) for i in range(3)]
    history.append(attempt(7, T0 + 3 * DAY, peak=30, level=6, assigned=False))
    history.append(attempt(8, T0 + 4 * DAY, peak=65))
    found = hit(history, "no_habituation")
    assert found is not None and found.evidence == ("a0", "a1", "a2", "a8")


def test_skipped_attempts_have_no_peak_and_do_not_count_for_no_habituation() -> None:
    history = [attempt(i, T0 + i * DAY, peak=60) for i in range(3)]
    history.append(attempt(3, T0 + 3 * DAY, "skipped"))
    assert hit(history, "no_habituation") is None


# escapes


def test_two_escapes_among_the_last_five_attempts_hold_escapes() -> None:
    found = hit(hourly("escaped", "accepted", "rejected", "accepted", "escaped"), "escapes")
    assert found == RuleHit("escapes", 2, 2, Severity.CAUTION, ("a0", "a4"))


def test_an_escape_six_attempts_back_is_not_among_the_last_five() -> None:
    assert hit(hourly("escaped", "accepted", "rejected", "accepted", "accepted", "escaped"), "escapes") is None


def test_one_escape_is_not_escapes() -> None:
    assert hit(hourly("accepted", "escaped", "accepted"), "escapes") is None


# rejection_streak


def test_fifth_rejection_in_a_day_holds_rejection_streak() -> None:
    history = [attempt(i, T0 + i * 6 * HOUR, "hostile" if i == 2 else "rejected") for i in range(5)]
    found = hit(history, "rejection_streak")
    assert found == RuleHit("rejection_streak", 5, 5, Severity.CAUTION, ("a0", "a1", "a2", "a3", "a4"))


def test_four_rejections_are_not_a_streak() -> None:
    assert hit(hourly("accepted", "rejected", "rejected", "rejected", "rejected"), "rejection_streak") is None


def test_a_streak_longer_than_24_hours_does_not_hold() -> None:
    history = [attempt(i, T0 + i * 6 * HOUR, "rejected") for i in range(4)]
    history.append(attempt(4, T0 + 24 * HOUR + SECOND, "rejected"))
    assert hit(history, "rejection_streak") is None


def test_an_acceptance_breaks_the_rejection_streak() -> None:
    outcomes = ("rejected", "rejected", "accepted", "rejected", "rejected", "rejected", "rejected")
    assert hit(hourly(*outcomes), "rejection_streak") is None


def test_escaped_and_skipped_neither_count_nor_break_the_streak() -> None:
    outcomes = ("rejected", "rejected", "escaped", "rejected", "skipped", "rejected", "rejected")
    found = hit(hourly(*outcomes, peaks=[50, 50, 70, 50, 0, 50, 50]), "rejection_streak")
    assert found is not None and found.observed == 5 and found.evidence == ("a0", "a1", "a3", "a5", "a6")


# hostile_rejections


def test_two_hostile_rejections_exactly_7_days_apart_hold_hostile_rejections() -> None:
    history = [attempt(0, T0, "hostile"), attempt(1, T0 + 3 * DAY, "accepted"), attempt(2, T0 + 7 * DAY, "hostile")]
    assert hit(history, "hostile_rejections") == RuleHit("hostile_rejections", 2, 2, Severity.HIGH, ("a0", "a2"))


def test_hostile_rejections_7_days_and_a_second_apart_do_not_hold() -> None:
    history = [attempt(0, T0, "hostile"), attempt(1, T0 + 7 * DAY + SECOND, "hostile")]
    assert hit(history, "hostile_rejections") is None


def test_one_hostile_rejection_is_not_hostile_rejections() -> None:
    assert hit(hourly("hostile", "rejected", "accepted"), "hostile_rejections") is None


# crisis_reported


def test_a_reported_crisis_holds_crisis_reported() -> None:
    history = [attempt(0, T0), attempt(1, T0 + DAY, crisis=True)]
    assert hit(history, "crisis_reported") == RuleHit("crisis_reported", 1, 1, Severity.CRISIS, ("a1",))


def test_a_crisis_reported_earlier_keeps_holding_while_no_review_covers_it() -> None:
    history = [attempt(0, T0, crisis=True), attempt(1, T0 + DAY, "accepted")]
    assert hit(history, "crisis_reported") is not None
    assert hit(history, "crisis_reported", crisis=(("a0",), 1)) == RuleHit(
        "crisis_reported", 1, 1, Severity.CRISIS, ("a0",)
    )
    assert hit(history, "crisis_reported", crisis=((), 0)) is None


def test_no_reported_crisis_is_no_crisis_reported() -> None:
    assert hit(hourly("accepted", "rejected"), "crisis_reported") is None


def test_all_rules_that_hold_are_reported_in_table_order() -> None:
    outcomes = ("hostile", "escaped", "hostile", "escaped", "rejected")
    history = hourly(*outcomes, peaks=[90, 90, 90, 90, 90])
    history[-1] = attempt(4, T0 + 4 * HOUR, "rejected", 90, crisis=True)
    rules = [h.rule for h in evaluate(History.of(history), DEFAULT_RULESET)]
    assert rules == ["high_distress", "no_habituation", "escapes", "hostile_rejections", "crisis_reported"]
    assert wire.rule_hit(evaluate(History.of(history), DEFAULT_RULESET)[0]).model_dump() == {
        "rule": "high_distress",
        "observed": 3,
        "threshold": 2,
    }
