"""Which dead letters name which participant, so that erasing a participant removes them.

A dead letter keeps the input as it was sent, and an input may hold a note. Dead letters are
published to one subject per service, so JetStream cannot find a participant's among them; this
index, beside the service's store, records the stream sequence of each dead letter under every
participant it names (in its subject, its CloudEvent `subject`, or its `data.user_id`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from .store import StoreLocation, connect_sql

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dead_letter_index (user_id TEXT NOT NULL, seq BIGINT NOT NULL, "
    "PRIMARY KEY (user_id, seq))"
)


class DeadLetterIndex:
    def __init__(self, where: StoreLocation) -> None:
        self._lock = threading.Lock()
        self._conn, self._p = connect_sql(where)
        with self._lock:
            self._conn.execute(_SCHEMA)

    def add(self, users: Iterable[str], seq: int) -> None:
        p = self._p
        with self._lock:
            self._conn.cursor().executemany(
                f"INSERT INTO dead_letter_index (user_id, seq) VALUES ({p}, {p}) ON CONFLICT (user_id, seq) DO NOTHING",
                [(user, seq) for user in users],
            )

    def of(self, user_id: str) -> list[int]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT seq FROM dead_letter_index WHERE user_id = {self._p} ORDER BY seq", (user_id,)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._conn.execute(f"DELETE FROM dead_letter_index WHERE user_id = {self._p}", (user_id,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
