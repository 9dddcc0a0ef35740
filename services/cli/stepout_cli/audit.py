"""`stepout audit export`, `stepout audit verify` and `stepout audit decisions`: a participant's trail
as a hash-chained file, its check, and their decisions re-derived (`stepout_audit` does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

from stepout_audit.chain import ChainHolds
from stepout_audit.entries import UnreadableEvent
from stepout_audit.export import verify_file, write_export
from stepout_audit.rederive import rederive
from stepout_contract.settings import Settings
from stepout_contract.vocabulary import rfc3339
from stepout_domain.catalog import load_catalog

from .bars import drawn_on, progress_bars, stderr_console
from .stores import trail_of


def export(settings: Settings, user_id: str, out: Path) -> int:
    """Write the participant's inputs and decisions to `out`, one chained CloudEvent a line.

    Each service's stored chain is checked first: on a break nothing is written and the
    exit code is 1. So is it for a participant neither store knows.
    """
    console = stderr_console()
    try:
        trail = trail_of(settings, user_id, console, stop_at_break=True)
    except UnreadableEvent as exc:
        print(f"{exc.naming(user_id)}; nothing exported")
        return 1
    for service, found in trail.breaks:
        print(f"chain broken: {service} store, participant {user_id}, event version {found.version}: {found.reason}")
    if trail.breaks:
        print("nothing exported")
        return 1
    if not trail.known:
        print(f"stepout: participant {user_id!r} is in neither event store", file=sys.stderr)
        return 1
    try:
        with progress_bars(console) as bars:
            exported = write_export(trail.rows(), out, drawn_on(bars))
    except OSError as exc:
        print(f"stepout: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"exported {exported.events} events of {user_id} to {out}: {exported.inputs} inputs, "
        f"{exported.decisions} decisions; final hash {exported.final_hash}"
    )
    return 0


def verify(path: Path) -> int:
    """Recompute the chain of an export from its text alone. Exit 1 naming the first line that breaks it."""
    try:
        with progress_bars(stderr_console()) as bars:
            result = verify_file(path, drawn_on(bars))
    except OSError as exc:
        print(f"stepout: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    if not isinstance(result, ChainHolds):
        print(f"{path}: line {result.line} breaks the chain: {result.reason}")
        return 1
    print(
        f"{path}: chain holds over {result.lines} lines, {result.first_time} to {result.last_time}; "
        f"final hash {result.final_hash}"
    )
    return 0


def audit_decisions(settings: Settings, user_id: str) -> int:
    """Exit 0 when every stored decision is re-derived exactly, 1 at the first that is not (or a broken chain)."""
    try:
        trail = trail_of(settings, user_id, stderr_console())
    except UnreadableEvent as exc:
        print(f"mismatch: {exc.naming(user_id)}")
        return 1
    if not trail.known:
        print(f"stepout: participant {user_id!r} is in neither event store", file=sys.stderr)
        return 1
    for service, found in trail.breaks:
        print(f"chain broken: {service} store, participant {user_id}, event version {found.version}: {found.reason}")
    if trail.erased:
        print(
            f"{user_id} was erased: the {trail.unreadable} stored events before the erasure no longer read, so their "
            "decisions cannot be re-derived; what erasure left is in the export"
        )
        return 1 if trail.breaks else 0
    result = rederive(trail, load_catalog(settings.catalog))
    if result.mismatch is not None:
        m = result.mismatch
        print(
            f"mismatch: {m.service} store, participant {user_id}, event version {m.version} "
            f"(stored {rfc3339(m.timestamp)}): {m.what}"
        )
    if result.mismatch is not None or trail.breaks:
        return 1
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result.counts.items(), key=lambda kv: (-kv[1], kv[0])))
    versions = ", ".join(sorted(result.versions)) or "none"
    print(f"re-derived {result.total} decisions of {user_id} under rule set(s) {versions}: {kinds or 'none'}")
    return 0
