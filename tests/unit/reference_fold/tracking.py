"""The tracker's decisions on one participant (DOMAIN.md "Overload warnings", "Clearing", "Progress"),
pure: what the service decides and what `stepout audit decisions` re-derives are these functions.

`TrackerState` is what the decisions read; the `with_*` functions are the only way it changes
(the tracker's aggregate calls them from its stored events, so folding a stored history
rebuilds it exactly). Time comes from the inputs, never from a clock:

- Attempts are judged in `occurred_at` order. A late-synced attempt is placed where it
  belongs in the history, and every rule is judged at the newest attempt, so no window
  ever sees a negative interval (docs/LATE-DATA.md).
- Every reported crisis raises a crisis warning, whenever it occurred. A crisis report is
  covered by a review only when the review was recorded after it *and* says it happened at
  or after the report arrived (`reported_at`: the input's own time, capped at its arrival);
  a review repeated later, or one that predates the report, covers nothing new.
- The same input never has its effect twice: attempts by `attempt_id`, for ever; every other
  input by its CloudEvent `id` among the participant's last `INPUT_IDS_KEPT` inputs, and for
  ever by its time: a review or an enrolment no later than the last one of its kind recorded is
  that one again (or older) and changes nothing.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from stepout_contract.vocabulary import Outcome
from stepout_domain.attempts import Attempt
from stepout_domain.ruleset import RuleSet

from . import overload, progress, warnings

# How many inputs' CloudEvent ids a participant's state remembers (attempts have their own key).
INPUT_IDS_KEPT = 256
# How many uncovered crisis reports are kept as evidence (the count goes on beyond it).
CRISIS_EVIDENCE_KEPT = 20


@dataclass(frozen=True, slots=True)
class CrisisReport:
    attempt_id: str
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class TrackerState:
    """What the tracker knows of one participant, as its decisions need it."""

    user_id: str
    timezone: str = "UTC"
    withdrawn: bool = False
    erased: bool = False
    attempts: tuple[Attempt, ...] = ()  # by `occurred_at`, arrival order among equal times
    attempt_ids: frozenset[str] = frozenset()
    # What each attempt said, as a digest, so that an `attempt_id` used again with other content is told apart.
    attempt_digests: Mapping[str, str] = field(default_factory=dict)
    active_warning: warnings.Warning | None = None
    active_since: datetime | None = None  # when the input that raised the active warning arrived
    warnings_raised_at: tuple[datetime, ...] = ()
    crisis_reports: tuple[CrisisReport, ...] = ()  # not yet covered by a review
    crisis_count: int = 0  # uncovered crisis reports, those beyond the evidence kept included
    last_review_at: datetime | None = None
    last_reported_at: datetime | None = None  # of the latest attempt recorded
    enrolment_at: datetime | None = None  # when the enrolment in force says it happened
    input_ids: tuple[str, ...] = ()
    # How many warnings were raised, by severity and by rule: kept through erasure.
    severity_counts: tuple[tuple[str, int], ...] = ()
    rule_counts: tuple[tuple[str, int], ...] = ()

    def handled(self, input_id: str) -> bool:
        """True when the input with this CloudEvent id already had its effect."""
        return input_id in self.input_ids

    def review_is_stale(self, reviewed_at: datetime) -> bool:
        """A review no later than the last one recorded covers nothing that one did not: it is the
        same review again (however late it is sent) or an older one, and has no effect."""
        return self.last_review_at is not None and reviewed_at <= self.last_review_at

    def conflicts(self, attempt_id: str, digest: str) -> bool:
        """True when `attempt_id` was recorded with other content than `digest` says."""
        known = self.attempt_digests.get(attempt_id)
        return known is not None and known != digest

    def enrolment_is_stale(self, at: datetime) -> bool:
        """An enrolment no later than the one in force is that one again, or an older one: no effect."""
        return self.enrolment_at is not None and at <= self.enrolment_at

    @property
    def crisis_evidence(self) -> tuple[str, ...]:
        return tuple(report.attempt_id for report in self.crisis_reports)


def initial_state(user_id: str, timezone: str, enrolled_at: datetime | None = None) -> TrackerState:
    return TrackerState(user_id=user_id, timezone=timezone, enrolment_at=enrolled_at)


# --- Evolving ------------------------------------------------------------------------------


def with_input(state: TrackerState, input_id: str | None) -> TrackerState:
    if input_id is None or input_id in state.input_ids:
        return state
    return replace(state, input_ids=(*state.input_ids, input_id)[-INPUT_IDS_KEPT:])


def with_enrolment(state: TrackerState, timezone: str, at: datetime) -> TrackerState:
    """A later enrolment: its settings are now in force."""
    return replace(state, timezone=timezone, enrolment_at=at)


def with_attempt(
    state: TrackerState, attempt: Attempt, reported_at: datetime, digest: str | None = None
) -> TrackerState:
    """The attempt placed in the history by `occurred_at`; a crisis it reports is kept uncovered."""
    attempts = list(state.attempts)
    at = bisect.bisect_right([a.occurred_at for a in attempts], attempt.occurred_at)
    attempts.insert(at, attempt)
    crisis_reports, crisis_count = state.crisis_reports, state.crisis_count
    if attempt.crisis_reported:
        crisis_reports = (*crisis_reports, CrisisReport(attempt.attempt_id, reported_at))[-CRISIS_EVIDENCE_KEPT:]
        crisis_count += 1
    return replace(
        state,
        attempts=tuple(attempts),
        attempt_ids=state.attempt_ids | {attempt.attempt_id},
        attempt_digests={**state.attempt_digests, attempt.attempt_id: digest} if digest else state.attempt_digests,
        crisis_reports=crisis_reports,
        crisis_count=crisis_count,
        last_reported_at=reported_at,
    )


def _counted(counts: tuple[tuple[str, int], ...], *names: str) -> tuple[tuple[str, int], ...]:
    total = Counter(dict(counts))
    total.update(names)
    return tuple(sorted(total.items()))


def with_warning(state: TrackerState, warning: warnings.Warning) -> TrackerState:
    """A warning raised by the latest attempt recorded."""
    return replace(
        state,
        active_warning=warning,
        active_since=state.last_reported_at,
        warnings_raised_at=(*state.warnings_raised_at, warning.raised_at),
        severity_counts=_counted(state.severity_counts, warning.severity.value),
        rule_counts=_counted(state.rule_counts, *(hit.rule for hit in warning.rules)),
    )


def with_clearing(state: TrackerState) -> TrackerState:
    return replace(state, active_warning=None, active_since=None)


def with_review(state: TrackerState, reviewed_at: datetime) -> TrackerState:
    """A coach's review covers the crisis reports that arrived at or before the time it happened."""
    kept = tuple(report for report in state.crisis_reports if report.reported_at > reviewed_at)
    covered = len(state.crisis_reports) - len(kept)
    count = len(kept) if covered else state.crisis_count
    return replace(state, crisis_reports=kept, crisis_count=count, last_review_at=reviewed_at)


