"""Faults on a 3-node JetStream cluster with replicated streams (R3), during a burst of 5,000 attempts:
the leader of the input stream killed with SIGKILL and started again, a node that leads nothing killed
and started again, and, on PostgreSQL, one of two trackers and one of two planners killed. After each:
every attempt counted once, every decision published once with one id, each participant decided in
order, and the read models equal to a rebuild from the event stores."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from cluster import NatsCluster
from exactly_once import check_exactly_once, decided_in_order, rebuild_verifies, settled
from support import (
    Platform,
    ServiceProcess,
    System,
    attempt_data,
    cloud_event,
    declare_topology,
    free_port,
    service_env,
)

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

USERS = [f"c-{i:02d}" for i in range(50)]
ATTEMPTS_EACH = int(os.environ.get("STEPOUT_TEST_CLUSTER_ATTEMPTS", "100"))  # 5,000 in all
SAMPLE = USERS[::10]  # whose whole history is read back (the counts and the output stream cover everyone)
FAST = {"STEPOUT_ACK_WAIT_SECONDS": "3", "STEPOUT_BATCH_SIZE": "200", "STEPOUT_STREAM_REPLICAS": "3"}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster")
    nodes.start()
    try:
        await nodes.wait_ready()
        yield nodes
    finally:
        nodes.stop()


async def platform_on(cluster: NatsCluster, prefix: str) -> Platform:
    return await Platform.connect(
        cluster.urls,  # type: ignore[arg-type]  # nats.connect takes every node
        prefix,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )


async def publish(platform: Platform, kind: str, user: str, data: dict[str, object]) -> None:
    """At least once: again (same id) until JetStream acks it, through elections and lost nodes."""
    event = cloud_event(f"stepout.{kind}.v1", user, data, str(uuid.uuid4()))
    body = json.dumps(event).encode()
    for _ in range(600):
        try:
            await platform.js.publish(
                f"{platform.prefix}.{kind}.{user}", body, headers={"Nats-Msg-Id": event["id"]}, timeout=2.0
            )
            return
        except (TimeoutError, nats.errors.Error, OSError):
            await asyncio.sleep(0.1)
    raise AssertionError(f"{kind} of {user} never acked")


async def burst(platform: Platform, published: list[int]) -> None:
    for user in USERS:
        await publish(platform, "participant.enrolled", user, {"user_id": user, "daily_limit": 10})
    for _ in range(ATTEMPTS_EACH):
        for user in USERS:
            await publish(platform, "attempt.logged", user, attempt_data(user, outcome="accepted", suds_peak=30))
            published[0] += 1


async def when_published(published: list[int], count: int) -> None:
    while published[0] < count:
        await asyncio.sleep(0.05)


@pytest.fixture
def cluster_system(cluster: NatsCluster, tmp_path: Path) -> Iterator[System]:
    running = System(cluster.url, tmp_path / "data", overrides=dict(FAST))
    running.data_dir.mkdir()
    running.start()
    yield running
    running.stop()


async def settle_and_check(platform: Platform, prefix: str, services: list[ServiceProcess], logs: str) -> None:
    await settled(platform, USERS, ATTEMPTS_EACH)
    await check_exactly_once(platform, prefix, USERS, ATTEMPTS_EACH, history_of=SAMPLE)
    for service in services:
        service.stop()
    rebuild_verifies(services[0])
    decided_in_order(logs)


@pytest.mark.parametrize("which", ["leader", "follower"])
async def test_a_node_killed_mid_burst_loses_and_doubles_nothing(
    cluster: NatsCluster, cluster_system: System, which: str
) -> None:
    platform = await platform_on(cluster, cluster_system.prefix)
    published = [0]
    load = asyncio.create_task(burst(platform, published))
    try:
        await when_published(published, len(USERS) * ATTEMPTS_EACH * 3 // 10)
        leader = await cluster.leader_of(f"{cluster_system.prefix.upper()}_IN")
        out_leader = await cluster.leader_of(f"{cluster_system.prefix.upper()}_OUT")
        if which == "leader":
            victim = leader
        else:  # a node that leads neither the input nor the output stream
            victim = next(n.name for n in cluster.nodes if n.name not in {leader, out_leader})
        cluster.kill(victim)
        await when_published(published, len(USERS) * ATTEMPTS_EACH * 6 // 10)
        await asyncio.sleep(1.0)
        cluster.start(victim)
        await load
        await settle_and_check(platform, cluster_system.prefix, list(cluster_system.services()), cluster_system.logs())
    finally:
        load.cancel()
        await platform.close()


@pytest.mark.postgres
async def test_one_of_two_trackers_and_one_of_two_planners_killed_mid_burst(
    cluster: NatsCluster, postgres_settings: dict[str, str], tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = service_env(
        cluster.url,
        tmp_path / "data",
        prefix,
        **FAST,
        **postgres_settings,
        STEPOUT_TRACKER_PARTITIONS="4",
        STEPOUT_TRACKER_REPLICAS="2",
        STEPOUT_PLANNER_REPLICAS="2",
    )
    (tmp_path / "data").mkdir()
    declare_topology(env)
    services = [
        ServiceProcess(name, {**env, f"STEPOUT_{name.upper()}_PORT": str(free_port())}, tmp_path / f"{name}-{n}.log")
        for name in ("planner", "tracker")
        for n in (1, 2)
    ]
    for service in services:
        service.start(wait=False)
    for service in services:
        service.wait_ready()
    platform = await platform_on(cluster, prefix)
    published = [0]
    load = asyncio.create_task(burst(platform, published))
    try:
        await when_published(published, len(USERS) * ATTEMPTS_EACH * 3 // 10)
        planner_1, tracker_1 = services[0], services[2]
        planner_1.kill()
        tracker_1.kill()
        await load
        survivors = [services[1], services[3]]
        logs = "".join(s.log_path.read_text() for s in services)
        await settle_and_check(platform, prefix, survivors, logs)
    finally:
        load.cancel()
        await platform.close()
        for service in services:
            service.stop()
