"""The services' logs name a participant only by a pseudonym keyed with the participant's own key
(stepout_runtime.pseudonyms): after enrolling, attempts, a dead letter and an erasure, no log file of
either service holds the user id, and the pseudonym they hold is one nobody can link to it any more."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from stepout_planner.application import owner_of as planner_owner
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.master_key import master_key
from stepout_runtime.pseudonyms import FIELD, pseudonym
from stepout_tracker.application import owner_of as tracker_owner
from support import Platform, System, settings_of

USER = "u-nameless-in-logs-5e8b"
OWNERS = {"tracker": tracker_owner(USER), "planner": planner_owner(USER)}


def key_store(system: System) -> KeyStore:
    settings = settings_of(system)
    return KeyStore(keystore_location(settings), master_key(settings))


def logged(system: System) -> dict[str, list[dict[str, Any]]]:
    """Each service's JSON log lines, by service."""
    found: dict[str, list[dict[str, Any]]] = {}
    for service in system.services():
        lines = service.log_path.read_text().splitlines() if service.log_path.exists() else []
        found[service.name] = [json.loads(line) for line in lines if line.startswith("{")]
    return found


async def eventually(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def erased_lines(system: System) -> dict[str, list[dict[str, Any]]]:
    return {
        service: [line for line in lines if line["message"] == "participant erased"]
        for service, lines in logged(system).items()
    }


async def test_no_log_file_holds_the_user_id_and_the_pseudonym_names_nobody_after_erasure(
    system: System, platform: Platform
) -> None:
    await platform.enrol(USER, coach_id="coach-of-the-nameless")
    [assigned] = await platform.wait_for("challenge.assigned", USER)
    await platform.attempt(
        USER, assignment_id=assigned["data"]["assignment_id"], challenge_id=assigned["data"]["challenge_id"]
    )
    await platform.wait_for("progress.updated", USER)
    await platform.attempt(USER, suds_before=50, suds_peak=10)  # a dead letter: its peak is below its SUDS before

    # What the pseudonyms are while the participant's keys exist (only their holder can tell).
    keys = key_store(system)
    try:
        expected = {}
        for service, owner in OWNERS.items():
            key = keys.owner_key(owner)
            assert key is not None, service
            expected[service] = pseudonym(key)
    finally:
        keys.close()

    await platform.publish("participant.withdrawn", USER, {"user_id": USER, "erase": True})
    await eventually(lambda: all(erased_lines(system).values()), "both services to log the erasure")
    await platform.attempt(USER)  # after the erasure: a dead letter naming them
    await asyncio.sleep(1.0)
    system.stop()

    for service, lines in erased_lines(system).items():
        assert [line.get(FIELD) for line in lines] == [expected[service]], service
        assert "user_id" not in lines[0]
    for log_file in system.data_dir.rglob("*.log"):
        assert USER not in log_file.read_text(), log_file
    assert [line for lines in logged(system).values() for line in lines if "user_id" in line] == []

    # The keys are gone: nobody can make those pseudonyms again from the user id.
    keys = key_store(system)
    try:
        assert all(keys.owner_key(owner) is None and keys.is_erased(owner) for owner in OWNERS.values())
    finally:
        keys.close()