def with_withdrawal(state: TrackerState) -> TrackerState:
    return replace(state, withdrawn=True)


def erasure_summary(state: TrackerState) -> dict[str, object]:
    """What erasure leaves of a participant in the tracker: counts, and the rules that raised warnings."""
    by_outcome = dict.fromkeys((o.value for o in Outcome), 0)
    for attempt in state.attempts:
        by_outcome[attempt.outcome.value] += 1
    return {
        "attempts": by_outcome,
        "completed": sum(1 for attempt in state.attempts if attempt.completed),
        "position": len(state.attempts),
        "warnings": dict(state.severity_counts),
        "rules": dict(state.rule_counts),
    }


def with_erasure(state: TrackerState) -> TrackerState:
    """Everything personal forgotten: only what tells a repeated input from a new one, and the counts."""
    return TrackerState(
        user_id=state.user_id,
        withdrawn=True,
        erased=True,
        attempt_ids=state.attempt_ids,
        input_ids=state.input_ids,
        severity_counts=state.severity_counts,
        rule_counts=state.rule_counts,
    )


# --- Deciding ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WarningDecision:
    cleared: warnings.Clearing | None = None
    raised: warnings.Warning | None = None


def hits_of(state: TrackerState, rules: RuleSet) -> list[overload.RuleHit]:
    """Every rule that holds on the participant's history now."""
    return overload.evaluate(state.attempts, rules, crisis=(state.crisis_evidence, state.crisis_count))


def decide_attempt(state: TrackerState, attempt: Attempt, reported_at: datetime, rules: RuleSet) -> WarningDecision:
    """What recording `attempt` does to the warnings of the participant in `state` (before it).

    The rules are judged on the history with the attempt in its place, at the newest attempt.
    """
    after = with_attempt(state, attempt, reported_at)
    cleared, raised = warnings.after_attempt(
        state.user_id,
        state.active_warning,
        hits_of(after, rules),
        state.warnings_raised_at,
        after.attempts[-1].occurred_at,
        attempt.attempt_id,
        rules,
    )
    return WarningDecision(cleared, raised)


def decide_review(state: TrackerState, reviewed_at: datetime, rules: RuleSet) -> warnings.Clearing | None:
    """What a coach's review at `reviewed_at` does to the active warning of the participant in
    `state` (before it). A review that happened before the warning's input arrived changes nothing."""
    active = state.active_warning
    if active is None or (state.active_since is not None and reviewed_at < state.active_since):
        return None
    after = with_review(state, reviewed_at)
    hits = hits_of(after, rules) if after.attempts else []
    return warnings.after_review(state.user_id, active, hits, reviewed_at, rules)


def progress_view(state: TrackerState, rules: RuleSet, arrived: Attempt | None = None) -> dict[str, object]:
    """The progress view after the latest change; `last_attempt` is the attempt just recorded
    (the one the planner closes an assignment with), the newest one when none is given."""
    return progress.progress_view(
        state.user_id,
        state.attempts,
        state.timezone,
        state.active_warning,
        rules,
        arrived=arrived,
        withdrawn=state.withdrawn,
    )
