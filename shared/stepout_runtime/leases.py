"""Leases: which process may consume a partition or run the outbox relay right now.

On PostgreSQL a lease is a session advisory lock, so it ends by itself when its holder
dies; that is what lets several trackers share partitions and take over a dead one's.
On SQLite (one process per store) every lease is granted at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from .store import StoreLocation

log = logging.getLogger(__name__)


def lease_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a lease name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Leases:
    """Granted at once: one process owns everything (SQLite)."""

    def try_acquire(self, name: str) -> bool:
        return True

    def alive(self) -> bool:
        return True

    def holders(self, names: list[str]) -> set[str]:
        """Which of `names` some process holds now."""
        return set()

    def close(self) -> None:
        pass


class PostgresLeases(Leases):
    def __init__(self, dsn: str, namespace: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self._dsn = dsn
        self._namespace = namespace
        self._lock = threading.Lock()
        self._conn: Any = psycopg.connect(dsn, autocommit=True)
        self._held: set[str] = set()

    def _key(self, name: str) -> int:
        return lease_key(f"{self._namespace}/{name}")

    def try_acquire(self, name: str) -> bool:
        with self._lock:
            if name in self._held:
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key(name),)).fetchone()
            if row and row[0]:
                self._held.add(name)
                return True
            return False

    def alive(self) -> bool:
        """False when the session (and so every lease) was lost; a new session starts with none."""
        with self._lock:
            try:
                self._conn.execute("SELECT 1")
                return True
            except Exception:  # noqa: BLE001 - any failure means the session is gone
                log.warning("lease session lost; leases dropped")
                self._held.clear()
                try:
                    self._conn.close()
                    self._conn = self._psycopg.connect(self._dsn, autocommit=True)
                except Exception:  # noqa: BLE001 - retried on the next check
                    pass
                return False

    def holders(self, names: list[str]) -> set[str]:
        keys = {self._key(n): n for n in names}
        with self._lock:
            rows = self._conn.execute(
                "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchall()
        held = set()
        for (value,) in rows:
            signed = value - (1 << 64) if value >= (1 << 63) else value
            if signed in keys:
                held.add(keys[signed])
        return held

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def leases_for(where: StoreLocation, namespace: str) -> Leases:
    if where.kind == "postgres" and where.postgres_dsn:
        return PostgresLeases(where.postgres_dsn, namespace)
    return Leases()
