"""Where stored decisions differ from the ones the domain re-derives, told as a path into the
stored value: `WarningRaised.warning.severity: stored "high", re-derived "caution"`. Both are
compared as JSON, so a time and the text it is stored as are equal."""

from __future__ import annotations

import json
from typing import Any


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def first_difference(expected: list[tuple[str, Any]], actual: list[tuple[str, Any]]) -> tuple[int, str] | None:
    """(index, description) of the first stored decision that differs from the re-derived one."""
    for index in range(max(len(expected), len(actual))):
        if index >= len(actual):
            return index, f"the domain decides {expected[index][0]} here, the store has none"
        if index >= len(expected):
            return index, f"the store has {actual[index][0]}, the domain decides nothing more"
        (want_kind, want), (got_kind, got) = expected[index], actual[index]
        if want_kind != got_kind:
            return index, f"the store has {got_kind}, the domain decides {want_kind}"
        path = _differs(_json(want), _json(got), got_kind)
        if path is not None:
            return index, path
    return None


def _differs(want: Any, got: Any, path: str) -> str | None:
    """Where the stored value `got` differs from the re-derived `want`. Only fields the store has are
    compared: a field a later release added is absent from what an earlier release recorded."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(got):
            if key not in want:
                return f"{path}.{key}: stored {json.dumps(got[key])}, the domain decides no such field"
            found = _differs(want[key], got[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            found = _differs(w, g, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if want != got:
        return f"{path}: stored {json.dumps(got)}, re-derived {json.dumps(want)}"
    return None
