"""Real NATS servers that want credentials, for the access-control tests.

Connections under the role identities of the deploy configuration (the server itself is
`project_nats.ProjectNats`), the deploy configuration as the JetStream cluster docker-compose.yml
runs, on loopback, a throwaway TLS CA with server and client certificates (openssl command line),
and an operator-mode server whose users log in with a creds file (JWT + nkey seed, signed here
with the `nkeys` package).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import nkeys
import yaml
from faststream.nats import NatsBroker
from nats.aio.client import Client

from project_nats import (
    DEPLOY_CONFIG,
    PLATFORM_PASSWORD,
    PREFIX,
    ProjectNats,
    ServerProcess,
    conf_string,
    deploy_env,
    fresh_passwords,
)
from stepout_contract.settings import Settings
from stepout_contract.subjects import OUTPUT_FAMILIES
from stepout_runtime.connection import (
    ADMIN_INBOX_PREFIX,
    AUDITOR_INBOX_PREFIX,
    CONSOLE_INBOX_PREFIX,
    PLATFORM_INBOX_PREFIX,
    broker_options,
    connect,
    connect_options,
    service_inbox_prefix,
)
from support import ROOT, Platform, System, free_port, nats_server_binary

NATS_CREDENTIAL_FIELDS = (
    "nats_user",
    "nats_password",
    "nats_token",
    "nats_creds",
    "nats_tls_ca",
    "nats_tls_cert",
    "nats_tls_key",
)


def log_marks(*paths: Path) -> dict[Path, int]:
    """Where each log file ends now, to read later what was written after."""
    return {path: path.stat().st_size if path.exists() else 0 for path in paths}


def logged_since(marks: dict[Path, int]) -> str:
    return "".join(path.read_bytes()[size:].decode(errors="replace") for path, size in marks.items() if path.exists())


def settings_for(url: str, **fields: Any) -> Settings:
    """Settings as a service would read them, every NATS credential not given left unset."""
    unset: dict[str, Any] = dict.fromkeys(NATS_CREDENTIAL_FIELDS)
    return Settings(nats_url=url, **{**unset, **fields})


# --- identities on the deploy configuration ----------------------------------------------------


@dataclass
class Identity:
    """One connection under one role, with the errors the server sent it (permission violations)."""

    nc: Client
    errors: list[str]

    async def violation(self, subject: str, timeout: float = 3.0) -> str:
        """The permission violation the server reported for `subject`, waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for error in self.errors:
                # nats-py lower-cases the server's message, subject included.
                if error.lower().startswith("nats: permissions violation") and f'"{subject.lower()}"' in error.lower():
                    return error
            await asyncio.sleep(0.02)
        raise AssertionError(f"no permission violation for {subject}; errors: {self.errors}")


def _collecting(errors: list[str]) -> Any:
    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    return on_error


async def service_identity(url: str, role: str, password: str) -> Identity:
    """A connection like a service's (its settings, its inbox prefix), logged in as `role`."""
    errors: list[str] = []
    options = connect_options(settings_for(url, nats_user=role, nats_password=password), f"test-{role}")
    options.update(inbox_prefix=service_inbox_prefix(role), error_cb=_collecting(errors), allow_reconnect=False)
    return Identity(await nats.connect(**options), errors)


# The inbox prefix of each outside party: its own, the only one the deploy configuration lets it read.
CLIENT_INBOX_PREFIXES = {
    "platform": PLATFORM_INBOX_PREFIX,
    "auditor": AUDITOR_INBOX_PREFIX,
    "admin": ADMIN_INBOX_PREFIX,
}


async def client_identity(url: str, role: str, password: str, inbox_prefix: str | None = None) -> Identity:
    """A connection like an outside client's (a platform with the default inbox, an auditor or the
    operator with their own), logged in as `role`; `inbox_prefix` another than its own."""
    errors: list[str] = []
    nc = await nats.connect(
        url,
        user=role,
        password=password,
        inbox_prefix=inbox_prefix or CLIENT_INBOX_PREFIXES[role],
        error_cb=_collecting(errors),
        allow_reconnect=False,
    )
    return Identity(nc, errors)


# The console logs in as `console` and takes its replies under an inbox prefix of its own, the only one
# deploy/nats/nats-server.conf lets it read: not `_INBOX_stepout` (what the services pull arrives there),
# nor `_INBOX` (the platform's replies).
CONSOLE = "console"


async def console_identity(url: str, password: str) -> Identity:
    """A connection like the console's (a service's settings, the console's inbox prefix), as `console`."""
    errors: list[str] = []
    options = connect_options(settings_for(url, nats_user=CONSOLE, nats_password=password), "test-console")
    options.update(inbox_prefix=CONSOLE_INBOX_PREFIX, error_cb=_collecting(errors), allow_reconnect=False)
    return Identity(await nats.connect(**options), errors)


