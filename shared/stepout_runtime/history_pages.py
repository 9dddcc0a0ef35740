"""Pages of a participant's history (the `history` query), read a page at a time from each store.

Each service turns its stored events, in order, into entries: (recorded_at, CloudEvent), each
with a key (stored version, index among the entries that event stands for). A page is the
oldest entries after a cursor, merged across both services by when they were recorded, at
most `limit` of them and at most `PAGE_BYTES` of JSON, so that a reply always fits a NATS
payload however long the history. The cursor names the last entry of each service returned.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

PAGE_MAX = 500
PAGE_DEFAULT = 100
PAGE_BYTES = 256 * 1024  # of events in one reply: NATS's default payload limit is 1 MiB
_CHUNK = 200  # stored events read at a time

Key = tuple[int, int]  # (stored version, index among the entries of that stored event)
START: Key = (0, -1)


def trail_order(recorded_at: datetime, service: str, key: Key) -> tuple[datetime, str, int, int]:
    """Where an entry goes in a participant's merged trail: by when it was recorded, then service,
    stored version and index. The history query and the audit export (`stepout_audit.merge`) both
    order by it, so they are one trail."""
    return (recorded_at, service, key[0], key[1])


@dataclass(frozen=True, slots=True)
class PageEntry:
    key: Key
    recorded_at: str
    event: dict[str, Any]

    def as_wire(self) -> dict[str, Any]:
        return {"key": list(self.key), "recorded_at": self.recorded_at, "event": self.event}

    @classmethod
    def from_wire(cls, value: Any) -> PageEntry:
        key = value["key"]
        return cls((int(key[0]), int(key[1])), str(value["recorded_at"]), dict(value["event"]))


class BadCursor(ValueError):
    """A cursor that this service did not write."""


def read_entries(
    recorder: Any,
    originator_id: UUID,
    expand: Callable[[Any], list[tuple[str, dict[str, Any]]]],
    after: Key,
    limit: int,
) -> tuple[list[PageEntry], bool] | None:
    """Up to `limit` entries of one aggregate's stored events after `after`, and whether more
    follow; None when the aggregate has no stored event. `expand` turns one stored event into its
    entries."""
    if after == START and not recorder.select_events(originator_id, limit=1):
        return None
    found: list[PageEntry] = []
    gt = after[0] - 1  # the stored event of the last entry returned may hold more entries
    while True:
        stored = recorder.select_events(originator_id, gt=gt if gt >= 1 else None, limit=_CHUNK)
        for record in stored:
            version = record.originator_version
            for index, (recorded_at, event) in enumerate(expand(record)):
                if (version, index) <= after:
                    continue
                if len(found) == limit:
                    return found, True
                found.append(PageEntry((version, index), recorded_at, event))
        if len(stored) < _CHUNK:
            return found, False
        gt = stored[-1].originator_version


@dataclass(frozen=True, slots=True)
class Page:
    events: list[dict[str, Any]]
    cursor: dict[str, Key] | None  # None: nothing follows


def merge_page(
    parts: dict[str, tuple[list[PageEntry], bool]], cursor: dict[str, Key], limit: int, budget: int = PAGE_BYTES
) -> Page:
    """The oldest `limit` entries of all parts (service -> (entries, more follow)) in `trail_order`,
    cut short before `budget` bytes of JSON."""
    heads = {service: 0 for service in parts}
    taken = dict(cursor)
    events: list[dict[str, Any]] = []
    size = 0
    while len(events) < limit:
        ready = [(s, parts[s][0][i]) for s, i in heads.items() if i < len(parts[s][0])]
        if not ready:
            break
        service, entry = min(
            ready, key=lambda item: trail_order(datetime.fromisoformat(item[1].recorded_at), item[0], item[1].key)
        )
        cost = len(json.dumps(entry.event, separators=(",", ":"), ensure_ascii=False).encode())
        if events and size + cost > budget:
            break
        events.append(entry.event)
        size += cost
        taken[service] = entry.key
        heads[service] += 1
    more = any(heads[s] < len(parts[s][0]) or parts[s][1] for s in parts)
    return Page(events, taken if more else None)


def encode_cursor(cursor: dict[str, Key]) -> str:
    text = json.dumps({service: list(key) for service, key in sorted(cursor.items())}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: object, services: Sequence[str]) -> dict[str, Key]:
    """The positions a cursor names, one per service; BadCursor for anything else."""
    if not isinstance(text, str) or len(text) > 200:
        raise BadCursor("cursor must be a next_cursor from an earlier reply")
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        cursor = {s: (int(raw[s][0]), int(raw[s][1])) for s in services}
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError):
        raise BadCursor("cursor must be a next_cursor from an earlier reply") from None
    if set(raw) != set(services) or any(v < 0 or i < -1 for v, i in cursor.values()):
        raise BadCursor("cursor must be a next_cursor from an earlier reply")
    return cursor


def page_limit(request: dict[str, Any]) -> int:
    """The request's `limit`: an integer from 1 to PAGE_MAX, PAGE_DEFAULT when absent."""
    limit = request.get("limit", PAGE_DEFAULT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
        raise ValueError(f"limit must be an integer from 1 to {PAGE_MAX}")
    return limit
