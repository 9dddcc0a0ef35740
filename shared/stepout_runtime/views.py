"""Read models: JSON rows per key, committed in one transaction with the position they reflect.

A projection reads the store's notification log after its position and writes its rows
and its new position together, so a crash can never apply an event twice or skip one.
The outbox relay keeps its position here too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .store import StoreLocation, connect_sql

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS view_rows (view TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (view, key))",
    "CREATE TABLE IF NOT EXISTS view_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)
_UPSERT_ROW = (
    "INSERT INTO view_rows (view, key, body) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (view, key) DO UPDATE SET body = excluded.body"
)
_UPSERT_POSITION = (
    "INSERT INTO view_positions (name, position) VALUES ({p}, {p}) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)


class PositionConflict(Exception):
    """Another process moved the projection first; read the new position and go on from there."""


class ViewStore:
    """Rows of named views plus positions, on the service's own SQLite file or PostgreSQL schema."""

    def __init__(self, where: StoreLocation, prefix: str = "") -> None:
        self.where = where
        self._lock = threading.Lock()
        self._table_rows = f"{prefix}view_rows"
        # Views and positions are derived and commit together, so losing the last commits
        # to a power cut only means recomputing them: no need to wait for fsync each time.
        self._conn, self._p = connect_sql(where, "synchronous=NORMAL")
        with self._lock:
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def _sql(self, template: str) -> str:
        return template.format(p=self._p)

    def position(self, name: str) -> int:
        with self._lock:
            row = self._conn.execute(
                self._sql("SELECT position FROM view_positions WHERE name = {p}"), (name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def get(self, view: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                self._sql("SELECT body FROM view_rows WHERE view = {p} AND key = {p}"), (view, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, view: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join([self._p] * len(chunk))
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT key, body FROM view_rows WHERE view = {self._p} AND key IN ({marks})", (view, *chunk)
                ).fetchall()
            found.update((k, json.loads(b)) for k, b in rows)
        return found

    def all(self, view: str) -> Iterable[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                self._sql("SELECT key, body FROM view_rows WHERE view = {p} ORDER BY key"), (view,)
            ).fetchall()
        return [(k, json.loads(b)) for k, b in rows]

    def count_with(self, view: str, field: str) -> int:
        """How many rows of `view` have a non-null top-level JSON `field`."""
        if self.where.kind == "sqlite":
            sql = "SELECT COUNT(*) FROM view_rows WHERE view = ? AND json_extract(body, ?) IS NOT NULL"
            args: tuple[str, ...] = (view, f"$.{field}")
        else:
            sql = "SELECT COUNT(*) FROM view_rows WHERE view = %s AND (body::jsonb -> %s) <> 'null'::jsonb"
            args = (view, field)
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return int(row[0])

    def commit(
        self,
        name: str,
        position: int,
        rows: Mapping[tuple[str, str], Mapping[str, Any]],
        expected: int | None = None,
    ) -> None:
        """Write `rows` ((view, key) -> body) and move `name` to `position`, in one transaction.
        With `expected`, raise PositionConflict (writing nothing) unless `name` is still there."""
        payload = [(view, key, json.dumps(body, separators=(",", ":"))) for (view, key), body in rows.items()]
        select = self._sql("SELECT position FROM view_positions WHERE name = {p}")
        with self._lock:
            if self.where.kind == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    if expected is not None:
                        row = self._conn.execute(select, (name,)).fetchone()
                        if (int(row[0]) if row else 0) != expected:
                            raise PositionConflict(name)
                    self._conn.executemany(self._sql(_UPSERT_ROW), payload)
                    self._conn.execute(self._sql(_UPSERT_POSITION), (name, position))
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            else:
                with self._conn.transaction():
                    cur = self._conn.cursor()
                    if expected is not None:
                        cur.execute(
                            self._sql(_UPSERT_POSITION.replace("= excluded.position", "= view_positions.position")),
                            (name, 0),
                        )
                        row = cur.execute(select + " FOR UPDATE", (name,)).fetchone()
                        if int(row[0]) != expected:
                            raise PositionConflict(name)
                    if payload:
                        cur.executemany(self._sql(_UPSERT_ROW), payload)
                    cur.execute(self._sql(_UPSERT_POSITION), (name, position))

    def reset(self, name: str, views: Iterable[str]) -> None:
        """Forget a projection's rows and position, for a rebuild in place."""
        with self._lock:
            for view in views:
                self._conn.execute(self._sql("DELETE FROM view_rows WHERE view = {p}"), (view,))
            self._conn.execute(self._sql("DELETE FROM view_positions WHERE name = {p}"), (name,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