async def login(server: ProjectNats, role: str) -> Identity:
    """`role` of the deploy configuration connected as it would be: each with its own inbox prefix."""
    if role == CONSOLE:
        return await console_identity(server.url, server.passwords[role])
    connecting = service_identity if role in ("tracker", "planner") else client_identity
    return await connecting(server.url, role, server.passwords[role])


class PlatformIdentity(Platform):
    """A platform logged in as `platform`: it may subscribe to the outputs only, not to all of `stepout.>`."""

    def __init__(self, identity: Identity) -> None:
        super().__init__(identity.nc, PREFIX)
        self.identity = identity

    @classmethod
    async def login(cls, url: str, password: str = PLATFORM_PASSWORD) -> PlatformIdentity:
        platform = cls(await client_identity(url, "platform", password))
        nc = platform.nc
        for family in OUTPUT_FAMILIES:
            await nc.subscribe(f"{PREFIX}.{family}.>", cb=platform._on_message)
        return platform


# --- the deploy configuration as docker-compose.yml's cluster, on loopback --------------------------

COMPOSE_FILE = ROOT / "docker-compose.yml"
CLUSTER_CONFIG = ROOT / "deploy" / "nats" / "cluster.conf"  # includes DEPLOY_CONFIG, from beside it
ROUTE_PORT = 6222  # where compose's nodes meet each other, each on its own host name
ROUTE_VARIABLES = ("STEPOUT_NATSD_ROUTE_PASSWORD", "STEPOUT_NATSD_ROUTES")


def compose_variables(value: str, **variables: str) -> str:
    """`value` as compose passes it: `${NAME}`, `${NAME:?message}` and `${NAME:-default}` replaced."""
    return re.sub(r"\$\{(\w+)(?::?[?-][^}]*)?\}", lambda m: variables[m.group(1)], value)


@dataclass
class ClusterNode(ServerProcess):
    """One nats-server of the cluster, run with its compose command moved to loopback ports of its own."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    http_port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([nats_server_binary(), *self.command], env=self.env, stdout=log, stderr=log)

    def healthy(self) -> bool:
        """JetStream running and current with the cluster (a meta leader elected)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class ComposeCluster:
    """The nats nodes of docker-compose.yml, each started with its own compose command (the cluster's
    configuration, its server name) and the route password and routes of its compose environment, on
    loopback: the hosts `nats-<k>` and the ports become 127.0.0.1 and free ports (the route listener in
    a copy of the configuration: a --cluster flag would drop the route password), each node with its own
    store."""

    directory: Path
    passwords: dict[str, str] = field(default_factory=fresh_passwords)
    jetstream_key: str = field(default_factory=lambda: secrets.token_hex(32))
    route_password: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[ClusterNode] = field(init=False)
    route_ports: list[int] = field(init=False)

    def __post_init__(self) -> None:
        services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
        names = sorted(name for name, service in services.items() if str(service.get("image", "")).startswith("nats:"))
        routes = {name: free_port() for name in names}
        self.nodes, self.route_ports = [], [routes[name] for name in names]
        for name in names:
            configs = self.directory / name / "config"
            configs.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEPLOY_CONFIG, configs / DEPLOY_CONFIG.name)
            listen = f"listen: 0.0.0.0:{ROUTE_PORT}"
            assert CLUSTER_CONFIG.read_text().count(listen) == 1
            config = configs / CLUSTER_CONFIG.name
            config.write_text(CLUSTER_CONFIG.read_text().replace(listen, f"listen: 127.0.0.1:{routes[name]}"))
            command = list(services[name]["command"])
            port, http_port = free_port(), free_port()
            moved = {"--config": str(config), "--addr": "127.0.0.1", "--http_port": str(http_port)}
            for flag, value in moved.items():
                command[command.index(flag) + 1] = value
            store = self.directory / name / "store"
            store.mkdir(parents=True, exist_ok=True)
            env = deploy_env(store, self.passwords, self.jetstream_key)
            for variable in ROUTE_VARIABLES:
                value = compose_variables(
                    services[name]["environment"][variable], STEPOUT_NATSD_ROUTE_PASSWORD=self.route_password
                )
                for other in names:
                    value = value.replace(f"@{other}:{ROUTE_PORT}", f"@127.0.0.1:{routes[other]}")
                env[variable] = value
            log = self.directory / name / "nats-server.log"
            self.nodes.append(ClusterNode(name, [*command, "--port", str(port)], env, port, http_port, log))

    @property
    def url(self) -> str:
        """STEPOUT_NATS_URL for the cluster: every node."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + timeout
        while not all(node.healthy() for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become healthy:\n" + "\n".join(n.log() for n in self.nodes))
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        return "".join(node.log() for node in self.nodes)

    def system(self, data_dir: Path, **overrides: str) -> System:
        """Planner and tracker on every node of this cluster, each logged in as itself, not started yet."""
        data_dir.mkdir(parents=True, exist_ok=True)
        system = System(self.url, data_dir, prefix=PREFIX, overrides=overrides)
        for service in system.services():
            login = {"STEPOUT_NATS_USER": service.name, "STEPOUT_NATS_PASSWORD": self.passwords[service.name]}
            service.env = {**service.env, **login}
        assert system.tracker is not None
        operator = {"STEPOUT_NATS_USER": "admin", "STEPOUT_NATS_PASSWORD": self.passwords["admin"]}
        system.topology_env = {**system.tracker.env, **operator}
        return system


# --- a JetStream round trip with the settings, both ways a service connects -----------------------


async def round_trip(settings: Settings, stream: str) -> None:
    """Connect as a service does (nats-py and FastStream), store two messages and read one back."""
    nc = await connect(settings, "test-round-trip", ADMIN_INBOX_PREFIX)
    try:
        js = nc.jetstream()
        subject = f"{stream.lower()}.check"
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"], storage="memory")
        ack = await js.publish(subject, b"through nats-py", headers={"Nats-Msg-Id": str(uuid.uuid4())})
        assert (await js.get_msg(stream, ack.seq)).data == b"through nats-py"
        broker = NatsBroker(**broker_options(settings, "test-round-trip-broker", ADMIN_INBOX_PREFIX))
        await broker.connect()
        try:
            await broker.publish(b"through faststream", subject)
        finally:
            await broker.stop()
        deadline = time.monotonic() + 5
        while (await js.stream_info(stream)).state.messages < 2:
            assert time.monotonic() < deadline, "the FastStream publish did not reach the stream"
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


# --- TLS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_args(self) -> list[str]:
        """nats-server flags: TLS with this server certificate, client certificates required."""
        return [
            "--tlsverify",
            "--tlscert",
            str(self.server_cert),
            "--tlskey",
            str(self.server_key),
            "--tlscacert",
            str(self.ca),
        ]


def openssl_binary() -> str | None:
    return shutil.which("openssl")


def make_certificates(directory: Path) -> Certificates:
    """A throwaway CA (EC P-256, one day) signing a server certificate for 127.0.0.1 and a client one."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl = openssl_binary()
    assert openssl is not None

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=stepout test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for who, ext in extensions.items():
        (directory / f"{who}.ext").write_text(ext)
        run("req", *key, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN=stepout test {who}")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-out", f"{who}.pem", "-extfile", f"{who}.ext")  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


