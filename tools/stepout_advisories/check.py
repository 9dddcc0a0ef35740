"""The pinned versions against a snapshot of advisories and the advisories let pass on purpose."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from .locks import ROOT, Pin, shown
from .snapshot import Advisory, Snapshot

IGNORES = ROOT / "requirements" / "advisories.ignore"

# `ADVISORY-ID PACKAGE  # why`: the reason is required.
_IGNORE = re.compile(r"^(?P<advisory>\S+)\s+(?P<package>\S+)\s*#\s*(?P<reason>\S.*)$")


@dataclass(frozen=True)
class Ignore:
    """An advisory (by its id or any alias) let pass for one package, and why."""

    advisory: str
    package: str
    reason: str

    def covers(self, pin: Pin, advisory: Advisory) -> bool:
        return self.package == pin.name and self.advisory in advisory.names()


def read_ignores(text: str, origin: str = "requirements/advisories.ignore") -> list[Ignore]:
    """The ignore file's entries; a line that is not `ID PACKAGE  # reason` (or a comment) is refused."""
    ignores = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _IGNORE.match(line.strip())
        if match is None:
            raise ValueError(f"{origin}:{number}: expected `ADVISORY-ID PACKAGE  # why it may pass`, got {line!r}")
        ignores.append(Ignore(match["advisory"], canonicalize_name(match["package"]), match["reason"].strip()))
    return ignores


def read_ignore_file(path: Path = IGNORES) -> list[Ignore]:
    return read_ignores(path.read_text(encoding="utf-8"), shown(path)) if path.exists() else []


@dataclass(frozen=True)
class Finding:
    """A pinned version an advisory affects, with the locks that pin it."""

    pin: Pin
    advisory: Advisory
    locks: tuple[str, ...]

    def describe(self) -> str:
        return f"{', '.join(self.locks)}: {self.pin} is affected by {self.advisory.describe()}"


@dataclass
class Report:
    """What a check found: only `affected`, `missing` and `stale` fail it."""

    taken: str
    affected: list[Finding] = field(default_factory=list)
    ignored: list[tuple[Finding, Ignore]] = field(default_factory=list)
    missing: list[Pin] = field(default_factory=list)  # pinned, but not in the snapshot
    unchecked: list[tuple[Pin, str | None]] = field(default_factory=list)  # with the latest release
    stale: list[Ignore] = field(default_factory=list)  # ignores that no pinned version needs

    @property
    def failed(self) -> bool:
        return bool(self.affected or self.missing or self.stale)

    def problems(self) -> list[str]:
        """One line per reason the check fails."""
        lines = [finding.describe() for finding in self.affected]
        lines += [
            f"{pin} is pinned but not in the advisories snapshot (taken {self.taken}): run `make advisories`"
            for pin in self.missing
        ]
        lines += [
            f"requirements/advisories.ignore lets {ignore.advisory} pass for {ignore.package}, "
            "which no pinned version needs any more: remove the line"
            for ignore in self.stale
        ]
        return lines

    def notes(self) -> list[str]:
        """What passed but deserves a look: ignored advisories and pins the snapshot could not check."""
        lines = [f"ignored: {finding.pin} {finding.advisory.id} ({ignore.reason})" for finding, ignore in self.ignored]
        if self.unchecked:
            listed = ", ".join(f"{pin} (latest {latest or 'unknown'})" for pin, latest in self.unchecked)
            lines.append(
                f"unchecked: {len(self.unchecked)} pinned version(s) that PyPI gave no advisories for when the "
                f"snapshot was taken (it served no JSON for the release, and a newer one is the latest): {listed}"
            )
        return lines


def check(
    pins: dict[Pin, tuple[str, ...]], snapshot: Snapshot, ignores: list[Ignore], *, report_stale: bool = True
) -> Report:
    """Each pinned version against the snapshot's advisories, less those an ignore lets pass."""
    report = Report(snapshot.taken)
    used: set[Ignore] = set()
    for pin, locks in pins.items():
        entry = snapshot.entries.get(pin)
        if entry is None:
            report.missing.append(pin)
            continue
        if entry.source == "none":
            report.unchecked.append((pin, entry.latest))
        for advisory in entry.advisories:
            finding = Finding(pin, advisory, locks)
            ignore = next((i for i in ignores if i.covers(pin, advisory)), None)
            if ignore is None:
                report.affected.append(finding)
            else:
                used.add(ignore)
                report.ignored.append((finding, ignore))
    if report_stale:
        report.stale = [ignore for ignore in ignores if ignore not in used]
    return report
