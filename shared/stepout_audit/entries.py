"""One service's stored events of a participant, read back as entries of their trail.

Each stored event becomes an `Entry`: the decoded domain event, the input CloudEvent it
records (rebuilt from the decision's `cause`, or the envelope the previous release kept), the
CloudEvents it was published as (the outbox's own mapping, so the ids are the published
ones), and the rule-set version stamped on it. What one stored event stands for is the
services' own answer (`tracker_input`, `planner_input`, ...), the one their history query
gives. Notes never appear: the tracker keeps only a sealed copy, left out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from stepout_planner.history import planner_input, planner_published
from stepout_planner.plan import plan_id
from stepout_runtime.personal_events import ErasedData
from stepout_tracker.history import INPUTS as TRACKER_INPUTS
from stepout_tracker.history import tracker_input, tracker_published
from stepout_tracker.participant import participant_id

from .progress import Progress

SERVICES = ("tracker", "planner")
_NO_TIME = datetime.min.replace(tzinfo=UTC)  # an erased event's stored time is erased with it


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


def aggregate_id(service: str, user_id: str) -> Any:
    """The id of the participant's aggregate in `service`'s store."""
    return participant_id(user_id) if service == "tracker" else plan_id(user_id)


def entries(app: Any, service: str, user_id: str, progress: Progress | None = None) -> list[Entry]:
    """The participant's stored events in `service` (its application `app`), oldest first.

    UnreadableEvent for a stored event that does not decode; one an erasure made unreadable is
    an entry with no content."""
    found: list[Entry] = []
    all_stored = app.recorder.select_events(aggregate_id(service, user_id))
    if progress is not None:
        progress(service, 0, len(all_stored))
    for done, stored in enumerate(all_stored, start=1):
        found.append(_entry(app, service, user_id, stored))
        if progress is not None:
            progress(service, done, len(all_stored))
    return _stamp_clearings(found) if service == "tracker" else found


def _entry(app: Any, service: str, user_id: str, stored: Any) -> Entry:
    name = stored.topic.rsplit(".", 1)[1]
    try:
        event = app.mapper.to_domain_event(stored)
    except ErasedData:
        # Erased: the row, its kind and its place in the chain stay; its content is gone for good.
        return Entry(service, stored.originator_version, _NO_TIME, name, None, None, (), None)
    except Exception as exc:  # noqa: BLE001 - a tampered row can fail in many ways; name it
        raise UnreadableEvent(service, stored.originator_version, type(exc).__name__) from None
    if service == "tracker":
        recorded = tracker_input(event, user_id)
        outputs = tracker_published(app, event)
        version = event.ruleset_version if name == "Decided" else _tracker_version(name, event)
    else:
        recorded = planner_input(event, user_id)
        outputs = planner_published(app, event)
        version = event.ruleset_version if name == "Decided" else None
    return Entry(service, stored.originator_version, event.timestamp, name, event, recorded, tuple(outputs), version)


def _tracker_version(name: str, event: Any) -> str | None:
    """The rule set the previous release stamped on a decision stored as an event of its own."""
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
