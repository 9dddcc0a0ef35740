"""Properties of the overload rules, the warning lifecycle and the progress view over random histories."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from stepout_contract import wire
from stepout_contract.outputs import ProgressView
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.overload import RULE_IDS, SEVERITY_RANK, RuleHit, Severity
from stepout_domain.ruleset import DEFAULT_RULESET
from stepout_domain.tracker_commands import Enrol, RecordAttempt, Review
from stepout_domain.tracker_events import ProgressUpdated, TrackerEvent, WarningCleared, WarningRaised
from stepout_domain.tracking import TrackerState, decide, hits_of, initial_state, replay
from stepout_domain.warnings import Clearing, Warning

RULES = DEFAULT_RULESET
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
USER = "u-1"


@st.composite
def attempts_after(draw: st.DrawFn, n: int, at: datetime) -> Attempt:
    outcome = draw(st.sampled_from(list(Outcome)))
    peak = None if outcome is Outcome.SKIPPED else draw(st.sampled_from([10, 20, 50, 70, 84, 85, 90, 100]))
    assigned = draw(st.booleans() | st.just(True))
    return Attempt(
        attempt_id=f"a{n}",
        occurred_at=at,
        level=draw(st.integers(2, 4)),
        outcome=outcome,
        challenge_id="c-1",
        assignment_id=f"as{n}" if assigned else None,
        suds_before=None if peak is None else min(peak, 20),
        suds_peak=peak,
        suds_after=None if peak is None else min(peak, draw(st.sampled_from([10, 20, 30]))),
        prediction_came_true=draw(st.none() | st.integers(0, 100)),
        crisis_reported=draw(st.integers(0, 30)) == 0,
    )


@st.composite
def timelines(draw: st.DrawFn) -> list[Attempt | datetime]:
    """Attempts (and, as bare times, coach reviews) in time order, minutes to days apart."""
    at, steps = T0, list[Attempt | datetime]()
    for n in range(draw(st.integers(1, 30))):
        at += timedelta(minutes=draw(st.sampled_from([0, 30, 60 * 6, 60 * 24, 60 * 49, 60 * 24 * 8])))
        if draw(st.integers(0, 12)) == 0:
            steps.append(at)
        steps.append(draw(attempts_after(n, at)))
    return steps


def enrolled(user_id: str) -> TrackerState:
    state = initial_state(user_id)
    return replay(state, decide(state, Enrol("Europe/Berlin", T0), RULES))


@dataclass
class Fold:
    """What a tracker records, folding a timeline step by step with the domain's own decider."""

    state: TrackerState = field(default_factory=lambda: enrolled(USER))
    raised: list[Warning] = field(default_factory=list)
    steps: list[tuple[list[RuleHit], Clearing | None, Warning | None]] = field(default_factory=list)
    views: list[dict[str, object]] = field(default_factory=list)

    @property
    def active(self) -> Warning | None:
        return self.state.active_warning


def _cleared(events: list[TrackerEvent]) -> Clearing | None:
    return next((e.clearing for e in events if isinstance(e, WarningCleared)), None)


def _raised(events: list[TrackerEvent]) -> Warning | None:
    return next((e.warning for e in events if isinstance(e, WarningRaised)), None)


def fold(timeline: list[Attempt | datetime]) -> Fold:
    f = Fold()
    for step in timeline:
        if isinstance(step, datetime):
            events = decide(f.state, Review(step), RULES)
            cleared = _cleared(events)
            check_clearing(f, cleared, step)
            f.state = replay(f.state, events)
            f.steps.append((hits_of(f.state, RULES), cleared, None))
            continue
        events = decide(f.state, RecordAttempt(step, step.occurred_at), RULES)
        cleared, raised = _cleared(events), _raised(events)
        if raised is not None:
            assert cleared is not None or f.active is None, "a warning is raised only when none is active"
        after = replay(f.state, events[:1])
        assert after.history.newest is not None
        check_clearing(f, cleared, after.history.newest.occurred_at)
        f.state = replay(f.state, events)
        hits = hits_of(f.state, RULES)
        if raised is not None:
            f.raised.append(raised)
        if hits:
            assert f.active is not None
            assert {h.rule for h in hits} <= f.active.rule_ids, "the active warning lists every rule that holds"
        f.steps.append((hits, cleared, raised))
        f.views.extend(e.view for e in events if isinstance(e, ProgressUpdated))
    return f


def check_clearing(f: Fold, cleared: Clearing | None, at: datetime) -> None:
    if cleared is None:
        return
    assert f.active is not None and cleared.warning_id == f.active.warning_id
    assert cleared.cleared_at == at
    if cleared.by == "rules":
        assert f.active.severity is not Severity.CRISIS


@settings(max_examples=150, deadline=None)
@given(timelines())
def test_warning_lifecycle_stays_consistent_over_a_whole_history(timeline: list[Attempt | datetime]) -> None:
    state = fold(timeline)
    for _, cleared, warning in state.steps:
        if cleared is not None and cleared.by == "superseded":
            assert warning is not None, "a superseded warning is replaced in the same step"
        if warning is not None and cleared is not None:
            assert cleared.by == "superseded"
    assert len({w.warning_id for w in state.raised}) == len(state.raised)


@settings(max_examples=150, deadline=None)
@given(timelines())
def test_severity_is_the_highest_of_the_warnings_rules(timeline: list[Attempt | datetime]) -> None:
    for warning in fold(timeline).raised:
        assert warning.rules
        assert SEVERITY_RANK[warning.severity] == max(SEVERITY_RANK[h.severity] for h in warning.rules)
        assert [h.rule for h in warning.rules] == sorted((h.rule for h in warning.rules), key=RULE_IDS.index)
        if warning.severity is not Severity.CAUTION:
            assert warning.escalate
        assert set(warning.evidence) == {i for h in warning.rules for i in h.evidence}


@settings(max_examples=100, deadline=None)
@given(timelines())
def test_the_same_history_always_gives_the_same_decisions(timeline: list[Attempt | datetime]) -> None:
    first, second = fold(timeline), fold(list(timeline))
    assert first.steps == second.steps
    assert first.views == second.views
    assert [wire.warning(w) for w in first.raised] == [wire.warning(w) for w in second.raised]


@settings(max_examples=50, deadline=None)
@given(timelines())
def test_every_progress_view_is_contract_valid_json(timeline: list[Attempt | datetime]) -> None:
    state = fold(timeline)
    for position, view in enumerate(state.views, start=1):
        assert json.loads(json.dumps(view)) == view
        assert ProgressView.model_validate(view).position == position
