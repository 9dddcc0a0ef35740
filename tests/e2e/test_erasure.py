"""Erasure, as an auditor checking an erasure request would: after `participant.withdrawn` with
`erase: true` (here asked for after a plain withdrawal), nothing the participant wrote or reported
is readable anywhere stepout or its NATS keep data, while counts and the hash chains stay.

The services run under the project's own nats-server configuration (role identities, JetStream
encrypted at rest). Afterwards the streams are read back by a server on the same store, and every
file under the data directory and the server's store is searched for the participant's note."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import nats

from integration.nats_auth import PlatformIdentity
from project_nats import ProjectNats, files_containing, project_nats
from stepout_contract.settings import Settings
from stepout_planner.application import owner_of as planner_owner
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.master_key import master_key
from stepout_tracker.application import owner_of as tracker_owner
from support import AS_PLATFORM, ROOT, System, free_port, nats_server_binary

NOTE = "my-sister-would-laugh-at-me-9c1e"
COACH = "coach-of-the-erased-5d2a"
ZONE = "Pacific/Chatham"
USER, OTHER = "u-erase", "u-keep"


def settings_of(system: System) -> Settings:
    assert system.tracker is not None
    env = system.tracker.env
    return Settings(
        data_dir=Path(env["STEPOUT_DATA_DIR"]),
        store=env.get("STEPOUT_STORE", "sqlite"),  # type: ignore[arg-type]
        postgres_dsn=env.get("STEPOUT_POSTGRES_DSN"),
        postgres_schema=env.get("STEPOUT_POSTGRES_SCHEMA", "stepout"),
    )


def key_store(system: System) -> KeyStore:
    settings = settings_of(system)
    return KeyStore(keystore_location(settings), master_key(settings))


def cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    assert system.tracker is not None
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env=system.tracker.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def dead_letters_counted(system: System, service: str) -> float:
    port = system.tracker.port if service == "tracker" else system.planner.port  # type: ignore[union-attr]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("stepout_dead_letters_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def eventually(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def same_store_open(server: ProjectNats, directory: Path) -> AsyncIterator[nats.aio.client.Client]:
    """A server on the stopped project server's store and key, with one identity that may do anything in
    stepout's account, to read every stream."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "open.conf"
    config.write_text(
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(server.store_dir))}\n"
        "  cipher: chachapoly\n"
        f"  key: {json.dumps(server.jetstream_key)}\n"
        "}\n"
        # The streams are kept under the account they belong to in the deploy configuration.
        "accounts { STEPOUT { jetstream: enabled, users: [{user: reader, password: reader}] } }\n"
    )
    port = free_port()
    reader = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        nc = await eventually(lambda: _connected(port), "the reading server", timeout=10)
        try:
            yield nc
        finally:
            await nc.close()
    finally:
        reader.terminate()
        reader.wait(timeout=10)


async def _connected(port: int) -> nats.aio.client.Client | None:
    try:
        return await nats.connect(
            f"nats://127.0.0.1:{port}", user="reader", password="reader", allow_reconnect=False, connect_timeout=1
        )
    except Exception:  # noqa: BLE001 - not up yet
        return None


