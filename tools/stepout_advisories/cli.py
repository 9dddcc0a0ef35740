"""`python -m stepout_advisories refresh | check [--offline]`: `make advisories` and the line of `make lint`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from . import pypi
from .check import IGNORES, Ignore, Report, check, read_ignore_file
from .locks import LOCKS, Pin, read_locks, shown
from .snapshot import SNAPSHOT, Advisory, Snapshot, load

PREFIX = "advisories:"


def main(argv: Sequence[str] | None = None, fetch: pypi.Fetch = pypi.fetch_json) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepout_advisories", description=__doc__)
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT)
    parser.add_argument("--ignores", type=Path, default=IGNORES)
    parser.add_argument("--lock", type=Path, action="append", help="a lock file (default: requirements/*.txt)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("refresh", help="ask PyPI again and write the snapshot (needs the network)")
    checking = commands.add_parser("check", help="the locks against the snapshot, and against PyPI when it answers")
    checking.add_argument("--offline", action="store_true", help="the snapshot only: do not ask PyPI")
    args = parser.parse_args(argv)
    pins = read_locks(args.lock or LOCKS)
    if args.command == "refresh":
        return refresh(pins, args.snapshot, fetch)
    return check_locks(pins, load(args.snapshot), read_ignore_file(args.ignores), fetch, offline=args.offline)


def refresh(pins: dict[Pin, tuple[str, ...]], path: Path, fetch: pypi.Fetch) -> int:
    try:
        snapshot = pypi.snapshot(pins, fetch)
    except pypi.Unanswered as error:
        print(f"{PREFIX} PyPI did not answer ({error}): {shown(path)} is left as it was", file=sys.stderr)
        return 1
    path.write_text(snapshot.to_json(), encoding="utf-8")
    sources = Counter(entry.source for entry in snapshot.entries.values())
    found = sum(len(entry.advisories) for entry in snapshot.entries.values())
    print(
        f"{PREFIX} wrote {shown(path)}, taken {snapshot.taken}: {len(pins)} pinned versions "
        f"({sources['release']} from their release's JSON, {sources['project']} from their project's, "
        f"{sources['none']} unchecked), {found} advisories; `make lint` checks them"
    )
    return 0


def check_locks(
    pins: dict[Pin, tuple[str, ...]],
    snapshot: Snapshot,
    ignores: list[Ignore],
    fetch: pypi.Fetch,
    *,
    offline: bool,
) -> int:
    """The offline check against the snapshot, then the live one when PyPI answers; 1 when either fails."""
    report = check(pins, snapshot, ignores)
    _print(report, f"{len(pins)} pinned versions against the snapshot taken {snapshot.taken}")
    failed = report.failed
    if offline:
        print(f"{PREFIX} PyPI not asked (--offline): only the snapshot taken {snapshot.taken} was checked")
        return int(failed)
    try:
        live = pypi.snapshot(pins, fetch)
    except pypi.Unanswered as error:
        print(f"{PREFIX} PyPI did not answer ({error}): no live check, only the snapshot taken {snapshot.taken}")
        return int(failed)
    now = check(pins, live, ignores, report_stale=False)
    known = {(f.pin, f.advisory.id) for f in report.affected}
    new = [f for f in now.affected if (f.pin, f.advisory.id) not in known]
    for finding in new:
        print(f"{PREFIX} published since the snapshot: {finding.describe()}", file=sys.stderr)
    differ = [pin for pin in pins if _said(snapshot, pin) != _said(live, pin)]
    if differ:
        print(
            f"{PREFIX} PyPI now says otherwise than the snapshot of {snapshot.taken} for "
            f"{', '.join(map(str, differ))}: run `make advisories` and commit requirements/advisories.json"
        )
    else:
        print(f"{PREFIX} PyPI answered at {live.taken} as in the snapshot: nothing published since")
    return int(failed or bool(new))


def _said(snapshot: Snapshot, pin: Pin) -> tuple[str, tuple[Advisory, ...]] | None:
    """What a snapshot says of a pin, but for the latest release: a newer one alone is no reason to refresh."""
    entry = snapshot.entries.get(pin)
    return None if entry is None else (entry.source, entry.advisories)


def _print(report: Report, what: str) -> None:
    for line in report.notes():
        print(f"{PREFIX} {line}")
    for line in report.problems():
        print(f"{PREFIX} {line}", file=sys.stderr)
    verdict = "FAILED" if report.failed else "ok"
    print(
        f"{PREFIX} {verdict}: {what}, {len(report.affected)} affected, {len(report.ignored)} ignored, "
        f"{len(report.unchecked)} unchecked"
    )
