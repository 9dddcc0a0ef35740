"""Read models: JSON rows per key, committed in one transaction with the position they reflect.

A projection reads the store's notification log after its position and writes its rows
and its new position together, so a crash can never apply an event twice or skip one.
The outbox relay keeps its position here too.

Rows are sealed at rest (`RowSealer`): a row holding a participant's personal data with that
participant's own key, so that erasure leaves no readable copy even in old pages of the file;
any other row with the store's `read-models` key. A row may also count in named *marks*
("overloaded"), kept as keyed hashes, so that counting them needs no decryption and names nobody.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .keystore import KeyStore
from .sealing import open_bytes, seal_bytes
from .store import StoreLocation, connect_sql

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS view_rows (view TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (view, key))",
    "CREATE TABLE IF NOT EXISTS view_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS view_marks (mark TEXT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (mark, token))",
)


@dataclass(frozen=True, slots=True)
class Row:
    """A read-model row: its body, whose key seals it (`owner`: a participant's; None: the store's),
    and the marks it counts in (None: leave them as they are)."""

    body: dict[str, Any]
    owner: str | None = None
    marks: frozenset[str] | None = field(default=None)


class RowSealer:
    """Seals row bodies: with the owner's key when the row names one, else the `read-models` key."""

    OWNER = "o:"
    STORE = "s:"

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.store_key = keys.purpose_key("read-models")

    def seal(self, view: str, key: str, row: Row) -> str:
        text = json.dumps(row.body, separators=(",", ":")).encode()
        place = f"{view}/{key}".encode()
        if row.owner is not None:
            owner_key = self.keys.owner_key(row.owner) or self.keys.owner_keys([row.owner]).get(row.owner)
            if owner_key is not None:
                return self.OWNER + row.owner + ":" + base64.b64encode(seal_bytes(owner_key, text, place)).decode()
        return self.STORE + base64.b64encode(seal_bytes(self.store_key, text, place)).decode()

    def open(self, view: str, key: str, stored: str) -> dict[str, Any] | None:
        """The row's body; None when its owner's key was destroyed."""
        place = f"{view}/{key}".encode()
        if stored.startswith(self.OWNER):
            owner, _, sealed = stored[len(self.OWNER) :].partition(":")
            owner_key = self.keys.owner_key(owner)
            if owner_key is None:
                return None
            return json.loads(open_bytes(owner_key, base64.b64decode(sealed), place))  # type: ignore[no-any-return]
        if stored.startswith(self.STORE):
            return json.loads(open_bytes(self.store_key, base64.b64decode(stored[len(self.STORE) :]), place))  # type: ignore[no-any-return]
        return json.loads(stored)  # type: ignore[no-any-return]  # a row of the previous release

    def token(self, view: str, key: str) -> str:
        """A keyed hash of the row's place: who it is cannot be read from a mark."""
        return hmac.new(self.store_key, f"{view}/{key}".encode(), hashlib.sha256).hexdigest()[:32]


class PlainRows:
    """No sealing (in-memory tests of one handler)."""

    def seal(self, view: str, key: str, row: Row) -> str:
        return json.dumps(row.body, separators=(",", ":"))

    def open(self, view: str, key: str, stored: str) -> dict[str, Any] | None:
        return json.loads(stored)  # type: ignore[no-any-return]

    def token(self, view: str, key: str) -> str:
        return f"{view}/{key}"


Sealer = RowSealer | PlainRows
Rows = Mapping[tuple[str, str], Row]
_UPSERT_ROW = (
    "INSERT INTO view_rows (view, key, body) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (view, key) DO UPDATE SET body = excluded.body"
)
_UNMARK = "DELETE FROM view_marks WHERE token = {p}"
_MARK = "INSERT INTO view_marks (mark, token) VALUES ({p}, {p}) ON CONFLICT (mark, token) DO NOTHING"
_UPSERT_POSITION = (
    "INSERT INTO view_positions (name, position) VALUES ({p}, {p}) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)


class PositionConflict(Exception):
    """Another process moved the projection first; read the new position and go on from there."""


class ViewStore:
    """Rows of named views plus positions, on the service's own SQLite file or PostgreSQL schema."""

    def __init__(self, where: StoreLocation, sealer: Sealer | None = None) -> None:
        self.where = where
        self.sealer: Sealer = sealer if sealer is not None else PlainRows()
        self._lock = threading.Lock()
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
        return self.sealer.open(view, key, row[0]) if row else None

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
            for k, b in rows:
                body = self.sealer.open(view, k, b)
                if body is not None:
                    found[k] = body
        return found

    def all(self, view: str) -> Iterable[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                self._sql("SELECT key, body FROM view_rows WHERE view = {p} ORDER BY key"), (view,)
            ).fetchall()
        opened = ((k, self.sealer.open(view, k, b)) for k, b in rows)
        return [(k, body) for k, body in opened if body is not None]

    def count_marked(self, mark: str) -> int:
        """How many rows count in `mark`."""
        with self._lock:
            row = self._conn.execute(self._sql("SELECT COUNT(*) FROM view_marks WHERE mark = {p}"), (mark,)).fetchone()
        return int(row[0])

    def commit(
        self,
        name: str,
        position: int,
        rows: Rows,
        expected: int | None = None,
    ) -> None:
        """Write `rows` ((view, key) -> row) and move `name` to `position`, in one transaction.
        With `expected`, raise PositionConflict (writing nothing) unless `name` is still there."""
        payload = [(view, key, self.sealer.seal(view, key, row)) for (view, key), row in rows.items()]
        marked = [
            (self.sealer.token(view, key), row.marks) for (view, key), row in rows.items() if row.marks is not None
        ]
        unmark = [(token,) for token, _ in marked]
        mark = [(m, token) for token, marks in marked for m in sorted(marks)]
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
                    self._conn.executemany(self._sql(_UNMARK), unmark)
                    self._conn.executemany(self._sql(_MARK), mark)
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
                    if unmark:
                        cur.executemany(self._sql(_UNMARK), unmark)
                    if mark:
                        cur.executemany(self._sql(_MARK), mark)
                    cur.execute(self._sql(_UPSERT_POSITION), (name, position))

    def version(self, name: str) -> int:
        """The version of the code that wrote projection `name`'s rows (0: before versions were kept)."""
        return self.position(f"{name}:version")

    def reset(self, name: str, views: Iterable[str], version: int | None = None) -> None:
        """Forget a projection's rows, marks and position, for a rebuild in place."""
        with self._lock:
            self._conn.execute("DELETE FROM view_marks")
            for view in views:
                self._conn.execute(self._sql("DELETE FROM view_rows WHERE view = {p}"), (view,))
            self._conn.execute(self._sql("DELETE FROM view_positions WHERE name = {p}"), (name,))
            if version is not None:
                self._conn.execute(self._sql(_UPSERT_POSITION), (f"{name}:version", version))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
