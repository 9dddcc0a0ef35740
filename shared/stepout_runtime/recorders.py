"""The event stores' recorders: the library's, writing in the transaction that stores each batch
of events the rows of the hash chain (`chain`) and of the attempt index.

The attempt index holds, for each attempt recorded, its participant's aggregate id, a reference
to its `attempt_id` and a digest of what it said, both keyed with the participant's own key (so
the index holds no attempt id, and tells nothing once they are erased): an attempt sent again,
however late, is found without loading the participant's history, and one with the same id and
other content is told apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL, Identifier

from .chain import Chaining

AttemptRow = tuple[str, str, str | None]  # (aggregate id, attempt reference, digest)
AttemptKey = tuple[str, str]  # (aggregate id, attempt reference)
_CHUNK = 500


class ChainedSQLiteRecorder(Chaining, SQLiteApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_chain()

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS event_chain (originator_id TEXT, originator_version INTEGER, "
            "hash TEXT NOT NULL, PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS attempt_index (originator_id TEXT, attempt_ref TEXT, digest TEXT, "
            "PRIMARY KEY (originator_id, attempt_ref)) WITHOUT ROWID",
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
        c.executemany("INSERT OR IGNORE INTO attempt_index VALUES (?, ?, ?)", kwargs.get("attempt_index") or [])
        return result

    def known_attempts(self, keys: Iterable[AttemptKey]) -> dict[AttemptKey, str | None]:
        """The digests of those of `keys` recorded already (None: recorded before digests were)."""
        wanted = set(keys)
        found: dict[AttemptKey, str | None] = {}
        refs = sorted({ref for _, ref in wanted})
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(refs), _CHUNK):
                chunk = refs[start : start + _CHUNK]
                c.execute(
                    "SELECT originator_id, attempt_ref, digest FROM attempt_index WHERE attempt_ref IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update({(o, a): d for o, a, d in c.fetchall() if (o, a) in wanted})
        return found

    def index_attempts(self, rows: Sequence[AttemptRow]) -> None:
        """Add attempts recorded by a release without the index (see `BatchApplication`)."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany("INSERT OR IGNORE INTO attempt_index VALUES (?, ?, ?)", rows)

    def chain_of(self, originator_id: UUID) -> dict[int, str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_version, hash FROM event_chain WHERE originator_id=?", (str(originator_id),))
            return {row[0]: row[1] for row in c.fetchall()}


class ChainedPostgresRecorder(Chaining, PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_chain()
        self._chain_table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(f"{self.events_table_name}_chain")
        )
        self._attempt_table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(f"{self.events_table_name}_attempts")
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {t} (originator_id text, originator_version bigint, "
                "hash text NOT NULL, PRIMARY KEY (originator_id, originator_version))"
            ).format(t=self._chain_table)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {t} (originator_id text, attempt_ref text, digest text, "
                "PRIMARY KEY (originator_id, attempt_ref))"
            ).format(t=self._attempt_table)
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
        attempts = kwargs.get("attempt_index") or []
        if attempts:
            curs.executemany(
                SQL("INSERT INTO {t} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING").format(t=self._attempt_table),
                attempts,
            )

    def known_attempts(self, keys: Iterable[AttemptKey]) -> dict[AttemptKey, str | None]:
        """The digests of those of `keys` recorded already (None: recorded before digests were)."""
        wanted = set(keys)
        refs = sorted({ref for _, ref in wanted})
        found: dict[AttemptKey, str | None] = {}
        with self.datastore.transaction(commit=False) as curs:
            for start in range(0, len(refs), _CHUNK):
                curs.execute(
                    SQL("SELECT originator_id, attempt_ref, digest FROM {t} WHERE attempt_ref = ANY(%s)").format(
                        t=self._attempt_table
                    ),
                    (refs[start : start + _CHUNK],),
                )
                for row in curs.fetchall():
                    key = (row["originator_id"], row["attempt_ref"]) if isinstance(row, dict) else (row[0], row[1])
                    if key in wanted:
                        found[key] = row["digest"] if isinstance(row, dict) else row[2]
        return found

    def index_attempts(self, rows: Sequence[AttemptRow]) -> None:
        """Add attempts recorded by a release without the index (see `BatchApplication`)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(
                SQL("INSERT INTO {t} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING").format(t=self._attempt_table), rows
            )

    def chain_of(self, originator_id: UUID) -> dict[int, str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT originator_version, hash FROM {t} WHERE originator_id=%s").format(t=self._chain_table),
                (str(originator_id),),
            )
            return {row["originator_version"]: row["hash"] for row in curs.fetchall()}


class IndexedMemoryRecorder(POPOApplicationRecorder):
    """The library's in-memory recorder with the attempt index (tests of the deciding layer)."""

    def __init__(self) -> None:
        super().__init__()
        self._attempts: dict[AttemptKey, str | None] = {}

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        result = super().insert_events(stored_events, **kwargs)
        self.index_attempts(kwargs.get("attempt_index") or [])
        return result

    def known_attempts(self, keys: Iterable[AttemptKey]) -> dict[AttemptKey, str | None]:
        return {key: self._attempts[key] for key in keys if key in self._attempts}

    def index_attempts(self, rows: Sequence[AttemptRow]) -> None:
        for originator_id, ref, digest in rows:
            self._attempts.setdefault((originator_id, ref), digest)
