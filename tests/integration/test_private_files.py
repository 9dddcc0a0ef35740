"""What stepout keeps under its data directory is its owner's only: a real start makes the directory
0700 and every file in it 0600 (SQLite's -wal and -shm files and the nats-server store included),
whatever the umask it was started with; and a data directory, or a store or key file in it, that
group or others may read or write stops every command that opens it, with one line saying how to
fix it."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import ROOT, Platform, free_port, service_env

LOOSE_UMASK = 0o022  # what most shells start with: files 0644, directories 0755


def stepout(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        umask=LOOSE_UMASK,
    )


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def not_private(root: Path) -> list[str]:
    """Every directory under `root` (itself included) not 0700 and every file not 0600, with its mode."""
    found = [] if mode_of(root) == 0o700 else [f"{root} {mode_of(root):04o}"]
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            continue
        wanted = 0o700 if path.is_dir() else 0o600
        if mode_of(path) != wanted:
            found.append(f"{path} {mode_of(path):04o}")
    return found


def wait_ready(env: dict[str, str], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    for port in (env["STEPOUT_PLANNER_PORT"], env["STEPOUT_TRACKER_PORT"], env["STEPOUT_CONSOLE_PORT"]):
        path = "/healthz" if port == env["STEPOUT_CONSOLE_PORT"] else "/readyz"
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


async def enrol_and_attempt(url: str, user: str) -> None:
    platform = await Platform.connect(url, "stepout")
    try:
        await platform.enrol(user, coach_id="coach-of-the-private")
        await platform.wait_for("challenge.assigned", user)
        await platform.attempt(user, note="kept-in-private-files")
        await platform.wait_for("progress.updated", user)
    finally:
        await platform.close()


def test_a_real_start_makes_the_data_dir_0700_and_every_file_in_it_0600(tmp_path: Path) -> None:
    """`stepout run all` with no setting at all, started with a umask of 022: it makes the master key, the
    API token, the key store, both stores, the read models, the console's secrets, the embedded
    nats-server's configuration, log and store, all while its services run (the SQLite -wal and -shm
    files exist only then) and after they stop."""
    data = tmp_path / "var"
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout")
    env.pop("STEPOUT_API_TOKENS")  # one is made on first start, in a file
    log = tmp_path / "run-all.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "run", "all"],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
            umask=LOOSE_UMASK,
        )
    try:
        wait_ready(env, process, log)
        asyncio.run(enrol_and_attempt(env["STEPOUT_NATS_URL"], "u-private"))
        made = {path.name for path in data.iterdir()}
        expected = {"master.key", "api-tokens", "keys.db", "tracker.db", "planner.db", "nats-server.conf", "nats"}
        assert expected <= made, made
        assert {"tracker.db-wal", "tracker.db-shm", "planner.db-wal", "planner.db-shm"} <= made, made
        assert not_private(data) == []
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()
    assert not_private(data) == []


def test_stepout_cluster_keeps_its_nodes_stores_and_configurations_private(tmp_path: Path) -> None:
    """The development cluster's directory under the data directory, its nodes' stores, configurations and logs."""
    data = tmp_path / "var"
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout")
    log = tmp_path / "cluster.log"
    ports = [str(free_port()) for _ in range(2)]
    with log.open("ab") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "cluster", "--port", ports[0], "--route-port", ports[1]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            umask=LOOSE_UMASK,
        )
    try:
        deadline = time.monotonic() + 30
        while not all((data / "cluster" / f"n{i}.log").exists() for i in range(3)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # the nodes make their stores
        assert not_private(data) == []
    finally:
        # A cluster still forming when the signal comes stops once its nodes answer: slow on a busy machine.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start writes on standard error."""
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


COMMANDS = [
    ("run", "tracker"),
    ("run", "planner"),
    ("run", "all"),
    ("replay", "--user", "u-1"),
    ("audit", "decisions", "--user", "u-1"),
    ("projections", "rebuild"),
    ("keys", "rotate"),
    ("cluster",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_data_dir_open_to_others_stops_the_start_with_the_chmod_that_fixes_it(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout")
    line = refusal(stepout(env, *command))
    assert str(data) in line and "0755" in line and line.endswith(f"chmod 700 {data}"), line
    assert list(data.iterdir()) == []  # nothing made in it


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_key_store_open_to_others_stops_the_start_with_the_chmod_that_fixes_it(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = tmp_path / "var"
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout")
    made = stepout(env, "projections", "rebuild")  # a first start: the stores and the key store
    assert made.returncode == 0, made.stderr
    keys = data / "keys.db"
    assert mode_of(data) == 0o700 and mode_of(keys) == 0o600
    keys.chmod(0o644)  # as a copy, a restore or a careless tool leaves it
    line = refusal(stepout(env, *command))
    assert str(keys) in line and "0644" in line and line.endswith(f"chmod 600 {keys}"), line
    keys.chmod(0o600)
    assert stepout(env, "projections", "rebuild").returncode == 0  # fixed as the line says


def test_every_open_store_is_named_in_the_one_line(tmp_path: Path) -> None:
    data = tmp_path / "var"
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout")
    assert stepout(env, "projections", "rebuild").returncode == 0
    for name in ("keys.db", "master.key", "tracker.db"):
        (data / name).chmod(0o640)
    line = refusal(stepout(env, "run", "tracker"))
    assert "and 2 more files are open" in line
    fix = line.split(": chmod 600 ", 1)[1].split(" ")
    assert sorted(fix) == sorted(str(data / name) for name in ("keys.db", "master.key", "tracker.db"))


def test_commands_that_open_no_data_dir_run_beside_an_open_one(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    env = service_env(f"nats://127.0.0.1:{free_port()}", data, "stepout")
    export = tmp_path / "export.jsonl"
    export.write_text("")
    done = stepout(env, "audit", "verify", str(export))
    assert "chmod" not in done.stderr
    assert os.listdir(data) == []
