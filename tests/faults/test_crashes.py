"""Crashes, a NATS restart and a burst: every attempt counted once, every decision published
with one id, read models equal to a rebuild from the event stores."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from support import NatsServer, Platform, System

pytestmark = pytest.mark.faults

USERS = [f"u-{i:02d}" for i in range(16)]
ATTEMPTS_EACH = 12


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(store=tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def crash_system(own_nats: NatsServer, tmp_path: Path) -> Iterator[System]:
    running = System(
        own_nats.url, tmp_path / "data", overrides={"STEPOUT_ACK_WAIT_SECONDS": "2", "STEPOUT_BATCH_SIZE": "50"}
    )
    running.data_dir.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def crash_platform(crash_system: System, own_nats: NatsServer) -> AsyncIterator[Platform]:
    client = await Platform.connect(
        own_nats.url, crash_system.prefix, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    yield client
    await client.close()


async def burst(platform: Platform) -> None:
    for user in USERS:
        await platform.enrol(user, daily_limit=10)
    for _ in range(ATTEMPTS_EACH):
        for user in USERS:
            while True:
                try:
                    await platform.attempt(user, suds_peak=40, suds_after=30)
                    break
                except Exception:  # noqa: BLE001 - NATS away during the restart test: publish again
                    await asyncio.sleep(0.2)
        await asyncio.sleep(0.05)


async def ask(platform: Platform, name: str, request: dict[str, object]) -> dict[str, object]:
    """A query that waits out a reconnect (a request sent while NATS comes back may time out)."""
    for _ in range(10):
        try:
            return await platform.query(name, request)
        except nats.errors.TimeoutError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"no answer to {name}")


async def whole_history(platform: Platform, user: str) -> dict[str, Any]:
    """Every page of the participant's history, each asked as `ask` does."""
    events: list[Any] = []
    request: dict[str, object] = {"user_id": user, "limit": 500}
    while True:
        reply = await ask(platform, "history", request)
        events.extend(reply["events"])  # type: ignore[arg-type]
        if reply.get("next_cursor") is None:
            return {"events": events}
        request = {"user_id": user, "limit": 500, "cursor": reply["next_cursor"]}


async def settle_and_check(platform: Platform, system: System) -> None:
    """Wait until every attempt is reflected, then check exactly-once everywhere."""
    for user in USERS:
        for _ in range(300):
            reply = await ask(platform, "progress", {"user_id": user})
            if reply.get("position") == ATTEMPTS_EACH:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{user} never reached {ATTEMPTS_EACH}: {reply}")
        history = await whole_history(platform, user)
        attempts = [e["data"]["attempt_id"] for e in history["events"] if e["type"] == "stepout.attempt.logged.v1"]
        assert len(attempts) == len(set(attempts)) == ATTEMPTS_EACH
    for user in USERS:  # the planner answered the last attempt of each
        for _ in range(300):
            plan = await ask(platform, "plan", {"user_id": user})
            if plan.get("open_assignment") is not None:
                break
            await asyncio.sleep(0.1)
    expected_outputs = len(USERS) * (2 * ATTEMPTS_EACH + 1)  # progress per attempt, assignments
    for _ in range(100):  # publication follows the commit: wait until it has caught up
        stored = await platform.stream_messages(f"{system.prefix.upper()}_OUT", f"{system.prefix}.>")
        kinds = [json.loads(m.data)["type"] for m in stored]
        if (
            sum(t in {"stepout.progress.updated.v1", "stepout.challenge.assigned.v1"} for t in kinds)
            >= expected_outputs
        ):
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.5)
    stored = await platform.stream_messages(f"{system.prefix.upper()}_OUT", f"{system.prefix}.>")
    by_decision: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for msg in stored:
        event = json.loads(msg.data)
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event["id"]
        data = event["data"]
        if event["type"] == "stepout.progress.updated.v1":
            key: tuple[str, ...] = ("progress", data["user_id"], str(data["position"]))
        elif event["type"] == "stepout.challenge.assigned.v1":
            key = ("assigned", data["assignment_id"])
        elif event["type"] == "stepout.overload.warning.v1":
            key = ("warning", data["warning_id"])
        else:
            key = (event["type"], event["id"])
        by_decision[key].append(event["id"])
    doubled = {key: ids for key, ids in by_decision.items() if len(ids) != 1}
    assert doubled == {}
    progress_keys = [k for k in by_decision if k[0] == "progress"]
    assert len(progress_keys) == len(USERS) * ATTEMPTS_EACH
    assigned = [k for k in by_decision if k[0] == "assigned"]
    assert len(assigned) == len(USERS) * (ATTEMPTS_EACH + 1)

    system.stop()
    assert system.tracker is not None
    verify = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "projections", "rebuild", "--verify"],
        env=system.tracker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    system.start()


async def kill_repeatedly(service_name: str, system: System, seed: int, kills: int = 3) -> int:
    rng = random.Random(seed)
    service = system.tracker if service_name == "tracker" else system.planner
    assert service is not None
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        service.kill()
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        await asyncio.to_thread(service.start)
    return kills


@pytest.mark.parametrize("seed", [11, 29])
async def test_tracker_killed_mid_burst_loses_and_doubles_nothing(
    crash_platform: Platform, crash_system: System, seed: int
) -> None:
    load = asyncio.create_task(burst(crash_platform))
    await kill_repeatedly("tracker", crash_system, seed)
    await load
    await settle_and_check(crash_platform, crash_system)


async def test_planner_killed_mid_burst_loses_and_doubles_nothing(
    crash_platform: Platform, crash_system: System
) -> None:
    load = asyncio.create_task(burst(crash_platform))
    await kill_repeatedly("planner", crash_system, seed=5)
    await load
    await settle_and_check(crash_platform, crash_system)


async def test_nats_restarted_mid_load_on_the_same_store(
    crash_platform: Platform, crash_system: System, own_nats: NatsServer
) -> None:
    load = asyncio.create_task(burst(crash_platform))
    await asyncio.sleep(0.8)
    own_nats.stop()
    await asyncio.sleep(1.0)
    own_nats.start()
    await load
    await settle_and_check(crash_platform, crash_system)
