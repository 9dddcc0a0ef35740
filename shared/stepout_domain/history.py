"""A participant's attempts as the tracker's rules read them, in a size that does not grow.

The last `RECENT_KEPT` attempts (by `occurred_at`) are kept whole: every window the rules use
(24 hours, 7 and 14 days, the last few attempts) is read from them. What the rules still need of
older attempts is kept as a few running figures (`Archive`): the counts by outcome, for each level
the run of attempts there (how many, their first peak, their last few readings), the newest level
an assignment was at, the streak of days before, and when the last completed attempt was. An
attempt leaves the recent ones, oldest first, into the archive, so those figures are exact.

Two limits follow, both far from any real use (docs/LATE-DATA.md): a rule reads at most the last
`RECENT_KEPT` attempts inside its window, and an attempt synced so late that it occurred before all
of the recent ones is counted (and reports its crisis) but not placed among them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from stepout_contract.vocabulary import Outcome
from stepout_domain.attempts import AVOIDANCE_OUTCOMES, COMPLETED_OUTCOMES, Attempt

RECENT_KEPT = 64
# How many of the last readings of a level's run the archive keeps (rule sets ask for the last 2).
LAST_KEPT = 6
EXPECTANCY_LAST = 5


@dataclass(frozen=True, slots=True)
class LevelRun:
    """The archived part of the run at one level: attempts there since the participant last arrived."""

    count: int = 0
    peak_count: int = 0
    first_peak: int | None = None
    first_peak_id: str | None = None  # the attempt that reported it
    last_peaks: tuple[int, ...] = ()  # the last peaks, oldest first
    last_after: int | None = None  # the last `suds_after` reported
    last_outcomes: tuple[Outcome, ...] = ()
    last_completed_peaks: tuple[int | None, ...] = ()  # the peaks of the last completed attempts

    def with_attempt(self, a: Attempt) -> LevelRun:
        peaks = self.last_peaks if a.suds_peak is None else (*self.last_peaks, a.suds_peak)[-LAST_KEPT:]
        completed = self.last_completed_peaks
        if a.outcome in COMPLETED_OUTCOMES:
            completed = (*completed, a.suds_peak)[-LAST_KEPT:]
        return LevelRun(
            count=self.count + 1,
            peak_count=self.peak_count + (a.suds_peak is not None),
            first_peak=self.first_peak if self.first_peak is not None else a.suds_peak,
            first_peak_id=self.first_peak_id if self.first_peak is not None else _id_with_peak(a),
            last_peaks=peaks,
            last_after=a.suds_after if a.suds_after is not None else self.last_after,
            last_outcomes=(*self.last_outcomes, a.outcome)[-LAST_KEPT:],
            last_completed_peaks=completed,
        )


def _id_with_peak(a: Attempt) -> str | None:
    return a.attempt_id if a.suds_peak is not None else None


NO_RUN = LevelRun()


@dataclass(frozen=True, slots=True)
class Archive:
    """What the rules still read of the attempts older than the recent ones."""

    count: int = 0
    runs: tuple[tuple[int, LevelRun], ...] = ()  # level -> its archived run
    last_assigned_level: int | None = None
    last_completed_at: datetime | None = None
    streak_last_day: date | None = None  # the consecutive local days with a completed attempt ...
    streak_length: int = 0  # ... ending on this day
    predictions: tuple[int, ...] = ()  # the last `prediction_came_true` reported, oldest first

    def run(self, level: int) -> LevelRun:
        return dict(self.runs).get(level, NO_RUN)

    def with_attempt(self, a: Attempt, timezone: str, restart_after_days: int | None) -> Archive:
        """`a`, the oldest of the recent attempts (so the newest of the archived ones), archived."""
        runs = dict(self.runs)
        if ends_break_after(self.last_completed_at, a, restart_after_days):
            runs = {}  # the baseline restarts after a break
        for level in list(runs):
            if level != a.level and a.assignment_id is not None:
                del runs[level]  # an assigned attempt elsewhere ends the run there
        runs[a.level] = runs.get(a.level, NO_RUN).with_attempt(a)
        streak_last_day, streak_length = self.streak_last_day, self.streak_length
        last_completed_at = self.last_completed_at
        if a.outcome in COMPLETED_OUTCOMES:
            day = a.occurred_at.astimezone(ZoneInfo(timezone)).date()
            if streak_last_day is None or day > streak_last_day + timedelta(days=1):
                streak_last_day, streak_length = day, 1
            elif day == streak_last_day + timedelta(days=1):
                streak_last_day, streak_length = day, streak_length + 1
            last_completed_at = a.occurred_at
        predictions = self.predictions
        if a.prediction_came_true is not None:
            predictions = (*predictions, a.prediction_came_true)[-EXPECTANCY_LAST:]
        return Archive(
            count=self.count + 1,
            runs=tuple(sorted(runs.items())),
            last_assigned_level=a.level if a.assignment_id is not None else self.last_assigned_level,
            last_completed_at=last_completed_at,
            streak_last_day=streak_last_day,
            streak_length=streak_length,
            predictions=predictions,
        )


def _occurred(a: Attempt) -> datetime:
    return a.occurred_at


def ends_break_after(previous_completed: datetime | None, a: Attempt, days: int | None) -> bool:
    return (
        days is not None
        and previous_completed is not None
        and a.occurred_at - previous_completed >= timedelta(days=days)
    )


@dataclass(frozen=True, slots=True)
class Run:
    """The run at one level as the rules read it: its recent attempts, and the archived part before them."""

    recent: tuple[Attempt, ...]
    archived: LevelRun

    @property
    def count(self) -> int:
        return self.archived.count + len(self.recent)

    @property
    def peaks(self) -> list[int]:
        """The peaks of the run's recent attempts, oldest first."""
        return [a.suds_peak for a in self.recent if a.suds_peak is not None]

    @property
    def peak_count(self) -> int:
        return self.archived.peak_count + len(self.peaks)

    @property
    def first_peak(self) -> int | None:
        if self.archived.first_peak is not None:
            return self.archived.first_peak
        peaks = self.peaks
        return peaks[0] if peaks else None

    @property
    def first_peak_id(self) -> str | None:
        """The attempt that reported the run's first peak."""
        if self.archived.first_peak is not None:
            return self.archived.first_peak_id
        return next((a.attempt_id for a in self.recent if a.suds_peak is not None), None)

    def last_peaks(self, n: int) -> list[int]:
        return [*self.archived.last_peaks, *self.peaks][-n:] if n > 0 else []

    @property
    def latest_peak(self) -> int | None:
        last = self.last_peaks(1)
        return last[0] if last else None

    def last_outcomes(self, n: int) -> list[Outcome]:
        return [*self.archived.last_outcomes, *(a.outcome for a in self.recent)][-n:] if n > 0 else []

    def last_completed_peaks(self, n: int) -> list[int | None]:
        recent = [a.suds_peak for a in self.recent if a.outcome in COMPLETED_OUTCOMES]
        return [*self.archived.last_completed_peaks, *recent][-n:] if n > 0 else []

    @property
    def last_after(self) -> int | None:
        for a in reversed(self.recent):
            if a.suds_after is not None:
                return a.suds_after
        return self.archived.last_after


