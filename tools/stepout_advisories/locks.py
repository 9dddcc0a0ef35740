"""The versions the lock files pin, and which locks pin each."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = tuple(ROOT / "requirements" / f"{kind}.txt" for kind in ("build", "runtime", "dev"))

# `name==version`, maybe with extras, a marker or the `\` that carries the hashes to the next lines.
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


@dataclass(frozen=True, order=True)
class Pin:
    """One package at one version, its name normalised as PyPI's URLs take it."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def pins_of(text: str) -> set[Pin]:
    """Every `name==version` line of a lock file."""
    found = (_PIN.match(line) for line in text.splitlines())
    return {Pin(canonicalize_name(m["name"]), m["version"]) for m in found if m}


def shown(path: Path) -> str:
    """A path as messages show it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_locks(paths: Iterable[Path] = LOCKS) -> dict[Pin, tuple[str, ...]]:
    """Each pinned version, with the locks that pin it."""
    where: dict[Pin, list[str]] = {}
    for path in paths:
        for pin in pins_of(path.read_text(encoding="utf-8")):
            where.setdefault(pin, []).append(shown(path))
    return {pin: tuple(locks) for pin, locks in sorted(where.items())}
