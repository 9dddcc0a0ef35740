"""Readiness to step up and the progress view (docs/RULES.md "Ready to step up", "Progress").

Everything here reads a participant's `history.History`: the attempts in the order they
occurred, judged at the newest. "Days" are the participant's local calendar days. Coming
back after a break (rule sets with `return_after_days`): fear returns after time away from
exposure, so the run at a level starts again at the attempt that ends a break.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from stepout_contract import wire
from stepout_contract.outputs import AtLevel, LastAttempt, ProgressView
from stepout_domain.attempts import COMPLETED_OUTCOMES, Attempt
from stepout_domain.history import History, Run, avoided
from stepout_domain.plan_state import next_local_midnight
from stepout_domain.ruleset import RuleSet
from stepout_domain.warnings import Warning

__all__ = ["as_of", "empty_view", "erased_view", "is_ready", "progress_view", "streak_until"]


@lru_cache(maxsize=65_536)
def _local_day(moment: datetime, zone: ZoneInfo) -> object:
    return moment.astimezone(zone).date()


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
    return ready_in(history.run_at(level, rules.return_after_days), now, history.timezone, rules)


def ready_in(run: Run, now: datetime, timezone: str, rules: RuleSet) -> bool:
    """`is_ready` on the run at the level, read already."""
    return _bored(run, rules) or _habituated(run, now, ZoneInfo(timezone), rules)


def _bored(run: Run, rules: RuleSet) -> bool:
    last = run.last_completed_peaks(rules.bored_last_completed)
    return len(last) == rules.bored_last_completed and all(p is not None and p <= rules.bored_peak_max for p in last)


def _habituated(run: Run, now: datetime, zone: ZoneInfo, rules: RuleSet) -> bool:
    window = timedelta(days=rules.ready_window_days)
    recent = [a for a in run.recent if a.outcome in COMPLETED_OUTCOMES and now - a.occurred_at <= window]
    if len(recent) < rules.ready_min_completed:
        return False
    if len({_local_day(a.occurred_at, zone) for a in recent}) < rules.ready_min_days:
        return False
    if avoided(run.last_outcomes(rules.ready_no_avoidance_last)):
        return False
    first = run.first_peak
    if run.peak_count >= 2 and first is not None and min(run.last_peaks(2)) <= rules.ready_peak_ratio * first:
        return True
    last_after = run.last_after
    return last_after is not None and last_after <= rules.ready_after_max


def streak_until(history: History, streak_days: int) -> datetime | None:
    """Until when a streak of `streak_days` (`history.streak_days()`) stands without a new completed
    attempt: the end of the local day after its last day (None when there is no streak)."""
    newest = history.newest
    if newest is None or streak_days == 0:
        return None
    return next_local_midnight(next_local_midnight(newest.occurred_at, history.timezone), history.timezone)


def _last_attempt(attempt: Attempt, after_break: bool) -> LastAttempt:
    return LastAttempt(
        attempt_id=attempt.attempt_id,
        assignment_id=attempt.assignment_id,
        challenge_id=attempt.challenge_id,
        level=attempt.level,
        outcome=attempt.outcome,
        suds_peak=attempt.suds_peak,
        occurred_at=attempt.occurred_at,
        after_break=after_break,
    )


def progress_view(
    user_id: str,
    history: History,
    active_warning: Warning | None,
    rules: RuleSet,
    arrived: Attempt | None = None,
    withdrawn: bool = False,
) -> dict[str, object]:
    """The progress view (CONTRACT §4, with the additions of docs/CONTRACT.md); JSON-ready.

    `level_ready` is judged at the newest attempt's `occurred_at`; `at_level` is the run at the
    current level; `last_attempt` is `arrived` (the attempt this view follows, which may have
    occurred earlier than others when it was synced late), else the newest.
    """
    level = history.current_level()
    last = history.newest
    told = arrived if arrived is not None else last
    counts = history.by_outcome()
    run = history.run_at(level, rules.return_after_days) if level is not None else None
    streak = history.streak_days()
    view = ProgressView(
        user_id=user_id,
        level=level,
        practice_level=level,
        level_ready=run is not None and last is not None and ready_in(run, last.occurred_at, history.timezone, rules),
        attempts=counts,  # type: ignore[arg-type]
        completed=sum(counts[o.value] for o in COMPLETED_OUTCOMES),
        at_level=AtLevel(
            attempts=run.count if run is not None else 0,
            first_peak=run.first_peak if run is not None else None,
            latest_peak=run.latest_peak if run is not None else None,
        ),
        expectancy_last5=history.expectancy(),
        streak_days=streak,
        streak_until=streak_until(history, streak),
        active_warning=wire.active_warning(active_warning) if active_warning is not None else None,  # type: ignore[arg-type]
        last_attempt_at=last.occurred_at if last is not None else None,
        ruleset_version=rules.version,
        position=history.position,
        last_attempt=(
            _last_attempt(told, history.ends_a_break(told, rules.return_after_days)) if told is not None else None
        ),
        withdrawn=withdrawn,
        erased=False,
    )
    return view.model_dump(mode="json")


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
