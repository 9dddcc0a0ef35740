"""A participant's trail: every event both services stored for them, read back from the stores.

`read_trail` checks each service's stored chain for the participant, then reads their stored
events as entries (`entries`), with what an erasure removed hidden (`erasure`); `Trail.rows`
merges both services into one ordered sequence of inputs and published decisions (`merge`).
The audit export, `replay` and `audit decisions` all read this one trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepout_runtime.chain import ChainBreak, verify_chain

from .entries import SERVICES, Entry, aggregate_id, entries
from .erasure import before_erasure_hidden
from .merge import Row, ordered
from .progress import Progress


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
        return self.unreadable > 0

    @property
    def unreadable(self) -> int:
        """How many stored events an erasure left without content."""
        return sum(1 for entry in (*self.tracker, *self.planner) if entry.event is None)

    def rows(self) -> list[Row]:
        return ordered((self.tracker, self.planner))


def chain_break(app: Any, service: str, user_id: str) -> ChainBreak | None:
    """The first stored event of the participant's aggregate that breaks the store's chain, if any."""
    return verify_chain(app.recorder, aggregate_id(service, user_id))


def read_trail(
    apps: Mapping[str, Any], user_id: str, *, progress: Progress | None = None, stop_at_break: bool = False
) -> Trail:
    """The participant's trail in the stores of `apps` (service name -> its application, both services).

    Each service's chain is checked first; with `stop_at_break`, a broken chain is reported
    without reading anything. `progress` is told each service's stored events as they are read.
    UnreadableEvent for a stored event that no longer decodes.
    """
    breaks = [(s, found) for s in SERVICES if (found := chain_break(apps[s], s, user_id)) is not None]
    if breaks and stop_at_break:
        return Trail(user_id, [], [], breaks)
    read = {s: before_erasure_hidden(entries(apps[s], s, user_id, progress), user_id) for s in SERVICES}
    return Trail(user_id, read["tracker"], read["planner"], breaks)
