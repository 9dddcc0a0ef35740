"""docker-compose.yml's NATS nodes, run on loopback as compose runs them: each reads the route password
and its routes from its environment through deploy/nats/cluster.conf, the nodes form one cluster with
them, a server without the password stays out, and no command line shows it."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from project_nats import deploy_env, fresh_passwords
from support import ROOT, free_port, nats_server_binary

pytestmark = pytest.mark.cluster

DEPLOY = ROOT / "deploy" / "nats"
ROUTE_LISTEN = "listen: 0.0.0.0:6222"  # where compose's nodes meet, each on its own host name


def compose_nodes() -> dict[str, dict[str, Any]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: service for name, service in services.items() if str(service.get("image", "")).startswith("nats:")}


def interpolated(value: str, **variables: str) -> str:
    """`value` as compose passes it: `${NAME}`, `${NAME:?message}` and `${NAME:-default}` replaced."""
    return re.sub(r"\$\{(\w+)(?::?[?-][^}]*)?\}", lambda m: variables[m.group(1)], value)


def command_lines() -> list[str]:
    """The command line of every process running now, as `ps` shows it to any user of the host."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue  # gone meanwhile
    return found


def routed_to(http_port: int) -> set[str]:
    """The names of the servers a node has routes with, from its monitoring port."""
    try:
        routes = httpx.get(f"http://127.0.0.1:{http_port}/routez", timeout=1.0).json().get("routes") or []
    except (httpx.HTTPError, ValueError):
        return set()
    return {route.get("remote_name", "") for route in routes}


def test_the_compose_nodes_route_with_the_password_of_their_environment_and_show_it_on_no_command_line(
    tmp_path: Path,
) -> None:
    nodes = compose_nodes()
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]
    password = f"route-{secrets.token_hex(16)}"
    passwords, jetstream_key = fresh_passwords(), secrets.token_hex(32)
    route_ports = {name: free_port() for name in nodes}
    http_ports = {name: free_port() for name in nodes}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, node in nodes.items():
            assert not [arg for arg in node["command"] if "PASSWORD" in arg], node["command"]
            # The deploy files as compose mounts them, side by side; the route listener moved to loopback.
            directory = tmp_path / name
            directory.mkdir()
            shutil.copy(DEPLOY / "nats-server.conf", directory / "nats-server.conf")
            cluster_conf = (DEPLOY / "cluster.conf").read_text()
            assert cluster_conf.count(ROUTE_LISTEN) == 1
            (directory / "cluster.conf").write_text(
                cluster_conf.replace(ROUTE_LISTEN, f"listen: 127.0.0.1:{route_ports[name]}")
            )
            env = deploy_env(directory / "store", passwords, jetstream_key)
            for variable in ("STEPOUT_NATSD_ROUTE_PASSWORD", "STEPOUT_NATSD_ROUTES"):
                value = interpolated(node["environment"][variable], STEPOUT_NATSD_ROUTE_PASSWORD=password)
                for other, port in route_ports.items():
                    value = value.replace(f"@{other}:6222", f"@127.0.0.1:{port}")
                env[variable] = value
            command = list(node["command"])
            moved = {
                "--config": str(directory / "cluster.conf"),
                "--addr": "127.0.0.1",
                "--http_port": str(http_ports[name]),
            }
            for flag, value in moved.items():
                command[command.index(flag) + 1] = value
            command += ["--port", str(free_port()), "-l", str(directory / "nats-server.log")]
            processes.append(subprocess.Popen([nats_server_binary(), *command], env=env))

        deadline = time.monotonic() + 30
        while not all(routed_to(http_ports[name]) >= set(nodes) - {name} for name in nodes):
            assert all(p.poll() is None for p in processes) and time.monotonic() < deadline, [
                (tmp_path / name / "nats-server.log").read_text() for name in nodes
            ]
            time.sleep(0.2)
        assert not [line for line in command_lines() if password in line]

        # A server that knows the cluster's name and a route port, but not the password, stays outside.
        rogue_log = tmp_path / "rogue.log"
        rogue_command = ["-a", "127.0.0.1", "-p", str(free_port()), "--server_name", "rogue", "--cluster_name",
                         "stepout", "--cluster", f"nats://127.0.0.1:{free_port()}",
                         "--routes", f"nats://127.0.0.1:{route_ports['nats-1']}", "-l", str(rogue_log)]  # fmt: skip
        rogue = subprocess.Popen([nats_server_binary(), *rogue_command])
        processes.append(rogue)
        deadline = time.monotonic() + 10
        while "Authorization Violation" not in (rogue_log.read_text() if rogue_log.exists() else ""):
            assert time.monotonic() < deadline, rogue_log.read_text()
            time.sleep(0.2)
        assert all("rogue" not in routed_to(port) for port in http_ports.values())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
    for name in nodes:
        assert password not in (tmp_path / name / "nats-server.log").read_text()
