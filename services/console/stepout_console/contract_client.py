"""The console's only way to the services: the public contract over NATS. Queries (request-reply),
the output subjects it listens to, and the one input it publishes, `participant.reviewed`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from stepout_contract.envelope import CONTENT_TYPE, encode
from stepout_contract.queries import AUDIT_DECISIONS_MAX, ESCALATIONS_LIMIT_MAX, HISTORY_LIMIT_MAX
from stepout_contract.subjects import Subjects

QUERY_TIMEOUT_S = 5.0
# The most history pages a participant page reads (500 events each): the latest attempts beyond are not charted.
HISTORY_PAGES_MAX = 20
# Where the console's reviews say they come from (CloudEvents `source`).
CONSOLE_SOURCE = "urn:stepout-console"


class Unavailable(Exception):
    """A service did not answer (or NATS is down): the page says so instead of guessing."""


class NotFound(Exception):
    """The service does not know the participant."""


class ContractClient:
    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self.nc = nc
        self.subjects = subjects

    async def query(self, name: str, request: dict[str, Any], timeout: float = QUERY_TIMEOUT_S) -> dict[str, Any]:
        """The reply of query `name`; NotFound for `not_found`, Unavailable for no answer or another error."""
        try:
            reply = await self.nc.request(self.subjects.query(name), json.dumps(request).encode(), timeout=timeout)
        except (NatsError, OSError) as exc:
            raise Unavailable(f"{name}: no answer ({type(exc).__name__})") from None
        answer: dict[str, Any] = json.loads(reply.data)
        error = answer.get("error")
        if error is not None:
            if error.get("code") == "not_found":
                raise NotFound(error.get("message", ""))
            raise Unavailable(f"{name}: {error.get('message', error)}")
        return answer

    async def plan(self, user_id: str) -> dict[str, Any]:
        return await self.query("plan", {"user_id": user_id})

    async def progress(self, user_id: str) -> dict[str, Any] | None:
        try:
            return await self.query("progress", {"user_id": user_id})
        except NotFound:
            return None  # enrolled, no attempt yet

    async def escalations(self, coach_id: str | None) -> dict[str, Any]:
        """Of one coach, or of everyone (None): the first ESCALATIONS_LIMIT_MAX and the total."""
        request: dict[str, Any] = {"limit": ESCALATIONS_LIMIT_MAX}
        if coach_id is not None:
            request["coach_id"] = coach_id
        return await self.query("escalations", request)

    async def audit(self, user_id: str, as_of: datetime | None) -> dict[str, dict[str, Any] | None]:
        """Each service's audit reply ("tracker", "planner"); None where that store knows nothing of them."""
        request: dict[str, Any] = {"user_id": user_id, "limit": AUDIT_DECISIONS_MAX}
        if as_of is not None:
            request["as_of"] = as_of.isoformat()
        found: dict[str, dict[str, Any] | None] = {}
        for service, name in (("tracker", "audit"), ("planner", "audit-planner")):
            try:
                found[service] = await self.query(name, request)
            except NotFound:
                found[service] = None
        return found

    async def history(self, user_id: str, pages: int = HISTORY_PAGES_MAX) -> tuple[list[dict[str, Any]], bool]:
        """The participant's history events, oldest first, and whether all of it was read. Unavailable
        when a page is partial (the planner did not answer): a history without its decisions misleads."""
        events: list[dict[str, Any]] = []
        request: dict[str, Any] = {"user_id": user_id, "limit": HISTORY_LIMIT_MAX}
        for _ in range(pages):
            page = await self.query("history", request)
            if page.get("partial"):
                raise Unavailable("history: the planner did not answer")
            events.extend(page["events"])
            if page["next_cursor"] is None:
                return events, True
            request = {**request, "cursor": page["next_cursor"]}
        return events, False

    async def publish_review(self, user_id: str, coach_id: str, review_id: uuid.UUID) -> None:
        """`participant.reviewed` as CONTRACT §3 has it; `review_id` is its CloudEvent id and JetStream
        message id, so the same form sent twice is one review."""
        event = {
            "specversion": "1.0",
            "id": str(review_id),
            "source": CONSOLE_SOURCE,
            "type": "stepout.participant.reviewed.v1",
            "subject": user_id,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {"user_id": user_id, "coach_id": coach_id},
        }
        try:
            await self.nc.jetstream().publish(
                self.subjects.event("participant", "reviewed", user_id),
                encode(event),
                headers={"Nats-Msg-Id": str(review_id), "content-type": CONTENT_TYPE},
                timeout=QUERY_TIMEOUT_S,
            )
        except (NatsError, OSError) as exc:
            raise Unavailable(f"the review was not accepted by NATS ({type(exc).__name__})") from None

    async def on_warnings(self, handle: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
        """Call `handle(kind, data)` for every warning raised ("warning") and cleared ("cleared")."""

        async def received(msg: Msg) -> None:
            try:
                event = json.loads(msg.data)
                kind = "warning" if ".overload.warning." in msg.subject else "cleared"
                await handle(kind, event["data"])
            except (ValueError, KeyError, TypeError):
                pass  # the stream carries only what the services published; anything else is not ours

        await self.nc.subscribe(self.subjects.all_of("overload", "warning"), cb=received)
        await self.nc.subscribe(self.subjects.all_of("overload", "cleared"), cb=received)
