"""`stepout cluster`: a JetStream cluster of nats-server nodes on loopback, for development and tests.

Each node has its own client port, route port and store; the nodes route to each other and elect a
leader per stream (the Raft of JetStream clustering). Streams get replicas from
STEPOUT_STREAM_REPLICAS (3 on such a cluster); the services take every node's URL in STEPOUT_NATS_URL.
A route wants the `route` user's password, made for the cluster at start: as in
deploy/nats/cluster.conf, each node reads it and its routes from its environment, never from its
command line, where any user of the host could read them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nats
from nats.js.errors import APIError

from stepout_runtime.data_dir import private_dir, private_file, write_private

from .natsd import JETSTREAM_KEY_VARIABLE, nats_server_binary
from .processes import Signals, stop_all, watch

log = logging.getLogger("stepout.cluster")

CLUSTER_NAME = "stepout"
ROUTE_USER = "route"
# What a node's configuration reads from its environment, by the names deploy/nats/cluster.conf uses.
ROUTE_PASSWORD_VARIABLE = "STEPOUT_NATSD_ROUTE_PASSWORD"
ROUTES_VARIABLE = "STEPOUT_NATSD_ROUTES"
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Node:
    """One node of the cluster: its name, client and route ports, and store."""

    name: str
    port: int
    route_port: int
    store: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def nodes(count: int, store: Path, client_port: int, route_port: int) -> list[Node]:
    """`count` nodes on consecutive client and route ports from the given ones, stores under `store`."""
    return [Node(f"n{i}", client_port + i, route_port + i, store / f"n{i}") for i in range(count)]


@cache
def route_password() -> str:
    """The password of the routes between the nodes this process starts (one for all, made once)."""
    return secrets.token_hex(24)


def node_config(node: Node, encrypted: bool) -> str:
    """The node's configuration: JetStream (encrypted at rest with the key the server reads from its
    environment, when `encrypted`) and its routes, which, like the route password, it reads from its
    environment (`node_environment`)."""
    cipher = f"  cipher: chachapoly\n  key: ${JETSTREAM_KEY_VARIABLE}\n" if encrypted else ""
    return (
        "# Written by stepout for a cluster on loopback.\n"
        f"server_name: {json.dumps(node.name)}\n"
        f"listen: {json.dumps(f'127.0.0.1:{node.port}')}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(node.store))}\n"
        f"{cipher}"
        "}\n"
        "cluster {\n"
        f"  name: {json.dumps(CLUSTER_NAME)}\n"
        f"  listen: {json.dumps(f'127.0.0.1:{node.route_port}')}\n"
        f"  authorization {{ user: {ROUTE_USER}, password: ${ROUTE_PASSWORD_VARIABLE} }}\n"
        f"  routes: ${ROUTES_VARIABLE}\n"
        "}\n"
    )


def node_environment(node: Node, cluster: list[Node], password: str) -> dict[str, str]:
    """The route password and the node's routes to every other node, each with that password, as the
    node's configuration reads them (quoted: the server parses each value as configuration)."""
    routes = [
        f"nats-route://{ROUTE_USER}:{password}@127.0.0.1:{other.route_port}" for other in cluster if other != node
    ]
    return {ROUTE_PASSWORD_VARIABLE: json.dumps(password), ROUTES_VARIABLE: json.dumps(routes)}


def start_node(
    node: Node, cluster: list[Node], log_file: Path, jetstream_key: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `node` (its configuration written beside its store, its secrets in its environment) in a
    session of its own."""
    private_dir(node.store)
    config = node.store.parent / f"{node.name}.conf"
    write_private(config, node_config(node, encrypted=jetstream_key is not None))
    env = {**os.environ, **node_environment(node, cluster, route_password())}
    if jetstream_key:
        env[JETSTREAM_KEY_VARIABLE] = jetstream_key
    return subprocess.Popen(
        [nats_server_binary(), "-c", str(config), "-l", str(private_file(log_file))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def urls(cluster: list[Node]) -> str:
    """STEPOUT_NATS_URL for the cluster: every node."""
    return ",".join(node.url for node in cluster)


async def _starting(_: Exception) -> None:
    """A node still starting refuses connections: `jetstream_ready` asks again, so nothing to report."""


async def jetstream_ready(
    cluster: list[Node], timeout: float = READY_TIMEOUT_S, given_up: Callable[[], bool] = lambda: False
) -> None:
    """Return once JetStream answers through every node of `cluster` (a meta leader elected); raise
    TimeoutError after `timeout` seconds, or at once when `given_up()` says there is no point waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for node in cluster:
        while True:
            try:
                nc = await nats.connect(node.url, connect_timeout=1, allow_reconnect=False, error_cb=_starting)
                try:
                    await nc.jetstream(timeout=2).account_info()
                    break
                finally:
                    await nc.close()
            except (OSError, nats.errors.Error, APIError):
                if loop.time() > deadline or given_up():
                    raise TimeoutError(f"JetStream not answering through cluster node {node.name}") from None
                await asyncio.sleep(0.2)


def run_cluster(cluster: list[Node], jetstream_key: str | None) -> int:
    """Start the nodes, say how to point the services at them once JetStream answers, and stop them on
    SIGINT or SIGTERM (or all of them when one exits)."""
    signals = Signals()
    store = cluster[0].store.parent
    running = {node.name: start_node(node, cluster, store / f"{node.name}.log", jetstream_key) for node in cluster}
    count, replicas = len(cluster), min(3, len(cluster))

    def given_up() -> bool:
        return signals.stopping or any(process.poll() is not None for process in running.values())

    try:
        asyncio.run(jetstream_ready(cluster, given_up=given_up))
    except TimeoutError as exc:
        log.warning("cluster started, JetStream not answering yet", extra={"error": str(exc)})
    else:
        log.info(
            "cluster ready",
            extra={"nodes": count, "store": str(store), "STEPOUT_NATS_URL": urls(cluster)},
        )
    print(f"export STEPOUT_NATS_URL={urls(cluster)} STEPOUT_STREAM_REPLICAS={replicas}", flush=True)
    code = watch(running, signals, "node")
    stop_all(running, STOP_GRACE_S)
    log.info("cluster stopped")
    return code
