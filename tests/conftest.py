"""Session-wide real infrastructure: one nats-server with JetStream on a free port, and the
end-to-end system on SQLite and (where a server answers) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from support import NatsServer, Platform, System, postgres_or_skip, postgres_store

# The tests make data directories as a careful operator would: their owner's only, as stepout
# requires of a data directory and of the stores in it (stepout_runtime.data_dir).
os.umask(0o077)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: reads or changes SQLite files directly")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """End-to-end tests run on both stores; tests that open SQLite files run on SQLite only."""
    if "store_kind" in metafunc.fixturenames:
        both = "tests/e2e/" in str(metafunc.definition.path).replace(os.sep, "/")
        if metafunc.definition.get_closest_marker("sqlite_only") or not both:
            metafunc.parametrize("store_kind", ["sqlite"])
        else:
            metafunc.parametrize("store_kind", ["sqlite", "postgres"])


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(store=tmp_path_factory.mktemp("nats-store"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_dsn() -> str:
    return postgres_or_skip()


@pytest.fixture
def store_settings(store_kind: str) -> Iterator[dict[str, str]]:
    """STEPOUT_* settings for the store under test; PostgreSQL gets fresh schemas, dropped after."""
    if store_kind == "sqlite":
        yield {"STEPOUT_STORE": "sqlite"}
        return
    with postgres_store() as settings:
        yield settings


@pytest.fixture
def postgres_settings() -> Iterator[dict[str, str]]:
    """STEPOUT_* settings for PostgreSQL with fresh schemas, dropped after."""
    with postgres_store() as settings:
        yield settings


@pytest.fixture
def system(nats_server: NatsServer, tmp_path: Path, store_settings: dict[str, str]) -> Iterator[System]:
    """Planner and tracker running against the session's nats-server, isolated by subject prefix."""
    running = System(nats_server.url, tmp_path / "data", overrides=dict(store_settings))
    running.data_dir.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def platform(system: System, nats_server: NatsServer) -> AsyncIterator[Platform]:
    client = await Platform.connect(nats_server.url, system.prefix)
    yield client
    await client.close()
