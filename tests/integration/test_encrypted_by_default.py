"""`stepout run all` with no setting at all (what `make run` runs) still encrypts: a master key made
on first start, stores and read models sealed, JetStream encrypted at rest by the nats-server it
starts; and `stepout keys rotate` changes the master key while everything stored before still reads."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from project_nats import files_containing
from stepout_cli.stores import open_app
from stepout_contract.settings import Settings
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.master_key import master_key
from stepout_runtime.personal_events import ErasedData
from stepout_runtime.sealing import unseal
from stepout_tracker.application import owner_of
from stepout_tracker.participant import participant_id
from support import ROOT, Platform, free_port, service_env

NOTE = "the-first-night-was-the-hardest-41ab"


def run_all(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "run", "all"], env=env, stdout=out, stderr=out, cwd=ROOT
        )


def wait_ready(env: dict[str, str], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    for port in (env["STEPOUT_PLANNER_PORT"], env["STEPOUT_TRACKER_PORT"]):
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def settings(data: Path) -> Settings:
    return Settings(data_dir=data)


@pytest.fixture
def unconfigured(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh `make run`: no key, no token, no NATS answering where it looks."""
    data = tmp_path / "var"
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout", STEPOUT_LOG_LEVEL="INFO")
    for name in ("STEPOUT_API_TOKENS", "STEPOUT_IN_STREAM_MAX_BYTES", "STEPOUT_OUT_STREAM_MAX_BYTES"):
        env.pop(name, None)
    return env


async def enrol_and_attempt(env: dict[str, str], user: str) -> dict[str, Any]:
    platform = await Platform.connect(env["STEPOUT_NATS_URL"], "stepout")
    try:
        await platform.enrol(user, coach_id="coach-at-rest")
        await platform.wait_for("challenge.assigned", user)
        attempt = await platform.attempt(user, note=NOTE)
        await platform.wait_for("progress.updated", user)
        return attempt
    finally:
        await platform.close()


def the_note_of(data: Path, user: str) -> str:
    """The attempt's note, opened as an auditor holding the keys would open it."""
    with open_app(settings(data), "tracker") as app:
        for stored in app.recorder.select_events(participant_id(user)):
            try:
                event = app.mapper.to_domain_event(stored)
            except ErasedData:
                continue
            if type(event).__name__ == "Decided" and event.sealed_note is not None:
                owner = owner_of(user)
                key = app.keys.owner_key(owner)
                assert key is not None
                return unseal(key, event.sealed_note, user)
    raise AssertionError("no attempt stored")


def test_make_run_encrypts_with_no_setting_and_a_rotated_master_key_still_reads_everything(
    unconfigured: dict[str, str], tmp_path: Path
) -> None:
    env, data, log = unconfigured, Path(unconfigured["STEPOUT_DATA_DIR"]), tmp_path / "run-all.log"
    process = run_all(env, log)
    try:
        wait_ready(env, process, log)
        attempt = asyncio.run(enrol_and_attempt(env, "u-rest"))
    finally:
        assert stop(process) == 0

    key_file = data / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    made = [line for line in logged if "master key" in line["message"]]
    assert made and made[0]["file"] == str(key_file)
    assert key_file.read_text().strip() not in log.read_text()  # where, never what

    config = (data / "nats-server.conf").read_text()
    assert "cipher: chachapoly" in config and "$STEPOUT_NATSD_JETSTREAM_KEY" in config
    keys = KeyStore(keystore_location(settings(data)), master_key(settings(data)))
    jetstream_key = keys.purpose_key("jetstream").hex()
    keys.close()
    assert files_containing(data, jetstream_key) == []  # the server's key is in no file
    for marker in (NOTE, "coach-at-rest", attempt["attempt_id"]):
        assert files_containing(data, marker) == [], marker  # stores, read models, NATS store, logs

    before = key_file.read_text()
    rotated = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "keys", "rotate"], env=env, capture_output=True, text=True
    )
    assert rotated.returncode == 0, rotated.stderr
    assert key_file.read_text() != before and before.strip() not in rotated.stdout + rotated.stderr
    assert "re-wrapped" in rotated.stdout
    assert the_note_of(data, "u-rest") == NOTE  # sealed before the rotation, read after it

    process = run_all(env, log)
    try:
        wait_ready(env, process, log)

        async def read_back() -> dict[str, Any]:
            platform = await Platform.connect(env["STEPOUT_NATS_URL"], "stepout")
            try:
                return await platform.query("progress", {"user_id": "u-rest"})
            finally:
                await platform.close()

        assert asyncio.run(read_back())["position"] == 1
    finally:
        assert stop(process) == 0
    old = dict(env, STEPOUT_CIPHER_KEY=before.strip())
    refused = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "replay", "--user", "u-rest"],
        env=old,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1  # the old master key opens nothing any more, and says so in a line
    assert "does not unwrap with this master key" in refused.stderr and before.strip() not in refused.stderr