async def stored(nc: nats.aio.client.Client, stream: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message a stream holds now: (subject, headers, body)."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue  # deleted
        found.append((msg.subject, dict(msg.headers or {}), msg.data or b""))
    return found


async def test_erasure_after_a_plain_withdrawal_leaves_nothing_personal_readable(
    tmp_path: Path, store_settings: dict[str, str]
) -> None:
    with project_nats(tmp_path / "nats") as server:
        system = server.system(tmp_path / "data", **store_settings)
        system.start()
        try:
            platform = await PlatformIdentity.login(server.url, server.passwords["platform"])
            await platform.enrol(USER, coach_id=COACH, timezone=ZONE)
            await platform.enrol(OTHER, coach_id="coach-kept")
            [assigned] = await platform.wait_for("challenge.assigned", USER)
            await platform.attempt(
                USER,
                note=NOTE,
                assignment_id=assigned["data"]["assignment_id"],
                challenge_id=assigned["data"]["challenge_id"],
                level=None,
                crisis_reported=True,
                suds_peak=83,
            )
            await platform.attempt(OTHER, note="a note that stays")
            await platform.wait_for("overload.warning", USER)
            # A dead letter holding the note (its peak is below its SUDS before).
            await platform.attempt(USER, note=NOTE, suds_before=50, suds_peak=10)
            await eventually(lambda: dead_letters_counted(system, "tracker") >= 1, "the tracker's dead letter")

            owners = (tracker_owner(USER), planner_owner(USER))
            keys = key_store(system)
            try:
                assert all(keys.owner_key(owner) is not None for owner in owners)
            finally:
                keys.close()
            wrapped: list[bytes] = []
            if store_settings["STEPOUT_STORE"] == "sqlite":
                import sqlite3

                with sqlite3.connect(system.data_dir / "keys.db") as db:
                    marks = ",".join("?" * len(owners))
                    rows = db.execute(f"SELECT wrapped FROM owner_keys WHERE owner IN ({marks})", owners).fetchall()
                wrapped = [row[0].encode() for row in rows]
                assert len(wrapped) == 2

            # A plain withdrawal first; erasure asked for later, as people do.
            await platform.publish("participant.withdrawn", USER, {"user_id": USER, "erase": False})
            await platform.wait_for("plan.paused", USER)
            await platform.publish("participant.withdrawn", USER, {"user_id": USER, "erase": True})

            def erased_everywhere() -> bool:
                keys = key_store(system)
                try:
                    return all(keys.is_erased(owner) for owner in owners)
                finally:
                    keys.close()

            await eventually(erased_everywhere, "both services to destroy the participant's keys")
            # Sent after the erasure: dead-lettered without its body.
            before = dead_letters_counted(system, "tracker")
            await platform.attempt(USER, note=NOTE)
            await eventually(lambda: dead_letters_counted(system, "tracker") > before, "the late attempt's dead letter")

            history = await platform.history(USER)
            text = json.dumps(history)
            assert NOTE not in text and COACH not in text and ZONE not in text and "suds" not in text
            kinds = sorted(event["type"] for event in history["events"])
            assert kinds == ["stepout.participant.erased.v1"] * 2, kinds
            tracker_summary = next(e["data"]["summary"] for e in history["events"] if "tracker" in e["source"])
            assert tracker_summary["position"] == 1 and tracker_summary["rules"] == {"crisis_reported": 1}

            progress = await platform.query("progress", {"user_id": USER})
            assert progress["erased"] is True and progress["position"] == 1
            assert progress["attempts"]["rejected"] == 1 and progress["last_attempt_at"] is None
            assert progress["active_warning"] is None
            plan = httpx.get(f"{system.planner.base_url}/v1/participants/{USER}/plan", headers=AS_PLATFORM).json()  # type: ignore[union-attr]
            assert plan["status"] == "withdrawn" and plan["erased"] is True

            exported = tmp_path / "export.jsonl"
            done = cli(system, "audit", "export", "--user", USER, "--out", str(exported))
            assert done.returncode == 0, done.stdout + done.stderr
            assert NOTE not in exported.read_text() and ZONE not in exported.read_text()
            assert cli(system, "audit", "verify", str(exported)).returncode == 0
            decisions = cli(system, "audit", "decisions", "--user", USER)
            assert decisions.returncode == 0 and "was erased" in decisions.stdout, decisions.stdout
            await platform.nc.close()
        finally:
            system.stop()

    # What NATS keeps: read back by a server on the same store (no identities needed there).
    async with same_store_open(server, tmp_path / "reader") as nc:
        dead = await stored(nc, "STEPOUT_DLQ")
        outputs = await stored(nc, "STEPOUT_OUT")
        inputs = await stored(nc, "STEPOUT_IN")
    assert all(NOTE.encode() not in body for _, _, body in dead + outputs + inputs)
    mine = [(headers, body) for _, headers, body in dead if headers["Stepout-Original-Subject"].endswith(f".{USER}")]
    assert [headers["Stepout-Reason"] for headers, _ in mine] == ["erased"]  # the one sent after erasure
    assert all(body == b"" and "Stepout-Body-Sha256" in headers for headers, body in mine)
    assert not [subject for subject, _, _ in outputs if subject.endswith(f".{USER}")]
    assert not [subject for subject, _, _ in inputs if subject.endswith(f".{USER}")]
    assert any(subject.endswith(f".{OTHER}") for subject, _, _ in outputs)  # the others' stay

    # Every file stepout and its NATS server keep: the data directory (stores, keys, logs) and the
    # server's JetStream store.
    for marker in (NOTE, COACH):
        assert files_containing(tmp_path, marker) == []
    for key in wrapped:
        assert files_containing(tmp_path, key) == []
    if store_settings["STEPOUT_STORE"] == "postgres":
        import psycopg

        schema = store_settings["STEPOUT_POSTGRES_SCHEMA"]
        with psycopg.connect(store_settings["STEPOUT_POSTGRES_DSN"]) as conn:
            left = conn.execute(
                f"SELECT count(*) FROM {schema}_keys.owner_keys WHERE owner = ANY(%s)", (list(owners),)
            ).fetchone()
            assert left is not None and left[0] == 0
            for service in ("tracker", "planner"):
                for table in ("events", "snapshots"):
                    rows = conn.execute(
                        f"SELECT count(*) FROM {schema}_{service}.{service}_{table} WHERE position(%s in state) > 0",
                        (NOTE.encode(),),
                    ).fetchone()
                    assert rows is not None and rows[0] == 0
                views = conn.execute(
                    f"SELECT count(*) FROM {schema}_{service}.view_rows WHERE body LIKE %s", (f"%{ZONE}%",)
                ).fetchone()
                assert views is not None and views[0] == 0


async def test_a_second_erasure_request_is_a_dead_letter_and_changes_nothing(
    tmp_path: Path, store_settings: dict[str, str]
) -> None:
    with project_nats(tmp_path / "nats") as server:
        system = server.system(tmp_path / "data", **store_settings)
        system.start()
        try:
            platform = await PlatformIdentity.login(server.url, server.passwords["platform"])
            await platform.enrol(USER)
            await platform.wait_for("challenge.assigned", USER)
            await platform.publish("participant.withdrawn", USER, {"user_id": USER, "erase": True})

            async def erased() -> bool:
                return bool((await platform.query("progress", {"user_id": USER})).get("erased"))

            await eventually(erased, "the erasure")
            before = dead_letters_counted(system, "planner")
            await platform.publish("participant.withdrawn", USER, {"user_id": USER, "erase": True})
            await eventually(lambda: dead_letters_counted(system, "planner") > before, "the planner's dead letter")
            assert dead_letters_counted(system, "tracker") == 0  # the planner owns participant inputs' dead letters
            await platform.nc.close()
        finally:
            system.stop()
