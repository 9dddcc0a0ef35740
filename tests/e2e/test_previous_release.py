"""Stores written by the previous release (tests/fixtures/release-0.1.0: a simulated cohort, a
participant with a note, and one erased then) still load, replay, export, verify and re-derive, and
the services go on from them: read models rebuilt once, new events sealed, and a participant erased
now shows nothing stored before, though the old release did not seal it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from project_nats import files_containing
from support import ROOT, NatsServer, Platform, System

FIXTURE = ROOT / "tests" / "fixtures" / "release-0.1.0"
COHORT = [f"sim7-{i:05d}" for i in range(12)]


def stepout(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    assert system.tracker is not None
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env=system.tracker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def upgraded(nats_server: NatsServer, tmp_path: Path) -> System:
    data = tmp_path / "data"
    data.mkdir()
    for store in FIXTURE.glob("*.db"):
        shutil.copyfile(store, data / store.name)  # the mode of a new file: the owner's only
    return System(nats_server.url, data, overrides={"STEPOUT_STORE": "sqlite"})


async def test_a_store_of_the_previous_release_still_reads_and_the_services_go_on_from_it(
    upgraded: System, nats_server: NatsServer, tmp_path: Path
) -> None:
    system = upgraded
    # Read with the services stopped, as an auditor would.
    for user in (*COHORT, "fx-notes", "fx-erased"):
        exported = tmp_path / f"{user}.jsonl"
        done = stepout(system, "audit", "export", "--user", user, "--out", str(exported))
        assert done.returncode == 0, done.stdout + done.stderr
        assert stepout(system, "audit", "verify", str(exported)).returncode == 0
        decided = stepout(system, "audit", "decisions", "--user", user)
        assert decided.returncode == 0, decided.stdout
        assert stepout(system, "replay", "--user", user).returncode == 0
    assert "fixture-note" not in (tmp_path / "fx-notes.jsonl").read_text()
    erased_lines = [json.loads(line) for line in (tmp_path / "fx-erased.jsonl").read_text().splitlines()]
    assert [line["type"] for line in erased_lines] == ["stepout.participant.erased.v1"] * 2  # nothing before it
    assert erased_lines[0]["data"]["summary"]["rules"] == {"crisis_reported": 1}
    assert "was erased" in stepout(system, "audit", "decisions", "--user", "fx-erased").stdout

    system.start()
    platform = await Platform.connect(nats_server.url, system.prefix)
    try:
        progress = await platform.query("progress", {"user_id": "sim7-00004"})
        assert progress["position"] == 30 and "practice_level" in progress  # rebuilt by this release
        erased = await platform.query("progress", {"user_id": "fx-erased"})
        assert erased["erased"] is True and erased["position"] == 1 and erased["last_attempt"] is None
        assert (await platform.history("fx-erased"))["events"] == []

        # Going on: a new attempt is sealed, the old ones still count.
        await platform.attempt("fx-notes", note="a-new-note-after-the-upgrade")
        [view] = await platform.wait_for("progress.updated", "fx-notes")
        assert view["data"]["position"] == 2
        history = await platform.history("fx-notes")
        assert sum(1 for e in history["events"] if e["type"] == "stepout.attempt.logged.v1") == 2
    finally:
        await platform.close()
    system.stop()
    assert stepout(system, "projections", "rebuild", "--verify").returncode == 0
    decided = stepout(system, "audit", "decisions", "--user", "fx-notes")
    assert decided.returncode == 0 and "2026.1, 2026.3" in decided.stdout, decided.stdout

    # Erased now: nothing of theirs is shown any more, though the old release stored it unsealed,
    # and the key of their old notes is destroyed.
    system.start()
    platform = await Platform.connect(nats_server.url, system.prefix)
    try:
        await platform.publish("participant.withdrawn", "fx-notes", {"user_id": "fx-notes", "erase": True})
        for _ in range(100):
            if (await platform.query("progress", {"user_id": "fx-notes"})).get("erased"):
                break
            await asyncio.sleep(0.1)
        history = await platform.history("fx-notes")
        assert [e["type"] for e in history["events"]] == ["stepout.participant.erased.v1"] * 2
        assert "suds" not in json.dumps(history)
    finally:
        await platform.close()
    system.stop()
    import sqlite3

    with sqlite3.connect(system.data_dir / "tracker.db") as db:
        assert db.execute("SELECT count(*) FROM participant_keys WHERE user_id = 'fx-notes'").fetchone() == (0,)
    assert files_containing(system.data_dir, "a-new-note-after-the-upgrade") == []
