"""The platform's refused inputs: the dead letters (CONTRACT §5) through the consumer declared for it.

The operator's `stepout topology apply` declares `platform-refusals` on the dead-letter stream; it delivers
to `P.deliver.platform-refusals` in the queue group `platform-refusals`, the platform's one position in
the dead letters, shared by its readers. A dead letter holds the input as sent (its note included: the
platform's own text) and the reason stepout refused it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg

from stepout_contract.dead_letters import DETAIL, ORIGINAL_SUBJECT, REASON
from stepout_contract.subjects import Subjects

from .errors import Refused, refusal

PLATFORM_REFUSALS = "platform-refusals"


def refusal_deliveries(subjects: Subjects) -> str:
    """Where the platform's consumer of the dead letters delivers (`P.deliver.platform-refusals`)."""
    return f"{subjects.prefix}.deliver.{PLATFORM_REFUSALS}"


@dataclass(frozen=True, slots=True)
class RefusedInput:
    """One input stepout refused: which service, why (`error`, the typed exception of its reason code),
    when, and the input as sent (`body`; `event` when it was a JSON object)."""

    service: str
    reason: str
    detail: str
    original_subject: str
    refused_at: datetime
    body: bytes
    event: dict[str, Any] | None

    @property
    def error(self) -> Refused:
        return refusal(self.reason, self.detail)

    @property
    def event_id(self) -> str | None:
        """The refused CloudEvent's `id`, to match it with what the platform sent."""
        value = None if self.event is None else self.event.get("id")
        return value if isinstance(value, str) else None

    @property
    def user_id(self) -> str | None:
        value = None if self.event is None else self.event.get("subject")
        return value if isinstance(value, str) else None


def refused_input(msg: Msg) -> RefusedInput:
    """A delivery of the consumer as a `RefusedInput`."""
    headers = msg.headers or {}
    try:
        decoded = json.loads(msg.data)
    except ValueError:
        decoded = None
    return RefusedInput(
        service=msg.subject.rsplit(".", 1)[-1],
        reason=headers.get(REASON, "unknown"),
        detail=headers.get(DETAIL, ""),
        original_subject=headers.get(ORIGINAL_SUBJECT, ""),
        refused_at=msg.metadata.timestamp,
        body=msg.data,
        event=decoded if isinstance(decoded, dict) else None,
    )
