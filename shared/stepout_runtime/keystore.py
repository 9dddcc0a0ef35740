"""The key store: every data key stepout encrypts with, each kept wrapped, none ever in the clear.

Two kinds of data key:
- one per purpose (`events`: stored events; `read-models`: read-model rows; `jetstream`: the
  embedded nats-server's store), made once;
- one per participant and service (the *owner*: the aggregate id of the participant in that
  service), made on first use. Everything personal a service keeps of a participant is sealed with
  it, so destroying it (`erase`) makes all of that unreadable for good: crypto-shredding.

Each is stored wrapped (AES-GCM) under a key-encryption key derived from the master key for its
kind (`master_key.derive`), bound to its name. Rotating the master key re-wraps them and rewrites
no data. The store is its own SQLite file (`keys.db` beside the data, rollback journal and
`secure_delete`, so a destroyed key is overwritten in the file and no copy stays in a write-ahead
log) or a PostgreSQL schema that may live in another database than the events
(`STEPOUT_KEYSTORE_DSN`): keep it where the event store's backups are not.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from stepout_contract.settings import Settings

from .master_key import derive
from .sealing import SealBroken, open_bytes, seal_bytes
from .store import StoreLocation, connect_sql, setup_lock, sqlite_location

PURPOSES = ("events", "read-models", "jetstream")
OWNER_CACHE_SIZE = 20_000  # keys kept unwrapped in memory, most recently used; more are read back
_TABLES = (
    "CREATE TABLE IF NOT EXISTS purpose_keys (purpose TEXT PRIMARY KEY, wrapped TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS owner_keys (owner TEXT PRIMARY KEY, wrapped TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS erased_owners (owner TEXT PRIMARY KEY)",
)


class KeyStoreError(RuntimeError):
    """A stored key that does not unwrap with the master key in force (another master key, or changed)."""


def keystore_location(settings: Settings) -> StoreLocation:
    """`keys.db` in the data directory, or a PostgreSQL schema (`<STEPOUT_POSTGRES_SCHEMA>_keys`) on
    STEPOUT_KEYSTORE_DSN, else on the event store's PostgreSQL."""
    dsn = settings.keystore_dsn or (settings.postgres_dsn if settings.store == "postgres" else None)
    if dsn:
        return StoreLocation("postgres", postgres_dsn=dsn, schema=f"{settings.postgres_schema}_keys")
    return sqlite_location(settings.data_dir, "keys.db")


