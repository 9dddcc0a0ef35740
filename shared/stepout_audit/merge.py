"""Both services' entries merged into one ordered trail of inputs and published decisions.

The order is `history_pages.trail_order` (stored timestamp, service, version, index), the order
of the history query too; each input CloudEvent once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepout_runtime.history_pages import trail_order

from .entries import Entry

Key = tuple[datetime, str, int, int]  # stored timestamp, service, version, index


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
                key = trail_order(entry.timestamp, entry.service, (entry.version, index))
                rows.append(Row(key, output, False, entry.ruleset_version))
    rows.extend(Row(key, event, True, None) for key, event, _ in inputs.values())
    rows.sort(key=lambda row: row.key)
    return rows


def _keep_input(inputs: dict[str, tuple[Key, dict[str, Any], bool]], entry: Entry) -> None:
    """Keep one copy of each input: at the earliest place, as the tracker recorded it if it did."""
    assert entry.input is not None
    key = trail_order(entry.timestamp, entry.service, (entry.version, 0))
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
