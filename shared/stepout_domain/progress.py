"""Readiness to step up and the progress view (docs/RULES.md "Ready to step up", "Progress").

Everything here reads a participant's `history.History`: the attempts in the order they
occurred, judged at the newest. "Days" are the participant's local calendar days. Coming
back after a break (rule sets with `return_after_days`): fear returns after time away from
exposure, so the run at a level starts again at the attempt that ends a break.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from stepout_contract.vocabulary import rfc3339
from stepout_domain.attempts import Attempt
from stepout_domain.figures import LevelRun
from stepout_domain.history import History, avoided
from stepout_domain.plan_state import next_local_midnight
from stepout_domain.ruleset import RuleSet
from stepout_domain.warnings import Warning

__all__ = ["as_of", "empty_view", "erased_view", "is_ready", "progress_view"]


def is_ready(history: History, level: int, now: datetime, rules: RuleSet) -> bool:
    """Whether the participant is ready to step up from `level`, judged at `now`.

    Over the run at `level` (`History.run_at`), ready when either:

    - at least `ready_min_completed` completed attempts within the last `ready_window_days`
      (inclusive, back from `now`) falling on at least `ready_min_days` different local days; and
      none of the last `ready_no_avoidance_last` attempts was `escaped` or `skipped`; and the lower
      of the last 2 peaks is at most `ready_peak_ratio` of the first peak, or the last reported
      `suds_after` is at most `ready_after_max`; or
    - the last `bored_last_completed` completed attempts all peaked at `bored_peak_max` or below
      ("bored" needs no window and ignores avoidance).
    """
    return ready_in(history.run_at(level, rules.return_after_days), now, rules)


def ready_in(run: LevelRun, now: datetime, rules: RuleSet) -> bool:
    """`is_ready` on the run at the level, read already."""
    return _bored(run, rules) or _habituated(run, now, rules)


def _bored(run: LevelRun, rules: RuleSet) -> bool:
    n = rules.bored_last_completed
    last = run.last_completed_peaks[-n:]
    return len(last) == n and all(p is not None and p <= rules.bored_peak_max for p in last)


def _habituated(run: LevelRun, now: datetime, rules: RuleSet) -> bool:
    since = now - timedelta(days=rules.ready_window_days)
    if run.completed_since(since) < rules.ready_min_completed:
        return False
    if run.days_since(since) < rules.ready_min_days:
        return False
    n = rules.ready_no_avoidance_last
    if n > 0 and avoided(run.last_outcomes[-n:]):
        return False
    first = run.first_peak
    if run.peak_count >= 2 and first is not None and min(run.last_peaks[-2:]) <= rules.ready_peak_ratio * first:
        return True
    last_after = run.last_after
    return last_after is not None and last_after <= rules.ready_after_max


def _on_wire(moment: datetime) -> str:
    """`rfc3339(moment)`, straight from `isoformat` when `moment` is in UTC already (most are)."""
    if moment.tzinfo is not UTC:
        return rfc3339(moment)
    return moment.isoformat()[:-6] + "Z"  # microseconds only when not zero, as `rfc3339` writes them


@lru_cache(maxsize=4_096)
def _streak_until(day: date, timezone: str) -> str:
    """The end of the local day after `day`, on the wire (`streak_until` of any moment of `day`)."""
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(timezone))
    return rfc3339(next_local_midnight(next_local_midnight(noon, timezone), timezone))


def _last_attempt(attempt: Attempt, occurred_at: str, after_break: bool) -> dict[str, object]:
    return {
        "attempt_id": attempt.attempt_id,
        "assignment_id": attempt.assignment_id,
        "challenge_id": attempt.challenge_id,
        "level": attempt.level,
        "outcome": attempt.outcome.value,
        "suds_peak": attempt.suds_peak,
        "occurred_at": occurred_at,
        "after_break": after_break,
    }


def active_warning(w: Warning) -> dict[str, object]:
    """The progress view's `active_warning`."""
    return {
        "warning_id": w.warning_id,
        "severity": w.severity.value,
        "rules": [{"rule": hit.rule, "observed": hit.observed, "threshold": hit.threshold} for hit in w.rules],
    }


def progress_view(
    user_id: str,
    history: History,
    active: Warning | None,
    rules: RuleSet,
    arrived: Attempt | None = None,
    withdrawn: bool = False,
) -> dict[str, object]:
    """The progress view (CONTRACT §4, with the additions of docs/CONTRACT.md): JSON-ready plain
    data in the shape of the contract's `ProgressView`, its keys in that model's order.

    `level_ready` is judged at the newest attempt's `occurred_at`; `at_level` is the run at the
    current level; `last_attempt` is `arrived` (the attempt this view follows, which may have
    occurred earlier than others when it was synced late), else the newest.
    """
    counts = history.by_outcome()
    completed = counts["rejected"] + counts["accepted"] + counts["hostile"]
    last = history.newest
    told = arrived if arrived is not None else last
    if last is None:
        level, ready, at_level, expectancy, streak, until, last_at = None, False, None, None, 0, None, None
    else:
        restart = rules.return_after_days
        figures = history.read_figures(restart)
        level = figures.last_assigned_level if figures.last_assigned_level is not None else last.level
        run = figures.run(level)
        ready = ready_in(run, last.occurred_at, rules)
        at_level = {"attempts": run.count, "first_peak": run.first_peak, "latest_peak": run.latest_peak}
        expectancy = figures.expectancy()
        day = history.days[-1]
        streak = figures.streak_length if figures.streak_last_day == day else 0
        until = _streak_until(day, history.timezone) if streak else None
        last_at = _on_wire(last.occurred_at)
    told_view = None
    if told is not None:
        told_at = last_at if told is last and last_at is not None else _on_wire(told.occurred_at)
        told_view = _last_attempt(told, told_at, history.ends_a_break(told, rules.return_after_days))
    return {
        "user_id": user_id,
        "level": level,
        "level_ready": ready,
        "attempts": counts,
        "completed": completed,
        "at_level": at_level or {"attempts": 0, "first_peak": None, "latest_peak": None},
        "expectancy_last5": expectancy,
        "streak_days": streak,
        "active_warning": active_warning(active) if active is not None else None,
        "last_attempt_at": last_at,
        "ruleset_version": rules.version,
        "position": history.position,
        "last_attempt": told_view,
        "practice_level": level,
        "streak_until": until,
        "withdrawn": withdrawn,
        "erased": False,
    }


def empty_view(user_id: str, rules: RuleSet) -> dict[str, object]:
    """The progress view of an enrolled participant with no attempt yet."""
    return progress_view(user_id, History(), None, rules)


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
