"""Session-wide real infrastructure: one nats-server with JetStream on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from support import NatsServer, Platform, System


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(store=tmp_path_factory.mktemp("nats-store"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def system(nats_server: NatsServer, tmp_path: Path) -> Iterator[System]:
    """Planner and tracker running against the session's nats-server, isolated by subject prefix."""
    running = System(nats_server.url, tmp_path / "data")
    running.data_dir.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def platform(system: System, nats_server: NatsServer) -> AsyncIterator[Platform]:
    client = await Platform.connect(nats_server.url, system.prefix)
    yield client
    await client.close()
