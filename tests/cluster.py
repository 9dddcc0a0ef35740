"""A JetStream cluster of nats-server nodes on loopback for the tests, each node on free ports with its own
store, made by the same configuration as `stepout cluster` (`stepout_cli.cluster`); nodes can be killed
with SIGKILL and started again on their store."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js.errors import APIError

from stepout_cli.cluster import Node, jetstream_ready, start_node
from support import free_port


@dataclass
class NatsCluster:
    store: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = [Node(f"n{i}", free_port(), free_port(), self.store / f"n{i}") for i in range(self.size)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """STEPOUT_NATS_URL: every node."""
        return ",".join(self.urls)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def start(self, name: str | None = None) -> None:
        for node in self.nodes if name is None else [self.node(name)]:
            self.processes[node.name] = start_node(node, self.nodes, self.store / f"{node.name}.log")

    def kill(self, name: str) -> None:
        """SIGKILL: no goodbye to the others, nothing flushed."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers through every running node (a meta leader is elected)."""
        await jetstream_ready([self.node(name) for name in self.processes], timeout)

    async def leader_of(self, stream: str) -> str:
        """The name of the node leading `stream` now."""
        nc = await nats.connect(self.urls, connect_timeout=1)
        try:
            for _ in range(100):
                try:
                    info = await nc.jetstream(timeout=2).stream_info(stream)
                    if info.cluster is not None and info.cluster.leader:
                        return info.cluster.leader
                except (nats.errors.Error, APIError):
                    pass
                await asyncio.sleep(0.2)
        finally:
            await nc.close()
        raise RuntimeError(f"no leader for {stream}")
