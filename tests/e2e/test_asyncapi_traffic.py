"""Live traffic is what the AsyncAPI document says: a small session over a real nats-server, and every
output, query reply and dead letter it makes validates against the schema of its channel."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from stepout_contract.asyncapi import document
from stepout_contract.queries import QUERIES
from stepout_runtime.connection import service_inbox_prefix
from support import Platform, System, attempt_data, cloud_event

DOC = "urn:stepout:asyncapi"
STRICT_DOC = "urn:stepout:asyncapi:strict"
# Dead letters of inputs that were well formed, refused only for the participant's state.
STATE_REASONS = frozenset({"not_enrolled", "withdrawn", "erased", "attempt_conflict"})


def closed(node: Any) -> Any:
    """`node` with every object schema closed to properties it does not name."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: closed(value) for key, value in node.items()}
    if found.get("type") == "object" and "properties" in found and "additionalProperties" not in found:
        found["additionalProperties"] = False
    return found


class Contract:
    """The AsyncAPI document of one subject prefix, as JSON Schema validators by channel."""

    def __init__(self, prefix: str) -> None:
        self.doc = document(prefix)
        self.registry: Registry[Any] = Registry().with_resources(
            [
                (DOC, Resource.from_contents(self.doc, default_specification=DRAFT202012)),
                (STRICT_DOC, Resource.from_contents(closed(self.doc), default_specification=DRAFT202012)),
            ]
        )
        self.addresses = {
            name: re.compile(re.escape(channel["address"]).replace(re.escape("{user_id}"), "[^.]+"))
            for name, channel in self.doc["channels"].items()
            if channel["address"] is not None
        }
        self._validators: dict[str, Draft202012Validator] = {}

    def channel_of(self, subject: str) -> str:
        [name] = [name for name, address in self.addresses.items() if address.fullmatch(subject)]
        return name

    def published(self) -> set[str]:
        """The channels stepout publishes on: outputs and dead letters."""
        return {
            op["channel"]["$ref"].split("/")[-1] for op in self.doc["operations"].values() if op["action"] == "send"
        }

    def queries(self) -> dict[str, str]:
        """Query channel -> the channel of its reply."""
        return {
            op["channel"]["$ref"].split("/")[-1]: op["reply"]["channel"]["$ref"].split("/")[-1]
            for op in self.doc["operations"].values()
            if "reply" in op
        }

    def problems(
        self, channel: str, body: Any, headers: Mapping[str, str] | None = None, strict: bool = False
    ) -> list[str]:
        """Why `body` (and `headers`) is not a message of `channel`; nothing when it is one.
        `strict` also refuses object fields the document does not name."""
        found: list[str] = []
        for ref in self.doc["channels"][channel]["messages"].values():
            message = self._resolve(ref["$ref"])
            errors = self._errors(ref["$ref"] + "/payload", self._payload(message, body), strict)
            if "headers" in message:
                errors += [f"header {e}" for e in self._errors(ref["$ref"] + "/headers", dict(headers or {}), strict)]
            if not errors:
                return []
            found += errors
        return [f"{channel}: {problem}" for problem in found]

    def _payload(self, message: dict[str, Any], body: Any) -> Any:
        if not isinstance(body, bytes):
            return body
        if message.get("contentType") == "application/octet-stream":
            return body.decode("utf-8", errors="replace")
        return json.loads(body)

    def _errors(self, pointer: str, instance: Any, strict: bool) -> list[str]:
        uri = f"{STRICT_DOC if strict else DOC}{pointer}"
        if uri not in self._validators:
            self._validators[uri] = Draft202012Validator(
                {"$ref": uri}, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        found = []
        for error in self._validators[uri].iter_errors(instance):
            causes = [cause.message for cause in error.context or ()] or [error.message]  # oneOf: each branch
            found.append(f"{'; or '.join(c[:200] for c in causes)} at {'/'.join(map(str, error.absolute_path)) or '/'}")
        return found

    def _resolve(self, ref: str) -> dict[str, Any]:
        found: Any = self.doc
        for part in ref.removeprefix("#/").split("/"):
            found = found[part]
        return dict(found)


@dataclass
class Exchange:
    """One query and its reply."""

    channel: str
    request: Any  # the JSON sent, or raw bytes
    reply: dict[str, Any]


@dataclass
class Traffic:
    """What the platform sent and saw in one session."""

    inputs: list[tuple[str, bytes]] = field(default_factory=list)  # (subject, body) as published
    exchanges: list[Exchange] = field(default_factory=list)


class Session:
    """A platform that keeps what it sends and asks."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.prefix = platform.prefix
        self.traffic = Traffic()

    async def send_raw(self, tail: str, body: bytes) -> None:
        subject = f"{self.prefix}.{tail}"
        self.traffic.inputs.append((subject, body))
        await self.platform.js.publish(subject, body, headers={"Nats-Msg-Id": str(uuid.uuid4())})

    async def send(self, kind: str, user: str, data: dict[str, Any]) -> dict[str, Any]:
        event = cloud_event(f"stepout.{kind}.v1", user, data)
        await self.send_raw(f"{kind}.{user}", json.dumps(event).encode())
        return event

    async def attempt(self, user: str, **fields: Any) -> dict[str, Any]:
        data = attempt_data(user, **fields)
        await self.send("attempt.logged", user, data)
        return data

    async def answer(self, user: str, nth: int, **fields: Any) -> dict[str, Any]:
        """An attempt at the participant's `nth` assignment."""
        assigned = (await self.platform.wait_for("challenge.assigned", user, count=nth))[nth - 1]["data"]
        return await self.attempt(
            user, assignment_id=assigned["assignment_id"], challenge_id=assigned["challenge_id"], level=None, **fields
        )

    async def ask(self, name: str, request: Any) -> dict[str, Any]:
        """The query asked as its asker would: a platform, or for a service's query that service, whose
        inbox is the only one the answer may go to."""
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        subject = f"{self.prefix}.query.{name}"
        asker = next(query.asked_by for query in QUERIES if query.name == name)
        if asker is None:
            answer = await self.platform.nc.request(subject, body, timeout=5)
        else:
            url = self.platform.nc.connected_url
            assert url is not None
            async with await nats.connect(url.geturl(), inbox_prefix=service_inbox_prefix(asker)) as service:
                answer = await service.request(subject, body, timeout=5)
        reply = json.loads(answer.data)
        self.traffic.exchanges.append(Exchange(f"query.{name}", request, reply))
        return reply  # type: ignore[no-any-return]


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def drive(session: Session, user: str) -> None:
    """Enrolment (twice), attempts (one reports a crisis), a review, a pause and a resume, queries, a
    withdrawal."""
    platform = session.platform
    enrolment = {"user_id": user, "starting_level": 3, "timezone": "Europe/Berlin"}
    await session.send("participant.enrolled", user, enrolment)
    await platform.wait_for("challenge.assigned", user, count=1)
    await session.send("participant.enrolled", user, enrolment)  # the same settings again: no change
    await session.answer(user, 1, predicted_suds=60, prediction_came_true=20, occurred_at=ago(hours=3))
    await platform.wait_for("progress.updated", user, count=1)
    await session.answer(
        user, 2, crisis_reported=True, suds_before=50, suds_peak=80, suds_after=70, occurred_at=ago(hours=2)
    )
    await platform.wait_for("plan.paused", user, count=1)
    await platform.wait_for("progress.updated", user, count=2)
    await session.send("participant.reviewed", user, {"user_id": user, "coach_id": "coach-7"})
    await platform.wait_for("overload.cleared", user, count=1)
    await platform.wait_for("challenge.assigned", user, count=3)
    await session.send("participant.paused", user, {"user_id": user})
    await platform.wait_for("plan.paused", user, count=2)
    await session.send("participant.resumed", user, {"user_id": user})
    await session.answer(
        user, 4, outcome="skipped", suds_before=None, suds_peak=None, suds_after=None, occurred_at=ago(hours=1)
    )
    await platform.wait_for("progress.updated", user, count=3)
    await platform.wait_for("challenge.assigned", user, count=5)

    await session.ask("progress", {"user_id": user})
    await session.ask("plan", {"user_id": user})
    request: dict[str, Any] = {"user_id": user, "limit": 4}
    for _ in range(50):  # paged: every page is a reply of its own
        page = await session.ask("history", request)
        if page.get("next_cursor") is None:
            break
        request = {"user_id": user, "limit": 4, "cursor": page["next_cursor"]}
    assert request.get("cursor"), "the history should have taken more than one page"
    first = await session.ask("history-planner", {"user_id": user, "after": [0, -1], "limit": 3})
    assert first["more"] is True
    await session.ask("history-planner", {"user_id": user, "after": first["entries"][-1]["key"], "limit": 500})
    await session.ask("escalations", {})
    await session.ask("escalations", {"coach_id": "coach-7", "limit": 10})
    await session.ask("audit", {"user_id": user})
    await session.ask("audit-planner", {"user_id": user, "as_of": ago(hours=1), "limit": 5})

    await session.send("participant.withdrawn", user, {"user_id": user})
    await platform.wait_for("plan.paused", user, count=3)
    await session.ask("plan", {"user_id": user})


async def refuse(session: Session, user: str) -> None:
    """Inputs of every kind stepout refuses, and queries it cannot answer."""
    await session.attempt(user)  # withdrawn
    await session.send("participant.paused", user, {"user_id": user})  # withdrawn
    await session.attempt("u-never")  # not_enrolled
    tail = f"attempt.logged.{user}"
    await session.send_raw(tail, b"this is not json {")
    await session.send_raw(tail, json.dumps({"hello": "world"}).encode())
    event = cloud_event("stepout.attempt.logged.v1", user, attempt_data(user))
    await session.send_raw(tail, json.dumps({**event, "type": "stepout.attempt.logged.v9"}).encode())
    await session.send_raw(tail, json.dumps({**event, "data": attempt_data(user, suds_peak=101)}).encode())
    await session.send_raw(tail, json.dumps({**event, "data": attempt_data("someone-else")}).encode())
    await session.send_raw(tail, json.dumps({**event, "data": attempt_data(user, note="y" * 70_000)}).encode())
    await session.send("participant.enrolled", "u-eleven", {"user_id": "u-eleven", "starting_level": 11})

    await session.ask("progress", {"user_id": "u-never"})
    await session.ask("progress", {"user": "x"})
    await session.ask("progress", b"not json")
    await session.ask("plan", {"user_id": "u-never"})
    await session.ask("plan", {"user_id": "bad$user"})
    await session.ask("history", {"user_id": "u-never"})
    await session.ask("history", {"user_id": user, "limit": 0})
    await session.ask("history", {"user_id": user, "cursor": "not-a-cursor"})
    await session.ask("history-planner", {"user_id": "u-never"})
    await session.ask("history-planner", {"user_id": user, "after": "x"})
    await session.ask("escalations", {"limit": 0})
    await session.ask("audit", {"user_id": "u-never"})
    await session.ask("audit", {"user_id": user, "as_of": "yesterday"})
    await session.ask("audit-planner", {"user_id": "u-never"})


async def dead_letters(platform: Platform, expected: set[tuple[str, str]], timeout: float = 30.0) -> list[Any]:
    """The DLQ once it holds a dead letter of each (service, reason) of `expected`."""
    stream, subject = f"{platform.prefix.upper()}_DLQ", f"{platform.prefix}.deadletter.>"
    deadline = time.monotonic() + timeout
    while True:
        found = await platform.stream_messages(stream, subject)
        seen = {(m.subject.rsplit(".", 1)[-1], (m.headers or {}).get("Stepout-Reason")) for m in found}
        if expected <= seen or time.monotonic() > deadline:
            assert expected <= seen, f"dead letters missing: {expected - seen}"
            return found
        await asyncio.sleep(0.2)


async def test_live_traffic_validates_against_the_asyncapi_document(platform: Platform, system: System) -> None:
    contract = Contract(system.prefix)
    session = Session(platform)
    user = "u-traffic"
    await drive(session, user)
    await refuse(session, user)
    tracker = {"invalid_json", "invalid_envelope", "unknown_type", "invalid_data", "invalid_subject", "too_large"}
    expected = {("tracker", r) for r in tracker | {"not_enrolled", "withdrawn"}} | {
        ("planner", "invalid_data"),
        ("planner", "withdrawn"),
    }
    letters = await dead_letters(platform, expected)

    problems: list[str] = []
    seen: Counter[str] = Counter()

    def check(channel: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        seen[channel] += 1
        found = contract.problems(channel, body, headers)
        problems.extend(found or [f"undocumented: {p}" for p in contract.problems(channel, body, headers, strict=True)])

    for msg in [*platform.received, *letters]:
        check(contract.channel_of(msg.subject), msg.data, msg.headers)
    for exchange in session.traffic.exchanges:
        reply_channel = contract.queries()[exchange.channel]
        check(reply_channel, exchange.reply)
        seen[f"{reply_channel}:{'error' if 'error' in exchange.reply else 'answer'}"] += 1
        if exchange.reply.get("error", {}).get("code") != "invalid_request":
            check(exchange.channel, exchange.request)  # a request stepout took is one the document allows

    # Every input stepout accepted (or refused only for the participant's state) is one the document allows.
    refused: dict[bytes, set[str]] = {}
    for msg in letters:
        key = msg.data or (msg.headers or {}).get("Stepout-Body-Sha256", "").encode()
        refused.setdefault(key, set()).add(msg.headers["Stepout-Reason"])
    for subject, body in session.traffic.inputs:
        reasons = refused.get(body, set()) | refused.get(hashlib.sha256(body).hexdigest().encode(), set())
        if reasons <= STATE_REASONS:
            check(contract.channel_of(subject), body)

    assert problems == [], "\n".join(problems[:30])
    not_seen = sorted(contract.published() - set(seen))
    assert not_seen == [], f"the session published nothing on {not_seen}: drive it there"
    for reply_channel in contract.queries().values():
        assert seen.get(f"{reply_channel}:answer") and seen.get(f"{reply_channel}:error"), reply_channel
    too_large = [m for m in letters if m.headers["Stepout-Reason"] == "too_large"]
    assert too_large and all(m.data == b"" and m.headers["Stepout-Body-Size"] for m in too_large)


def test_the_validator_refuses_what_the_document_does_not_allow() -> None:
    contract = Contract("stepout")
    assert contract.channel_of("stepout.progress.updated.u-1") == "progress.updated"
    assert contract.channel_of("stepout.deadletter.planner") == "deadletter.planner"
    reply = contract.queries()["query.progress"]
    assert contract.problems(reply, {"error": {"code": "not_found", "message": "no progress for u-1"}}) == []
    assert contract.problems(reply, {"error": {"code": "gone", "message": "no progress for u-1"}})
    assert contract.problems(reply, {"user_id": "u-1", "level": 3})  # a progress view lacks most of its fields

    headers = {
        "Nats-Msg-Id": "6f1c0e4e-5b7a-4c1e-9d0a-2b1f6f0f9a11",
        "Stepout-Reason": "invalid_json",
        "Stepout-Detail": "body is not JSON: JSONDecodeError",
        "Stepout-Original-Subject": "stepout.attempt.logged.u-1",
    }
    assert contract.problems("deadletter.tracker", b"not json {", headers) == []
    assert contract.problems("deadletter.tracker", b"not json {", {**headers, "Stepout-Reason": "no_reason"})
    assert contract.problems("deadletter.tracker", b"", {**headers, "Stepout-Body-Size": "70000"})  # no digest

    event = cloud_event(
        "stepout.overload.cleared.v1",
        "u-1",
        {"warning_id": "w-1", "user_id": "u-1", "cleared_at": "2026-11-26T20:15:00Z", "by": "review"},
    )
    event_headers = {"Nats-Msg-Id": event["id"], "Content-Type": "application/cloudevents+json"}
    body = json.dumps(event).encode()
    assert contract.problems("overload.cleared", body, event_headers) == []
    assert contract.problems("overload.cleared", body, {"Nats-Msg-Id": event["id"]})  # no Content-Type
    wrong = copy.deepcopy(event)
    wrong["data"]["by"] = "timeout"
    assert contract.problems("overload.cleared", json.dumps(wrong).encode(), event_headers)
    extra = copy.deepcopy(event)
    extra["data"]["mood"] = "fine"
    assert contract.problems("overload.cleared", json.dumps(extra).encode(), event_headers) == []
    assert contract.problems("overload.cleared", json.dumps(extra).encode(), event_headers, strict=True)
