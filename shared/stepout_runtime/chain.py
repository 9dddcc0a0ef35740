"""A hash chain over each aggregate's stored events, written in the transaction that stores them.

Each stored event gets a row `(originator_id, originator_version, hash)` where
hash = SHA-256 of the previous event's hash and the stored row (id, version, topic and a
digest of the stored bytes, which are ciphertext when a key is set). A row changed inside
the store afterwards no longer matches its hash, and the first such event can be named.
Crypto-shredding destroys keys, never rows, so an erased participant's chain still verifies.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

GENESIS = "0" * 64
# Chain heads kept in memory (the most recently written participants); an older one is read back.
HEADS_KEPT = 20_000


def chain_hash(prev: str, originator_id: UUID | str, version: int, topic: str, state: bytes) -> str:
    digest = hashlib.sha256(state).hexdigest()
    text = f"{prev}\n{originator_id}\n{version}\n{topic}\n{digest}"
    return hashlib.sha256(text.encode()).hexdigest()


class Chaining:
    """Computes chain rows for a batch; remembers heads only once the batch is committed."""

    def _init_chain(self) -> None:
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._pending: dict[str, tuple[int, str]] = {}

    def _previous(self, key: str, version: int, lookup: Any) -> str:
        if version <= 1:
            return GENESIS
        head = self._pending.get(key) or self._heads.get(key)
        if head is not None and head[0] == version - 1:
            return head[1]
        found = lookup(key, version - 1)
        if found is None:
            raise ValueError(f"chain row missing for {key} version {version - 1}")
        return str(found)

    def _chain_rows(self, stored_events: Sequence[StoredEvent], lookup: Any) -> list[tuple[str, int, str]]:
        rows = []
        for s in stored_events:
            key = str(s.originator_id)
            prev = self._previous(key, s.originator_version, lookup)
            digest = chain_hash(prev, key, s.originator_version, s.topic, s.state)
            self._pending[key] = (s.originator_version, digest)
            rows.append((key, s.originator_version, digest))
        return rows

    def _committed(self) -> None:
        for key, head in self._pending.items():
            self._heads[key] = head
            self._heads.move_to_end(key)
        self._pending.clear()
        while len(self._heads) > HEADS_KEPT:
            self._heads.popitem(last=False)


@dataclass(frozen=True)
class ChainBreak:
    version: int
    reason: str


def verify_chain(recorder: Any, originator_id: UUID) -> ChainBreak | None:
    """The first stored event of `originator_id` that no longer matches its chain, if any."""
    chain = recorder.chain_of(originator_id)
    stored = recorder.select_events(originator_id)
    prev = GENESIS
    for s in stored:
        expected = chain.get(s.originator_version)
        if expected is None:
            return ChainBreak(s.originator_version, "no chain row for this event")
        if chain_hash(prev, str(originator_id), s.originator_version, s.topic, s.state) != expected:
            return ChainBreak(s.originator_version, "stored event does not match its chain hash")
        prev = expected
    if len(chain) != len(stored):
        return ChainBreak(len(stored) + 1, "a stored event was removed")
    return None
