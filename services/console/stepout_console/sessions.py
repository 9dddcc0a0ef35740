"""Console sessions, kept on the server: the cookie holds only a session id, signed; the record, in a
small SQLite file under the data directory readable by its owner only, says whose session it is, when
it began, when it was last used, and its CSRF token.

A session ends when it is signed out (every copy of its cookie with it), when it has not been used
for the idle timeout, 8 hours after sign-in however busy it was, and when its account is removed or
changed (another role, coach or password hash): `end_changed` at start, and `account_changed` on
every request. The file keeps sessions across a restart of the console, and every console process
sharing the data directory shares them. Only a digest of each id is stored: a copy of the file lets
nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import itsdangerous

from stepout_runtime.data_dir import private_dir, private_file

from .accounts import Account

SESSIONS_FILE = "console-sessions.db"
MAX_AGE_S = 8 * 3600
# Sign-ins kept per account (the oldest ended first): the file stays small whoever signs in how often.
SESSIONS_PER_ACCOUNT = 16
COOKIE_SALT = "stepout-console-session"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mark TEXT NOT NULL,
    csrf TEXT NOT NULL,
    signed_in REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_of_name ON sessions (name, signed_in);
"""


@dataclass(frozen=True, slots=True)
class Session:
    key: str  # the digest of the session id, as stored: never the id itself
    name: str
    mark: str
    csrf: str
    signed_in: float
    seen: float


def account_mark(account: Account) -> str:
    """What a session remembers of its account: any change to its role, coach or password hash changes it."""
    entry = f"{account.name}:{account.role}:{account.coach_id or ''}:{account.password_hash}"
    return hashlib.sha256(entry.encode()).hexdigest()


def account_changed(session: Session, accounts: dict[str, Account]) -> bool:
    """Whether the session's account is gone, or is not the one that signed in."""
    account = accounts.get(session.name)
    return account is None or account_mark(account) != session.mark


class SessionStore:
    def __init__(
        self,
        path: Path,
        secret: str,
        *,
        idle_s: float,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._signer = itsdangerous.Signer(secret, salt=COOKIE_SALT, digest_method=hashlib.sha256)
        private_file(private_dir(path.parent) / path.name)  # 0600 before SQLite opens it: its -wal and -shm too
        # One connection, used by the event loop's thread (a test client's thread in the unit tests).
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def begin(self, account: Account) -> tuple[str, Session]:
        """A new session of `account`: the cookie's value, and the session."""
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        session = Session(_key(session_id), account.name, account_mark(account), secrets.token_urlsafe(32), now, now)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "DELETE FROM sessions WHERE signed_in <= ? OR seen <= ?", (now - self.max_age_s, now - self.idle_s)
            )
            self._db.execute(
                "INSERT INTO sessions (key, name, mark, csrf, signed_in, seen) VALUES (?, ?, ?, ?, ?, ?)",
                (session.key, session.name, session.mark, session.csrf, session.signed_in, session.seen),
            )
            self._db.execute(
                "DELETE FROM sessions WHERE name = ? AND key NOT IN "
                "(SELECT key FROM sessions WHERE name = ? ORDER BY signed_in DESC LIMIT ?)",
                (account.name, account.name, SESSIONS_PER_ACCOUNT),
            )
        return self._signer.sign(session_id).decode(), session

    def current(self, cookie: str | None, *, used: bool) -> Session | None:
        """The live session the cookie names, or None (no cookie, a forged one, or a session ended).
        With `used`, this request counts as use: the idle timeout starts again."""
        if not cookie:
            return None
        try:
            session_id = self._signer.unsign(cookie).decode()
        except (itsdangerous.BadSignature, UnicodeDecodeError):
            return None
        return self.find(_key(session_id), used=used)

    def find(self, key: str, *, used: bool = False) -> Session | None:
        """The live session stored under `key`, or None; one past its time is ended now."""
        row = self._db.execute(
            "SELECT key, name, mark, csrf, signed_in, seen FROM sessions WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        session = Session(*row)
        now = self.clock()
        if now - session.signed_in >= self.max_age_s or now - session.seen >= self.idle_s:
            self.end(key)
            return None
        if used:
            self._db.execute("UPDATE sessions SET seen = ? WHERE key = ?", (now, key))
        return session

    def end(self, key: str) -> None:
        """Ends the session: every copy of its cookie is refused from now on."""
        self._db.execute("DELETE FROM sessions WHERE key = ?", (key,))

    def end_changed(self, accounts: dict[str, Account]) -> int:
        """Ends every session whose account is gone or changed; how many were ended."""
        ended = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute("SELECT key, name, mark, csrf, signed_in, seen FROM sessions").fetchall()
            for session in (Session(*row) for row in rows):
                if account_changed(session, accounts):
                    self._db.execute("DELETE FROM sessions WHERE key = ?", (session.key,))
                    ended += 1
        return ended


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
