"""Participant keys as the previous release kept them (`participant_keys` beside the tracker's
events, sealing notes only), destroyed when their participant is erased.

Events that release stored were not sealed per participant: erasing a participant enrolled then
makes their notes unreadable (this key goes), while the other fields of the events stored before
the upgrade stay as they were stored (README "Personal data").
"""

from __future__ import annotations

import time

from .store import StoreLocation, connect_sql

CHECKPOINT_TRIES = 50


def destroy_legacy_key(where: StoreLocation, user_id: str) -> None:
    """Delete the participant's key of the previous release, if that store has one, overwriting it,
    and (SQLite) checkpoint the write-ahead log until no copy of it is left there."""
    conn, p = connect_sql(where, "secure_delete=ON")
    try:
        if where.kind == "sqlite":
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'participant_keys'")
        else:
            found = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'participant_keys' "
                "AND table_schema = current_schema()"
            )
        if found.fetchone() is None:
            return
        conn.execute(f"DELETE FROM participant_keys WHERE user_id = {p}", (user_id,))
        if where.kind == "sqlite":
            for _ in range(CHECKPOINT_TRIES):
                busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy == 0:
                    break
                time.sleep(0.1)  # a reader holds the log: try again once it is done
    finally:
        conn.close()
