"""Asking PyPI's JSON API which advisories affect a pinned version: the same `vulnerabilities` field
pip-audit's PyPI service reads."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from .locks import Pin
from .snapshot import Advisory, Entry, Snapshot

RELEASE_URL = "https://pypi.org/pypi/{name}/{version}/json"
PROJECT_URL = "https://pypi.org/pypi/{name}/json"
TIMEOUT_S = 10.0
WORKERS = 8  # requests in flight: a snapshot of ~70 pins takes a few seconds

# A URL's JSON document, or None when PyPI answers 404.
Fetch = Callable[[str], dict[str, Any] | None]


class Unanswered(Exception):
    """PyPI did not answer (no network, a time-out, or an error status other than 404)."""


def fetch_json(url: str) -> dict[str, Any] | None:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "stepout-advisories"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            document: dict[str, Any] = json.load(response)
            return document
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise Unanswered(f"{url}: HTTP {error.code}") from error
    except OSError as error:  # URLError, time-outs and refused connections alike
        raise Unanswered(f"{url}: {getattr(error, 'reason', error)}") from error


def advisories(document: dict[str, Any]) -> tuple[Advisory, ...]:
    """The advisories of a JSON document's `vulnerabilities`, withdrawn ones left out, sorted by id."""
    listed = (item for item in document.get("vulnerabilities") or () if not item.get("withdrawn"))
    return tuple(
        sorted(
            (
                Advisory(
                    id=item["id"],
                    aliases=tuple(sorted(item.get("aliases") or ())),
                    fixed_in=tuple(item.get("fixed_in") or ()),
                    link=item.get("link"),
                )
                for item in listed
            ),
            key=lambda advisory: advisory.id,
        )
    )


def entry_of(pin: Pin, fetch: Fetch = fetch_json) -> Entry:
    """The pinned release's own JSON when PyPI serves it, else the project's when the pin is its latest."""
    project = fetch(PROJECT_URL.format(name=pin.name))
    latest = project["info"]["version"] if project else None
    release = fetch(RELEASE_URL.format(name=pin.name, version=pin.version))
    if release is not None:
        return Entry("release", latest, advisories(release))
    if project is not None and latest == pin.version:
        return Entry("project", latest, advisories(project))
    return Entry("none", latest)


def snapshot(pins: Iterable[Pin], fetch: Fetch = fetch_json, now: datetime | None = None) -> Snapshot:
    """Every pin's entry, asked of PyPI now. Raises Unanswered when PyPI does not answer one of them."""
    pins = sorted(pins)
    taken = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not pins:
        return Snapshot(taken, {})
    # One question first, so that a closed network costs one time-out rather than one per pin.
    first = entry_of(pins[0], fetch)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        rest = list(pool.map(lambda pin: entry_of(pin, fetch), pins[1:]))
    return Snapshot(taken, dict(zip(pins, [first, *rest], strict=True)))
