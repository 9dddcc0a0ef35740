"""requirements/advisories.json: what PyPI listed for each pinned version, and when it was asked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .locks import ROOT, Pin

SNAPSHOT = ROOT / "requirements" / "advisories.json"

# Where an entry's advisories come from. PyPI's JSON for one release lists the advisories of that
# release; its JSON for the project lists those of the latest release only, so it serves for a pin
# that is the latest and for no other. A pin neither answered for is recorded as unchecked, not clean.
Source = Literal["release", "project", "none"]
SOURCES: dict[str, str] = {
    "release": "PyPI's JSON for the pinned release (/pypi/<name>/<version>/json): its advisories",
    "project": "PyPI's JSON for the project (/pypi/<name>/json): the advisories of its latest release, the pinned one",
    "none": "unchecked: PyPI served no JSON for the pinned release, and it is not the latest",
}


@dataclass(frozen=True)
class Advisory:
    """One advisory as PyPI lists it (withdrawn ones are left out)."""

    id: str
    aliases: tuple[str, ...] = ()
    fixed_in: tuple[str, ...] = ()
    link: str | None = None

    def names(self) -> set[str]:
        """Every id it goes by: its own and its aliases (CVE, GHSA, PYSEC...)."""
        return {self.id, *self.aliases}

    def describe(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = f"; fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "; no fixed version yet"
        link = f"; {self.link}" if self.link else ""
        return f"{self.id}{aliases}{fixed}{link}"


@dataclass(frozen=True)
class Entry:
    """What PyPI said of one pinned version."""

    source: Source
    latest: str | None
    advisories: tuple[Advisory, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Every pinned version's entry, and the UTC time (ISO 8601) PyPI was asked."""

    taken: str
    entries: dict[Pin, Entry]

    def to_json(self) -> str:
        packages: dict[str, dict[str, Any]] = {}
        for pin, entry in sorted(self.entries.items()):
            packages.setdefault(pin.name, {})[pin.version] = {
                "source": entry.source,
                "latest": entry.latest,
                "advisories": [
                    {"id": a.id, "aliases": list(a.aliases), "fixed_in": list(a.fixed_in), "link": a.link}
                    for a in entry.advisories
                ],
            }
        document = {
            "about": "Advisories PyPI lists for every version pinned in requirements/*.txt. Written by "
            "`make advisories`, checked by `make lint` (tools/stepout_advisories); do not edit by hand.",
            "taken": self.taken,
            "sources": SOURCES,
            "packages": packages,
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        document = json.loads(text)
        entries = {
            Pin(name, version): Entry(
                source=entry["source"],
                latest=entry["latest"],
                advisories=tuple(
                    Advisory(a["id"], tuple(a["aliases"]), tuple(a["fixed_in"]), a["link"]) for a in entry["advisories"]
                ),
            )
            for name, versions in document["packages"].items()
            for version, entry in versions.items()
        }
        return cls(taken=document["taken"], entries=entries)


def load(path: Path = SNAPSHOT) -> Snapshot:
    return Snapshot.from_json(path.read_text(encoding="utf-8"))
