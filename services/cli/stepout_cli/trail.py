"""A participant's trail: every event both services stored for them, read back from the stores.

Each stored event becomes an `Entry`: the decoded domain event, the input CloudEvent it
records (tracker inputs keep their envelope; planner decisions keep their `cause`), the
CloudEvents it was published as (the outbox's own mapping, so the ids are the published
ones), and the rule-set version stamped on it. `ordered` merges both services into one
deterministic sequence: by stored timestamp, then service, then version, then index, each
input CloudEvent once. Notes never appear: the tracker keeps only a sealed copy, left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification
from rich.console import Console
from rich.progress import Progress

from stepout_contract.settings import Settings
from stepout_planner.history import planner_input
from stepout_planner.plan import plan_id
from stepout_runtime.chain import ChainBreak, verify_chain
from stepout_runtime.erasure import erased_record
from stepout_runtime.outbox import Output
from stepout_runtime.personal_events import ErasedData
from stepout_tracker.application import TrackerApplication
from stepout_tracker.history import input_event
from stepout_tracker.participant import participant_id

from .bars import progress_bars
from .stores import SERVICES, open_app

# Stored tracker events that record an input; the others record its decisions.
TRACKER_INPUTS = frozenset({"Enrolled", "EnrolmentChanged", "AttemptRecorded", "Reviewed", "Withdrawn"})

Apps = dict[str, Any]  # service name -> TrackerApplication | PlannerApplication
_NO_TIME = datetime.min.replace(tzinfo=UTC)  # an erased event's stored time is erased with it
Key = tuple[datetime, str, int, int]  # stored timestamp, service, version, index


class UnreadableEvent(Exception):
    """A stored event that no longer decodes (changed inside the store)."""

    def __init__(self, service: str, version: int, reason: str) -> None:
        super().__init__(f"{service} store, event version {version}: the stored event cannot be read ({reason})")
        self.service = service
        self.version = version
        self.reason = reason

    def naming(self, user_id: str) -> str:
        return (
            f"{self.service} store, participant {user_id}, event version {self.version}: "
            f"the stored event cannot be read ({self.reason})"
        )


@dataclass(frozen=True)
class Entry:
    service: str
    version: int
    timestamp: datetime
    name: str  # the stored event's name: "AttemptRecorded", "Decided", ...
    event: Any  # the decoded domain event; None where an erasure made it unreadable
    input: dict[str, Any] | None  # the input CloudEvent it records, if any
    outputs: tuple[dict[str, Any], ...]  # the CloudEvents it was published as
    ruleset_version: str | None  # the rule set of the decision it records, if any


@dataclass(frozen=True)
class Row:
    """One line of the merged trail: an input or a published decision."""

    key: Key
    event: dict[str, Any]
    is_input: bool
    ruleset_version: str | None

    @property
    def timestamp(self) -> datetime:
        return self.key[0]


@contextmanager
def opened(settings: Settings) -> Iterator[Apps]:
    """Both services' applications on their stores."""
    with ExitStack() as stack:
        yield {service: stack.enter_context(open_app(settings, service)) for service in SERVICES}


def aggregate_id(service: str, user_id: str) -> Any:
    return participant_id(user_id) if service == "tracker" else plan_id(user_id)


def chain_break(app: Any, service: str, user_id: str) -> ChainBreak | None:
    """The first stored event of the participant's aggregate that breaks the store's chain, if any."""
    return verify_chain(app.recorder, aggregate_id(service, user_id))


