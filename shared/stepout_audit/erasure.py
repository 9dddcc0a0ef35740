"""An erased participant's trail: nothing stored before the erasure is shown, only what it left.

Stores of the previous release recorded an erasure as a withdrawal with `erase` and kept what
came before it unsealed; that withdrawal is read as an erasure record too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from stepout_runtime.erasure import erased_record

from .entries import Entry


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
    """What an erasure leaves (as `tracker_state.erasure_summary` and the planner count it), read from
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
