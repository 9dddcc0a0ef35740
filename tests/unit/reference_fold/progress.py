"""Readiness to step up and the progress view (DOMAIN.md "Ready to step up" and "Progress").

`attempts` is always the participant's history oldest first, in the order the
attempts occurred. "Days" are the participant's local calendar days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from stepout_contract.vocabulary import Outcome, rfc3339
from stepout_domain.attempts import COMPLETED_OUTCOMES, Attempt
from stepout_domain.plan_state import next_local_midnight
from stepout_domain.ruleset import RuleSet

from .breaks import ends_a_break
from .overload import attempts_at_level
from .warnings import Warning

__all__ = [
    "as_of",
    "attempts_at_level",
    "current_level",
    "empty_view",
    "erased_view",
    "is_ready",
    "progress_view",
    "streak_days",
]

EXPECTANCY_LAST = 5


def current_level(attempts: Sequence[Attempt]) -> int | None:
    """The level of the latest assigned attempt, else of the latest attempt; None before any."""
    for attempt in reversed(attempts):
        if attempt.assignment_id is not None:
            return attempt.level
    return attempts[-1].level if attempts else None


@lru_cache(maxsize=65_536)
def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    # Readiness and streaks look at the same recent attempts after every new one: remember.
    return moment.astimezone(zone).date()


def is_ready(attempts: Sequence[Attempt], level: int, now: datetime, timezone: str, rules: RuleSet) -> bool:
    """Whether the participant is ready to step up from `level`, judged at `now`.

    Over the attempts since the participant last arrived at `level`
    (`attempts_at_level`), ready when either:

    - at least `ready_min_completed` completed attempts within the last
      `ready_window_days` (inclusive, back from `now`) falling on at least
      `ready_min_days` different local days; and none of the last
      `ready_no_avoidance_last` attempts was `escaped` or `skipped`; and the lower
      of the last 2 peaks is at most `ready_peak_ratio` of the first peak, or the
      last reported `suds_after` is at most `ready_after_max`; or
    - the last `bored_last_completed` completed attempts all peaked at
      `bored_peak_max` or below ("bored" needs no window and ignores avoidance).
    """
    run = attempts_at_level(attempts, level, rules.return_after_days)
    completed = [a for a in run if a.completed]
    return _bored(completed, rules) or _habituated(run, completed, now, ZoneInfo(timezone), rules)


def _bored(completed: list[Attempt], rules: RuleSet) -> bool:
    last = completed[-rules.bored_last_completed :]
    return len(last) == rules.bored_last_completed and all(
        a.suds_peak is not None and a.suds_peak <= rules.bored_peak_max for a in last
    )


def _habituated(run: list[Attempt], completed: list[Attempt], now: datetime, zone: ZoneInfo, rules: RuleSet) -> bool:
    window = timedelta(days=rules.ready_window_days)
    recent = [a for a in completed if now - a.occurred_at <= window]
    if len(recent) < rules.ready_min_completed:
        return False
    if len({_local_day(a.occurred_at, zone) for a in recent}) < rules.ready_min_days:
        return False
    last = run[len(run) - rules.ready_no_avoidance_last :]
    if any(a.avoided for a in last):
        return False
    peaks = [a.suds_peak for a in run if a.suds_peak is not None]
    if len(peaks) >= 2 and min(peaks[-2:]) <= rules.ready_peak_ratio * peaks[0]:
        return True
    last_after = next((a.suds_after for a in reversed(run) if a.suds_after is not None), None)
    return last_after is not None and last_after <= rules.ready_after_max


def streak_days(attempts: Sequence[Attempt], timezone: str) -> int:
    """Consecutive local days with a completed attempt, ending on the local day of the last attempt.

    0 when that day has no completed attempt (a rest day breaks nothing until the
    next attempt is logged on a later day).
    """
    if not attempts:
        return 0
    zone = ZoneInfo(timezone)
    day = _local_day(attempts[-1].occurred_at, zone)
    streak, found = 0, False
    for attempt in reversed(attempts):
        seen = _local_day(attempt.occurred_at, zone)
        while seen < day:
            if not found:
                return streak
            streak, day, found = streak + 1, day - timedelta(days=1), False
        if seen == day and attempt.completed:
            found = True
    return streak + found


def _expectancy(attempts: Sequence[Attempt]) -> float | None:
    """Mean `prediction_came_true` of the last 5 attempts that report it, to 1 decimal."""
    reported: list[int] = []
    for attempt in reversed(attempts):
        if attempt.prediction_came_true is not None:
            reported.append(attempt.prediction_came_true)
            if len(reported) == EXPECTANCY_LAST:
                break
    return round(sum(reported) / len(reported), 1) if reported else None


def _last_attempt(attempt: Attempt, after_break: bool) -> dict[str, object]:
    return {
        "attempt_id": attempt.attempt_id,
        "assignment_id": attempt.assignment_id,
        "challenge_id": attempt.challenge_id,
        "level": attempt.level,
        "outcome": attempt.outcome.value,
        "suds_peak": attempt.suds_peak,
        "occurred_at": rfc3339(attempt.occurred_at),
        "after_break": after_break,
    }


def streak_until(attempts: Sequence[Attempt], timezone: str) -> datetime | None:
    """Until when the streak stands without a new completed attempt: the end of the local day after
    its last day (None when there is no streak)."""
    if not attempts or streak_days(attempts, timezone) == 0:
        return None
    return next_local_midnight(next_local_midnight(attempts[-1].occurred_at, timezone), timezone)


def progress_view(
    user_id: str,
    attempts: Sequence[Attempt],
    timezone: str,
    active_warning: Warning | None,
    rules: RuleSet,
    arrived: Attempt | None = None,
    withdrawn: bool = False,
) -> dict[str, object]:
    """The progress view (CONTRACT §4), plus `last_attempt` for the planner; JSON-ready.

    `attempts` is in `occurred_at` order. `level_ready` is judged at the newest attempt's
    `occurred_at`; `at_level` is the run since the participant last arrived at the current
    level; `last_attempt` is `arrived` (the attempt this view follows, which may have
    occurred earlier than others when it was synced late), else the newest.
    """
    level = current_level(attempts)
    last = attempts[-1] if attempts else None
    told = arrived if arrived is not None else last
    counts = dict.fromkeys((o.value for o in Outcome), 0)
    for attempt in attempts:
        counts[attempt.outcome.value] += 1
    run = attempts_at_level(attempts, level, rules.return_after_days) if level is not None else []
    peaks = [a.suds_peak for a in run if a.suds_peak is not None]
    until = streak_until(attempts, timezone)
    return {
        "user_id": user_id,
        "level": level,
        "practice_level": level,
        "level_ready": (
            level is not None and last is not None and is_ready(attempts, level, last.occurred_at, timezone, rules)
        ),
        "attempts": counts,
        "completed": sum(counts[o.value] for o in COMPLETED_OUTCOMES),
        "at_level": {
            "attempts": len(run),
            "first_peak": peaks[0] if peaks else None,
            "latest_peak": peaks[-1] if peaks else None,
        },
        "expectancy_last5": _expectancy(attempts),
        "streak_days": streak_days(attempts, timezone),
        "streak_until": rfc3339(until) if until is not None else None,
        "active_warning": active_warning.as_active() if active_warning is not None else None,
        "last_attempt_at": rfc3339(last.occurred_at) if last is not None else None,
        "ruleset_version": rules.version,
        "position": len(attempts),
        "last_attempt": (
            _last_attempt(told, ends_a_break(attempts, told, rules.return_after_days)) if told is not None else None
        ),
        "withdrawn": withdrawn,
        "erased": False,
    }


def empty_view(user_id: str, rules: RuleSet) -> dict[str, object]:
    """The progress view of an enrolled participant with no attempt yet."""
    return progress_view(user_id, (), "UTC", None, rules)


def erased_view(user_id: str, summary: dict[str, object], ruleset_version: str) -> dict[str, object]:
    """The progress view once a participant is erased: their counts, nothing personal."""
    return {
        "user_id": user_id,
        "level": None,
        "practice_level": None,
        "level_ready": False,
        "attempts": summary["attempts"],
        "completed": summary["completed"],
        "at_level": {"attempts": 0, "first_peak": None, "latest_peak": None},
        "expectancy_last5": None,
        "streak_days": 0,
        "streak_until": None,
        "active_warning": None,
        "last_attempt_at": None,
        "ruleset_version": ruleset_version,
        "position": summary["position"],
        "last_attempt": None,
        "withdrawn": True,
        "erased": True,
    }


def as_of(view: dict[str, object], now: datetime) -> dict[str, object]:
    """A stored view as it reads at `now`: a streak whose time ran out is over, and a view decided
    before a field was added has it (its value then)."""
    view = {"practice_level": view.get("level"), "streak_until": None, "withdrawn": False, "erased": False, **view}
    until = view.get("streak_until")
    if isinstance(until, str) and datetime.fromisoformat(until) <= now:
        return {**view, "streak_days": 0, "streak_until": None}
    return view