def entries(app: Any, service: str, user_id: str, bars: Progress | None = None) -> list[Entry]:
    """The participant's stored events in `service`, oldest first (counted on `bars` if given)."""
    found: list[Entry] = []
    all_stored = app.recorder.select_events(aggregate_id(service, user_id))
    task = bars.add_task(service, total=len(all_stored)) if bars is not None else None
    for stored in all_stored:
        name = stored.topic.rsplit(".", 1)[1]
        try:
            event = app.mapper.to_domain_event(stored)
        except ErasedData:
            # Erased: the row, its kind and its place in the chain stay; its content is gone for good.
            found.append(Entry(service, stored.originator_version, _NO_TIME, name, None, None, (), None))
            if bars is not None and task is not None:
                bars.advance(task)
            continue
        except Exception as exc:  # noqa: BLE001 - a tampered row can fail in many ways; name it
            raise UnreadableEvent(service, stored.originator_version, type(exc).__name__) from None
        notification = Notification(
            id=0,
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=stored.state,
        )
        outputs = tuple(o.event for o in app.to_outputs(notification) if isinstance(o, Output))
        if name == "Erased":
            outputs = (erased_record(service, event),)
        if isinstance(app, TrackerApplication):
            recorded = input_event(event, user_id) if name in TRACKER_INPUTS else None
            version = _tracker_version(name, event)
        else:
            recorded = planner_input(event, user_id) if name == "Decided" else None
            version = event.ruleset_version if name == "Decided" else None
        found.append(
            Entry(service, stored.originator_version, event.timestamp, name, event, recorded, outputs, version)
        )
        if bars is not None and task is not None:
            bars.advance(task)
    return _stamp_clearings(found) if service == "tracker" else found


def _tracker_version(name: str, event: Any) -> str | None:
    if name == "WarningRaised":
        return str(event.warning["ruleset_version"])
    if name == "ProgressUpdated":
        return str(event.view["ruleset_version"])
    return None


def _stamp_clearings(found: list[Entry]) -> list[Entry]:
    """A clearing carries no version on the wire; the progress decided with it does."""
    stamped = list(found)
    for i, entry in enumerate(found):
        if entry.name != "WarningCleared":
            continue
        for later in found[i + 1 :]:
            if later.name in TRACKER_INPUTS:
                break
            if later.name == "ProgressUpdated":
                stamped[i] = replace(entry, ruleset_version=later.ruleset_version)
                break
    return stamped


def ordered(trails: Sequence[Sequence[Entry]]) -> list[Row]:
    """Inputs and published decisions of every service, in one deterministic order.

    An input both services stored appears once, where the first of its copies sorts (so
    before any decision either service made of it), as the tracker recorded it if it did.
    """
    inputs: dict[str, tuple[Key, dict[str, Any], bool]] = {}
    rows: list[Row] = []
    for trail in trails:
        for entry in trail:
            if entry.event is None:
                continue  # erased
            if entry.input is not None:
                _keep_input(inputs, entry)
            for index, output in enumerate(entry.outputs, start=1):
                rows.append(
                    Row((entry.timestamp, entry.service, entry.version, index), output, False, entry.ruleset_version)
                )
    rows.extend(Row(key, event, True, None) for key, event, _ in inputs.values())
    rows.sort(key=lambda row: row.key)
    return rows


def _keep_input(inputs: dict[str, tuple[Key, dict[str, Any], bool]], entry: Entry) -> None:
    """Keep one copy of each input: at the earliest place, as the tracker recorded it if it did."""
    assert entry.input is not None
    key = (entry.timestamp, entry.service, entry.version, 0)
    tracker_copy = entry.service == "tracker"
    known = inputs.get(entry.input["id"])
    if known is None:
        inputs[entry.input["id"]] = (key, entry.input, tracker_copy)
        return
    first, event, from_tracker = known
    if from_tracker or not tracker_copy:
        inputs[entry.input["id"]] = (min(first, key), event, from_tracker)
    else:
        inputs[entry.input["id"]] = (min(first, key), entry.input, True)


