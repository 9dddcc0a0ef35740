"""Several trackers on PostgreSQL share the partitions; one is killed mid-load and the rest take
over its partitions: exact counts, and each participant's attempts in the order they were sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from support import (
    NatsServer,
    Platform,
    ServiceProcess,
    declare_topology,
    free_port,
    new_prefix,
    service_env,
)

USERS = [f"u-{i:02d}" for i in range(24)]
ATTEMPTS_EACH = 10


@pytest.mark.faults
async def test_three_trackers_share_the_load_and_survive_losing_one(
    nats_server: NatsServer, tmp_path: Path, postgres_settings: dict[str, str]
) -> None:
    prefix = new_prefix()
    env = service_env(
        nats_server.url,
        tmp_path,
        prefix,
        **postgres_settings,
        STEPOUT_TRACKER_PARTITIONS="6",
        STEPOUT_TRACKER_REPLICAS="3",
        STEPOUT_ACK_WAIT_SECONDS="2",
        STEPOUT_BATCH_SIZE="20",
    )
    declare_topology(env)
    planner = ServiceProcess("planner", env, tmp_path / "planner.log")
    trackers = [
        ServiceProcess("tracker", {**env, "STEPOUT_TRACKER_PORT": str(free_port())}, tmp_path / f"tracker-{i}.log")
        for i in range(3)
    ]
    platform = await Platform.connect(nats_server.url, prefix)
    try:
        planner.start()
        for tracker in trackers:
            tracker.start(wait=False)
        for tracker in trackers:
            tracker.wait_ready()
        await asyncio.sleep(2.5)  # every tracker has taken its share of the partitions

        sent: dict[str, list[str]] = {user: [] for user in USERS}
        for user in USERS:
            await platform.enrol(user, daily_limit=10)

        async def load() -> None:
            for _ in range(ATTEMPTS_EACH):
                for user in USERS:
                    sent[user].append((await platform.attempt(user))["attempt_id"])
                await asyncio.sleep(0.05)

        loading = asyncio.create_task(load())
        await asyncio.sleep(0.4)
        trackers[1].kill()
        await loading

        for user in USERS:
            for _ in range(200):
                reply = await platform.query("progress", {"user_id": user})
                if reply.get("position") == ATTEMPTS_EACH:
                    break
                await asyncio.sleep(0.1)
            assert reply.get("position") == ATTEMPTS_EACH, (user, reply)
            history = await platform.history(user)
            recorded = [e["data"]["attempt_id"] for e in history["events"] if e["type"] == "stepout.attempt.logged.v1"]
            assert recorded == sent[user]  # exactly once each, in the order sent

        logs = "".join(t.log_path.read_text() for t in trackers)
        consuming = [line for line in logs.splitlines() if '"consuming"' in line or "consuming" in line]
        assert len(consuming) >= 6  # the six partitions were taken, some of them twice (after the kill)
        survivors = [t for i, t in enumerate(trackers) if i != 1]
        assert all("consuming" in t.log_path.read_text() for t in survivors)
    finally:
        await platform.close()
        for service in [planner, *trackers]:
            service.stop()
