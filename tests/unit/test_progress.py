"""Readiness to step up (both branches, at and just below each threshold), streaks, and the view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from stepout_contract import wire
from stepout_contract.outputs import ProgressView
from stepout_domain import progress
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.history import History
from stepout_domain.overload import RuleHit, Severity
from stepout_domain.ruleset import DEFAULT_RULESET, RuleSet
from stepout_domain.warnings import Warning


# The progress functions read a `History`; these give them one folded from a list of attempts.
def attempts_at_level(history: list[Attempt], level: int) -> list[Attempt]:
    return list(History.of(history).recent_run(level, None))


def current_level(history: list[Attempt]) -> int | None:
    return History.of(history).current_level()


def is_ready(history: list[Attempt], level: int, now: datetime, timezone: str, rules: RuleSet) -> bool:
    return progress.is_ready(History.of(history, timezone), level, now, rules)


def streak_days(history: list[Attempt], timezone: str) -> int:
    return History.of(history, timezone).streak_days()


def progress_view(
    user_id: str, history: list[Attempt], timezone: str, warning: Warning | None, rules: RuleSet, **more: Any
) -> dict[str, object]:
    return progress.progress_view(user_id, History.of(history, timezone), warning, rules, **more)


RULES = DEFAULT_RULESET
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def attempt(
    n: int,
    at: datetime,
    outcome: str = "rejected",
    peak: int = 50,
    after: int = 30,
    level: int = 3,
    assigned: bool = True,
    came_true: int | None = None,
) -> Attempt:
    result = Outcome(outcome)
    skipped = result is Outcome.SKIPPED
    return Attempt(
        attempt_id=f"a{n}",
        occurred_at=at,
        level=level,
        outcome=result,
        challenge_id="c-1",
        assignment_id=f"as{n}" if assigned else None,
        suds_before=None if skipped else 20,
        suds_peak=None if skipped else peak,
        suds_after=None if skipped else after,
        prediction_came_true=came_true,
    )


def daily(*peaks: int, after: int = 30) -> list[Attempt]:
    return [attempt(i, T0 + i * DAY, peak=p, after=after) for i, p in enumerate(peaks)]


def ready(history: list[Attempt], now: datetime | None = None, timezone: str = "UTC") -> bool:
    return is_ready(history, 3, now or history[-1].occurred_at, timezone, RULES)


def test_current_level_is_the_latest_assigned_attempts_level() -> None:
    history = [attempt(0, T0, level=3), attempt(1, T0 + HOUR, level=7, assigned=False)]
    assert current_level(history) == 3
    assert current_level([attempt(0, T0, level=5, assigned=False)]) == 5
    assert current_level([]) is None


def test_attempts_at_level_skip_self_chosen_but_stop_at_assigned_other_levels() -> None:
    history = [
        attempt(0, T0, level=3),
        attempt(1, T0 + HOUR, level=2),
        attempt(2, T0 + 2 * HOUR, level=3),
        attempt(3, T0 + 3 * HOUR, level=8, assigned=False),
        attempt(4, T0 + 4 * HOUR, level=3),
    ]
    assert [a.attempt_id for a in attempts_at_level(history, 3)] == ["a2", "a4"]


def test_three_completed_on_two_days_with_halved_peak_is_ready() -> None:
    assert ready(daily(60, 40, 30))


def test_two_completed_attempts_are_not_ready() -> None:
    assert not ready(daily(60, 30))


def test_three_completed_on_one_local_day_are_not_ready() -> None:
    history = [attempt(i, T0 + i * HOUR, peak=p) for i, p in enumerate([60, 40, 30])]
    assert not ready(history)


def test_days_are_the_participants_local_days() -> None:
    late = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    history = [attempt(i, late + i * HOUR, peak=p) for i, p in enumerate([60, 40, 30])]
    assert ready(history, timezone="UTC")  # Nov 25 and Nov 26 in UTC
    assert not ready(history, timezone="Asia/Tokyo")  # all on Nov 26 in Tokyo


def test_the_first_completed_attempt_exactly_14_days_back_counts() -> None:
    history = daily(60, 40, 30)
    assert ready(history, now=T0 + 14 * DAY)
    assert not ready(history, now=T0 + 14 * DAY + SECOND)


def test_an_escape_in_the_last_two_attempts_is_not_ready() -> None:
    history = [*daily(60, 40, 30), attempt(3, T0 + 3 * DAY, "escaped", peak=25)]
    assert not ready(history)


def test_a_skip_second_to_last_is_not_ready_but_third_to_last_is() -> None:
    history = [*daily(60, 40, 30), attempt(3, T0 + 3 * DAY, "skipped"), attempt(4, T0 + 4 * DAY, peak=30)]
    assert not ready(history)
    history.append(attempt(5, T0 + 5 * DAY, peak=30))
    assert ready(history)


def test_lower_of_last_two_peaks_one_above_half_the_first_is_not_ready() -> None:
    assert ready(daily(60, 30, 40))
    assert not ready(daily(60, 31, 40))


def test_last_suds_after_of_20_is_ready_without_halving() -> None:
    assert ready(daily(60, 50, 50, after=20))
    assert not ready(daily(60, 50, 50, after=21))


def test_two_last_completed_peaks_of_20_are_ready_because_bored() -> None:
    history = [attempt(0, T0, peak=20), attempt(1, T0 + HOUR, "skipped"), attempt(2, T0 + 2 * HOUR, peak=20)]
    assert ready(history)


def test_a_last_completed_peak_of_21_is_not_bored() -> None:
    assert not ready([attempt(0, T0, peak=20), attempt(1, T0 + HOUR, peak=21)])
    assert not ready([attempt(0, T0, peak=20)])


def test_streak_days_follow_the_local_calendar() -> None:
    history = [
        attempt(0, datetime(2026, 11, 24, 15, 0, tzinfo=UTC)),  # Nov 24 in New York
        attempt(1, datetime(2026, 11, 26, 2, 0, tzinfo=UTC)),  # Nov 25, 21:00 in New York
    ]
    assert streak_days(history, "America/New_York") == 2
    assert streak_days(history, "UTC") == 1


def test_streak_days_count_each_day_once_and_stop_at_a_gap() -> None:
    history = [
        attempt(0, T0),
        attempt(1, T0 + 2 * DAY),
        attempt(2, T0 + 2 * DAY + HOUR),
        attempt(3, T0 + 3 * DAY, "escaped"),
        attempt(4, T0 + 3 * DAY + HOUR),
    ]
    assert streak_days(history, "UTC") == 2


def test_streak_is_zero_when_the_last_day_has_no_completed_attempt() -> None:
    history = [attempt(0, T0), attempt(1, T0 + DAY, "escaped"), attempt(2, T0 + DAY + HOUR, "skipped")]
    assert streak_days(history, "UTC") == 0
    assert streak_days([], "UTC") == 0


def test_expectancy_is_the_mean_of_the_last_five_reports() -> None:
    reports = [90, None, 10, 20, None, 30, 40, 41]
    history = [attempt(i, T0 + i * HOUR, came_true=c) for i, c in enumerate(reports)]
    view = progress_view("u-1", history, "UTC", None, RULES)
    assert view["expectancy_last5"] == 28.2  # (10 + 20 + 30 + 40 + 41) / 5 = 28.2
    assert progress_view("u-1", history[:2], "UTC", None, RULES)["expectancy_last5"] == 90.0
    assert progress_view("u-1", [attempt(0, T0)], "UTC", None, RULES)["expectancy_last5"] is None


def test_progress_view_has_the_contract_keys_and_is_json() -> None:
    history = [
        *daily(60, 40, 30),
        attempt(3, T0 + 3 * DAY, "hostile", peak=35),
        attempt(4, T0 + 4 * DAY, "skipped"),
        attempt(5, T0 + 5 * DAY, "accepted", peak=25, level=6, assigned=False),
    ]
    warning = Warning(
        "w-1", "u-1", Severity.HIGH, (RuleHit("hostile_rejections", 2, 2, Severity.HIGH, ("a3",)),),
        ("a3",), True, T0, "2026.1",
    )  # fmt: skip
    view = progress_view("u-1", history, "Europe/Paris", warning, RULES)
    assert json.loads(json.dumps(view)) == view
    assert set(view) == {
        "user_id", "level", "level_ready", "attempts", "completed", "at_level", "expectancy_last5",
        "streak_days", "active_warning", "last_attempt_at", "ruleset_version", "position", "last_attempt",
        "practice_level", "streak_until", "withdrawn", "erased",
    }  # fmt: skip
    assert view["practice_level"] == view["level"]
    assert view["streak_until"] == "2026-11-08T23:00:00Z"  # the end of the next day in Paris
    assert view["level"] == 3 and view["level_ready"] is False
    assert view["attempts"] == {"rejected": 3, "accepted": 1, "hostile": 1, "escaped": 0, "skipped": 1}
    assert view["completed"] == 5 and view["position"] == 6
    assert view["at_level"] == {"attempts": 5, "first_peak": 60, "latest_peak": 35}
    assert view["streak_days"] == 1
    assert view["active_warning"] == wire.active_warning(warning)
    assert view["last_attempt_at"] == "2026-11-07T09:00:00Z"
    assert view["last_attempt"] == {
        "attempt_id": "a5", "assignment_id": None, "challenge_id": "c-1", "level": 6,
        "outcome": "accepted", "suds_peak": 25, "occurred_at": "2026-11-07T09:00:00Z", "after_break": False,
    }  # fmt: skip
    assert ProgressView.model_validate(view).ruleset_version == "2026.1"


def test_progress_view_before_any_attempt() -> None:
    view = progress_view("u-1", [], "UTC", None, RULES)
    ProgressView.model_validate(view)
    assert view["level"] is None and view["level_ready"] is False and view["position"] == 0
    assert view["at_level"] == {"attempts": 0, "first_peak": None, "latest_peak": None}
    assert view["last_attempt"] is None and view["last_attempt_at"] is None
