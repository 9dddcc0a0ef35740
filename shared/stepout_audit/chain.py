"""The hash chain of an audit export (CONTRACT §10): JSON Lines, one CloudEvent a line.

Each line carries `stepoutseq` (1, 2, ...) and `stepouthash` = hex SHA-256 of the UTF-8
bytes of PREV + "\\n" + CANON, where PREV is the previous line's `stepouthash` (64 zeros
for the first line) and CANON is the line's event without `stepouthash` as JSON with
sorted keys, separators "," and ":", non-ASCII characters kept. Lines are written in
that canonical form too, so the file is the same bytes however often it is exported.
Verifying needs the file text alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
SEQ = "stepoutseq"
HASH = "stepouthash"


def canonical(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev: str, event: dict[str, Any]) -> str:
    """The `stepouthash` of `event` (given without one) after a line whose hash is `prev`."""
    return hashlib.sha256(f"{prev}\n{canonical(event)}".encode()).hexdigest()


def chained_lines(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Each event as its line of the export (no newline), numbered and hashed in order."""
    prev = GENESIS
    for seq, event in enumerate(events, start=1):
        unhashed = {k: v for k, v in event.items() if k not in (SEQ, HASH)}
        unhashed[SEQ] = seq
        prev = link(prev, unhashed)
        yield canonical({**unhashed, HASH: prev})


@dataclass(frozen=True)
class ChainHolds:
    lines: int
    first_time: str | None
    last_time: str | None
    final_hash: str


@dataclass(frozen=True)
class LineBreaks:
    line: int
    reason: str


def verify_lines(lines: Iterable[str | bytes]) -> ChainHolds | LineBreaks:
    """Recompute the chain over `lines` (the file split at each "\\n"); the first line that breaks it.

    A final newline is allowed; an empty file holds no chain to trust, so it breaks at line 1.
    """
    prev, count, first_time, last_time = GENESIS, 0, None, None
    blank: int | None = None
    for number, line in enumerate(lines, start=1):
        if blank is not None:
            return LineBreaks(blank, "empty line")
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError:
            return LineBreaks(number, "not UTF-8 text")
        if text.strip() == "":
            blank = number  # allowed only as the end of the file
            continue
        try:
            event = json.loads(text)
        except json.JSONDecodeError as exc:
            return LineBreaks(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(event, dict):
            return LineBreaks(number, "not a JSON object")
        seq = event.get(SEQ)
        if type(seq) is not int or seq != number:
            return LineBreaks(number, f"{SEQ} is {json.dumps(seq)}, expected {number}")
        recorded = event.pop(HASH, None)
        if not isinstance(recorded, str):
            return LineBreaks(number, f"{HASH} is missing")
        if link(prev, event) != recorded:
            return LineBreaks(number, f"{HASH} does not match the line's content and the previous hash")
        prev, count = recorded, number
        time = event.get("time")
        if count == 1:
            first_time = time if isinstance(time, str) else None
        last_time = time if isinstance(time, str) else None
    if count == 0:
        return LineBreaks(1, "the file holds no events")
    return ChainHolds(count, first_time, last_time, prev)
