"""Overload rules (DOMAIN.md "Overload warnings"): which of the six rules hold after an attempt.

Every rule is judged at the last attempt of the history it is given; every window
counts back from that attempt's `occurred_at`, never from a clock. The history is
the participant's attempts in the order they occurred (`occurred_at`), whatever the
order they arrived in, so no window sees a negative interval. A time window
is inclusive: an attempt exactly 7 days (or 24 h) before the judged one is inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain.attempts import Attempt
from stepout_domain.ruleset import RuleSet

from .breaks import since_break

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

    def as_wire(self) -> dict[str, object]:
        return {"rule": self.rule, "observed": self.observed, "threshold": self.threshold}


def attempts_at_level(attempts: Sequence[Attempt], level: int, restart_after_days: int | None = None) -> list[Attempt]:
    """The attempts since the participant last arrived at `level`, oldest first.

    Scans back from the newest attempt and stops at the first attempt at another
    level that came from an assignment; self-chosen attempts (no `assignment_id`)
    at other levels are skipped without breaking the run. With `restart_after_days`,
    the run also starts again after a break that long (`breaks.since_break`).
    """
    run: list[Attempt] = []
    for attempt in reversed(since_break(attempts, restart_after_days)):
        if attempt.level == level:
            run.append(attempt)
        elif attempt.assignment_id is not None:
            break
    run.reverse()
    return run


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


def _no_habituation(history: Sequence[Attempt], rules: RuleSet) -> RuleHit | None:
    """At the judged attempt's level, over the run since the participant last arrived
    there (`attempts_at_level`): at least `no_habituation_min_attempts` attempts with
    a peak, and the latest such peak is not below the first. Observed is the latest
    peak, threshold the first."""
    peaks = [
        (a.attempt_id, a.suds_peak)
        for a in attempts_at_level(history, history[-1].level, rules.return_after_days)
        if a.suds_peak is not None
    ]
    if len(peaks) < rules.no_habituation_min_attempts:
        return None
    first, latest = peaks[0][1], peaks[-1][1]
    if latest < first:
        return None
    return RuleHit("no_habituation", latest, first, Severity.CAUTION, tuple(i for i, _ in peaks))


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


_COUNTED_RULES: tuple[Callable[[Sequence[Attempt], RuleSet], RuleHit | None], ...] = (
    _high_distress,
    _no_habituation,
    _escapes,
    _rejection_streak,
    _hostile_rejections,
)


def evaluate(
    attempts: Sequence[Attempt], rules: RuleSet, crisis: tuple[Sequence[str], int] | None = None
) -> list[RuleHit]:
    """Every overload rule that holds at the last of `attempts`, in `RULE_IDS` order.

    `attempts` is the history in `occurred_at` order, judged at its newest attempt.
    `crisis_reported` holds while a reported crisis has not been covered by a coach's
    review, whenever it occurred: `crisis` gives those reports as (attempt ids kept as
    evidence, how many), as `tracking.TrackerState` keeps them; without it every report
    in `attempts` counts. An empty history holds no rule.
    """
    if not attempts:
        return []
    hits = [hit for rule in _COUNTED_RULES if (hit := rule(attempts, rules)) is not None]
    found = _crisis_reported(attempts, crisis)
    if found is not None:
        hits.append(found)
    return hits