@dataclass(frozen=True)
class Trail:
    user_id: str
    tracker: list[Entry]
    planner: list[Entry]
    breaks: list[tuple[str, ChainBreak]]  # (service, first break) of each broken chain

    @property
    def known(self) -> bool:
        return bool(self.tracker or self.planner)

    @property
    def erased(self) -> bool:
        """Whether the participant was erased: what came before the erasure is not shown."""
        return any(entry.event is None for entry in (*self.tracker, *self.planner))

    def rows(self) -> list[Row]:
        return ordered((self.tracker, self.planner))


def read_trail(settings: Settings, user_id: str, console: Console, *, stop_at_break: bool = False) -> Trail:
    """Check each service's chain for the participant, then read their stored events (a bar on `console`).

    With `stop_at_break`, a broken chain is reported without reading anything.
    """
    with opened(settings) as apps:
        breaks = [(s, found) for s, app in apps.items() if (found := chain_break(app, s, user_id)) is not None]
        if breaks and stop_at_break:
            return Trail(user_id, [], [], breaks)
        read: dict[str, list[Entry]] = {}
        with progress_bars(console) as bars:
            for service, app in apps.items():
                read[service] = before_erasure_hidden(entries(app, service, user_id, bars), user_id)
    return Trail(user_id, read["tracker"], read["planner"], breaks)


def _erases(entry: Entry) -> bool:
    """An erasure: its record, or (stored by the previous release) a withdrawal with `erase`."""
    if entry.name == "Erased":
        return True
    if entry.event is None:
        return False
    if entry.name == "Withdrawn":
        return bool(getattr(entry.event, "erase", False))
    if entry.name == "Decided":
        return any(r["kind"] == "Withdrawn" and r["body"].get("erase") for r in entry.event.events)
    return False


@dataclass(frozen=True)
class LegacyErasure:
    """An erasure the previous release stored as a withdrawal with `erase`, read as an erasure record."""

    originator_id: Any
    originator_version: int
    timestamp: datetime
    user_id: str
    request_id: str
    summary: dict[str, Any]


def _legacy_summary(service: str, before: list[Entry]) -> dict[str, Any]:
    """What an erasure leaves (as `tracking.erasure_summary` and the planner count it), read from
    what the previous release stored before its erasure."""
    if service == "planner":
        kinds: Counter[str] = Counter()
        for entry in before:
            if entry.name == "Decided" and entry.event is not None:
                kinds.update(record["kind"] for record in entry.event.events)
        return dict(kinds)
    views = [e.event.view for e in before if e.name == "ProgressUpdated" and e.event is not None]
    severities: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for entry in before:
        if entry.name == "WarningRaised" and entry.event is not None:
            severities[entry.event.warning["severity"]] += 1
            rules.update(hit["rule"] for hit in entry.event.warning["rules"])
    last = views[-1] if views else {"attempts": {}, "completed": 0, "position": 0}
    return {
        "attempts": last["attempts"],
        "completed": last["completed"],
        "position": last["position"],
        "warnings": dict(severities),
        "rules": dict(rules),
    }


def before_erasure_hidden(found: list[Entry], user_id: str) -> list[Entry]:
    """The entries of a service, with everything up to an erasure shown as erased (no content), but
    the erasure's own record: an erased participant's history shows nothing stored before it,
    including what an older release stored without sealing it."""
    last = max((i for i, entry in enumerate(found) if _erases(entry)), default=None)
    if last is None:
        return found
    shown = []
    for i, entry in enumerate(found):
        if i > last or entry.name == "Erased":
            shown.append(entry)
        elif i == last:  # stored by the previous release: read as its own erasure record
            request = entry.input["id"] if entry.input is not None else entry.event.cause["id"]
            summary = _legacy_summary(entry.service, found[:i])
            record = LegacyErasure(entry.event.originator_id, entry.version, entry.timestamp, user_id, request, summary)
            outputs = (erased_record(entry.service, record),)
            shown.append(replace(entry, name="Erased", event=record, input=None, outputs=outputs))
        else:
            shown.append(replace(entry, event=None, input=None, outputs=(), ruleset_version=None))
    return shown
