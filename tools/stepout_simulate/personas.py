"""The synthetic cohort of `stepout simulate`: personas, each participant's script, and the ground truth.

Pure: no I/O and no clock. Everything a participant does is drawn from its own
`random.Random`, seeded from the run's seed and the participant's index, so the same
seed always gives the same participants, the same schedule and the same ids, whatever
the other participants do. The overload episodes the simulator injects are recorded
here as they happen (`Episode`), so that the run can judge whether stepout caught them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TIMEZONES: tuple[str, ...] = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)

# The rule each injected episode is built to trigger (DOMAIN.md "Overload warnings").
STREAK = "rejection_streak"
HOSTILE = "hostile_rejections"
CRISIS = "crisis_reported"

BURST_GAP_MINUTES = (20, 45)  # between the attempts of an over-doer's burst
HOSTILE_WINDOW = timedelta(days=7)
STREAK_WINDOW = timedelta(hours=24)
STREAK_LENGTH = 5

# Dead-letter reasons a persona provokes on purpose. None sends bad input: every input it publishes
# is one the contract accepts, so any dead letter is stepout refusing a valid input.
DELIBERATE_DEAD_LETTERS: frozenset[str] = frozenset()

# The coach every simulated participant is enrolled with, and who reviews them (the console's
# development account of that name sees them all).
COACH_ID = "sim-coach"


@dataclass(frozen=True)
class Persona:
    """How one kind of participant behaves. Peaks: the first at level L is about
    `peak_slope * L + peak_offset`, then each repeat at the same level multiplies it by `decay`."""

    name: str
    share: float
    active_days: float  # chance of doing anything on a given day
    per_day: tuple[int, int]  # attempts on an active day (inclusive range)
    outcomes: dict[str, float]  # baseline outcome weights
    peak_slope: float
    peak_offset: float
    peak_cap: int
    decay: float
    came_true: tuple[int, int]  # range of `prediction_came_true`
    daily_limit: int = 3
    episode: str | None = None


PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="steady climber",
        share=0.50,
        active_days=0.90,
        per_day=(1, 1),
        outcomes={"rejected": 0.64, "accepted": 0.33, "escaped": 0.01, "skipped": 0.02},
        peak_slope=8,
        peak_offset=22,
        peak_cap=88,
        decay=0.7,
        came_true=(5, 35),
    ),
    Persona(
        name="avoider",
        share=0.15,
        active_days=0.65,
        per_day=(1, 1),
        outcomes={"rejected": 0.30, "accepted": 0.15, "escaped": 0.35, "skipped": 0.20},
        peak_slope=10,
        peak_offset=45,
        peak_cap=100,
        decay=0.9,
        came_true=(40, 85),
    ),
    Persona(
        name="over-doer",
        share=0.15,
        active_days=0.95,
        per_day=(2, 3),
        outcomes={"rejected": 0.60, "accepted": 0.38, "escaped": 0.01, "skipped": 0.01},
        peak_slope=8,
        peak_offset=22,
        peak_cap=88,
        decay=0.7,
        came_true=(5, 40),
        daily_limit=10,  # wants more than the default 3 a day
        episode=STREAK,
    ),
    Persona(
        name="hostile environment",
        share=0.10,
        active_days=0.90,
        per_day=(1, 1),
        outcomes={"rejected": 0.64, "accepted": 0.33, "escaped": 0.01, "skipped": 0.02},
        peak_slope=8,
        peak_offset=25,
        peak_cap=90,
        decay=0.75,
        came_true=(10, 50),
        episode=HOSTILE,
    ),
    Persona(
        name="crisis",
        share=0.10,
        active_days=0.85,
        per_day=(1, 1),
        outcomes={"rejected": 0.55, "accepted": 0.33, "escaped": 0.05, "skipped": 0.07},
        peak_slope=9,
        peak_offset=30,
        peak_cap=95,
        decay=0.8,
        came_true=(20, 70),
        episode=CRISIS,
    ),
)
STEADY = PERSONAS[0].name


def assign_personas(count: int, rng: random.Random) -> list[Persona]:
    """`count` personas in the shares of `PERSONAS` (largest remainder), shuffled by `rng`."""
    exact = [p.share * count for p in PERSONAS]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(PERSONAS)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    cohort = [p for p, n in zip(PERSONAS, counts, strict=True) for _ in range(n)]
    rng.shuffle(cohort)
    return cohort


def local_moment(day: date, hours: float, timezone: str) -> datetime:
    """`hours` after local midnight of `day`, in UTC, to the minute."""
    start = datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone))
    return (start + timedelta(minutes=round(hours * 60))).astimezone(UTC)


@dataclass(frozen=True)
class Planned:
    """The next attempt a participant means to make: when, and which step of its script."""

    at: datetime
    step: str  # "baseline", "burst_accepted", "burst_rejected", "hostile", "crisis"


@dataclass
class Attempted:
    """An attempt the participant made, as the ground truth remembers it."""

    attempt_id: str
    at: datetime
    level: int
    outcome: str
    step: str


@dataclass
class Episode:
    """An overload episode the simulator injected: its rule and the attempt at which it first holds."""

    rule: str
    onset_index: int
    onset_id: str
    onset_at: datetime


@dataclass
class Script:
    """One synthetic participant: who they are, when they act, and what they report."""

    index: int
    seed: int
    persona: Persona
    days: int
    end: datetime
    rng: random.Random = field(init=False)
    user_id: str = field(init=False)
    timezone: str = field(init=False)
    starting_level: int = field(init=False)
    sensitivity: float = field(init=False)  # added to every first peak: some people feel more
    enrolled_at: datetime = field(init=False)
    episode_from: datetime | None = field(init=False, default=None)
    attempts: list[Attempted] = field(init=False, default_factory=list)
    episode: Episode | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        rng = self.rng = random.Random(f"stepout-simulate/{self.seed}/{self.index}")
        self.user_id = f"sim{self.seed}-{self.index:05d}"
        self.timezone = rng.choice(TIMEZONES)
        self.starting_level = rng.randint(2, 4)
        self.sensitivity = rng.uniform(-5, 5)
        first_day = self.end.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=self.days)
        self.enrolled_at = local_moment(first_day, rng.uniform(7, 9), self.timezone)
        episode_day = first_day + timedelta(days=rng.randint(1, max(1, self.days - 2)))
        if self.persona.episode is not None:
            self.episode_from = local_moment(episode_day, 0, self.timezone)
        self._slots = self._draw_slots(first_day, episode_day)
        self._burst: list[str] = []
        self._hostile_at: datetime | None = None
        self._run_level: int | None = None
        self._run_length = 0

    def _draw_slots(self, first_day: date, episode_day: date) -> list[tuple[datetime, str]]:
        slots: list[tuple[datetime, str]] = []
        low, high = self.persona.per_day
        for offset in range(self.days + 1):
            day = first_day + timedelta(days=offset)
            if self.persona.episode == STREAK and day == episode_day:
                slots.append((local_moment(day, self.rng.uniform(10, 13), self.timezone), "burst"))
                continue
            if self.rng.random() >= self.persona.active_days:
                continue
            count = self.rng.randint(low, high)
            span = 13.0 / count  # spread over 09:00-22:00 local
            for k in range(count):
                slots.append((local_moment(day, 9 + span * k + self.rng.uniform(0, span * 0.8), self.timezone), ""))
        return [(at, tag) for at, tag in sorted(slots) if at > self.enrolled_at]

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def enrolment(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "starting_level": self.starting_level,
            "daily_limit": self.persona.daily_limit,
            "timezone": self.timezone,
            "coach_id": COACH_ID,
        }

    # -- when ---------------------------------------------------------------------------------

    def next_attempt(self, earliest: datetime) -> Planned | None:
        """The next attempt at or after `earliest`, or None when the script has nothing left."""
        if self._burst:
            gap = timedelta(minutes=self.rng.randint(*BURST_GAP_MINUTES))
            return Planned(max(earliest, self.attempts[-1].at + gap), self._burst.pop(0))
        while self._slots and self._slots[0][0] < earliest and self._slots[0][1] != "burst":
            self._slots.pop(0)
        if not self._slots:
            return None
        at, tag = self._slots.pop(0)
        at = max(at, earliest)
        if tag == "burst":
            self._burst = ["burst_rejected"] * self.rng.randint(STREAK_LENGTH, STREAK_LENGTH + 2)
            return Planned(at, "burst_accepted")
        if self._hostile_at is not None and self.episode is None:
            # The second hostile of the pair; if it comes too late for the 7-day window, the next tries again.
            return Planned(at, "hostile")
        if self._episode_due(at):
            return Planned(at, "hostile" if self.persona.episode == HOSTILE else "crisis")
        return Planned(at, "baseline")

    def _episode_due(self, at: datetime) -> bool:
        return (
            self.persona.episode in (HOSTILE, CRISIS)
            and self.episode_from is not None
            and at >= self.episode_from
            and self.episode is None
            and self._hostile_at is None
        )

    def review_delay(self) -> timedelta:
        """How long after a crisis pause the coach's review comes: one to two days."""
        return timedelta(minutes=self.rng.randint(24 * 60, 48 * 60))

    # -- what ---------------------------------------------------------------------------------

    def attempt(self, planned: Planned, assignment: dict[str, Any]) -> dict[str, Any]:
        """The `attempt.logged` data answering `assignment` at `planned.at`; recorded as done."""
        level = int(assignment["level"])
        if level != self._run_level:
            self._run_level, self._run_length = level, 0
        outcome, crisis = self._outcome(planned.step), planned.step == "crisis"
        data: dict[str, Any] = {
            "attempt_id": self.new_id(),
            "user_id": self.user_id,
            "assignment_id": assignment["assignment_id"],
            "challenge_id": assignment["challenge_id"],
            "outcome": outcome,
            "occurred_at": planned.at,
        }
        if outcome != "skipped":
            peak = self._peak(level, outcome, planned.step)
            data.update(
                suds_before=round(peak * self.rng.uniform(0.45, 0.7)),
                suds_peak=peak,
                suds_after=round(peak * self.rng.uniform(0.6, 0.8) if crisis else peak * self.rng.uniform(0.2, 0.45)),
                predicted_suds=min(100, peak + self.rng.randint(5, 25)),
                prediction_came_true=self.rng.randint(*self.persona.came_true),
            )
            self._run_length += 1
        if crisis:
            data["crisis_reported"] = True
        self._record(Attempted(data["attempt_id"], planned.at, level, outcome, planned.step))
        return data

    def _outcome(self, step: str) -> str:
        fixed = {"burst_accepted": "accepted", "burst_rejected": "rejected", "hostile": "hostile", "crisis": "rejected"}
        if step in fixed:
            return fixed[step]
        names = list(self.persona.outcomes)
        return self.rng.choices(names, weights=[self.persona.outcomes[n] for n in names])[0]

    def _peak(self, level: int, outcome: str, step: str) -> int:
        p = self.persona
        first = p.peak_slope * level + p.peak_offset + self.sensitivity
        peak = max(8.0, first * p.decay**self._run_length) + self.rng.uniform(-6, 6)
        if outcome in ("escaped", "hostile"):
            peak += 12
        if step == "crisis":
            peak = self.rng.uniform(90, 100)
        return int(min(p.peak_cap if step != "crisis" else 100, max(5, round(peak))))

    def _record(self, done: Attempted) -> None:
        self.attempts.append(done)
        index = len(self.attempts) - 1
        if done.step == "crisis":
            self.episode = Episode(CRISIS, index, done.attempt_id, done.at)
        elif done.step == "hostile":
            first, self._hostile_at = self._hostile_at, done.at
            if first is not None and done.at - first <= HOSTILE_WINDOW:
                self.episode = Episode(HOSTILE, index, done.attempt_id, done.at)
        elif done.step == "burst_rejected":
            streak = [a for a in self.attempts if a.step == "burst_rejected"]
            if len(streak) == STREAK_LENGTH and done.at - streak[0].at <= STREAK_WINDOW:
                self.episode = Episode(STREAK, index, done.attempt_id, done.at)

    def attempt_after(self, index: int) -> Attempted | None:
        return self.attempts[index + 1] if index + 1 < len(self.attempts) else None
