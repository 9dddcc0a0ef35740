"""Domain values (commands, events) as the JSON a stored decision keeps: `{"kind": class name,
"body": its fields}`, readable by an auditor and exact on replay."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter


class Records:
    """The stored form of one family of domain values (a decider's commands, or its events)."""

    def __init__(self, *classes: type) -> None:
        self._adapters: dict[str, TypeAdapter[Any]] = {cls.__name__: TypeAdapter(cls) for cls in classes}

    def record(self, value: Any) -> dict[str, Any]:
        name = type(value).__name__
        return {"kind": name, "body": self._adapters[name].dump_python(value, mode="json")}

    def read(self, record: dict[str, Any]) -> Any:
        return self._adapters[record["kind"]].validate_python(record["body"])
