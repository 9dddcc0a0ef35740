"""The tracker as a decider (docs/RULES.md "Overload warnings", "Clearing", "Progress"), in the
planner's shape: `decide(state, command, rules)` returns the events an input causes and
`evolve(state, event)` folds them. Both are pure and read no clock, so the service and
`stepout audit decisions` run exactly this, and a replay of the same inputs decides the same.

- Attempts are judged in `occurred_at` order. A late-synced attempt is placed where it belongs
  and every rule is judged at the newest attempt (docs/LATE-DATA.md).
- Every reported crisis raises a crisis warning, whenever it occurred. A crisis report is covered
  by a review only when the review says it happened at or after the report arrived.
- A review from another coach than the participant's (the `coach_id` of the enrolment in force)
  is refused (`refusals.review_refusal`): `decide` returns the `Refusal`, the service dead-letters
  the input, and nothing changes. A participant enrolled without a coach takes any coach's review.
- A review or an enrolment no later than the last one of its kind recorded is that one again (or
  older) and decides nothing. (A repeated CloudEvent id, and an `attempt_id` seen before, are
  told apart before deciding: the participant's state keeps the last input ids, the store an
  index of attempt ids.)
"""

from __future__ import annotations

from collections.abc import Sequence

from stepout_domain import overload, progress, warnings
from stepout_domain.attempts import Attempt
from stepout_domain.refusals import Refusal, review_refusal
from stepout_domain.ruleset import RuleSet
from stepout_domain.tracker_commands import Enrol, RecordAttempt, Review, TrackerCommand, Withdraw
from stepout_domain.tracker_events import (
    AttemptRecorded,
    Enrolled,
    EnrolmentChanged,
    ProgressUpdated,
    Reviewed,
    TrackerEvent,
    WarningCleared,
    WarningRaised,
    Withdrawn,
)
from stepout_domain.tracker_state import (
    TrackerState,
    changed,
    erasure_summary,
    initial_state,
    with_attempt,
    with_clearing,
    with_enrolment,
    with_erasure,
    with_input,
    with_review,
    with_warning,
    with_withdrawal,
)
from stepout_domain.warnings import Warning

__all__ = [
    "Refusal",
    "TrackerState",
    "decide",
    "erasure_summary",
    "evolve",
    "hits_of",
    "initial_state",
    "progress_view",
    "replay",
    "with_input",
]


def hits_of(state: TrackerState, rules: RuleSet, evidence: bool = True) -> list[overload.RuleHit]:
    """Every rule that holds on the participant's history now (without `evidence`, `no_habituation`
    names none: `overload.with_evidence`)."""
    return overload.evaluate(state.history, rules, (state.crisis_evidence, state.crisis_count), evidence)


def progress_view(
    state: TrackerState, rules: RuleSet, arrived: Attempt | None = None, active: Warning | bool | None = True
) -> dict[str, object]:
    """The progress view after the latest change; `last_attempt` is the attempt just recorded
    (the one the planner closes an assignment with), the newest one when none is given. `active`:
    the active warning when it is not yet the state's (a decision's own), True for the state's."""
    warning = state.active_warning if active is True else active or None
    return progress.progress_view(
        state.user_id, state.history, warning, rules, arrived=arrived, withdrawn=state.withdrawn
    )


def decide(state: TrackerState, command: TrackerCommand, rules: RuleSet) -> list[TrackerEvent] | Refusal:
    """The events `command` causes for the participant in `state`; equal arguments give equal events.
    A review by another coach than the participant's is refused: the `Refusal`, and no event."""
    match command:
        case Enrol():
            if not state.enrolled:
                return [Enrolled(state.user_id, command.timezone, command.at, command.coach_id)]
            if state.enrolment_is_stale(command.at):
                return []
            return [EnrolmentChanged(command.timezone, command.at, command.coach_id)]
        case RecordAttempt():
            return _record(state, command, rules)
        case Review():
            return _review(state, command, rules)
        case Withdraw():
            if state.withdrawn and not command.erase:
                return []
            return [Withdrawn(command.erase, command.at)]
    raise TypeError(f"no decision for {type(command).__name__}")


