"""Real parts for tests: a nats-server per session, service processes, a platform client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

ROOT = Path(__file__).resolve().parents[1]
# The bearer tokens every test system's /v1/ routes answer to (STEPOUT_API_TOKENS).
PLATFORM_TOKEN = "test-platform-token-0123456789"
AUDITOR_TOKEN = "test-auditor-token-0123456789"
AS_PLATFORM = {"Authorization": f"Bearer {PLATFORM_TOKEN}"}


POSTGRES_DSN = os.environ.get("STEPOUT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_answers() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_DSN, connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001 - any failure means no server to test against
        return False


def postgres_or_skip() -> str:
    """The test PostgreSQL's DSN; the test is skipped when none answers, or fails when
    STEPOUT_REQUIRE_POSTGRES=1 (as in CI)."""
    if not postgres_answers():
        if os.environ.get("STEPOUT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but not answering at {POSTGRES_DSN}")
        pytest.skip("no PostgreSQL server answering")
    return POSTGRES_DSN


POSTGRES_SCHEMA_PARTS = ("tracker", "planner", "keys")  # the schemas the services make: `<schema>_<part>`


@contextmanager
def postgres_store() -> Iterator[dict[str, str]]:
    """STEPOUT_* settings for the test PostgreSQL with fresh schemas, dropped after (skipped without one)."""
    dsn = postgres_or_skip()
    schema = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield {"STEPOUT_STORE": "postgres", "STEPOUT_POSTGRES_DSN": dsn, "STEPOUT_POSTGRES_SCHEMA": schema}
    finally:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            for part in POSTGRES_SCHEMA_PARTS:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema}_{part} CASCADE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else "nats-server"


@dataclass
class NatsServer:
    """A `nats-server -js` of our own, on a free port, with its own store; can be stopped and restarted."""

    store: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        command = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)]
        self.process = subprocess.Popen(
            [*command, *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@dataclass
class ServiceProcess:
    """One stepout service run as `stepout run <name>` in its own OS process."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.env[f"STEPOUT_{self.name.upper()}_PORT"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "run", self.name],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def service_env(nats_url: str, data_dir: Path, prefix: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPOUT_")}
    env.update(
        STEPOUT_NATS_URL=nats_url,
        STEPOUT_DATA_DIR=str(data_dir),
        STEPOUT_SUBJECT_PREFIX=prefix,
        STEPOUT_PLANNER_PORT=str(free_port()),
        STEPOUT_TRACKER_PORT=str(free_port()),
        STEPOUT_CONSOLE_PORT=str(free_port()),
        STEPOUT_LOG_FORMAT="json",
        STEPOUT_LOG_LEVEL="INFO",
        # nats-server reserves each stream's whole byte limit from its JetStream storage up front, and
        # the session's server holds the streams of every test's prefix: small limits, unless a test sets one.
        STEPOUT_IN_STREAM_MAX_BYTES=str(16 * 1024**2),
        STEPOUT_OUT_STREAM_MAX_BYTES=str(16 * 1024**2),
        STEPOUT_DLQ_STREAM_MAX_BYTES=str(16 * 1024**2),
        STEPOUT_API_TOKENS=f"platform:{PLATFORM_TOKEN},auditor:{AUDITOR_TOKEN}",
    )
    env.update(overrides)
    return env


def settings_from(env: dict[str, str]) -> Any:
    """The settings a process started with `env` reads (its STEPOUT_* variables)."""
    from stepout_contract.settings import Settings

    fields = {key[len("STEPOUT_") :].lower(): value for key, value in env.items() if key.startswith("STEPOUT_")}
    return Settings(**{name: value for name, value in fields.items() if name in Settings.model_fields})


def declare_topology(env: dict[str, str]) -> None:
    """`stepout topology apply` with the settings of `env`, as the operator runs it before the services
    start (in a thread of its own: a test may call it with its event loop running)."""
    from stepout_cli.topology import apply

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, apply(settings_from(env))).result()


