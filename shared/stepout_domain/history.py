"""A participant's attempts as the tracker's rules read them, in a size that does not grow.

The last `RECENT_KEPT` attempts (by `occurred_at`) are kept whole. What the rules and the progress
view read is kept as running figures (`figures`), updated in constant time as each attempt is
recorded: over the archived attempts (`archive`), over every attempt placed (`figures`), and over
the recent ones for the time-windowed rules (`windows`). An attempt leaves the recent ones, oldest
first, into the archive, so those figures are exact.

An attempt that occurred before the newest recorded (synced late) changes what follows it: the
figures over every attempt and the windows are then folded again from the archive and the recent
attempts, a bounded amount of work. Two limits follow, both far from any real use
(docs/LATE-DATA.md): a rule reads at most the last `RECENT_KEPT` attempts inside its window, and an
attempt synced so late that it occurred before all of the recent ones is counted (and reports its
crisis) but not placed among them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from stepout_contract.vocabulary import Outcome
from stepout_domain.attempts import AVOIDANCE_OUTCOMES, COMPLETED_OUTCOMES, Attempt
from stepout_domain.figures import EXPECTANCY_LAST, Figures, LevelRun, Windows, ends_break_after

__all__ = ["EXPECTANCY_LAST", "RECENT_KEPT", "Figures", "History", "LevelRun", "Windows", "avoided"]

RECENT_KEPT = 64
_OUTCOME_INDEX = {outcome: i for i, outcome in enumerate(Outcome)}
_OUTCOME_VALUES = tuple(outcome.value for outcome in Outcome)


def _occurred(a: Attempt) -> datetime:
    return a.occurred_at


@dataclass(slots=True)
class History:
    """The recent attempts in full, by `occurred_at` (arrival order among equal times), and the
    running figures; a value, never changed once built (not frozen only for the cost of building a
    frozen dataclass: `figures`). `figures` and `windows` are None in a state stored before they were kept:
    they are then folded from the archive and the recent attempts when read."""

    recent: tuple[Attempt, ...] = ()
    archive: Figures = field(default_factory=Figures)
    counts: tuple[int, ...] = (0, 0, 0, 0, 0)  # by outcome, in `Outcome` order
    timezone: str = "UTC"
    days: tuple[date, ...] = ()  # the local day each recent attempt occurred on, in `timezone`
    figures: Figures | None = None  # over every attempt placed, folded with ...
    figures_restart: int | None = None  # ... this `restart_after_days`
    windows: Windows | None = None

    @property
    def newest(self) -> Attempt | None:
        return self.recent[-1] if self.recent else None

    @property
    def position(self) -> int:
        return sum(self.counts)

    def by_outcome(self) -> dict[str, int]:
        return dict(zip(_OUTCOME_VALUES, self.counts, strict=False))  # both in `Outcome` order

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
        i = _OUTCOME_INDEX[a.outcome]
        counts = (*self.counts[:i], self.counts[i] + 1, *self.counts[i + 1 :])
        recent = self.recent
        if len(recent) >= RECENT_KEPT and a.occurred_at < recent[0].occurred_at:
            return replace(self, counts=counts)
        day = a.occurred_at.astimezone(ZoneInfo(self.timezone)).date()
        if recent and a.occurred_at < recent[-1].occurred_at:
            return self._with_late(a, day, counts, restart_after_days)
        figures = self.read_figures(restart_after_days).with_attempt(a, day, restart_after_days)
        archive, days = self.archive, self.days
        if len(recent) >= RECENT_KEPT:
            oldest = recent[0]
            archive = archive.with_attempt(oldest, days[0], restart_after_days)
            windows = self.read_windows().with_attempt(a, leaving=oldest)
            recent, days = (*recent[1:], a), (*days[1:], day)
        else:
            windows = self.read_windows().with_attempt(a)
            recent, days = (*recent, a), (*days, day)
        return History(recent, archive, counts, self.timezone, days, figures, restart_after_days, windows)

    def _with_late(self, a: Attempt, day: date, counts: tuple[int, ...], restart_after_days: int | None) -> History:
        """`a` placed among the recent attempts before newer ones: what follows it is folded again."""
        recent, days, archive = list(self.recent), list(self.days), self.archive
        at = bisect.bisect_right(recent, a.occurred_at, key=_occurred)
        recent.insert(at, a)
        days.insert(at, day)
        while len(recent) > RECENT_KEPT:
            archive = archive.with_attempt(recent.pop(0), days.pop(0), restart_after_days)
        return History(tuple(recent), archive, counts, self.timezone, tuple(days)).folded(restart_after_days)

    def with_timezone(self, timezone: str) -> History:
        """The same attempts, their local days in `timezone` from now on."""
        zone = ZoneInfo(timezone)
        days = tuple(a.occurred_at.astimezone(zone).date() for a in self.recent)
        return replace(self, timezone=timezone, days=days).folded(self.figures_restart)

    def folded(self, restart_after_days: int | None) -> History:
        """This history with its figures and windows folded again from the archive and the recent attempts."""
        figures, windows = self.archive, Windows()
        for a, day in zip(self.recent, self.days, strict=True):
            figures = figures.with_attempt(a, day, restart_after_days)
            windows = windows.with_attempt(a)
        return replace(self, figures=figures, figures_restart=restart_after_days, windows=windows)

    # Reading ------------------------------------------------------------------------------------

    def read_figures(self, restart_after_days: int | None) -> Figures:
        """The figures over every attempt placed, with breaks of `restart_after_days`."""
        if self.figures is not None and self.figures_restart == restart_after_days:
            return self.figures
        if not self.recent:
            return self.archive
        figures = self.folded(restart_after_days).figures
        assert figures is not None
        return figures

    def read_windows(self) -> Windows:
        if self.windows is not None:
            return self.windows
        windows = Windows()
        for a in self.recent:
            windows = windows.with_attempt(a)
        return windows

    def current_level(self, restart_after_days: int | None = None) -> int | None:
        """The level of the latest assigned attempt, else of the latest attempt; None before any."""
        assigned = self.read_figures(restart_after_days).last_assigned_level
        if assigned is not None:
            return assigned
        return self.recent[-1].level if self.recent else None

    def run_at(self, level: int, restart_after_days: int | None = None) -> LevelRun:
        """The run at `level` (DOMAIN "Ready to step up"): scanning back from the newest attempt, those
        at `level`, skipping self-chosen attempts elsewhere, up to an assigned attempt at another level
        or (with `restart_after_days`) a break."""
        return self.read_figures(restart_after_days).run(level)

    def streak_days(self, restart_after_days: int | None = None) -> int:
        """Consecutive local days with a completed attempt, ending on the newest attempt's local day
        (0 when that day has none)."""
        if not self.days:
            return 0
        figures = self.read_figures(restart_after_days)
        return figures.streak_length if figures.streak_last_day == self.days[-1] else 0

    def expectancy(self, restart_after_days: int | None = None) -> float | None:
        """Mean `prediction_came_true` of the last 5 attempts that report it, to 1 decimal."""
        return self.read_figures(restart_after_days).expectancy()

    def recent_run(self, level: int, days: int | None) -> tuple[Attempt, ...]:
        """The run at `level` among the recent attempts, oldest first (the evidence of a rule)."""
        start = self._since_break(days)
        run: list[Attempt] = []
        for a in reversed(self.recent[start:]):
            if a.level == level:
                run.append(a)
            elif a.assignment_id is not None:
                break
        run.reverse()
        return tuple(run)

    def _since_break(self, days: int | None) -> int:
        """Where the recent attempts after the last break begin (an index)."""
        if days is None:
            return 0
        last_completed = self.archive.last_completed_at
        start = 0
        for i, a in enumerate(self.recent):
            if ends_break_after(last_completed, a, days):
                start = i
            if a.outcome in COMPLETED_OUTCOMES:
                last_completed = a.occurred_at
        return start

    def ends_a_break(self, a: Attempt, days: int | None) -> bool:
        """Whether `a` (one of the recent attempts) is the first after a break."""
        if days is None:
            return False
        newest = self.newest
        if newest is not None and a.attempt_id == newest.attempt_id:
            return self.read_figures(days).ended_break
        previous = self.archive.last_completed_at
        for earlier in self.recent:
            if earlier.attempt_id == a.attempt_id:
                break
            if earlier.outcome in COMPLETED_OUTCOMES:
                previous = earlier.occurred_at
        return ends_break_after(previous, a, days)


def avoided(outcomes: Sequence[Outcome]) -> bool:
    return any(o in AVOIDANCE_OUTCOMES for o in outcomes)
