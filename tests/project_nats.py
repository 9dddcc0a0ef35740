"""A nats-server run with the project's own configuration, deploy/nats/nats-server.conf.

On a free loopback port, with its own store directory, a fresh JetStream key (the store is
encrypted at rest) and a password for every role of the configuration. Tests that check what a
role may do, or what erasure leaves in the server's store, start one:

    with project_nats(tmp_path / "nats") as server:
        env = service_env(server.url, data_dir, PREFIX, **server.service_settings("tracker"))
        ...
    assert files_containing(server.store_dir, marker) == []
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from support import ROOT, System, free_port, nats_server_binary

DEPLOY_CONFIG = ROOT / "deploy" / "nats" / "nats-server.conf"
PREFIX = "stepout"  # the deploy configuration is written for the default prefix
ROLES = ("platform", "tracker", "planner", "auditor", "console", "admin")  # each logs in with its role as the user name

# The platform identity logs in with this password, which the server knows only as its bcrypt
# hash (cost 10): the tests use both forms the configuration accepts, plain and hashed.
PLATFORM_PASSWORD = "platform-test-only-password"
PLATFORM_PASSWORD_BCRYPT = "$2b$10$OFwIX0.r68JKHG5pUDoDhewrG04Z05p5br65I5TpGuBeKCFvMPVkG"


def conf_string(value: str) -> str:
    """An environment value the server's configuration parser reads as a string, whatever it holds."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fresh_passwords() -> dict[str, str]:
    """A password per role; the platform's is the one whose bcrypt hash the server is given."""
    passwords = {role: f"test-{role}-{secrets.token_hex(8)}" for role in ROLES}
    passwords["platform"] = PLATFORM_PASSWORD
    return passwords


def deploy_env(store: Path, passwords: dict[str, str], jetstream_key: str) -> dict[str, str]:
    """The environment deploy/nats/nats-server.conf reads: store directory, JetStream key, one password per role."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STEPOUT_")}
    env["STEPOUT_NATSD_STORE_DIR"] = conf_string(str(store))
    env["STEPOUT_NATSD_JETSTREAM_KEY"] = conf_string(jetstream_key)
    for role in ROLES:
        password = PLATFORM_PASSWORD_BCRYPT if role == "platform" else passwords[role]
        env[f"STEPOUT_NATSD_{role.upper()}_PASSWORD"] = conf_string(password)
    return env


class ServerProcess:
    """What a test does with a nats-server process it started: stop it, read its log."""

    process: subprocess.Popen[bytes] | None
    log_path: Path

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@dataclass
class ConfiguredNatsServer(ServerProcess):
    """`nats-server -c CONFIG` on a free loopback port, with its own environment and log file."""

    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [nats_server_binary(), "-c", str(self.config), "-a", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}:\n{self.log()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start:\n{self.log()}")


@dataclass
class ProjectNats:
    """The deploy configuration's server for one test: its URL, store, key and role passwords.

    `start()` and `stop()` may alternate: a restart keeps the port, the store and the key.
    """

    directory: Path
    passwords: dict[str, str] = field(default_factory=fresh_passwords)
    jetstream_key: str = field(default_factory=lambda: secrets.token_hex(32))
    server: ConfiguredNatsServer = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        env = deploy_env(self.store_dir, self.passwords, self.jetstream_key)
        self.server = ConfiguredNatsServer(DEPLOY_CONFIG, self.directory / "nats-server.log", env)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store_dir(self) -> Path:
        """Everything the server keeps on disk (JetStream streams and consumers) is under here."""
        return self.directory / "store"

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def service_settings(self, role: str) -> dict[str, str]:
        """The STEPOUT_* settings that connect a service (or a CLI command) to this server as `role`."""
        return {
            "STEPOUT_NATS_URL": self.url,
            "STEPOUT_NATS_USER": role,
            "STEPOUT_NATS_PASSWORD": self.passwords[role],
            "STEPOUT_SUBJECT_PREFIX": PREFIX,
        }

    def system(self, data_dir: Path, **overrides: str) -> System:
        """Planner and tracker on this server, each logged in as itself, not started yet."""
        data_dir.mkdir(parents=True, exist_ok=True)
        system = System(self.url, data_dir, prefix=PREFIX, overrides=overrides)
        for service in system.services():
            service.env = {**service.env, **self.service_settings(service.name)}
        assert system.tracker is not None
        system.topology_env = {**system.tracker.env, **self.service_settings("admin")}
        return system


@contextmanager
def project_nats(directory: Path) -> Iterator[ProjectNats]:
    """A started `ProjectNats` in `directory`, stopped on the way out (its store is left for inspection)."""
    server = ProjectNats(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def files_containing(root: Path, marker: str | bytes) -> list[Path]:
    """Every file under `root`, at any depth, whose bytes contain `marker` (UTF-8 when a str)."""
    needle = marker.encode() if isinstance(marker, str) else marker
    return sorted(path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes())
