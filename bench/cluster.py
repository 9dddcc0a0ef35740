"""Ingest on a 3-node JetStream cluster with replicated streams (R3), the nodes made as `stepout
cluster` makes them, against the same ingest on one node (R1), in one run: each with its own raw
consumer as the baseline, and the ratio of the two ingests.

On one machine the three nodes share its cores with the tracker: every message is written to three
stores and acknowledged by a quorum before the tracker sees it, so the cluster's ceiling is lower,
and the tracker's share of the cores smaller, than on one node.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from stepout_cli.cluster import Node, jetstream_ready, start_node, urls

from .common import free_port
from .ingest import run_ingest

NODES = 3


class ClusterServer:
    """Three nodes on free loopback ports, each with its own store; the `NatsServer` interface."""

    def __init__(self, store: Path, size: int = NODES) -> None:
        self.store = store
        self.nodes = [Node(f"n{i}", free_port(), free_port(), store / f"n{i}") for i in range(size)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return urls(self.nodes)

    def start(self) -> None:
        self.processes = [start_node(node, self.nodes, self.store / f"{node.name}.log") for node in self.nodes]

    async def ready(self) -> None:
        """Until JetStream answers through every node (a meta leader elected)."""
        await jetstream_ready(self.nodes)

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(10)


async def run_cluster_ingest(work: Path, n: int) -> dict[str, object]:
    """The tracker's ingest on one node (R1) and on the 3-node cluster (R3), SQLite store both."""
    single = await run_ingest(work, n, {"STEPOUT_STORE": "sqlite"}, "r1")
    cluster = ClusterServer(work / "nats-r3")
    replicated = await run_ingest(
        work, n, {"STEPOUT_STORE": "sqlite", "STEPOUT_STREAM_REPLICAS": str(NODES)}, "r3", server=cluster
    )
    return {
        "one_node": single,
        "cluster": replicated,
        "nodes": NODES,
        "ratio_to_one_node": replicated["ingest_attempts_per_s"] / single["ingest_attempts_per_s"],
    }
