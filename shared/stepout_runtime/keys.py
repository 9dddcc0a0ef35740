"""Per-participant keys for personal fields (notes), so that erasure can destroy them for good.

The library's cipher has one key per application; destroying one participant's data needs
one key each (crypto-shredding). Keys live beside the read models; when STEPOUT_CIPHER_KEY
is set they are themselves stored wrapped with it. Notes are sealed with AES-GCM.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict

from Crypto.Cipher import AES

from .store import StoreLocation, connect_sql

NONCE_BYTES = 12
KEY_CACHE_SIZE = 50_000


def seal(key: bytes, text: str, context: str) -> str:
    """AES-GCM of `text`, bound to `context` (the participant), as base64 text."""
    nonce = os.urandom(NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(context.encode())
    sealed, tag = cipher.encrypt_and_digest(text.encode("utf-8"))
    return base64.b64encode(nonce + sealed + tag).decode()


def unseal(key: bytes, token: str, context: str) -> str:
    raw = base64.b64decode(token)
    cipher = AES.new(key, AES.MODE_GCM, nonce=raw[:NONCE_BYTES])
    cipher.update(context.encode())
    return cipher.decrypt_and_verify(raw[NONCE_BYTES:-16], raw[-16:]).decode("utf-8")


class ParticipantKeys:
    def __init__(self, where: StoreLocation, master_key: str | None) -> None:
        self.where = where
        self._master = base64.b64decode(master_key) if master_key else None
        self._lock = threading.Lock()
        # Deleted keys are overwritten on disk, not left in free pages.
        self._conn, self._p = connect_sql(where, "secure_delete=ON")
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS participant_keys (user_id TEXT PRIMARY KEY, key TEXT NOT NULL)"
            )
        # Bounded: a key and its user id take well under 200 bytes, so this stays under ~10 MiB.
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    def _wrap(self, key: bytes, user_id: str) -> str:
        return (
            seal(self._master, base64.b64encode(key).decode(), user_id)
            if self._master
            else base64.b64encode(key).decode()
        )

    def _unwrap(self, stored: str, user_id: str) -> bytes:
        return base64.b64decode(unseal(self._master, stored, user_id) if self._master else stored)

    def key_for(self, user_id: str, create: bool = True) -> bytes | None:
        """The participant's key; a new one is stored on first use. None once destroyed (and not re-created)."""
        if user_id in self._cache:
            self._cache.move_to_end(user_id)
            return self._cache[user_id]
        p = self._p
        with self._lock:
            row = self._conn.execute(f"SELECT key FROM participant_keys WHERE user_id = {p}", (user_id,)).fetchone()
            if row is None:
                if not create:
                    return None
                self._conn.execute(
                    f"INSERT INTO participant_keys (user_id, key) VALUES ({p}, {p}) ON CONFLICT (user_id) DO NOTHING",
                    (user_id, self._wrap(os.urandom(32), user_id)),
                )
                # Another tracker may have stored one first: use whichever is stored.
                row = self._conn.execute(f"SELECT key FROM participant_keys WHERE user_id = {p}", (user_id,)).fetchone()
            key = self._unwrap(row[0], user_id)
        self._cache[user_id] = key
        while len(self._cache) > KEY_CACHE_SIZE:
            self._cache.popitem(last=False)
        return key

    def destroy(self, user_id: str) -> None:
        """Forget the participant's key for good: everything sealed with it becomes unreadable."""
        self._cache.pop(user_id, None)
        with self._lock:
            self._conn.execute(f"DELETE FROM participant_keys WHERE user_id = {self._p}", (user_id,))
            if self.where.kind == "sqlite":
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