@dataclass(frozen=True, slots=True)
class History:
    """The recent attempts in full, by `occurred_at` (arrival order among equal times), and the archive."""

    recent: tuple[Attempt, ...] = ()
    archive: Archive = field(default_factory=Archive)
    counts: tuple[int, ...] = (0, 0, 0, 0, 0)  # by outcome, in `Outcome` order
    timezone: str = "UTC"
    days: tuple[date, ...] = ()  # the local day each recent attempt occurred on, in `timezone`

    @property
    def newest(self) -> Attempt | None:
        return self.recent[-1] if self.recent else None

    @property
    def position(self) -> int:
        return sum(self.counts)

    def by_outcome(self) -> dict[str, int]:
        return {outcome.value: n for outcome, n in zip(Outcome, self.counts, strict=True)}

    @classmethod
    def of(cls, attempts: Sequence[Attempt], timezone: str = "UTC", restart_after_days: int | None = None) -> History:
        """The history of `attempts` recorded in the order given."""
        history = cls(timezone=timezone)
        for attempt in attempts:
            history = history.with_attempt(attempt, restart_after_days)
        return history

    # Changing -----------------------------------------------------------------------------------

    def with_attempt(self, a: Attempt, restart_after_days: int | None) -> History:
        """`a` placed where it occurred; the oldest recent attempt archived when there are too many.
        An attempt older than every recent one when they are all kept is counted only."""
        counts = list(self.counts)
        counts[list(Outcome).index(a.outcome)] += 1
        recent, archive = list(self.recent), self.archive
        if len(recent) >= RECENT_KEPT and a.occurred_at < recent[0].occurred_at:
            return replace(self, counts=tuple(counts))
        at = bisect.bisect_right(recent, a.occurred_at, key=_occurred)
        recent.insert(at, a)
        days = list(self.days)
        days.insert(at, a.occurred_at.astimezone(ZoneInfo(self.timezone)).date())
        while len(recent) > RECENT_KEPT:
            archive = archive.with_attempt(recent.pop(0), self.timezone, restart_after_days)
            days.pop(0)
        return History(tuple(recent), archive, tuple(counts), self.timezone, tuple(days))

    def with_timezone(self, timezone: str) -> History:
        """The same attempts, their local days in `timezone` from now on."""
        zone = ZoneInfo(timezone)
        return replace(self, timezone=timezone, days=tuple(a.occurred_at.astimezone(zone).date() for a in self.recent))

    # Reading ------------------------------------------------------------------------------------

    def since_break(self, days: int | None) -> tuple[int, bool]:
        """Where the recent attempts after the last break begin (an index), and whether the archived
        run is cut off by it (a break at or after the first recent attempt)."""
        if days is None:
            return 0, False
        last_completed = self.archive.last_completed_at
        start, cut = 0, False
        for i, a in enumerate(self.recent):
            if ends_break_after(last_completed, a, days):
                start, cut = i, True
            if a.outcome in COMPLETED_OUTCOMES:
                last_completed = a.occurred_at
        return start, cut

    def run_at(self, level: int, restart_after_days: int | None = None) -> Run:
        """The attempts since the participant last arrived at `level` (DOMAIN "Ready to step up"):
        scanning back from the newest, those at `level`, skipping self-chosen attempts elsewhere, up to
        an assigned attempt at another level or (with `restart_after_days`) a break."""
        start, cut = self.since_break(restart_after_days)
        run: list[Attempt] = []
        for a in reversed(self.recent[start:]):
            if a.level == level:
                run.append(a)
            elif a.assignment_id is not None:
                return Run(tuple(reversed(run)), NO_RUN)
        archived = NO_RUN if cut else self.archive.run(level)
        return Run(tuple(reversed(run)), archived)

    def current_level(self) -> int | None:
        """The level of the latest assigned attempt, else of the latest attempt; None before any."""
        for a in reversed(self.recent):
            if a.assignment_id is not None:
                return a.level
        if self.archive.last_assigned_level is not None:
            return self.archive.last_assigned_level
        return self.recent[-1].level if self.recent else None

    def streak_days(self) -> int:
        """Consecutive local days with a completed attempt, ending on the newest attempt's local day
        (0 when that day has none)."""
        if not self.recent:
            return 0
        expected, streak = self.days[-1], 0
        for a, day in zip(reversed(self.recent), reversed(self.days), strict=True):
            if day < expected:
                return streak  # no completed attempt on `expected`; the archive is older than `day`
            if day == expected and a.outcome in COMPLETED_OUTCOMES:
                streak, expected = streak + 1, day - timedelta(days=1)
        archived_last, archived_length = self.archive.streak_last_day, self.archive.streak_length
        if archived_last is not None and archived_last - timedelta(days=archived_length) < expected <= archived_last:
            return streak + (expected - (archived_last - timedelta(days=archived_length))).days
        return streak

    def expectancy(self) -> float | None:
        """Mean `prediction_came_true` of the last 5 attempts that report it, to 1 decimal."""
        reported = [a.prediction_came_true for a in self.recent if a.prediction_came_true is not None]
        last = [*self.archive.predictions, *reported][-EXPECTANCY_LAST:]
        return round(sum(last) / len(last), 1) if last else None

    def ends_a_break(self, a: Attempt, days: int | None) -> bool:
        """Whether `a` (one of the recent attempts) is the first after a break."""
        if days is None:
            return False
        previous = self.archive.last_completed_at
        for earlier in self.recent:
            if earlier.attempt_id == a.attempt_id:
                break
            if earlier.outcome in COMPLETED_OUTCOMES:
                previous = earlier.occurred_at
        return ends_break_after(previous, a, days)


def avoided(outcomes: Sequence[Outcome]) -> bool:
    return any(o in AVOIDANCE_OUTCOMES for o in outcomes)
