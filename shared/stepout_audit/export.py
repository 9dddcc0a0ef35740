"""The audit export file: a trail's rows written as chained JSON Lines (`chain`), and checked again."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .chain import GENESIS, HASH, ChainHolds, LineBreaks, chained_lines, verify_lines
from .merge import Row
from .progress import Progress


@dataclass(frozen=True)
class Exported:
    events: int
    inputs: int
    final_hash: str

    @property
    def decisions(self) -> int:
        return self.events - self.inputs


def write_export(rows: Sequence[Row], out: Path, progress: Progress | None = None) -> Exported:
    """Write `rows` to `out`, one chained CloudEvent a line; `out` is replaced only once fully written.

    `progress` is told ("export", lines written, lines). OSError when `out` cannot be written.
    """
    last = ""
    with _replacing(out) as file:
        for done, line in enumerate(chained_lines(row.event for row in rows), start=1):
            file.write(line.encode("utf-8") + b"\n")
            last = line
            if progress is not None:
                progress("export", done, len(rows))
    final = json.loads(last)[HASH] if last else GENESIS
    return Exported(len(rows), sum(1 for row in rows if row.is_input), final)


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


def verify_file(path: Path, progress: Progress | None = None) -> ChainHolds | LineBreaks:
    """Recompute the chain of an export from its text alone: where it holds, or the first line that
    breaks it. `progress` is told ("verify", lines read, lines). OSError when `path` cannot be read."""
    with path.open("rb") as file:
        total = sum(1 for _ in file)
        file.seek(0)
        return verify_lines(_lines(file, total, progress))


def _lines(file: BinaryIO, total: int, progress: Progress | None) -> Iterator[bytes]:
    for done, raw in enumerate(file, start=1):
        yield raw[:-1] if raw.endswith(b"\n") else raw
        if progress is not None:
            progress("verify", done, total)