class KeyStore:
    def __init__(self, where: StoreLocation, master: bytes) -> None:
        self.where = where
        self._master = master
        self._lock = threading.RLock()
        # A rollback journal, deleted at each commit, and deleted rows overwritten with zeros:
        # a destroyed key leaves no copy in the file nor in a log beside it. Both services may be
        # starting at once on one PostgreSQL schema: its creation is serialised.
        with setup_lock(where):
            self._conn, self._p = connect_sql(where, "secure_delete=ON", journal="DELETE")
            with self._lock:
                for statement in _TABLES:
                    self._conn.execute(statement)
        self._purposes: dict[str, bytes] = {}
        self._owners: OrderedDict[str, bytes] = OrderedDict()

    # Wrapping ---------------------------------------------------------------------------------

    @staticmethod
    def _wrap(master: bytes, kind: str, name: str, key: bytes) -> str:
        return base64.b64encode(seal_bytes(derive(master, f"wrap/{kind}"), key, name.encode())).decode()

    def _unwrap(self, kind: str, name: str, wrapped: str) -> bytes:
        try:
            return open_bytes(derive(self._master, f"wrap/{kind}"), base64.b64decode(wrapped), name.encode())
        except SealBroken:
            raise KeyStoreError(
                f"key store {self._where_text()}: the {kind} key {name!r} does not unwrap with this master key "
                "(STEPOUT_CIPHER_KEY, or the data directory's master.key)"
            ) from None

    def _where_text(self) -> str:
        return str(self.where.sqlite_path) if self.where.kind == "sqlite" else f"schema {self.where.schema}"

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            if self.where.kind == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            else:
                with self._conn.transaction():
                    yield self._conn

    # Purpose keys -----------------------------------------------------------------------------

    def purpose_key(self, purpose: str) -> bytes:
        """The data key of `purpose`, made and stored on first use."""
        found = self._purposes.get(purpose)
        if found is not None:
            return found
        p = self._p
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO purpose_keys (purpose, wrapped) VALUES ({p}, {p}) ON CONFLICT (purpose) DO NOTHING",
                (purpose, self._wrap(self._master, "purpose", purpose, os.urandom(32))),
            )
            row = conn.execute(f"SELECT wrapped FROM purpose_keys WHERE purpose = {p}", (purpose,)).fetchone()
        key = self._unwrap("purpose", purpose, row[0])
        self._purposes[purpose] = key
        return key

    # Participants' keys -----------------------------------------------------------------------

    def _remember(self, owner: str, key: bytes) -> None:
        self._owners[owner] = key
        self._owners.move_to_end(owner)
        while len(self._owners) > OWNER_CACHE_SIZE:
            self._owners.popitem(last=False)

    def owner_key(self, owner: str) -> bytes | None:
        """The owner's key; None when there is none (never made, or destroyed)."""
        found = self._owners.get(owner)
        if found is not None:
            self._owners.move_to_end(owner)
            return found
        with self._lock:
            row = self._conn.execute(f"SELECT wrapped FROM owner_keys WHERE owner = {self._p}", (owner,)).fetchone()
        if row is None:
            return None
        key = self._unwrap("owner", owner, row[0])
        self._remember(owner, key)
        return key

    def owner_keys(self, owners: Iterable[str]) -> dict[str, bytes]:
        """The keys of `owners`, made (in one transaction) for those that have none; an erased owner
        gets no new key and is left out."""
        wanted = list(dict.fromkeys(owners))
        found = {owner: key for owner in wanted if (key := self._owners.get(owner)) is not None}
        missing = [owner for owner in wanted if owner not in found]
        if not missing:
            return found
        p = self._p
        with self._transaction() as conn:
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                marks = ",".join([p] * len(chunk))
                erased = {
                    r[0] for r in conn.execute(f"SELECT owner FROM erased_owners WHERE owner IN ({marks})", chunk)
                }
                fresh = [
                    (owner, self._wrap(self._master, "owner", owner, os.urandom(32)))
                    for owner in chunk
                    if owner not in erased
                ]
                conn.cursor().executemany(
                    f"INSERT INTO owner_keys (owner, wrapped) VALUES ({p}, {p}) ON CONFLICT (owner) DO NOTHING", fresh
                )
                # Another process may have made some first: use whichever is stored.
                rows = conn.execute(f"SELECT owner, wrapped FROM owner_keys WHERE owner IN ({marks})", chunk).fetchall()
                for owner, wrapped in rows:
                    key = self._unwrap("owner", owner, wrapped)
                    self._remember(owner, key)
                    found[owner] = key
        return found

    def is_erased(self, owner: str) -> bool:
        if owner in self._owners:
            return False
        with self._lock:
            row = self._conn.execute(f"SELECT 1 FROM erased_owners WHERE owner = {self._p}", (owner,)).fetchone()
        return row is not None

    def erase(self, owner: str) -> None:
        """Destroy the owner's key for good (everything sealed with it becomes unreadable) and
        remember that it was destroyed, so that none is ever made again for that owner."""
        p = self._p
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM owner_keys WHERE owner = {p}", (owner,))
            conn.execute(f"INSERT INTO erased_owners (owner) VALUES ({p}) ON CONFLICT (owner) DO NOTHING", (owner,))
        self._owners.pop(owner, None)

    # Rotation ---------------------------------------------------------------------------------

    def rotate(self, new_master: bytes) -> int:
        """Re-wrap every stored key under `new_master`, in one transaction; the number re-wrapped.
        Every key is unwrapped first: a key store that does not match the master key in force is
        left untouched."""
        with self._transaction() as conn:
            purposes = conn.execute("SELECT purpose, wrapped FROM purpose_keys").fetchall()
            owners = conn.execute("SELECT owner, wrapped FROM owner_keys").fetchall()
            p = self._p
            conn.cursor().executemany(
                f"UPDATE purpose_keys SET wrapped = {p} WHERE purpose = {p}",
                [
                    (self._wrap(new_master, "purpose", name, self._unwrap("purpose", name, wrapped)), name)
                    for name, wrapped in purposes
                ],
            )
            conn.cursor().executemany(
                f"UPDATE owner_keys SET wrapped = {p} WHERE owner = {p}",
                [
                    (self._wrap(new_master, "owner", name, self._unwrap("owner", name, wrapped)), name)
                    for name, wrapped in owners
                ],
            )
        self._master = new_master
        return len(purposes) + len(owners)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
