"""The CloudEvents 1.0 structured-JSON envelope (CONTRACT §2)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .bounds import BoundedTime
from .vocabulary import rfc3339

CONTENT_TYPE = "application/cloudevents+json"
SOURCE_PLANNER = "urn:stepout:planner"
SOURCE_TRACKER = "urn:stepout:tracker"
# Only stepout's own outputs carry a source under this prefix; an input claiming one is refused.
STEPOUT_SOURCE_PREFIX = "urn:stepout:"

# Outputs get ids derived from what they record, so a republished output keeps its id.
OUTPUT_ID_NAMESPACE = uuid.UUID("6b0c2f4e-93a1-5d1e-8f62-5e7d1f0c4a21")


class CloudEvent(BaseModel):
    """A CloudEvent; unknown extension attributes are kept and otherwise ignored."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=1024)
    type: str = Field(min_length=1, max_length=256)
    subject: str = Field(min_length=1, max_length=256)
    time: BoundedTime
    datacontenttype: Literal["application/json"] | None = None
    data: dict[str, Any]


def output_id(*parts: object) -> str:
    """The stable id of an output, derived from what records it (store position, kind)."""
    return str(uuid.uuid5(OUTPUT_ID_NAMESPACE, "/".join(str(p) for p in parts)))


def make_event(
    *, event_id: str, source: str, type_: str, user_id: str, time: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """A CloudEvent as a plain JSON-ready dict, in the order the contract shows."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_,
        "subject": user_id,
        "time": rfc3339(time),
        "datacontenttype": "application/json",
        "data": data,
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
