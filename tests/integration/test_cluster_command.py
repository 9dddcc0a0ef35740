"""`stepout cluster` (what `make cluster` runs): three nats-server nodes clustered on loopback, each
with its own store, encrypted at rest; it prints the settings that point the services at it once
JetStream answers, streams made with them have three replicas, and a signal stops every node. The
routes between the nodes want a password, which no command line shows."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from project_nats import files_containing
from stepout_contract.subjects import Subjects
from stepout_runtime.topology import apply_topology
from support import ROOT, Platform, free_port, service_env

pytestmark = pytest.mark.cluster

MARKER = "a-note-nobody-may-read-on-disk-7c2f"


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_run(count: int) -> int:
    """A first port whose `count` consecutive ports are free: the command numbers its nodes' ports so."""
    for _ in range(50):
        first = free_port()
        if first + count < 65536 and all(_bindable(first + i) for i in range(count)):
            return first
    raise RuntimeError("no run of free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def command_lines() -> dict[int, str]:
    """The command line of every process running now, by pid, as `ps` shows it to any user."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone meanwhile
    return found


def environment_of(pid: int) -> dict[str, str]:
    """A process's environment, which only its user (and root) may read."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode(errors="replace").partition("=")[::2] for entry in entries if entry)


def route_password_kept_off_command_lines(cluster_dir: Path) -> None:
    """Every node of the cluster under `cluster_dir` has the route password in its environment, and no
    process's command line nor any file under `cluster_dir` holds it."""
    lines = command_lines()
    nodes = [pid for pid, line in lines.items() if "nats-server" in line and str(cluster_dir) in line]
    assert len(nodes) == 3, lines
    passwords = {json.loads(environment_of(pid)["STEPOUT_NATSD_ROUTE_PASSWORD"]) for pid in nodes}
    [password] = passwords  # one for the cluster
    assert len(password) >= 32
    assert [pid for pid, line in command_lines().items() if password in line] == []
    assert files_containing(cluster_dir, password) == []  # nor in the configurations, nor in the logs
    for i in range(3):
        assert "password: $STEPOUT_NATSD_ROUTE_PASSWORD" in (cluster_dir / f"n{i}.conf").read_text()


def first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The command's first line of standard output, or "" when none comes within `timeout` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""


async def replicated(url: str, prefix: str) -> tuple[int, str]:
    """Declare the topology as a service does with STEPOUT_STREAM_REPLICAS=3, send one attempt through
    the input stream, and say how many copies the input stream has and which node leads it."""
    platform = await Platform.connect(url.split(","), prefix)  # type: ignore[arg-type]  # every node
    try:
        subjects = Subjects(prefix)
        await apply_topology(platform.js, subjects, max_deliver=5, ack_wait=30, replicas=3)
        await platform.attempt("u-cluster", note=MARKER)
        info = await platform.js.stream_info(subjects.in_stream)
        assert info.state.messages == 1
        assert info.cluster is not None and info.cluster.leader
        return 1 + len(info.cluster.replicas or []), info.cluster.leader
    finally:
        await platform.close()


def test_stepout_cluster_starts_three_nodes_that_replicate_and_stops_them_on_a_signal(tmp_path: Path) -> None:
    data = tmp_path / "var"
    client, route = free_run(3), free_run(3)
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "clustercmd")
    log = tmp_path / "cluster.log"
    with log.open("ab") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "cluster", "--port", str(client), "--route-port", str(route)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            text=True,
        )
    try:
        urls = ",".join(f"nats://127.0.0.1:{client + i}" for i in range(3))
        assert first_line(process, 60) == f"export STEPOUT_NATS_URL={urls} STEPOUT_STREAM_REPLICAS=3", log.read_text()
        copies, leader = asyncio.run(replicated(urls, "clustercmd"))
        assert copies == 3 and leader in {"n0", "n1", "n2"}  # the routes hold, with their password
        route_password_kept_off_command_lines(data / "cluster")
        stores = [data / "cluster" / f"n{i}" for i in range(3)]
        assert all(store.is_dir() for store in stores)
        assert files_containing(data / "cluster", MARKER) == []  # every node's store encrypted at rest
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    assert not any(listening(client + i) for i in range(3))


def test_stepout_cluster_refuses_fewer_than_three_nodes(tmp_path: Path) -> None:
    env = service_env(f"nats://127.0.0.1:{free_port()}", tmp_path / "var", "clustercmd")
    done = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "cluster", "--nodes", "2"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr
