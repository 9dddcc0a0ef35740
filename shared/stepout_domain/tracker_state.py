"""What the tracker knows of one participant, in a size that does not grow with their history.

`TrackerState` holds only what the six rules, clearing, readiness, streaks and the progress view
read: the attempts as `history.History` keeps them (the recent ones whole, running figures for
the rest), the active warning and the last few raise times (escalation), the crisis reports no
review has covered yet, and the ids of the last inputs (a repeat has no effect). The `with_*`
functions are the only way it changes; `tracking.evolve` calls them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from stepout_domain.attempts import Attempt
from stepout_domain.history import History
from stepout_domain.values import changer
from stepout_domain.warnings import Warning

# How many inputs' CloudEvent ids a participant's state remembers (attempts have their own key).
INPUT_IDS_KEPT = 256
# How many uncovered crisis reports are kept as evidence (the count goes on beyond it).
CRISIS_EVIDENCE_KEPT = 20
# How many raise times escalation reads (a rule set asks for "3 warnings within 30 days").
RAISES_KEPT = 16


@dataclass(frozen=True, slots=True)
class CrisisReport:
    attempt_id: str
    reported_at: datetime


@dataclass(slots=True)
class TrackerState:
    """A value: `with_*` build a new one (`changed`) and nothing changes one once built
    (`stepout_domain.values`: why it is not a frozen dataclass)."""

    user_id: str
    timezone: str = "UTC"
    coach_id: str | None = None  # of the enrolment in force: the coach whose review counts
    enrolled: bool = False
    withdrawn: bool = False
    erased: bool = False
    history: History = field(default_factory=History)
    active_warning: Warning | None = None
    active_since: datetime | None = None  # when the input that raised the active warning arrived
    warnings_raised_at: tuple[datetime, ...] = ()  # the last RAISES_KEPT
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

    def enrolment_is_stale(self, at: datetime) -> bool:
        """An enrolment no later than the one in force is that one again, or an older one: no effect."""
        return self.enrolment_at is not None and at <= self.enrolment_at

    @property
    def crisis_evidence(self) -> tuple[str, ...]:
        return tuple(report.attempt_id for report in self.crisis_reports)


changed = changer(TrackerState)


def initial_state(user_id: str) -> TrackerState:
    return TrackerState(user_id=user_id)


def with_input(state: TrackerState, input_id: str | None) -> TrackerState:
    if input_id is None or input_id in state.input_ids:
        return state
    return changed(state, input_ids=(*state.input_ids, input_id)[-INPUT_IDS_KEPT:])


def with_enrolment(state: TrackerState, timezone: str, at: datetime, coach_id: str | None) -> TrackerState:
    """An enrolment (the first, or a later one): its settings, the coach included, are now in force."""
    history = state.history.with_timezone(timezone)
    return changed(state, enrolled=True, timezone=timezone, coach_id=coach_id, enrolment_at=at, history=history)


def with_attempt(
    state: TrackerState, attempt: Attempt, reported_at: datetime, restart_after_days: int | None = None
) -> TrackerState:
    """The attempt placed in the history by `occurred_at`; a crisis it reports is kept uncovered."""
    crisis_reports, crisis_count = state.crisis_reports, state.crisis_count
    if attempt.crisis_reported:
        crisis_reports = (*crisis_reports, CrisisReport(attempt.attempt_id, reported_at))[-CRISIS_EVIDENCE_KEPT:]
        crisis_count += 1
    return changed(
        state,
        history=state.history.with_attempt(attempt, restart_after_days),
        crisis_reports=crisis_reports,
        crisis_count=crisis_count,
        last_reported_at=reported_at,
    )


def _counted(counts: tuple[tuple[str, int], ...], *names: str) -> tuple[tuple[str, int], ...]:
    total = Counter(dict(counts))
    total.update(names)
    return tuple(sorted(total.items()))


def with_warning(state: TrackerState, warning: Warning) -> TrackerState:
    """A warning raised by the latest attempt recorded."""
    return changed(
        state,
        active_warning=warning,
        active_since=state.last_reported_at,
        warnings_raised_at=(*state.warnings_raised_at, warning.raised_at)[-RAISES_KEPT:],
        severity_counts=_counted(state.severity_counts, warning.severity.value),
        rule_counts=_counted(state.rule_counts, *(hit.rule for hit in warning.rules)),
    )


def with_clearing(state: TrackerState) -> TrackerState:
    return changed(state, active_warning=None, active_since=None)


def with_review(state: TrackerState, reviewed_at: datetime) -> TrackerState:
    """A coach's review covers the crisis reports that arrived at or before the time it happened."""
    kept = tuple(report for report in state.crisis_reports if report.reported_at > reviewed_at)
    covered = len(state.crisis_reports) - len(kept)
    count = len(kept) if covered else state.crisis_count
    return changed(state, crisis_reports=kept, crisis_count=count, last_review_at=reviewed_at)


def with_withdrawal(state: TrackerState) -> TrackerState:
    return changed(state, withdrawn=True)


def erasure_summary(state: TrackerState) -> dict[str, object]:
    """What erasure leaves of a participant in the tracker: counts, and the rules that raised warnings."""
    counts = state.history.by_outcome()
    return {
        "attempts": counts,
        "completed": sum(counts[o] for o in ("rejected", "accepted", "hostile")),
        "position": state.history.position,
        "warnings": dict(state.severity_counts),
        "rules": dict(state.rule_counts),
    }


def with_erasure(state: TrackerState) -> TrackerState:
    """Everything personal forgotten: only what tells a repeated input from a new one, and the counts."""
    return TrackerState(
        user_id=state.user_id,
        enrolled=True,
        withdrawn=True,
        erased=True,
        history=History(counts=state.history.counts),
        input_ids=state.input_ids,
        severity_counts=state.severity_counts,
        rule_counts=state.rule_counts,
    )