def cloud_event(type_: str, user_id: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "urn:test:platform",
        "type": type_,
        "subject": user_id,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def attempt_data(user_id: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "attempt_id": str(uuid.uuid4()),
        "user_id": user_id,
        "assignment_id": None,
        "challenge_id": "money-01-ask-the-time",
        "level": 3,
        "outcome": "rejected",
        "suds_before": 30,
        "suds_peak": 50,
        "suds_after": 20,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    data.update(fields)
    return data


class Platform:
    """A wellness platform as stepout sees it: publishes inputs, reads outputs, asks queries."""

    def __init__(self, nc: Client, prefix: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.prefix = prefix
        self.received: list[Msg] = []
        self._arrived = asyncio.Event()

    @classmethod
    async def connect(cls, url: str, prefix: str, **options: Any) -> Platform:
        platform = cls(await nats.connect(url, **options), prefix)
        await platform.nc.subscribe(f"{prefix}.>", cb=platform._on_message)
        return platform

    async def _on_message(self, msg: Msg) -> None:
        if (
            ".query." not in msg.subject
            and not msg.subject.startswith(f"{self.prefix}.participant.")
            and not msg.subject.startswith(f"{self.prefix}.attempt.")
        ):
            self.received.append(msg)
            self._arrived.set()

    async def publish(
        self, kind: str, user_id: str, data: dict[str, Any], event_id: str | None = None, raw: bytes | None = None
    ) -> str:
        event = cloud_event(f"stepout.{kind}.v1", user_id, data, event_id)
        body = raw if raw is not None else json.dumps(event).encode()
        await self.js.publish(f"{self.prefix}.{kind}.{user_id}", body, headers={"Nats-Msg-Id": event["id"]})
        return str(event["id"])

    async def enrol(self, user_id: str, **data: Any) -> str:
        return await self.publish("participant.enrolled", user_id, {"user_id": user_id, **data})

    async def attempt(self, user_id: str, **fields: Any) -> dict[str, Any]:
        data = attempt_data(user_id, **fields)
        await self.publish("attempt.logged", user_id, data)
        return data

    def events(self, subject_part: str, user_id: str | None = None) -> list[dict[str, Any]]:
        found = []
        for msg in self.received:
            if f".{subject_part}." in msg.subject and (user_id is None or msg.subject.endswith(f".{user_id}")):
                found.append(json.loads(msg.data))
        return found

    async def wait_for(
        self, subject_part: str, user_id: str | None = None, count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(subject_part, user_id)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} {subject_part} for {user_id}, got {len(found)}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass

    async def query(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        reply = await self.nc.request(f"{self.prefix}.query.{name}", json.dumps(request).encode(), timeout=5)
        return json.loads(reply.data)  # type: ignore[no-any-return]

    async def history(self, user_id: str, page: int = 500) -> dict[str, Any]:
        """The participant's whole history, read page by page: `{"events": [...]}` (or the error)."""
        events: list[dict[str, Any]] = []
        request: dict[str, Any] = {"user_id": user_id, "limit": page}
        while True:
            reply = await self.query("history", request)
            if "error" in reply:
                return reply
            events.extend(reply["events"])
            if reply.get("next_cursor") is None:
                return {**reply, "events": events}
            request = {"user_id": user_id, "limit": page, "cursor": reply["next_cursor"]}

    async def stream_messages(self, stream: str, subject: str) -> list[Msg]:
        """Every message now stored in `stream` on `subject`, read with an ephemeral consumer."""
        sub = await self.js.pull_subscribe(subject, stream=stream)
        found: list[Msg] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(500, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                found.extend(batch)
        finally:
            await sub.unsubscribe()
        return found

    async def close(self) -> None:
        await self.nc.drain()


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass
class System:
    """Planner and tracker on one nats-server, with their own data dir and subject prefix."""

    nats_url: str
    data_dir: Path
    prefix: str = field(default_factory=new_prefix)
    overrides: dict[str, str] = field(default_factory=dict)
    planner: ServiceProcess | None = None
    tracker: ServiceProcess | None = None
    # The settings `stepout topology apply` runs with before the services start: the services' own
    # unless an operator identity is given (the deploy configuration's `admin`).
    topology_env: dict[str, str] | None = None

    def __post_init__(self) -> None:
        env = service_env(self.nats_url, self.data_dir, self.prefix, **self.overrides)
        self.planner = ServiceProcess("planner", env, self.data_dir / "planner.log")
        self.tracker = ServiceProcess("tracker", env, self.data_dir / "tracker.log")

    def services(self) -> Iterator[ServiceProcess]:
        assert self.planner is not None and self.tracker is not None
        yield self.planner
        yield self.tracker

    def start(self) -> None:
        assert self.tracker is not None
        declare_topology(self.topology_env or self.tracker.env)
        for service in self.services():
            service.start(wait=False)
        for service in self.services():
            service.wait_ready()

    def stop(self) -> None:
        for service in self.services():
            service.stop()

    def logs(self) -> str:
        return "".join(s.log_path.read_text() for s in self.services() if s.log_path.exists())


def settings_of(system: System) -> Any:
    """The services' settings, as the command line sees them with the system's environment."""
    from stepout_contract.settings import Settings

    assert system.tracker is not None
    env = system.tracker.env
    return Settings(
        data_dir=Path(env["STEPOUT_DATA_DIR"]),
        store=env.get("STEPOUT_STORE", "sqlite"),
        postgres_dsn=env.get("STEPOUT_POSTGRES_DSN"),
        postgres_schema=env.get("STEPOUT_POSTGRES_SCHEMA", "stepout"),
        subject_prefix=env["STEPOUT_SUBJECT_PREFIX"],
    )


def tamper_event(system: System, service: str, user_id: str, topic_end: str, old: bytes, new: bytes) -> int:
    """Change the first stored event of `user_id` in `service` whose topic ends with `topic_end` and
    that holds `old`, as an insider holding the keys could: opened, edited, sealed again. Its version.
    SQLite stores only."""
    import sqlite3

    from eventsourcing.persistence import StoredEvent

    from stepout_audit.entries import aggregate_id
    from stepout_cli.stores import open_app
    from stepout_runtime.personal_events import SEALED_FOR_OWNER

    originator = aggregate_id(service, user_id)
    with open_app(settings_of(system), service) as app, sqlite3.connect(system.data_dir / f"{service}.db") as db:
        rows = db.execute(
            "SELECT originator_version, topic, state FROM stored_events WHERE originator_id = ? AND topic LIKE ? "
            "ORDER BY originator_version",
            (originator.hex, f"%{topic_end}"),
        ).fetchall()
        for version, topic, state in rows:
            opened = app.mapper.opened(StoredEvent(originator, version, topic, state))  # type: ignore[attr-defined]
            if old in opened:
                break
        else:
            raise AssertionError(f"no stored {topic_end} of {user_id} holds {old!r}")
        edited = StoredEvent(originator, version, topic, opened.replace(old, new, 1))
        resealed = app.mapper.sealed(edited, personal=state.startswith(SEALED_FOR_OWNER))  # type: ignore[attr-defined]
        db.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (resealed, originator.hex, version),
        )
    return int(version)


def tamper_view(system: System, service: str, view: str, key: str, change: dict[str, Any]) -> None:
    """Change a read-model row as an insider holding the keys could. SQLite stores only."""
    import sqlite3

    from stepout_cli.stores import open_app
    from stepout_runtime.views import Row

    with open_app(settings_of(system), service) as app, sqlite3.connect(system.data_dir / f"{service}.db") as db:
        [stored] = db.execute("SELECT body FROM view_rows WHERE view = ? AND key = ?", (view, key)).fetchone()
        body = app.views.sealer.open(view, key, stored)
        owner = stored[2:].partition(":")[0] if stored.startswith("o:") else None
        sealed = app.views.sealer.seal(view, key, Row({**body, **change}, owner))
        db.execute("UPDATE view_rows SET body = ? WHERE view = ? AND key = ?", (sealed, view, key))
