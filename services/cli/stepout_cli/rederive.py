"""`stepout audit decisions --user U`: every recorded decision re-derived by the pure domain.

Each decision is re-run on the history recorded before it, with the rule set whose
version is stamped on it (whatever STEPOUT_RULESET says now), and compared with what
was stored:

- tracker: at each recorded attempt, `tracking.decide_attempt` and
  `tracking.progress_view` must give the clearing, warning and progress stored after
  it (before the next input); at each review, `tracking.decide_review` likewise. The
  participant is folded from the stored events by the tracker's own aggregate.
- planner: each stored `Decided` is `planning.decide(state, command, rules, catalog)`
  on the plan folded from the decisions stored before it.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stepout_contract.settings import Settings
from stepout_contract.vocabulary import rfc3339
from stepout_domain import planning, tracking
from stepout_domain.attempts import Attempt
from stepout_domain.catalog import Catalog, load_catalog
from stepout_domain.plan_state import initial_state
from stepout_domain.ruleset import DEFAULT_VERSION, RuleSet, RuleSetError, by_version
from stepout_planner.plan import from_platform
from stepout_planner.records import command_from, event_from, event_record
from stepout_runtime.inbound import happened_at
from stepout_tracker.participant import ATTEMPT, clearing_record, warning_record

from .bars import stderr_console
from .trail import TRACKER_INPUTS, Entry, UnreadableEvent, read_trail

# How each stored decision is counted in the summary.
TRACKER_KINDS = {"WarningRaised": "warnings", "WarningCleared": "clearings", "ProgressUpdated": "progress updates"}
PLANNER_KINDS = {"ChallengeAssigned": "assignments", "PlanPaused": "pauses"}
OTHER_PLAN_EVENTS = "other plan events"
_PAYLOADS = {"WarningRaised": "warning", "WarningCleared": "clearing", "ProgressUpdated": "view"}
# What a stored event that no longer parses raises.
_UNPARSABLE = (ValueError, KeyError, TypeError, AttributeError)


@dataclass
class Mismatch:
    service: str
    version: int
    timestamp: datetime
    what: str


@dataclass
class Rederived:
    counts: Counter[str] = field(default_factory=Counter)
    versions: set[str] = field(default_factory=set)
    mismatch: Mismatch | None = None


def audit_decisions(settings: Settings, user_id: str) -> int:
    """Exit 0 when every stored decision is re-derived exactly, 1 at the first that is not (or a broken chain)."""
    try:
        trail = read_trail(settings, user_id, stderr_console())
    except UnreadableEvent as exc:
        print(f"mismatch: {exc.naming(user_id)}")
        return 1
    if not trail.known:
        print(f"stepout: participant {user_id!r} is in neither event store", file=sys.stderr)
        return 1
    for service, found in trail.breaks:
        print(f"chain broken: {service} store, participant {user_id}, event version {found.version}: {found.reason}")
    if trail.erased:
        gone = sum(1 for entry in (*trail.tracker, *trail.planner) if entry.event is None)
        print(
            f"{user_id} was erased: the {gone} stored events before the erasure no longer read, so their decisions "
            "cannot be re-derived; what erasure left is in the export"
        )
        return 1 if trail.breaks else 0
    result = Rederived()
    rederive_tracker(user_id, trail.tracker, result)
    if result.mismatch is None:
        rederive_planner(user_id, trail.planner, load_catalog(settings.catalog), result)
    if result.mismatch is not None:
        m = result.mismatch
        print(
            f"mismatch: {m.service} store, participant {user_id}, event version {m.version} "
            f"(stored {rfc3339(m.timestamp)}): {m.what}"
        )
    if result.mismatch is not None or trail.breaks:
        return 1
    total = sum(result.counts.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result.counts.items(), key=lambda kv: (-kv[1], kv[0])))
    versions = ", ".join(sorted(result.versions)) or "none"
    print(f"re-derived {total} decisions of {user_id} under rule set(s) {versions}: {kinds or 'none'}")
    return 0


# Tracker ----------------------------------------------------------------------------------------


def rederive_tracker(user_id: str, stored: Sequence[Entry], result: Rederived) -> None:
    participant: Any = None  # the tracker's own aggregate, folded from the stored events as the service folds them
    last_version = DEFAULT_VERSION
    for cause, decided in _groups(stored):
        if cause is None:
            result.mismatch = _at(decided[0], f"{decided[0].name} stored with no input before it")
            return
        try:
            expected = _tracker_decisions(participant, cause, decided, last_version)
        except RuleSetError as exc:
            result.mismatch = _at(cause, f"cannot re-derive the decisions of this {cause.name}: {exc}")
            return
        except _UNPARSABLE as exc:
            result.mismatch = _at(cause, f"the stored {cause.name} does not parse ({type(exc).__name__})")
            return
        actual = [(e.name, _payload(e)) for e in decided]
        found = _first_difference(expected, actual)
        if found is not None:
            index, what = found
            at = decided[index] if index < len(decided) else cause
            result.mismatch = _at(at, f"after {cause.name} (version {cause.version}): {what}")
            return
        participant = cause.event.mutate(participant)
        for entry in decided:
            result.counts[TRACKER_KINDS[entry.name]] += 1
            if entry.ruleset_version is not None:
                result.versions.add(entry.ruleset_version)
                last_version = entry.ruleset_version
            participant = entry.event.mutate(participant)  # equal to the re-derived one, so it parses


def _groups(stored: Sequence[Entry]) -> list[tuple[Entry | None, list[Entry]]]:
    """Each input with the decisions stored after it, before the next input."""
    groups: list[tuple[Entry | None, list[Entry]]] = []
    for entry in stored:
        if entry.name in TRACKER_INPUTS:
            groups.append((entry, []))
        elif not groups:
            groups.append((None, [entry]))
        else:
            groups[-1][1].append(entry)
    return groups


def _tracker_decisions(
    participant: Any, cause: Entry, decided: list[Entry], last_version: str
) -> list[tuple[str, Any]]:
    """What the domain decides for `cause` on the participant as stored before it."""
    if cause.name in ("Enrolled", "EnrolmentChanged", "Withdrawn") or participant is None:
        return []
    # The rule set that decided an input is stamped on the progress stored after it; a review that
    # cleared nothing stamps none: judge it by the latest one seen.
    stamped = next((e.ruleset_version for e in decided if e.name == "ProgressUpdated"), None)
    rules = by_version(stamped or last_version)
    event = cause.event
    state = participant.state
    if cause.name == "AttemptRecorded":
        attempt = ATTEMPT.validate_python(event.attempt)
        decision = tracking.decide_attempt(state, attempt, happened_at(event.envelope), rules)
        after = tracking.with_attempt(state, attempt, happened_at(event.envelope))
        return _warning_decisions(after, decision, rules, arrived=attempt)
    cleared = tracking.decide_review(state, event.reviewed_at, rules)
    if cleared is None:
        return []
    after = tracking.with_review(state, event.reviewed_at)
    return _warning_decisions(after, tracking.WarningDecision(cleared=cleared), rules, arrived=None)


def _warning_decisions(
    state: tracking.TrackerState, decision: tracking.WarningDecision, rules: RuleSet, arrived: Attempt | None
) -> list[tuple[str, Any]]:
    expected: list[tuple[str, Any]] = []
    if decision.cleared is not None:
        expected.append(("WarningCleared", clearing_record(decision.cleared)))
        state = tracking.with_clearing(state)
    if decision.raised is not None:
        expected.append(("WarningRaised", warning_record(decision.raised)))
        state = tracking.with_warning(state, decision.raised)
    expected.append(("ProgressUpdated", tracking.progress_view(state, rules, arrived=arrived)))
    return expected


def _payload(entry: Entry) -> Any:
    """What a stored tracker decision records: the warning, the clearing or the progress view."""
    return getattr(entry.event, _PAYLOADS[entry.name], None)


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
        derived = [] if stale else [event_record(e) for e in planning.decide(state, command, rules, catalog)]
        found = _first_difference(
            [(r["kind"], r["body"]) for r in derived], [(r["kind"], r["body"]) for r in decided.events]
        )
        if found is not None:
            result.mismatch = _at(entry, f"{command.__class__.__name__} under rule set {rules.version}: {found[1]}")
            return
        for event in recorded:
            result.counts[PLANNER_KINDS.get(type(event).__name__, OTHER_PLAN_EVENTS)] += 1
        plan = decided.mutate(plan)
        result.versions.add(rules.version)


# Comparing --------------------------------------------------------------------------------------


def _at(entry: Entry, what: str) -> Mismatch:
    return Mismatch(entry.service, entry.version, entry.timestamp, what)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _first_difference(expected: list[tuple[str, Any]], actual: list[tuple[str, Any]]) -> tuple[int, str] | None:
    """(index, description) of the first stored decision that differs from the re-derived one."""
    for index in range(max(len(expected), len(actual))):
        if index >= len(actual):
            return index, f"the domain decides {expected[index][0]} here, the store has none"
        if index >= len(expected):
            return index, f"the store has {actual[index][0]}, the domain decides nothing more"
        (want_kind, want), (got_kind, got) = expected[index], actual[index]
        if want_kind != got_kind:
            return index, f"the store has {got_kind}, the domain decides {want_kind}"
        path = _differs(_json(want), _json(got), got_kind)
        if path is not None:
            return index, path
    return None


def _differs(want: Any, got: Any, path: str) -> str | None:
    """Where the stored value `got` differs from the re-derived `want`. Only fields the store has are
    compared: a field a later release added is absent from what an earlier release recorded."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(got):
            if key not in want:
                return f"{path}.{key}: stored {json.dumps(got[key])}, the domain decides no such field"
            found = _differs(want[key], got[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            found = _differs(w, g, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if want != got:
        return f"{path}: stored {json.dumps(got)}, re-derived {json.dumps(want)}"
    return None
