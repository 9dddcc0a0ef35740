"""The event store behind each service: eventsourcing on SQLite (default) or PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepout_contract.settings import Settings

from .data_dir import private_dir, private_file

# What a store raises when it is busy or unreachable for a while: retried, never dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
try:
    import psycopg

    TRANSIENT_ERRORS += (psycopg.OperationalError,)
except ImportError:  # pragma: no cover - psycopg is a dependency; kept optional for slim installs
    psycopg = None  # type: ignore[assignment]

try:
    from eventsourcing.persistence import OperationalError as ESOperationalError

    TRANSIENT_ERRORS += (ESOperationalError,)
except ImportError:  # pragma: no cover
    pass


@dataclass(frozen=True)
class StoreLocation:
    """Where one service keeps its events and views."""

    kind: str  # "sqlite" or "postgres"
    sqlite_path: Path | None = None
    postgres_dsn: str | None = None
    schema: str | None = None


def location(settings: Settings, service: str) -> StoreLocation:
    if settings.store == "postgres":
        return StoreLocation(
            "postgres", postgres_dsn=settings.postgres_dsn, schema=f"{settings.postgres_schema}_{service}"
        )
    return sqlite_location(settings.data_dir, f"{service}.db")


def sqlite_location(directory: Path, name: str) -> StoreLocation:
    """The SQLite file `name` in `directory` (made 0700), made 0600 before SQLite first opens it:
    SQLite gives the -wal, -shm and -journal files beside it the same mode."""
    return StoreLocation("sqlite", sqlite_path=private_file(private_dir(directory) / name))


def connect_sql(where: StoreLocation, *pragmas: str, journal: str = "WAL") -> tuple[Any, str]:
    """An autocommit connection beside the event store (SQLite file or PostgreSQL schema), for
    the tables stepout keeps itself, and its parameter placeholder."""
    if where.kind == "sqlite":
        assert where.sqlite_path is not None
        conn: Any = sqlite3.connect(str(where.sqlite_path), timeout=5.0, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA journal_mode={journal}")
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
        return conn, "?"
    import psycopg

    conn = psycopg.connect(where.postgres_dsn or "", autocommit=True)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {where.schema}")
    conn.execute(f"SET search_path TO {where.schema}")
    return conn, "%s"


def eventsourcing_env(settings: Settings, where: StoreLocation) -> dict[str, Any]:
    """The environment an eventsourcing Application reads its persistence from."""
    env: dict[str, Any] = {"ORIGINATOR_ID_TYPE": "uuid"}
    if where.kind == "sqlite":
        assert where.sqlite_path is not None
        env.update(
            APPLICATION_RECORDER_TOPIC="stepout_runtime.recorders:ChainedSQLiteRecorder",
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=str(where.sqlite_path),
            SQLITE_LOCK_TIMEOUT="5",
        )
    else:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(where.postgres_dsn or "")
        env.update(
            APPLICATION_RECORDER_TOPIC="stepout_runtime.recorders:ChainedPostgresRecorder",
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=str(parts.get("dbname", "postgres")),
            POSTGRES_HOST=str(parts.get("host", "127.0.0.1")),
            POSTGRES_PORT=str(parts.get("port", "5432")),
            POSTGRES_USER=str(parts.get("user", "postgres")),
            POSTGRES_PASSWORD=str(parts.get("password", "")),
            POSTGRES_SCHEMA=where.schema,
            POSTGRES_CREATE_SCHEMA="y",
        )
    # Stored events are sealed by `personal_events.PersonalMapper`, not by the library's cipher.
    return env


@contextmanager
def setup_lock(where: StoreLocation) -> Iterator[None]:
    """Serialise table creation between processes starting together on one PostgreSQL schema
    (concurrent CREATE ... IF NOT EXISTS can still collide there)."""
    if where.kind != "postgres":
        yield
        return
    import psycopg

    from .leases import lease_key

    with psycopg.connect(where.postgres_dsn or "", autocommit=True) as conn:
        key = lease_key(f"setup/{where.schema}")
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
