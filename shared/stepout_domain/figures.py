"""Running figures: what the rules and the progress view read of a participant's attempts, updated
in constant time as each attempt is folded in `occurred_at` order.

- `Figures` fold every attempt: for each level the run there (`LevelRun`: how many, the first and
  the last few peaks, outcomes, completed attempts and their local days, the last `suds_after`),
  the level of the newest assigned attempt, the streak of local days, the last completed attempt's
  time and the last expectancy readings. `history.History` keeps two: over the archived attempts
  only, and over every attempt it placed.
- `Windows` fold the recent attempts for the time-windowed overload rules: those with a peak, the
  hostile ones, and the rejections since the last `accepted`. An attempt leaving the recent ones
  leaves them too, so the rules read what they read when they scanned the recent attempts.

They are values: an update builds new ones and nothing changes one once built. They are not
frozen dataclasses only because a frozen dataclass's constructor sets each field through
`object.__setattr__`, which cost a third of a decision.

Deciding one more attempt reads a fixed number of these values, whatever the history. A rule set
that asks for more of a run than `KEPT` readings (the last 2 peaks, the last 3 completed attempts
by default) reads the last `KEPT` (docs/LATE-DATA.md).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from operator import itemgetter
from typing import TypeVar

from stepout_contract.vocabulary import Outcome
from stepout_domain.attempts import COMPLETED_OUTCOMES, REJECTION_OUTCOMES, Attempt

# How many of the last readings of a level's run are kept (rule sets ask for the last 2 or 3).
KEPT = 16
EXPECTANCY_LAST = 5
_DAY = timedelta(days=1)
T = TypeVar("T")


@dataclass(slots=True)
class LevelRun:
    """The run at one level: the attempts there since the participant last arrived."""

    count: int = 0
    peak_count: int = 0
    first_peak: int | None = None
    first_peak_id: str | None = None  # the attempt that reported it
    last_peaks: tuple[int, ...] = ()  # the last peaks, oldest first
    last_after: int | None = None  # the last `suds_after` reported
    last_outcomes: tuple[Outcome, ...] = ()
    last_completed_peaks: tuple[int | None, ...] = ()  # the peaks of the last completed attempts
    completed_at: tuple[datetime, ...] = ()  # when the last completed attempts occurred
    completed_days: tuple[tuple[date, datetime], ...] = ()  # the last local days with one, and its latest time

    @property
    def latest_peak(self) -> int | None:
        return self.last_peaks[-1] if self.last_peaks else None

    def completed_since(self, since: datetime) -> int:
        """How many of the last completed attempts occurred at or after `since`."""
        return len(self.completed_at) - bisect.bisect_left(self.completed_at, since)

    def days_since(self, since: datetime) -> int:
        """How many of the last local days with a completed attempt had one at or after `since`."""
        return len(self.completed_days) - bisect.bisect_left(self.completed_days, since, key=_at)

    def with_attempt(self, a: Attempt, day: date) -> LevelRun:
        peak = a.suds_peak
        first_peak, first_peak_id = self.first_peak, self.first_peak_id
        peaks = self.last_peaks
        if peak is not None:
            peaks = _kept(peaks, peak)
            if first_peak is None:
                first_peak, first_peak_id = peak, a.attempt_id
        completed_peaks, completed_at, completed_days = (
            self.last_completed_peaks,
            self.completed_at,
            self.completed_days,
        )
        if a.outcome in COMPLETED_OUTCOMES:
            completed_peaks = _kept(completed_peaks, peak)
            completed_at = _kept(completed_at, a.occurred_at)
            if completed_days and completed_days[-1][0] == day:
                completed_days = (*completed_days[:-1], (day, a.occurred_at))
            else:
                completed_days = _kept(completed_days, (day, a.occurred_at))
        return LevelRun(
            self.count + 1,
            self.peak_count + (peak is not None),
            first_peak,
            first_peak_id,
            peaks,
            a.suds_after if a.suds_after is not None else self.last_after,
            _kept(self.last_outcomes, a.outcome),
            completed_peaks,
            completed_at,
            completed_days,
        )


NO_RUN = LevelRun()
_at = itemgetter(1)


@cache
def days_of(days: int) -> timedelta:
    return timedelta(days=days)


@cache
def hours_of(hours: int) -> timedelta:
    return timedelta(hours=hours)


def ends_break_after(previous_completed: datetime | None, a: Attempt, days: int | None) -> bool:
    return days is not None and previous_completed is not None and a.occurred_at - previous_completed >= days_of(days)


def _kept(values: tuple[T, ...], value: T) -> tuple[T, ...]:
    """`values` with `value` added, the last `KEPT` only."""
    return (*values[1:], value) if len(values) >= KEPT else (*values, value)


@dataclass(slots=True)
class Figures:
    """The running figures of a sequence of attempts folded in `occurred_at` order."""

    count: int = 0
    runs: tuple[tuple[int, LevelRun], ...] = ()  # level -> its run, by level
    last_assigned_level: int | None = None
    last_completed_at: datetime | None = None
    streak_last_day: date | None = None  # the consecutive local days with a completed attempt ...
    streak_length: int = 0  # ... ending on this day
    predictions: tuple[int, ...] = ()  # the last `prediction_came_true` reported, oldest first
    ended_break: bool = False  # whether the last attempt folded was the first after a break

    def run(self, level: int) -> LevelRun:
        for at, run in self.runs:
            if at == level:
                return run
        return NO_RUN

    def with_attempt(self, a: Attempt, day: date, restart_after_days: int | None) -> Figures:
        """The figures with `a` folded in: `a` occurred at or after every attempt folded before it;
        `day` is its local day."""
        ended = ends_break_after(self.last_completed_at, a, restart_after_days)
        runs = () if ended else self.runs  # the baseline restarts after a break
        level = a.level
        if a.assignment_id is not None:  # an assigned attempt elsewhere ends the run there
            runs = ((level, _run_in(runs, level).with_attempt(a, day)),)
        else:
            runs = _with_run(runs, level, a, day)
        streak_last_day, streak_length = self.streak_last_day, self.streak_length
        last_completed_at = self.last_completed_at
        if a.outcome in COMPLETED_OUTCOMES:
            if streak_last_day is None or day > streak_last_day + _DAY:
                streak_last_day, streak_length = day, 1
            elif day == streak_last_day + _DAY:
                streak_last_day, streak_length = day, streak_length + 1
            last_completed_at = a.occurred_at
        predictions = self.predictions
        if a.prediction_came_true is not None:
            predictions = (*predictions, a.prediction_came_true)[-EXPECTANCY_LAST:]
        return Figures(
            self.count + 1,
            runs,
            level if a.assignment_id is not None else self.last_assigned_level,
            last_completed_at,
            streak_last_day,
            streak_length,
            predictions,
            ended,
        )

    def expectancy(self) -> float | None:
        """Mean `prediction_came_true` of the last 5 attempts that report it, to 1 decimal."""
        last = self.predictions
        return round(sum(last) / len(last), 1) if last else None


def _run_in(runs: tuple[tuple[int, LevelRun], ...], level: int) -> LevelRun:
    for at, run in runs:
        if at == level:
            return run
    return NO_RUN


def _with_run(
    runs: tuple[tuple[int, LevelRun], ...], level: int, a: Attempt, day: date
) -> tuple[tuple[int, LevelRun], ...]:
    """`runs` with `a` added to the run at `level` (a self-chosen attempt leaves the others be)."""
    for i, (at, run) in enumerate(runs):
        if at == level:
            return (*runs[:i], (level, run.with_attempt(a, day)), *runs[i + 1 :])
    return tuple(sorted((*runs, (level, NO_RUN.with_attempt(a, day)))))


@dataclass(slots=True)
class Windows:
    """The recent attempts the time-windowed overload rules read, oldest first: their ids, and
    beside them when each occurred (and its peak)."""

    peak_ids: tuple[str, ...] = ()  # the last KEPT attempts with a peak (high_distress)
    peak_at: tuple[datetime, ...] = ()
    peaks: tuple[int, ...] = ()
    hostile_ids: tuple[str, ...] = ()  # the hostile ones (hostile_rejections)
    hostile_at: tuple[datetime, ...] = ()
    rejection_ids: tuple[str, ...] = ()  # rejected or hostile since the last accepted (rejection_streak)
    rejection_at: tuple[datetime, ...] = ()

    def with_attempt(self, a: Attempt, leaving: Attempt | None = None) -> Windows:
        """`a` added (it occurred at or after every attempt added before it), and `leaving`, the
        oldest recent attempt when it is archived, taken out of every window."""
        peak_ids, peak_at, peaks = self.peak_ids, self.peak_at, self.peaks
        hostile_ids, hostile_at = self.hostile_ids, self.hostile_at
        rejection_ids, rejection_at = self.rejection_ids, self.rejection_at
        if leaving is not None:
            i = leaving.attempt_id
            if peak_ids and peak_ids[0] == i:
                peak_ids, peak_at, peaks = peak_ids[1:], peak_at[1:], peaks[1:]
            if hostile_ids and hostile_ids[0] == i:
                hostile_ids, hostile_at = hostile_ids[1:], hostile_at[1:]
            if rejection_ids and rejection_ids[0] == i:
                rejection_ids, rejection_at = rejection_ids[1:], rejection_at[1:]
        if a.suds_peak is not None:
            peak_ids, peak_at, peaks = (
                _kept(peak_ids, a.attempt_id),
                _kept(peak_at, a.occurred_at),
                _kept(peaks, a.suds_peak),
            )
        outcome = a.outcome
        if outcome is Outcome.ACCEPTED:
            rejection_ids, rejection_at = (), ()
        elif outcome in REJECTION_OUTCOMES:
            rejection_ids, rejection_at = (*rejection_ids, a.attempt_id), (*rejection_at, a.occurred_at)
            if outcome is Outcome.HOSTILE:
                hostile_ids, hostile_at = (*hostile_ids, a.attempt_id), (*hostile_at, a.occurred_at)
        return Windows(peak_ids, peak_at, peaks, hostile_ids, hostile_at, rejection_ids, rejection_at)


def within(ids: tuple[str, ...], at: tuple[datetime, ...], since: datetime) -> tuple[str, ...]:
    """The ids of those of `ids` (oldest first, occurred `at`) that occurred at or after `since`."""
    return ids[bisect.bisect_left(at, since) :]
