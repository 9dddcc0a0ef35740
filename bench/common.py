"""Shared pieces of the benchmarks: servers, services, messages."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = Path(sys.executable).parent / "nats-server"
        self.process = subprocess.Popen(
            [str(binary), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    async def ready(self) -> None:
        """Listening is ready: a single server's JetStream needs no election."""

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process else []

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Service:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.env, self.log = name, env, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.env[f"STEPOUT_{self.name.upper()}_PORT"])

    def start(self) -> None:
        out = self.log.open("ab")
        # The operator's step first, as at deploy time: the services only read the topology.
        command = [sys.executable, "-m", "stepout_cli.main", "topology", "apply"]
        subprocess.run(command, env=self.env, stdout=out, stderr=out, cwd=ROOT, check=True, timeout=120)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "run", self.name], env=self.env, stdout=out, stderr=out, cwd=ROOT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process else []

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes `pids` have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / ticks


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, every core (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How busy the machine's cores were between two `machine_ticks()`: 1.0 is every core all the time."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def service_env(nats_url: str, data_dir: Path, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPOUT_")}
    env.update(
        STEPOUT_NATS_URL=nats_url,
        STEPOUT_DATA_DIR=str(data_dir),
        STEPOUT_SUBJECT_PREFIX=prefix,
        STEPOUT_PLANNER_PORT=str(free_port()),
        STEPOUT_TRACKER_PORT=str(free_port()),
        STEPOUT_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def cloud_event(type_: str, user_id: str, data: dict[str, Any], event_id: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:bench:platform",
            "type": type_,
            "subject": user_id,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def next_attempt(prefix: str, user: str) -> tuple[str, bytes, str]:
    """One calm, accepted `attempt.logged` of `user`, occurring now: (subject, body, attempt_id)."""
    attempt_id = str(uuid.uuid4())
    data = {
        "attempt_id": attempt_id,
        "user_id": user,
        "assignment_id": None,
        "challenge_id": "self-chosen-bench",  # not in the catalog: the level is the participant's
        "level": 1,
        "outcome": "accepted",
        "suds_before": 30,
        "suds_peak": 40,
        "suds_after": 20,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body = cloud_event("stepout.attempt.logged.v1", user, data, str(uuid.uuid4()))
    return f"{prefix}.attempt.logged.{user}", body, attempt_id


def attempt_messages(prefix: str, users: list[str], n: int, seed: int = 7) -> list[tuple[str, bytes, str]]:
    """N `attempt.logged` CloudEvents spread over `users`, with calm, habituating readings."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=20)
    messages = []
    for i in range(n):
        user = users[i % len(users)]
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        peak = rng.randint(30, 60)
        data = {
            "attempt_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "user_id": user,
            "assignment_id": None,
            "challenge_id": "money-03-ask-for-coffee-discount",
            "outcome": rng.choice(["rejected", "accepted", "accepted", "skipped"]),
            "suds_before": peak - 10,
            "suds_peak": peak,
            "suds_after": peak - 20,
            "occurred_at": (start + timedelta(seconds=60 * i // len(users) + i % len(users))).isoformat(),
        }
        messages.append(
            (
                f"{prefix}.attempt.logged.{user}",
                cloud_event("stepout.attempt.logged.v1", user, data, event_id),
                event_id,
            )
        )
    return messages
