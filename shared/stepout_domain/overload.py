"""Overload rules (DOMAIN.md "Overload warnings"): which of the six rules hold after an attempt.

Every rule is judged at the newest attempt of the history it is given (`history.History`);
every window counts back from that attempt's `occurred_at`, never from a clock. The history
is the participant's attempts in the order they occurred (`occurred_at`), whatever the order
they arrived in, so no window sees a negative interval. A time window is inclusive: an
attempt exactly 7 days (or 24 h) before the judged one is inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain.attempts import Attempt
from stepout_domain.figures import days_of, hours_of, within
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


@dataclass(slots=True)
class RuleHit:
    """One rule that holds: what was observed, the threshold it met, and the attempts behind it.
    A value, never changed once built (`stepout_domain.values`: why it is not frozen)."""

    rule: str
    observed: int | float
    threshold: int | float
    severity: Severity
    evidence: tuple[str, ...]


def _high_distress(history: History, judged_at: datetime, rules: RuleSet) -> RuleHit | None:
    """Among the last `high_distress_last` attempts that have a peak (skipped ones have
    none), count those that peaked at `high_distress_peak` or more within
    `high_distress_window_days` of the judged attempt."""
    since = judged_at - days_of(rules.high_distress_window_days)
    peak, w = rules.high_distress_peak, history.read_windows()
    start = max(0, len(w.peaks) - rules.high_distress_last)
    counted = [w.peak_ids[i] for i in range(start, len(w.peaks)) if w.peaks[i] >= peak and w.peak_at[i] >= since]
    if len(counted) < rules.high_distress_count:
        return None
    return RuleHit("high_distress", len(counted), rules.high_distress_count, Severity.CAUTION, tuple(counted))


def _no_habituation(history: History, newest: Attempt, rules: RuleSet, evidence: bool) -> RuleHit | None:
    """At the judged attempt's level, over the run since the participant last arrived
    there (`History.run_at`): at least `no_habituation_min_attempts` attempts with
    a peak, and the latest such peak is not below the first. Observed is the latest
    peak, threshold the first; the evidence is the attempt of the first peak and the run's
    recent attempts with a peak (at most `history.RECENT_KEPT` + 1 ids, however long the run)."""
    run = history.run_at(newest.level, rules.return_after_days)
    first, latest = run.first_peak, run.latest_peak
    if run.peak_count < rules.no_habituation_min_attempts or first is None or latest is None:
        return None
    if latest < first:
        return None
    return RuleHit(
        "no_habituation",
        latest,
        first,
        Severity.CAUTION,
        _no_habituation_evidence(history, newest, run.first_peak_id, rules) if evidence else (),
    )


def _no_habituation_evidence(
    history: History, newest: Attempt, first_peak_id: str | None, rules: RuleSet
) -> tuple[str, ...]:
    run = history.recent_run(newest.level, rules.return_after_days)
    with_peak = [a.attempt_id for a in run if a.suds_peak is not None]
    return tuple(dict.fromkeys([first_peak_id, *with_peak] if first_peak_id else with_peak))


def with_evidence(hits: Sequence[RuleHit], history: History, rules: RuleSet) -> list[RuleHit]:
    """`hits` (of `evaluate(..., evidence=False)`) with the evidence of `no_habituation`, read
    only when a warning is raised: the rest of a decision never reads it."""
    newest = history.newest
    if newest is None:
        return list(hits)
    first_peak_id = history.run_at(newest.level, rules.return_after_days).first_peak_id
    return [
        replace(hit, evidence=_no_habituation_evidence(history, newest, first_peak_id, rules))
        if hit.rule == "no_habituation"
        else hit
        for hit in hits
    ]


def _escapes(history: History, rules: RuleSet) -> RuleHit | None:
    """At least `escapes_count` `escaped` among the last `escapes_last` attempts (any outcome)."""
    escaped = [a.attempt_id for a in history.recent[-rules.escapes_last :] if a.outcome is Outcome.ESCAPED]
    if len(escaped) < rules.escapes_count:
        return None
    return RuleHit("escapes", len(escaped), rules.escapes_count, Severity.CAUTION, tuple(escaped))


def _rejection_streak(history: History, judged_at: datetime, rules: RuleSet) -> RuleHit | None:
    """The trailing run of completed attempts ending in `rejected` or `hostile`.

    Back from the judged attempt: `accepted` ends the run; `escaped` and `skipped` are not
    completed attempts, so they neither count nor break it; a rejection more than
    `rejection_streak_window_hours` before the judged attempt ends it too, so only rejections
    inside the window are counted.
    """
    w = history.read_windows()
    streak = within(w.rejection_ids, w.rejection_at, judged_at - hours_of(rules.rejection_streak_window_hours))
    if len(streak) < rules.rejection_streak_length:
        return None
    return RuleHit("rejection_streak", len(streak), rules.rejection_streak_length, Severity.CAUTION, streak)


def _hostile_rejections(history: History, judged_at: datetime, rules: RuleSet) -> RuleHit | None:
    """At least `hostile_count` `hostile` outcomes within `hostile_window_days` of the judged attempt."""
    w = history.read_windows()
    hostile = within(w.hostile_ids, w.hostile_at, judged_at - days_of(rules.hostile_window_days))
    if len(hostile) < rules.hostile_count:
        return None
    return RuleHit("hostile_rejections", len(hostile), rules.hostile_count, Severity.HIGH, hostile)


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


def evaluate(
    history: History, rules: RuleSet, crisis: tuple[Sequence[str], int] | None = None, evidence: bool = True
) -> list[RuleHit]:
    """Every overload rule that holds at the newest attempt of `history`, in `RULE_IDS` order.

    Windows count back from the newest attempt (`occurred_at` order, whatever the arrival
    order). `crisis_reported` holds while a reported crisis has not been covered by a coach's
    review, whenever it occurred: `crisis` gives those reports as (attempt ids kept as
    evidence, how many), as `tracking.TrackerState` keeps them; without it every report
    among the recent attempts counts. An empty history holds no rule. Without `evidence`,
    `no_habituation` names none (`with_evidence` adds it): the running figures decide whether
    it holds, its evidence needs the run's attempts.
    """
    newest = history.newest
    if newest is None:
        return []
    judged_at = newest.occurred_at
    found = [
        _high_distress(history, judged_at, rules),
        _no_habituation(history, newest, rules, evidence),
        _escapes(history, rules),
        _rejection_streak(history, judged_at, rules),
        _hostile_rejections(history, judged_at, rules),
        _crisis_reported(history.recent, crisis),
    ]
    return [hit for hit in found if hit is not None]
