"""A hash chain over each aggregate's stored events, written in the transaction that stores them.

Each stored event gets a row `(originator_id, originator_version, hash)` where
hash = SHA-256 of the previous event's hash and the stored row (id, version, topic and a
digest of the stored bytes, which are ciphertext when a key is set). A row changed inside
the store afterwards no longer matches its hash, and the first such event can be named.
Crypto-shredding destroys keys, never rows, so an erased participant's chain still verifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL, Identifier

GENESIS = "0" * 64


def chain_hash(prev: str, originator_id: UUID | str, version: int, topic: str, state: bytes) -> str:
    digest = hashlib.sha256(state).hexdigest()
    text = f"{prev}\n{originator_id}\n{version}\n{topic}\n{digest}"
    return hashlib.sha256(text.encode()).hexdigest()


class _Chaining:
    """Computes chain rows for a batch; remembers heads only once the batch is committed."""

    def _init_chain(self) -> None:
        self._heads: dict[str, tuple[int, str]] = {}
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
        self._heads.update(self._pending)
        self._pending.clear()
        if len(self._heads) > 200_000:
            self._heads.clear()


class ChainedSQLiteRecorder(_Chaining, SQLiteApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_chain()

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS event_chain (originator_id TEXT, originator_version INTEGER, "
            "hash TEXT NOT NULL, PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
        ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        try:
            result = super().insert_events(stored_events, **kwargs)
        except BaseException:
            self._pending.clear()
            raise
        self._committed()
        return result

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        result = super()._insert_events(c, stored_events, **kwargs)

        def lookup(key: str, version: int) -> str | None:
            c.execute("SELECT hash FROM event_chain WHERE originator_id=? AND originator_version=?", (key, version))
            row = c.fetchone()
            return row[0] if row else None

        rows = self._chain_rows(stored_events, lookup)
        c.executemany("INSERT INTO event_chain VALUES (?, ?, ?)", rows)
        return result

    def chain_of(self, originator_id: UUID) -> dict[int, str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_version, hash FROM event_chain WHERE originator_id=?", (str(originator_id),))
            return {row[0]: row[1] for row in c.fetchall()}


class ChainedPostgresRecorder(_Chaining, PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_chain()
        self._chain_table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(f"{self.events_table_name}_chain")
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {t} (originator_id text, originator_version bigint, "
                "hash text NOT NULL, PRIMARY KEY (originator_id, originator_version))"
            ).format(t=self._chain_table)
        )

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        try:
            result = super().insert_events(stored_events, **kwargs)
        except BaseException:
            self._pending.clear()
            raise
        self._committed()
        return result

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if not stored_events:
            return
        # The chain must not interleave with another writer of the same table.
        curs.execute(SQL("LOCK TABLE {t} IN EXCLUSIVE MODE").format(t=self._chain_table))

        def lookup(key: str, version: int) -> str | None:
            curs.execute(
                SQL("SELECT hash FROM {t} WHERE originator_id=%s AND originator_version=%s").format(
                    t=self._chain_table
                ),
                (key, version),
            )
            row = curs.fetchone()
            return (row["hash"] if isinstance(row, dict) else row[0]) if row else None

        rows = self._chain_rows(stored_events, lookup)
        curs.executemany(SQL("INSERT INTO {t} VALUES (%s, %s, %s)").format(t=self._chain_table), rows)

    def chain_of(self, originator_id: UUID) -> dict[int, str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT originator_version, hash FROM {t} WHERE originator_id=%s").format(t=self._chain_table),
                (str(originator_id),),
            )
            return {row["originator_version"]: row["hash"] for row in curs.fetchall()}


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
