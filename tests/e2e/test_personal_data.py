"""Notes are personal: never in a log line, and not in plaintext in any store file when a key is set."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from support import NatsServer, Platform, System

NOTE = "I-felt-my-heart-race-when-she-laughed-7f3a"
KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def encrypted_system(nats_server: NatsServer, tmp_path: Path) -> Iterator[System]:
    running = System(
        nats_server.url, tmp_path / "data", overrides={"STEPOUT_CIPHER_KEY": KEY, "STEPOUT_LOG_LEVEL": "DEBUG"}
    )
    running.data_dir.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def encrypted_platform(encrypted_system: System, nats_server: NatsServer) -> AsyncIterator[Platform]:
    client = await Platform.connect(nats_server.url, encrypted_system.prefix)
    yield client
    await client.close()


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_notes_are_never_logged_nor_stored_in_plaintext_with_a_key(
    encrypted_platform: Platform, encrypted_system: System
) -> None:
    platform, user = encrypted_platform, "u-private"
    await platform.enrol(user, coach_id="coach-7")
    await platform.wait_for("challenge.assigned", user)
    await platform.attempt(user, note=NOTE)
    await platform.attempt(user, note=NOTE, suds_peak=10)  # invalid (peak below before): a dead letter
    await platform.attempt(user, note=NOTE + "x" * 2000)  # invalid: note too long
    await platform.wait_for("progress.updated", user)
    history = await platform.query("history", {"user_id": user})
    assert NOTE not in str(history)

    encrypted_system.stop()  # flush everything to disk, logs included
    data_dir = encrypted_system.data_dir
    assert (data_dir / "tracker.db").exists()
    assert files_containing(data_dir, NOTE.encode()) == []
    assert files_containing(data_dir, b"coach-7") == []  # other free text is encrypted too
    logs = encrypted_system.logs()
    assert "dead letter" in logs and NOTE not in logs
    encrypted_system.start()  # the fixture stops it again
