"""The audit export's hash chain is the one CONTRACT §10 describes, checked against an independent
implementation that knows nothing of stepout."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepout_audit.chain import ChainHolds, LineBreaks, chained_lines, verify_lines
from stepout_cli.audit import verify

EVENTS = [
    {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:example:platform",
        "type": "stepout.participant.enrolled.v1",
        "subject": "u-1",
        "time": "2026-11-26T20:15:00Z",
        "data": {"user_id": "u-1", "starting_level": 3, "categories": ["money", "social"]},
    },
    {
        "specversion": "1.0",
        "id": "e-2",
        "source": "urn:stepout:planner",
        "type": "stepout.challenge.assigned.v1",
        "subject": "u-1",
        "time": "2026-11-26T20:15:01Z",
        "data": {"title": "Demander un café gratuit ☕", "level": 3, "not_before": None},
    },
    {
        "specversion": "1.0",
        "id": "e-3",
        "source": "urn:stepout:tracker",
        "type": "stepout.progress.updated.v1",
        "subject": "u-1",
        "time": "2026-11-26T21:00:00.5Z",
        "data": {"expectancy_last5": 33.3, "level_ready": False, "attempts": {"rejected": 1}},
    },
]


def independent_chain(events: list[dict[str, Any]]) -> list[str]:
    """CONTRACT §10 read literally: hashes of PREV + "\\n" + CANON, CANON without stepouthash."""
    prev, hashes = "0" * 64, []
    for seq, event in enumerate(events, start=1):
        canon = json.dumps({**event, "stepoutseq": seq}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prev = hashlib.sha256((prev + "\n" + canon).encode("utf-8")).hexdigest()
        hashes.append(prev)
    return hashes


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_the_exporters_chain_equals_an_independent_implementation(tmp_path: Path) -> None:
    lines = list(chained_lines(EVENTS))
    exported = [json.loads(line) for line in lines]
    assert [e["stepouthash"] for e in exported] == independent_chain(EVENTS)
    assert [e["stepoutseq"] for e in exported] == [1, 2, 3]
    assert "☕" in lines[1]  # non-ASCII kept as it is
    file = write(tmp_path / "export.jsonl", lines)
    assert verify(file) == 0


def test_verify_holds_and_summarises_the_chain() -> None:
    lines = list(chained_lines(EVENTS))
    result = verify_lines([*lines, ""])  # the final newline
    assert result == ChainHolds(3, "2026-11-26T20:15:00Z", "2026-11-26T21:00:00.5Z", independent_chain(EVENTS)[-1])


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (lambda ls: [ls[0], ls[1].replace("café", "cafe"), ls[2]], 2, "does not match"),
        (lambda ls: [ls[0], ls[1].replace('"stepoutseq":2', '"stepoutseq":3'), ls[2]], 2, "stepoutseq"),
        (lambda ls: [ls[0], ls[2]], 2, "stepoutseq"),
        (lambda ls: [ls[0], ls[1], ls[2][:-1]], 3, "not valid JSON"),
        (lambda ls: [ls[0], "", ls[1], ls[2]], 2, "empty line"),
        (lambda ls: [], 1, "no events"),
    ],
)
def test_verify_names_the_first_line_that_breaks_the_chain(
    change: Callable[[list[str]], list[str]], line: int, reason: str, tmp_path: Path
) -> None:
    lines = change(list(chained_lines(EVENTS)))
    result = verify_lines(lines)
    assert isinstance(result, LineBreaks) and result.line == line and reason in result.reason
    assert verify(write(tmp_path / "changed.jsonl", lines)) == 1


def test_a_hash_changed_with_its_line_still_breaks_the_next_one() -> None:
    lines = list(chained_lines(EVENTS))
    forged = json.loads(lines[1])
    forged["data"]["level"] = 4
    del forged["stepouthash"]
    prev = json.loads(lines[0])["stepouthash"]
    canon = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged["stepouthash"] = hashlib.sha256((prev + "\n" + canon).encode()).hexdigest()
    result = verify_lines([lines[0], json.dumps(forged, ensure_ascii=False), lines[2]])
    assert result == LineBreaks(3, "stepouthash does not match the line's content and the previous hash")
