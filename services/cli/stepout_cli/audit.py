"""`stepout audit export` and `stepout audit verify`: a participant's trail as a hash-chained file."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from stepout_contract.settings import Settings

from .audit_chain import GENESIS, HASH, ChainHolds, chained_lines, verify_lines
from .bars import progress_bars, stderr_console
from .trail import UnreadableEvent, read_trail


def export(settings: Settings, user_id: str, out: Path) -> int:
    """Write the participant's inputs and decisions to `out`, one chained CloudEvent a line.

    Each service's stored chain is checked first: on a break nothing is written and the
    exit code is 1. So is it for a participant neither store knows.
    """
    console = stderr_console()
    try:
        trail = read_trail(settings, user_id, console, stop_at_break=True)
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
    rows = trail.rows()
    last = ""
    try:
        with _replacing(out) as file, progress_bars(console) as bars:
            task = bars.add_task("export", total=len(rows))
            for line in chained_lines(row.event for row in rows):
                file.write(line.encode("utf-8") + b"\n")
                last = line
                bars.advance(task)
    except OSError as exc:
        print(f"stepout: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    inputs = sum(1 for row in rows if row.is_input)
    final = json.loads(last)[HASH] if last else GENESIS
    print(
        f"exported {len(rows)} events of {user_id} to {out}: {inputs} inputs, {len(rows) - inputs} decisions; "
        f"final hash {final}"
    )
    return 0


@contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside `path` that takes its place only once fully written."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def verify(path: Path) -> int:
    """Recompute the chain of an export from its text alone. Exit 1 naming the first line that breaks it."""
    try:
        with path.open("rb") as file:
            total = sum(1 for _ in file)
            file.seek(0)
            with progress_bars(stderr_console()) as bars:
                task = bars.add_task("verify", total=total)
                result = verify_lines(_lines(file, lambda: bars.advance(task)))
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


def _lines(file: BinaryIO, advance: Callable[[], None]) -> Iterator[bytes]:
    for raw in file:
        yield raw[:-1] if raw.endswith(b"\n") else raw
        advance()
