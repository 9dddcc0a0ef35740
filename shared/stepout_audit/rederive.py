"""Every stored decision of a participant re-derived by the domain deciders the services run.

Each decision is re-run on the history recorded before it, with the rule set whose
version is stamped on it (whatever STEPOUT_RULESET says now), and compared with what
was stored (`difference`):

- tracker: each stored `Decided` is `tracking.decide(state, command, rules)` on the
  participant folded from the events stored before it by the tracker's own aggregate
  (`tracking.replay`, as the service folds them). The previous release stored an input and
  each decision it caused (warning, clearing, progress) as events of their own: the input
  is read as its command, the decisions stored after it (before the next input) as what
  was decided.
- planner: each stored `Decided` is `planning.decide(state, command, rules, catalog)` on
  the plan folded from the decisions stored before it (an input that was stale when it
  arrived decides nothing, as in the service).

An input the deciders refuse (a review by another coach than the participant's) is never stored:
a stored decision of one is a mismatch.

Re-deriving stops at the first mismatch; `Rederived` holds it, or what was re-derived.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stepout_domain import planning, tracking
from stepout_domain.catalog import Catalog
from stepout_domain.plan_state import initial_state
from stepout_domain.refusals import Refusal
from stepout_domain.ruleset import DEFAULT_VERSION, RuleSetError, by_version
from stepout_domain.tracker_commands import RecordAttempt, Review
from stepout_planner.plan import from_platform
from stepout_planner.records import command_from, event_from, event_record
from stepout_runtime.inbound import happened_at
from stepout_tracker.participant import ATTEMPT
from stepout_tracker.records import COMMANDS as TRACKER_COMMANDS
from stepout_tracker.records import EVENTS as TRACKER_EVENTS

from .difference import first_difference
from .entries import TRACKER_INPUTS, Entry
from .trail import Trail

# How each stored decision is counted in the summary.
TRACKER_KINDS = {"WarningRaised": "warnings", "WarningCleared": "clearings", "ProgressUpdated": "progress updates"}
PLANNER_KINDS = {"ChallengeAssigned": "assignments", "PlanPaused": "pauses"}
OTHER_PLAN_EVENTS = "other plan events"
_PAYLOADS = {"WarningRaised": "warning", "WarningCleared": "clearing", "ProgressUpdated": "view"}
# What a stored event that no longer parses raises.
_UNPARSABLE = (ValueError, KeyError, TypeError, AttributeError)


@dataclass
class Mismatch:
    """A stored decision the domain does not decide: where it is stored, and how it differs."""

    service: str
    version: int
    timestamp: datetime
    what: str


def _at(entry: Entry, what: str) -> Mismatch:
    return Mismatch(entry.service, entry.version, entry.timestamp, what)


@dataclass
class Rederived:
    counts: Counter[str] = field(default_factory=Counter)  # decisions re-derived, by kind
    versions: set[str] = field(default_factory=set)  # the rule sets they were decided under
    mismatch: Mismatch | None = None  # the first stored decision the domain does not decide

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def rederive(trail: Trail, catalog: Catalog) -> Rederived:
    """Re-derive every decision of the trail, the tracker's first, up to the first mismatch.

    Not for an erased participant (`trail.erased`): what was stored before the erasure no
    longer reads, so its decisions cannot be re-run."""
    if trail.erased:
        raise ValueError(f"{trail.user_id} was erased: their decisions no longer read")
    result = Rederived()
    rederive_tracker(trail.user_id, trail.tracker, result)
    if result.mismatch is None:
        rederive_planner(trail.user_id, trail.planner, catalog, result)
    return result


def _refused(refusal: Refusal) -> str:
    """A stored decision of an input the domain refuses: the service would have dead-lettered it."""
    return f"the store has this input decided, the domain refuses it ({refusal.reason})"


# Tracker ----------------------------------------------------------------------------------------


def rederive_tracker(user_id: str, stored: Sequence[Entry], result: Rederived) -> None:
    """Each stored decision is `tracking.decide` on the participant as stored before it. Decisions of
    the previous release (an input's event, then one event per decision) are read as one decision."""
    participant: Any = None  # the tracker's own aggregate, folded from the stored events as the service folds them
    last_version = DEFAULT_VERSION
    for cause, decided in _groups(stored):
        if cause is None:
            result.mismatch = _at(decided[0], f"{decided[0].name} stored with no input before it")
            return
        try:
            found, rules = _tracker_difference(participant, user_id, cause, decided, last_version)
        except RuleSetError as exc:
            result.mismatch = _at(cause, f"cannot re-derive the decisions of this {cause.name}: {exc}")
            return
        except _UNPARSABLE as exc:
            result.mismatch = _at(cause, f"the stored {cause.name} does not parse ({type(exc).__name__})")
            return
        if found is not None:
            result.mismatch = _at(cause, f"after {cause.name} (version {cause.version}): {found[1]}")
            return
        for entry in (cause, *decided):
            participant = entry.event.mutate(participant)  # equal to the re-derived one, so it parses
        kinds = [record["kind"] for record in _decided_records(cause, decided)]
        for kind in kinds:
            if kind in TRACKER_KINDS:
                result.counts[TRACKER_KINDS[kind]] += 1
        if rules is not None and any(kind in TRACKER_KINDS for kind in kinds):
            result.versions.add(rules)
            last_version = rules


def _groups(stored: Sequence[Entry]) -> list[tuple[Entry | None, list[Entry]]]:
    """Each input with the decisions stored after it, before the next input (one `Decided` each since
    this release; the previous release stored an input's decisions as events of their own)."""
    groups: list[tuple[Entry | None, list[Entry]]] = []
    for entry in stored:
        if entry.name in TRACKER_INPUTS or entry.name in ("Decided", "Erased"):
            groups.append((entry, []))
        elif not groups:
            groups.append((None, [entry]))
        else:
            groups[-1][1].append(entry)
    return groups


def _decided_records(cause: Entry, decided: list[Entry]) -> list[dict[str, Any]]:
    """The decision events stored for `cause`, as records (`{"kind", "body"}`), the input's own left out."""
    if cause.name == "Decided":
        return [r for r in cause.event.events if r["kind"] not in ("AttemptRecorded", "Reviewed")]
    return [{"kind": e.name, "body": {_PAYLOADS[e.name]: getattr(e.event, _PAYLOADS[e.name])}} for e in decided]


def _tracker_difference(
    participant: Any, user_id: str, cause: Entry, decided: list[Entry], last_version: str
) -> tuple[tuple[int, str] | None, str | None]:
    """Where the stored decisions of `cause` differ from what `tracking.decide` decides, and the rule set."""
    event = cause.event
    if cause.name == "Decided":
        version: str | None = event.ruleset_version
        command = TRACKER_COMMANDS.read(event.command)
    elif cause.name in ("AttemptRecorded", "Reviewed") and participant is not None:
        # The previous release stamped the rule set on the progress stored after an input.
        version = next((e.ruleset_version for e in decided if e.name == "ProgressUpdated"), None) or last_version
        if cause.name == "AttemptRecorded":
            command = RecordAttempt(ATTEMPT.validate_python(event.attempt), happened_at(event.envelope))
        else:
            command = Review(event.reviewed_at, event.data.get("coach_id"))
    else:
        return None, None  # an enrolment, a withdrawal or an erasure of the previous release decides nothing more
    rules = by_version(version or last_version)
    state = participant.state if participant is not None else tracking.initial_state(user_id)
    decision = tracking.decide(state, command, rules)
    if isinstance(decision, Refusal):
        return (0, _refused(decision)), rules.version
    derived = [TRACKER_EVENTS.record(e) for e in decision]
    derived = [r for r in derived if cause.name == "Decided" or r["kind"] not in ("AttemptRecorded", "Reviewed")]
    stored = cause.event.events if cause.name == "Decided" else _decided_records(cause, decided)
    return first_difference([(r["kind"], r["body"]) for r in derived], [(r["kind"], r["body"]) for r in stored]), (
        rules.version
    )


# Planner ----------------------------------------------------------------------------------------


def rederive_planner(user_id: str, stored: Sequence[Entry], catalog: Catalog, result: Rederived) -> None:
    plan: Any = None  # the planner's own aggregate, folded from the stored events as the service folds them
    for entry in stored:
        if entry.name != "Decided":
            plan = entry.event.mutate(plan)
            continue
        decided = entry.event
        try:
            rules = by_version(decided.ruleset_version)
        except RuleSetError as exc:
            result.mismatch = _at(entry, f"cannot re-derive this decision: {exc}")
            return
        try:
            command = command_from(decided.command)
            recorded = [event_from(record) for record in decided.events]
            stale = plan is not None and from_platform(decided.cause) and plan.is_stale(decided.cause, command)
        except _UNPARSABLE as exc:
            result.mismatch = _at(entry, f"the stored decision does not parse ({type(exc).__name__})")
            return
        state = plan.state if plan is not None else initial_state(user_id)
        decision = planning.decide(state, command, rules, catalog)
        if isinstance(decision, Refusal):
            found: tuple[int, str] | None = (0, _refused(decision))
        else:
            derived = [] if stale else [event_record(e) for e in decision]
            found = first_difference(
                [(r["kind"], r["body"]) for r in derived], [(r["kind"], r["body"]) for r in decided.events]
            )
        if found is not None:
            result.mismatch = _at(entry, f"{command.__class__.__name__} under rule set {rules.version}: {found[1]}")
            return
        for event in recorded:
            result.counts[PLANNER_KINDS.get(type(event).__name__, OTHER_PLAN_EVENTS)] += 1
        plan = decided.mutate(plan)
        result.versions.add(rules.version)