# --- operator mode: creds files (JWT + nkey) ------------------------------------------------------

UNLIMITED: dict[str, Any] = dict.fromkeys(("subs", "data", "payload", "imports", "exports", "conn", "leaf"), -1)
UNLIMITED["wildcards"] = True
UNLIMITED_JETSTREAM = dict.fromkeys(("mem_storage", "disk_storage", "streams", "consumer"), -1)


def new_keypair(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(bytearray(nkeys.encode_seed(os.urandom(32), prefix)))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(issuer: nkeys.KeyPair, subject: nkeys.KeyPair, name: str, claims: dict[str, Any]) -> str:
    """A NATS v2 JWT (ed25519-nkey) about `subject`, signed by `issuer`.

    The server checks the signature and the chain of issuers; `jti` only has to be unique.
    """
    body: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject.public_key.decode(),
        "nats": {**claims, "version": 2},
    }
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()).decode()
    header = _b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64url(json.dumps(body).encode())
    signature = _b64url(issuer.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


def creds_file(path: Path, account: nkeys.KeyPair, name: str) -> Path:
    """A user of `account` in the `.creds` format `nsc` writes: the user's JWT, then its seed."""
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    jwt = signed_jwt(account, user, name, {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1})
    path.write_text(
        f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n"
    )
    return path


@dataclass(frozen=True)
class Operator:
    config: Path
    account: nkeys.KeyPair


def make_operator(directory: Path, store: Path) -> Operator:
    """An operator-mode server configuration: one JetStream account and the system account, preloaded."""
    directory.mkdir(parents=True, exist_ok=True)
    operator = new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
    account = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    system = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    accounts = {
        account.public_key.decode(): signed_jwt(
            operator, account, "stepout", {"type": "account", "limits": {**UNLIMITED, **UNLIMITED_JETSTREAM}}
        ),
        system.public_key.decode(): signed_jwt(operator, system, "SYS", {"type": "account", "limits": UNLIMITED}),
    }
    preload = "\n".join(f"  {key}: {jwt}" for key, jwt in accounts.items())
    config = directory / "operator.conf"
    config.write_text(
        f"operator: {signed_jwt(operator, operator, 'stepout-test', {'type': 'operator'})}\n"
        f"system_account: {system.public_key.decode()}\n"
        f"resolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
        f"jetstream {{ store_dir: {conf_string(str(store))} }}\n"
    )
    return Operator(config=config, account=account)
