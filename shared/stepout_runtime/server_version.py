"""The oldest nats-server stepout runs on, and the check every service makes right after connecting.

stepout's consumers read several subjects each (`filter_subjects`) and, with several tracker
partitions, the input stream maps subjects (`subject_transform`): both arrived in nats-server
2.10.0. An older server accepts both settings and silently drops them, so every consumer would
receive every input and dead-letter most of it; refusing to start says so instead.
"""

from __future__ import annotations

import re

from nats.aio.client import Client

FLOOR = (2, 10, 0)
FLOOR_TEXT = ".".join(map(str, FLOOR))
NEEDS = "multi-subject consumer filters and stream subject transforms"
BREAKS = (
    "which an older server drops silently: each consumer would then get every input and dead-letter those not its own"
)

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class ServerTooOld(RuntimeError):
    """The NATS server is older than `FLOOR`: the process must stop with a non-zero status."""

    def __init__(self, version: str, where: str) -> None:
        self.version = version
        self.where = where
        super().__init__(too_old_line(version, where))


def too_old_line(version: str, where: str) -> str:
    """One line naming the server's version, the floor and what breaks."""
    return (
        f"nats-server {version} at {where} is older than {FLOOR_TEXT}, the oldest stepout runs on: "
        f"stepout needs {NEEDS}, {BREAKS}"
    )


def is_supported(version: str) -> bool:
    """True for a release at or above `FLOOR`; a pre-release of the floor itself (2.10.0-beta) is below it."""
    match = _SEMVER.match(version.strip())
    if match is None:
        return False
    release = (int(match[1]), int(match[2]), int(match[3]))
    return release > FLOOR or (release == FLOOR and not match[4])


def version_of(nc: Client) -> str:
    """The version the server `nc` is connected to announced, or "unknown"."""
    announced = nc.connected_server_version
    try:
        text = f"{announced.major}.{announced.minor}.{announced.patch}"
        if announced.prerelease:
            text += f"-{announced.prerelease}"
    except ValueError:  # not a semantic version: nothing a floor can be checked against
        return "unknown"
    return "unknown" if text == "0.0.0-unknown" else text


def where_of(nc: Client) -> str:
    """host:port of the connected server, without any credentials the URL carried."""
    url = nc.connected_url
    if url is None:
        return "an unknown address"
    return f"{url.hostname}:{url.port or 4222}"


def require_supported_server(nc: Client) -> None:
    """Raise `ServerTooOld` when the connected server is older than `FLOOR`; its message is the
    one line to report (the command reports it, as it does a bad setting)."""
    version = version_of(nc)
    if not is_supported(version):
        raise ServerTooOld(version, where_of(nc))