def _record(state: TrackerState, command: RecordAttempt, rules: RuleSet) -> list[TrackerEvent]:
    """The attempt, what it does to the warnings (judged on the history with it in its place, at the
    newest attempt), and the progress view after it."""
    recorded = AttemptRecorded(command.attempt, command.reported_at, rules.return_after_days)
    after = evolve(state, recorded)
    newest = after.history.newest
    assert newest is not None
    hits = hits_of(after, rules, evidence=False)
    if warnings.raises(state.active_warning, hits):
        hits = overload.with_evidence(hits, after.history, rules)
    cleared, raised = warnings.after_attempt(
        state.user_id,
        state.active_warning,
        hits,
        state.warnings_raised_at,
        newest.occurred_at,
        command.attempt.attempt_id,
        rules,
    )
    events: list[TrackerEvent] = [recorded]
    if cleared is not None:
        events.append(WarningCleared(cleared))
    if raised is not None:
        events.append(WarningRaised(raised))
    # The view after the decision's events: `after` with the warning they leave active.
    active = raised if raised is not None else None if cleared is not None else state.active_warning
    events.append(ProgressUpdated(progress_view(after, rules, arrived=command.attempt, active=active)))
    return events


def _review(state: TrackerState, command: Review, rules: RuleSet) -> list[TrackerEvent] | Refusal:
    """A coach's review: refused when it is not the participant's coach's; recorded unless it is that
    review again (or an older one); it clears the active warning when it may (a review before the
    warning's input arrived changes nothing)."""
    if (refused := review_refusal(state.coach_id, command.coach_id)) is not None:
        return refused
    if state.review_is_stale(command.reviewed_at):
        return []
    reviewed = Reviewed(command.reviewed_at)
    active = state.active_warning
    if active is None or (state.active_since is not None and command.reviewed_at < state.active_since):
        return [reviewed]
    after = evolve(state, reviewed)
    hits = hits_of(after, rules) if after.history.recent else []
    cleared = warnings.after_review(state.user_id, active, hits, command.reviewed_at, rules)
    if cleared is None:
        return [reviewed]
    events: list[TrackerEvent] = [reviewed, WarningCleared(cleared)]
    events.append(ProgressUpdated(progress_view(replay(after, events[1:]), rules)))
    return events


def evolve(state: TrackerState, event: TrackerEvent) -> TrackerState:
    """The state after `event`; pure, so folding a stored history rebuilds the participant exactly."""
    match event:  # the most frequent first: each class pattern is an isinstance check
        case AttemptRecorded():
            return _with_recorded(state, event)
        case ProgressUpdated():
            return state
        case WarningRaised():
            return with_warning(state, event.warning)
        case WarningCleared():
            return with_clearing(state)
        case Enrolled():
            return with_enrolment(changed(state, user_id=event.user_id), event.timezone, event.at, event.coach_id)
        case EnrolmentChanged():
            return with_enrolment(state, event.timezone, event.at, event.coach_id)
        case Reviewed():
            return with_review(state, event.reviewed_at)
        case Withdrawn():
            withdrawn = with_withdrawal(state)
            return with_erasure(withdrawn) if event.erase else withdrawn
    raise TypeError(f"no change for {type(event).__name__}")


class _LastRecorded:
    """The last attempt folded, with the state it was folded into and the result. `decide` folds an
    attempt to judge it, and the caller then folds the same event into the same state (the service
    from its stored record, so an equal event): that second fold returns the first one's result.
    A memo of a pure function, matched by the state's identity, so what `evolve` returns is unchanged."""

    entry: tuple[TrackerState, AttemptRecorded, TrackerState] | None = None


def _with_recorded(state: TrackerState, event: AttemptRecorded) -> TrackerState:
    last = _LastRecorded.entry  # one read: another thread may replace it, never tear it
    if last is not None and last[0] is state and (last[1] is event or last[1] == event):
        return last[2]
    after = with_attempt(state, event.attempt, event.reported_at, event.restart_after_days)
    _LastRecorded.entry = (state, event, after)
    return after


def replay(state: TrackerState, events: Sequence[TrackerEvent]) -> TrackerState:
    for event in events:
        state = evolve(state, event)
    return state
