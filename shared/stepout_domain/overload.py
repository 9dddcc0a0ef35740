"""Overload rules (DOMAIN.md "Overload warnings"): which of the six rules hold after an attempt.

Every rule is judged at the newest attempt of the history it is given (`history.History`);
every window counts back from that attempt's `occurred_at`, never from a clock. The history
is the participant's attempts in the order they occurred (`occurred_at`), whatever the order
they arrived in, so no window sees a negative interval. A time window is inclusive: an
attempt exactly 7 days (or 24 h) before the judged one is inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain.attempts import Attempt
from stepout_domain.history import History
from stepout_domain.ruleset import RuleSet

SEVERITY_RANK: dict[Severity, int] = {Severity.CAUTION: 1, Severity.HIGH: 2, Severity.CRISIS: 3}

RULE_IDS: tuple[str, ...] = (
    "high_distress",
    "no_habituation",
    "escapes",
    "rejection_streak",
    "hostile_rejections",
    "crisis_reported",
)


def highest(severities: Sequence[Severity]) -> Severity:
    """The most severe of `severities` (at least one)."""
    return max(severities, key=SEVERITY_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that holds: what was observed, the threshold it met, and the attempts behind it."""

    rule: str
    observed: int | float
    threshold: int | float
    severity: Severity
    evidence: tuple[str, ...]


def _within(attempt: Attempt, judged_at: datetime, window: timedelta) -> bool:
    return judged_at - attempt.occurred_at <= window


def _high_distress(history: Sequence[Attempt], rules: RuleSet) -> RuleHit | None:
    """Among the last `high_distress_last` attempts that have a peak (skipped ones have
    none), count those that peaked at `high_distress_peak` or more within
    `high_distress_window_days` of the judged attempt."""
    judged_at = history[-1].occurred_at
    window = timedelta(days=rules.high_distress_window_days)
    with_peak: list[Attempt] = []
    for attempt in reversed(history):
        if attempt.suds_peak is not None:
            with_peak.append(attempt)
            if len(with_peak) == rules.high_distress_last:
                break
    counted = [
        a.attempt_id
        for a in reversed(with_peak)
        if a.suds_peak is not None and a.suds_peak >= rules.high_distress_peak and _within(a, judged_at, window)
    ]
    if len(counted) < rules.high_distress_count:
        return None
    return RuleHit("high_distress", len(counted), rules.high_distress_count, Severity.CAUTION, tuple(counted))


def _no_habituation(history: History, rules: RuleSet) -> RuleHit | None:
    """At the judged attempt's level, over the run since the participant last arrived
    there (`History.run_at`): at least `no_habituation_min_attempts` attempts with
    a peak, and the latest such peak is not below the first. Observed is the latest
    peak, threshold the first; the evidence is the attempt of the first peak and the run's
    recent attempts with a peak (at most `history.RECENT_KEPT` + 1 ids, however long the run)."""
    assert history.newest is not None
    run = history.run_at(history.newest.level, rules.return_after_days)
    first, latest = run.first_peak, run.latest_peak
    if run.peak_count < rules.no_habituation_min_attempts or first is None or latest is None:
        return None
    if latest < first:
        return None
    with_peak = [a.attempt_id for a in run.recent if a.suds_peak is not None]
    evidence = tuple(dict.fromkeys([run.first_peak_id, *with_peak] if run.first_peak_id else with_peak))
    return RuleHit("no_habituation", latest, first, Severity.CAUTION, evidence)


def _escapes(history: Sequence[Attempt], rules: RuleSet) -> RuleHit | None:
    """At least `escapes_count` `escaped` among the last `escapes_last` attempts (any outcome)."""
    escaped = [a.attempt_id for a in history[-rules.escapes_last :] if a.outcome is Outcome.ESCAPED]
    if len(escaped) < rules.escapes_count:
        return None
    return RuleHit("escapes", len(escaped), rules.escapes_count, Severity.CAUTION, tuple(escaped))


def _rejection_streak(history: Sequence[Attempt], rules: RuleSet) -> RuleHit | None:
    """The trailing run of completed attempts ending in `rejected` or `hostile`.

    Scanning back from the judged attempt: `accepted` ends the run; `escaped` and
    `skipped` are not completed attempts, so they neither count nor break it; a
    rejection more than `rejection_streak_window_hours` before the judged attempt
    ends it too, so only rejections inside the window are counted.
    """
    judged_at = history[-1].occurred_at
    window = timedelta(hours=rules.rejection_streak_window_hours)
    streak: list[str] = []
    for attempt in reversed(history):
        if attempt.outcome is Outcome.ACCEPTED or not _within(attempt, judged_at, window):
            break
        if attempt.outcome in (Outcome.REJECTED, Outcome.HOSTILE):
            streak.append(attempt.attempt_id)
    if len(streak) < rules.rejection_streak_length:
        return None
    streak.reverse()
    return RuleHit("rejection_streak", len(streak), rules.rejection_streak_length, Severity.CAUTION, tuple(streak))


def _hostile_rejections(history: Sequence[Attempt], rules: RuleSet) -> RuleHit | None:
    """At least `hostile_count` `hostile` outcomes within `hostile_window_days` of the judged attempt."""
    judged_at = history[-1].occurred_at
    window = timedelta(days=rules.hostile_window_days)
    hostile: list[str] = []
    for attempt in reversed(history):
        if not _within(attempt, judged_at, window):
            break
        if attempt.outcome is Outcome.HOSTILE:
            hostile.append(attempt.attempt_id)
    if len(hostile) < rules.hostile_count:
        return None
    hostile.reverse()
    return RuleHit("hostile_rejections", len(hostile), rules.hostile_count, Severity.HIGH, tuple(hostile))


def _crisis_reported(history: Sequence[Attempt], crisis: tuple[Sequence[str], int] | None) -> RuleHit | None:
    """The crisis reports no review has covered yet: `crisis` is (evidence, count) as the
    participant's state keeps them; None counts every attempt of `history` that reports one."""
    if crisis is None:
        evidence = tuple(a.attempt_id for a in history if a.crisis_reported)
        count = len(evidence)
    else:
        evidence, count = tuple(crisis[0]), crisis[1]
    if count == 0:
        return None
    return RuleHit("crisis_reported", count, 1, Severity.CRISIS, evidence)


# The rules judged on the recent attempts, and the one that reads the run at a level.
_WINDOWED: tuple[Callable[[Sequence[Attempt], RuleSet], RuleHit | None], ...] = (
    _escapes,
    _rejection_streak,
    _hostile_rejections,
)


def evaluate(history: History, rules: RuleSet, crisis: tuple[Sequence[str], int] | None = None) -> list[RuleHit]:
    """Every overload rule that holds at the newest attempt of `history`, in `RULE_IDS` order.

    Windows count back from the newest attempt (`occurred_at` order, whatever the arrival
    order). `crisis_reported` holds while a reported crisis has not been covered by a coach's
    review, whenever it occurred: `crisis` gives those reports as (attempt ids kept as
    evidence, how many), as `tracking.TrackerState` keeps them; without it every report
    among the recent attempts counts. An empty history holds no rule.
    """
    recent = history.recent
    if not recent:
        return []
    found = [_high_distress(recent, rules), _no_habituation(history, rules)]
    found += [rule(recent, rules) for rule in _WINDOWED]
    found.append(_crisis_reported(recent, crisis))
    return [hit for hit in found if hit is not None]
