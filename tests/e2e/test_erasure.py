"""Erasure: a participant's notes become unreadable for good, their queued inputs are purged,
and counts and decisions stay."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from stepout_runtime.keys import unseal
from support import Platform, System

NOTE = "my-sister-would-laugh-at-me-9c1e"


def sealed_notes(system: System) -> list[str]:
    with sqlite3.connect(system.data_dir / "tracker.db") as db:
        states = [row[0] for row in db.execute("SELECT state FROM stored_events WHERE topic LIKE '%AttemptRecorded'")]
    return [json.loads(state)["sealed_note"] for state in states if json.loads(state).get("sealed_note")]


def stored_key(system: System, user: str) -> bytes | None:
    with sqlite3.connect(system.data_dir / "tracker.db") as db:
        row = db.execute("SELECT key FROM participant_keys WHERE user_id = ?", (user,)).fetchone()
    import base64

    return base64.b64decode(row[0]) if row else None


@pytest.mark.sqlite_only
async def test_withdrawal_with_erase_shreds_notes_and_purges_inputs(platform: Platform, system: System) -> None:
    user = "u-erase"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    await platform.attempt(user, note=NOTE)
    await platform.wait_for("progress.updated", user)

    [sealed] = sealed_notes(system)
    key = stored_key(system, user)
    assert key is not None and unseal(key, sealed, user) == NOTE  # readable before erasure

    await platform.publish("participant.withdrawn", user, {"user_id": user, "erase": True})
    await platform.wait_for("plan.paused", user)
    for _ in range(50):
        if stored_key(system, user) is None:
            break
        await asyncio.sleep(0.1)
    assert stored_key(system, user) is None  # the only key is gone: the note can never be read again
    assert sealed_notes(system) == [sealed]  # the record stays, sealed

    left = await platform.stream_messages(f"{system.prefix.upper()}_IN", f"{system.prefix}.*.*.{user}")
    assert left == []
    history = await platform.query("history", {"user_id": user})
    assert [e["type"] for e in history["events"]].count("stepout.attempt.logged.v1") == 1
    assert (await platform.query("progress", {"user_id": user}))["position"] == 1

    system.stop()
    for path in system.data_dir.rglob("*"):
        if path.is_file():
            assert NOTE.encode() not in path.read_bytes(), path
    system.start()
