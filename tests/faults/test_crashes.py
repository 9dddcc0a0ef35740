"""Crashes, a NATS restart and a burst: every attempt counted once, every decision published
with one id, read models equal to a rebuild from the event stores."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from exactly_once import check_exactly_once, decided_in_order, rebuild_verifies, settled
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


async def settle_and_check(platform: Platform, system: System) -> None:
    """Wait until every attempt is reflected, then check exactly-once everywhere."""
    await settled(platform, USERS, ATTEMPTS_EACH)
    # Each attempt brings the next assignment, after the first one at enrolment.
    await check_exactly_once(platform, system.prefix, USERS, ATTEMPTS_EACH, assignments_each=ATTEMPTS_EACH + 1)
    system.stop()
    assert system.tracker is not None
    rebuild_verifies(system.tracker)
    decided_in_order(system.logs())
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
