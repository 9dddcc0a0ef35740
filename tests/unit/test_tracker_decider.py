"""The tracker's bounded, incremental decider against the fold it replaced.

`reference_fold` is the previous release's fold over each participant's whole history: every
decision reads every attempt again. The decider keeps the recent attempts and running figures
instead (`stepout_domain.history`, `stepout_domain.figures`), updated in constant time. Over
random histories longer than the recent tail (level walks, late-synced attempts, breaks of weeks,
crisis reports, repeated and late reviews, attempts a minute either side of local midnight, zones
with DST and at +13:45, the default rule set and the one the service runs), both must make the
same decisions: the same warnings, the same clearings and the same progress views. Every view and
output the decider makes is also read back by the contract's models: it is built as plain data,
and the contract stays the one definition of the wire.

The inputs stay inside the decider's stated limits (docs/LATE-DATA.md): no window of the rules
holds more attempts than the recent tail, and a late attempt occurred after the oldest of them.
The other two tests hold the decider to its point: what it keeps, and what a cold start reads,
do not grow with the history.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from reference_fold import tracking as reference
from reference_fold import warnings as reference_warnings

from stepout_contract import wire
from stepout_contract.outputs import OverloadCleared, OverloadWarning, ProgressView
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.history import RECENT_KEPT
from stepout_domain.plan_state import next_local_midnight
from stepout_domain.ruleset import CURRENT_VERSION, DEFAULT_RULESET, RuleSet, by_version
from stepout_domain.tracker_commands import Enrol, RecordAttempt, Review
from stepout_domain.tracker_events import ProgressUpdated, TrackerEvent, WarningCleared, WarningRaised
from stepout_domain.tracking import Refusal, TrackerState, decide, initial_state, replay

RULES = DEFAULT_RULESET
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
USER = "u-1"
ZONE = "America/New_York"  # local days differ from UTC days: streaks are counted in local days
# Local days differ from UTC days, move with DST (New York, Berlin, Chatham) or sit at +13:45.
ZONES = ("America/New_York", "Europe/Berlin", "Pacific/Chatham", "UTC")
# The built-in thresholds, and the rule set the service runs by default (breaks of 14 days).
RULE_SETS = (DEFAULT_RULESET, by_version(CURRENT_VERSION))
WIDEST_WINDOW = timedelta(days=14)
# A late attempt occurred after this many of the newest attempts at most (well inside the tail).
LATE_REACH = RECENT_KEPT - 8


@dataclass(frozen=True)
class Step:
    """One input: an attempt (with how late it arrives) or a coach's review at `at`."""

    at: datetime
    attempt: Attempt | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True)
class Case:
    """A participant's inputs, their zone and the rule set that judges them."""

    steps: list[Step]
    zone: str
    rules: RuleSet


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(ZONES))
    return Case(draw(histories(zone)), zone, draw(st.sampled_from(RULE_SETS)))


