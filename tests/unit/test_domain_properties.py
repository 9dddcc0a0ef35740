"""Properties of the overload rules, the warning lifecycle and the progress view over random histories."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from stepout_contract.outputs import ProgressView
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.overload import RULE_IDS, SEVERITY_RANK, RuleHit, Severity
from stepout_domain.ruleset import DEFAULT_RULESET
from stepout_domain.tracking import (
    TrackerState,
    decide_attempt,
    decide_review,
    hits_of,
    initial_state,
    progress_view,
    with_attempt,
    with_clearing,
    with_review,
    with_warning,
)
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


@dataclass
class Fold:
    """What a tracker records, folding a timeline step by step with the domain's own decider."""

    state: TrackerState = field(default_factory=lambda: initial_state(USER, "Europe/Berlin"))
    raised: list[Warning] = field(default_factory=list)
    steps: list[tuple[list[RuleHit], Clearing | None, Warning | None]] = field(default_factory=list)
    views: list[dict[str, object]] = field(default_factory=list)

    @property
    def active(self) -> Warning | None:
        return self.state.active_warning


def fold(timeline: list[Attempt | datetime]) -> Fold:
    f = Fold()
    for step in timeline:
        if isinstance(step, datetime):
            cleared = decide_review(f.state, step, RULES)
            f.state = with_review(f.state, step)
            check_clearing(f, cleared, step)
            f.steps.append((hits_of(f.state, RULES), cleared, None))
            continue
        decision = decide_attempt(f.state, step, step.occurred_at, RULES)
        f.state = with_attempt(f.state, step, step.occurred_at)
        hits = hits_of(f.state, RULES)
        check_clearing(f, decision.cleared, f.state.attempts[-1].occurred_at)
        if decision.raised is not None:
            assert f.active is None, "a warning is raised only when none is active"
            f.state = with_warning(f.state, decision.raised)
            f.raised.append(decision.raised)
        if hits:
            assert f.active is not None
            assert {h.rule for h in hits} <= f.active.rule_ids, "the active warning lists every rule that holds"
        f.steps.append((hits, decision.cleared, decision.raised))
        f.views.append(progress_view(f.state, RULES, arrived=step))
    return f


def check_clearing(f: Fold, cleared: Clearing | None, at: datetime) -> None:
    if cleared is None:
        return
    assert f.active is not None and cleared.warning_id == f.active.warning_id
    assert cleared.cleared_at == at
    if cleared.by == "rules":
        assert f.active.severity is not Severity.CRISIS
    f.state = with_clearing(f.state)


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
    assert [w.as_wire() for w in first.raised] == [w.as_wire() for w in second.raised]


@settings(max_examples=50, deadline=None)
@given(timelines())
def test_every_progress_view_is_contract_valid_json(timeline: list[Attempt | datetime]) -> None:
    state = fold(timeline)
    for position, view in enumerate(state.views, start=1):
        assert json.loads(json.dumps(view)) == view
        assert ProgressView.model_validate(view).position == position
