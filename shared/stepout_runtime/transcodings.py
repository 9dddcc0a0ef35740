"""How domain state objects (frozen dataclasses) are stored inside snapshots: as the JSON their own
pydantic type adapter writes and reads back, so a snapshot restores exactly what was taken."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding
from pydantic import TypeAdapter


class DataclassAsJSON(Transcoding):
    def __init__(self, cls: type) -> None:
        self.type = cls
        self.name = f"stepout:{cls.__module__}.{cls.__qualname__}"
        self._adapter: TypeAdapter[Any] = TypeAdapter(cls)

    def encode(self, obj: Any) -> Any:
        return self._adapter.dump_python(obj, mode="json")

    def decode(self, data: Any) -> Any:
        return self._adapter.validate_python(data)