@st.composite
def histories(draw: st.DrawFn, zone: str = ZONE) -> list[Step]:
    """Up to 150 attempts on a walk up and down the ladder, a minute to weeks apart (sometimes a
    break long enough to restart a level's run, sometimes a minute either side of local midnight),
    some synced late, some reviews between (again, or late)."""
    steps: list[Step] = []
    clock, level = T0, 3
    moves = draw(st.sampled_from([3, 30, 300]))  # one in `moves` attempts changes level: long runs too
    occurred: list[datetime] = []
    for n in range(draw(st.integers(RECENT_KEPT // 2, 150))):
        clock += draw(
            st.sampled_from(
                [timedelta(hours=1)] * 2
                + [timedelta(hours=5), timedelta(hours=13), timedelta(days=1), timedelta(days=2)] * 2
                + [timedelta(days=15), timedelta(days=20), timedelta(days=35)]
            )
        )
        if draw(st.integers(0, 9)) == 0:  # at a local day's edge: where streaks and daily counts turn
            clock = next_local_midnight(clock, zone) + timedelta(minutes=draw(st.sampled_from([-1, 0, 1])))
        if draw(st.integers(1, moves)) == 1:
            level = max(1, min(8, level + draw(st.sampled_from([1, -1]))))
        at, reported_at = clock, clock
        if occurred and draw(st.integers(0, 9)) == 0:  # synced late: it occurred before others
            newer = sorted(occurred)[-LATE_REACH:]
            at = draw(st.sampled_from(newer)) - timedelta(minutes=draw(st.integers(1, 50)))
        outcome = draw(st.sampled_from(list(Outcome)))
        peak = None if outcome is Outcome.SKIPPED else draw(st.sampled_from([10, 30, 50, 70, 84, 85, 90, 100]))
        attempt = Attempt(
            attempt_id=f"a{n}",
            occurred_at=at,
            level=level,
            outcome=outcome,
            challenge_id=f"c-{level}",
            assignment_id=f"as{n}" if draw(st.integers(0, 4)) else None,
            suds_before=None if peak is None else min(peak, 20),
            suds_peak=peak,
            suds_after=None if peak is None else min(peak, draw(st.sampled_from([10, 20, 40]))),
            prediction_came_true=draw(st.none() | st.integers(0, 100)),
            crisis_reported=draw(st.integers(0, 40)) == 0,
        )
        occurred.append(at)
        steps.append(Step(at=at, attempt=attempt, reported_at=reported_at))
        if draw(st.integers(0, 8)) == 0:  # a coach's review: now, a repeat of an earlier one, or late
            kind = draw(st.sampled_from(["now", "now", "again", "late"]))
            reviewed_at = clock
            if kind == "again" and any(s.attempt is None for s in steps):
                reviewed_at = next(s.at for s in reversed(steps) if s.attempt is None)
            elif kind == "late":
                reviewed_at = clock - timedelta(minutes=draw(st.integers(1, 600)))
            steps.append(Step(at=reviewed_at))
    # Inside the decider's limits: no window of the rules holds more attempts than the tail.
    times = sorted(occurred)
    assume(all(times[i + RECENT_KEPT - 1] - times[i] > WIDEST_WINDOW for i in range(len(times) - RECENT_KEPT + 1)))
    return steps


@dataclass
class Both:
    """A participant folded by the decider and by the reference, and what each decided."""

    state: TrackerState
    old: reference.TrackerState
    decided: list[tuple[object, ...]] = field(default_factory=list)
    expected: list[tuple[object, ...]] = field(default_factory=list)


def enrolled(zone: str = ZONE, rules: RuleSet = RULES) -> Both:
    state = initial_state(USER)
    state = replay(state, checked(decide(state, Enrol(zone, T0 - timedelta(days=1)), rules)))
    return Both(state, reference.initial_state(USER, zone, T0 - timedelta(days=1)))


def checked(events: list[TrackerEvent] | Refusal) -> list[TrackerEvent]:
    assert not isinstance(events, Refusal), events
    return events


def read_back(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """`data` as the contract's `model` reads and writes it: the same values, the same keys in the
    same order (so the same bytes once dumped)."""
    again: dict[str, Any] = model.model_validate(data).model_dump(mode="json")
    assert again == data, differences(data, again)
    assert json.dumps(again) == json.dumps(data)
    return data


def outputs(events: list[TrackerEvent]) -> tuple[object, ...]:
    """What a decision publishes, as wire data, each read back by the contract's model."""
    out: list[object] = []
    for event in events:
        match event:
            case WarningCleared():
                out.append(("cleared", read_back(OverloadCleared, wire.clearing(event.clearing))))
            case WarningRaised():
                out.append(("warning", read_back(OverloadWarning, wire.warning(event.warning))))
            case ProgressUpdated():
                out.append(("progress", read_back(ProgressView, event.view)))
    return tuple(out)


def record(both: Both, attempt: Attempt, reported_at: datetime, rules: RuleSet = RULES) -> None:
    events = checked(decide(both.state, RecordAttempt(attempt, reported_at), rules))
    both.state = replay(both.state, events)
    both.decided.append(outputs(events))

    decision = reference.decide_attempt(both.old, attempt, reported_at, rules)
    old = reference.with_attempt(both.old, attempt, reported_at)
    out: list[object] = []
    if decision.cleared is not None:
        old = reference.with_clearing(old)
        out.append(("cleared", decision.cleared.as_wire()))
    if decision.raised is not None:
        old = reference.with_warning(old, decision.raised)
        out.append(("warning", bounded(decision.raised, {a.attempt_id for a in both.state.history.recent})))
    out.append(("progress", reference.progress_view(old, rules, arrived=attempt)))
    both.old = old
    both.expected.append(tuple(out))


def bounded(warning: reference_warnings.Warning, kept: set[str]) -> dict[str, object]:
    """The reference's warning with the evidence the decider gives: `no_habituation` names the
    attempt of the run's first peak and the run's attempts among the recent ones, not every
    attempt of a run that can be as long as the history."""
    hits = [
        replace(hit, evidence=tuple(e for i, e in enumerate(hit.evidence) if i == 0 or e in kept))
        if hit.rule == "no_habituation"
        else hit
        for hit in warning.rules
    ]
    as_wire = warning.as_wire()
    as_wire["evidence"] = list(dict.fromkeys(e for hit in hits for e in hit.evidence))
    return as_wire


def review(both: Both, reviewed_at: datetime, rules: RuleSet = RULES) -> None:
    events = checked(decide(both.state, Review(reviewed_at), rules))
    both.state = replay(both.state, events)
    both.decided.append(outputs(events))

    old, out = both.old, list[object]()
    if not old.review_is_stale(reviewed_at):
        cleared = reference.decide_review(old, reviewed_at, rules)
        old = reference.with_review(old, reviewed_at)
        if cleared is not None:
            old = reference.with_clearing(old)
            out += [("cleared", cleared.as_wire()), ("progress", reference.progress_view(old, rules))]
    both.old = old
    both.expected.append(tuple(out))


def differences(decided: object, expected: object, at: str = "") -> list[str]:
    """Where two decisions differ, as paths with both values: a failure a reader can act on."""
    if isinstance(decided, dict) and isinstance(expected, dict):
        keys = list(dict.fromkeys([*decided, *expected]))
        return [d for k in keys for d in differences(decided.get(k), expected.get(k), f"{at}.{k}")]
    if isinstance(decided, list | tuple) and isinstance(expected, list | tuple) and len(decided) == len(expected):
        pairs = enumerate(zip(decided, expected, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{at}[{i}]")]
    return [] if decided == expected else [f"{at}: decided {decided!r}, expected {expected!r}"]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cases())
def test_the_decider_decides_what_the_whole_history_fold_decided(case: Case) -> None:
    both = enrolled(case.zone, case.rules)
    for n, step in enumerate(case.steps):
        if step.attempt is not None:
            assert step.reported_at is not None
            record(both, step.attempt, step.reported_at, case.rules)
        else:
            review(both, step.at, case.rules)
        decided, expected = both.decided[-1], both.expected[-1]
        assert decided == expected, f"decision {n} differs: {differences(decided, expected)}"
    history = both.state.history
    assert len(history.recent) <= RECENT_KEPT
    # The running figures, updated attempt by attempt, are those of folding the archive and the recent attempts.
    again = history.folded(case.rules.return_after_days)
    assert (history.figures, history.windows) == (again.figures, again.windows)


def steady_attempts(count: int) -> list[Attempt]:
    """`count` attempts, about two a day, climbing a level every 20."""
    return [
        Attempt(
            attempt_id=f"a{n}",
            occurred_at=T0 + n * timedelta(hours=11),
            level=1 + min(n // 20, 7),
            outcome=(Outcome.REJECTED, Outcome.ACCEPTED, Outcome.HOSTILE, Outcome.ESCAPED)[n % 4],
            challenge_id="c-1",
            assignment_id=f"as{n}",
            suds_before=20,
            suds_peak=30 + n % 50,
            suds_after=20,
            prediction_came_true=n % 100,
            crisis_reported=n % 997 == 0,
        )
        for n in range(count)
    ]


def folded(count: int) -> TrackerState:
    state = enrolled().state
    for attempt in steady_attempts(count):
        state = replay(state, decide(state, RecordAttempt(attempt, attempt.occurred_at), RULES))
    return state


def test_what_the_decider_keeps_does_not_grow_with_the_history() -> None:
    after_fifty, after_five_thousand = folded(50), folded(5000)
    assert after_five_thousand.history.position == 5000
    assert len(pickle.dumps(after_five_thousand)) < 2 * len(pickle.dumps(after_fifty))
