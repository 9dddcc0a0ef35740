"""Properties of the overload rules, the warning lifecycle and the progress view over random histories."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from stepout_contract.outputs import ProgressView
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.overload import RULE_IDS, SEVERITY_RANK, RuleHit, Severity, evaluate
from stepout_domain.progress import progress_view
from stepout_domain.ruleset import DEFAULT_RULESET
from stepout_domain.warnings import Clearing, Warning, after_attempt, after_review

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
    """What a tracker would record, folding a timeline step by step."""

    history: list[Attempt] = field(default_factory=list)
    active: Warning | None = None
    raised: list[Warning] = field(default_factory=list)
    steps: list[tuple[list[RuleHit], Clearing | None, Warning | None]] = field(default_factory=list)
    views: list[dict[str, object]] = field(default_factory=list)
    reviewed_at: datetime | None = None


def fold(timeline: list[Attempt | datetime]) -> Fold:
    state = Fold()
    for step in timeline:
        if isinstance(step, datetime):
            state.reviewed_at = step
            hits = evaluate(state.history, RULES, since=step)
            cleared = after_review(USER, state.active, hits, step, RULES)
            check_clearing(state, cleared, step)
            state.steps.append((hits, cleared, None))
            continue
        state.history.append(step)
        hits = evaluate(state.history, RULES, since=state.reviewed_at)
        past = [w.raised_at for w in state.raised]
        cleared, warning = after_attempt(USER, state.active, hits, past, step.occurred_at, step.attempt_id, RULES)
        check_clearing(state, cleared, step.occurred_at)
        if warning is not None:
            assert state.active is None, "a warning is raised only when none is active"
            state.active = warning
            state.raised.append(warning)
        if hits:
            assert state.active is not None
            assert {h.rule for h in hits} <= state.active.rule_ids, "the active warning lists every rule that holds"
        state.steps.append((hits, cleared, warning))
        state.views.append(progress_view(USER, state.history, "Europe/Berlin", state.active, RULES))
    return state


def check_clearing(state: Fold, cleared: Clearing | None, at: datetime) -> None:
    if cleared is None:
        return
    assert state.active is not None and cleared.warning_id == state.active.warning_id
    assert cleared.cleared_at == at
    if cleared.by == "rules":
        assert state.active.severity is not Severity.CRISIS
    state.active = None


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
