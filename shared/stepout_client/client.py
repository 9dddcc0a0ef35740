"""`StepoutClient`: a platform's side of stepout over NATS, typed end to end (CONTRACT §3-§6).

Send an input with one method per input type; each builds the CloudEvent, derives its id (and
`Nats-Msg-Id`) from the platform's own id for the action, so a retry after a crash is dropped by
JetStream and by stepout, and retries transient failures. Read outputs with `events()` or wait for
one with `next_assignment()`; ask queries with `progress()`, `plan()`, `history()`, `escalations()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
from nats.aio.client import Client, ServerVersion
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from pydantic import BaseModel, ValidationError

from stepout_contract.envelope import CONTENT_TYPE, STEPOUT_SOURCE_PREFIX, CloudEvent, encode, make_event
from stepout_contract.inputs import (
    INPUT_TYPES,
    AttemptLogged,
    ParticipantEnrolled,
    ParticipantPaused,
    ParticipantResumed,
    ParticipantReviewed,
    ParticipantWithdrawn,
)
from stepout_contract.outputs import ChallengeAssigned, PlanNotice, PlanPaused, PlanView, ProgressView
from stepout_contract.queries import EscalationsQuery, EscalationsReply, HistoryQuery, HistoryReply, UserQuery
from stepout_contract.subjects import Subjects
from stepout_contract.vocabulary import rfc3339

from .errors import Erased, InvalidData, InvalidRequest, NotEnrolled, Withdrawn, refusal
from .errors import Timeout as WaitedTooLong
from .events import (
    KINDS,
    ChallengeAssignedEvent,
    Kind,
    OutputEvent,
    PlanNoticeEvent,
    PlanPausedEvent,
    PlanResumedEvent,
    parse,
)
from .refusals import PLATFORM_REFUSALS, RefusedInput, refusal_deliveries, refused_input
from .retry import Backoff, retried

# The platform's durable consumer on the output stream, declared by the operator (`stepout topology
# apply`): it delivers to `P.deliver.platform` in the queue group `platform`.
PLATFORM_CONSUMER = "platform"
DEFAULT_URL = "nats://127.0.0.1:4222"
# stepout needs nats-server 2.10 or newer; with an older one at the default address and no setting,
# `stepout run all` (`make run`) runs its own here.
NATS_FLOOR = (2, 10, 0)
BESIDE_AN_OLDER_ONE = "nats://127.0.0.1:4223"
# Event ids derived from (source, type, user, the platform's own id): the same action, the same id.
EVENT_ID_NAMESPACE = uuid.UUID("2d9c7a51-0f3e-5b8c-9a64-3c1e7b2f8d40")

M = TypeVar("M", bound=BaseModel)
Assignment = ChallengeAssigned


def _version(server: ServerVersion) -> tuple[int, int, int]:
    """A nats-py `ServerVersion` as (major, minor, patch)."""
    return (server.major, server.minor, server.patch)


def platform_deliveries(subjects: Subjects) -> str:
    """Where the platform's consumer delivers (`P.deliver.platform`)."""
    return f"{subjects.prefix}.deliver.{PLATFORM_CONSUMER}"


def event_id(source: str, type_: str, user_id: str, platform_id: str) -> str:
    """The CloudEvent id (and `Nats-Msg-Id`) of a platform's action: stable for the same action."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}\n{type_}\n{user_id}\n{platform_id}"))


class StepoutClient:
    """One platform's connection to stepout. Make it with `connect()` or `from_env()`; `close()` it
    (or use `async with`)."""

    def __init__(
        self, nc: Client, *, prefix: str = "stepout", source: str = "urn:platform", backoff: Backoff | None = None
    ) -> None:
        if source.startswith(STEPOUT_SOURCE_PREFIX):
            raise ValueError(f"a platform's source may not start with {STEPOUT_SOURCE_PREFIX}")
        self.nc = nc
        self.subjects = Subjects(prefix)
        self.source = source
        self.backoff = backoff or Backoff()
        self._js = nc.jetstream()
        self._readers: set[Subscription] = set()

    @classmethod
    async def connect(
        cls,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        prefix: str = "stepout",
        source: str = "urn:platform",
        backoff: Backoff | None = None,
        **nats_options: Any,
    ) -> StepoutClient:
        """Connect to NATS (`nats_options` go to `nats.connect`: `user`, `password`, `token`,
        `user_credentials`, `tls`, ...). The inbox prefix stays NATS's default, `_INBOX`: the one the
        platform identity may receive replies on."""
        return cls(await nats.connect(servers, **nats_options), prefix=prefix, source=source, backoff=backoff)

    @classmethod
    async def from_env(cls, *, source: str = "urn:platform") -> StepoutClient:
        """Connect with the settings stepout's own processes read (CONTRACT §9): `STEPOUT_NATS_URL`,
        `STEPOUT_NATS_USER`/`STEPOUT_NATS_PASSWORD`, `STEPOUT_NATS_TOKEN`, `STEPOUT_NATS_CREDS`,
        `STEPOUT_SUBJECT_PREFIX`. Without `STEPOUT_NATS_URL`, where `make run` runs NATS: the default
        address, or 127.0.0.1:4223 when the server at the default one is older than stepout runs on."""
        env = os.environ
        options: dict[str, Any] = {}
        if env.get("STEPOUT_NATS_USER"):
            options.update(user=env["STEPOUT_NATS_USER"], password=env.get("STEPOUT_NATS_PASSWORD", ""))
        if env.get("STEPOUT_NATS_TOKEN"):
            options["token"] = env["STEPOUT_NATS_TOKEN"]
        if env.get("STEPOUT_NATS_CREDS"):
            options["user_credentials"] = env["STEPOUT_NATS_CREDS"]
        prefix = env.get("STEPOUT_SUBJECT_PREFIX", "stepout")
        if env.get("STEPOUT_NATS_URL"):
            return await cls.connect(env["STEPOUT_NATS_URL"], prefix=prefix, source=source, **options)
        client = await cls.connect(DEFAULT_URL, prefix=prefix, source=source, **options)
        if _version(client.nc.connected_server_version) >= NATS_FLOOR:
            return client
        # An older server answers at the default address (Debian 12's nats-server is 2.9): `stepout run
        # all` then leaves it alone and starts its own beside it, where the platform's inputs must go.
        await client.nc.close()
        return await cls.connect(BESIDE_AN_OLDER_ONE, prefix=prefix, source=source, **options)

    async def close(self) -> None:
        """Stop the output readers (what they hold unacked is delivered again), send what is
        buffered, then close the connection."""
        if not self.nc.is_closed:
            for reader in list(self._readers):
                self._readers.discard(reader)
                await reader.unsubscribe()
            await self.nc.drain()

    async def __aenter__(self) -> StepoutClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # Inputs (CONTRACT §3): one method each, taking the contract's model or its fields.

    async def enrol(self, model: ParticipantEnrolled | None = None, /, *, platform_id: str, **fields: Any) -> PubAck:
        """Enrol a participant (or change `daily_limit`, `categories`, `timezone`, `coach_id` of one
        enrolled). `platform_id`: the platform's own id of this action, the same on every retry."""
        return await self._send(ParticipantEnrolled, model, fields, platform_id)

    async def log_attempt(
        self, model: AttemptLogged | None = None, /, *, platform_id: str | None = None, **fields: Any
    ) -> PubAck:
        """Log an attempt. Its `attempt_id` is already the idempotency key, and the event's id is
        derived from it unless a `platform_id` is given."""
        attempt = _model(AttemptLogged, model, fields)
        return await self._send(AttemptLogged, attempt, {}, platform_id or attempt.attempt_id)

    async def review(self, model: ParticipantReviewed | None = None, /, *, platform_id: str, **fields: Any) -> PubAck:
        """A coach's review: clears a crisis and an escalation (only the participant's own coach's)."""
        return await self._send(ParticipantReviewed, model, fields, platform_id)

    async def pause(self, model: ParticipantPaused | None = None, /, *, platform_id: str, **fields: Any) -> PubAck:
        """The participant pauses, until `until` or until they resume."""
        return await self._send(ParticipantPaused, model, fields, platform_id)

    async def resume(self, model: ParticipantResumed | None = None, /, *, platform_id: str, **fields: Any) -> PubAck:
        """The participant resumes after a pause of their own."""
        return await self._send(ParticipantResumed, model, fields, platform_id)

    async def withdraw(
        self, model: ParticipantWithdrawn | None = None, /, *, platform_id: str, **fields: Any
    ) -> PubAck:
        """The participant withdraws; with `erase=True` their personal fields become unreadable for good."""
        return await self._send(ParticipantWithdrawn, model, fields, platform_id)

    async def _send(self, cls: type[M], model: M | None, fields: dict[str, Any], platform_id: str) -> PubAck:
        data = _model(cls, model, fields)
        type_ = next(name for name, (_, _, known) in INPUT_TYPES.items() if known is cls)
        family, name, _ = INPUT_TYPES[type_]
        user_id: str = getattr(data, "user_id")  # noqa: B009 - every input model has one
        id_ = event_id(self.source, type_, user_id, platform_id)
        body = encode(
            make_event(
                event_id=id_,
                source=self.source,
                type_=type_,
                user_id=user_id,
                time=datetime.now(UTC),
                data=data.model_dump(mode="json"),
            )
        )
        subject = self.subjects.event(family, name, user_id)
        headers = {"Nats-Msg-Id": id_, "Content-Type": CONTENT_TYPE}
        return await retried(lambda: self._js.publish(subject, body, headers=headers), self.backoff, type_)

    # Outputs (CONTRACT §4).

    async def events(
        self, *, user_id: str | None = None, kinds: Collection[Kind] | None = None
    ) -> AsyncIterator[OutputEvent]:
        """The outputs, typed, from the durable consumer declared for the platform, in stream order per
        participant; each is acked when the caller's loop body has run and it asks for the next one.

        At least once: an output whose body did not finish (an exception, a `break`, a crash) is not
        acked and comes again, to this reader or another, as does one whose body takes longer than the
        consumer's ack wait (30 s by default). The consumer is the platform's one position
        in the outputs, shared by every reader (a queue group): outputs of another participant or kind
        than asked, and output types newer than this client, are acked and skipped, as the platform
        may not ask for a consumer of its own (a filter of its own) nor leave them unacked, which would
        have them delivered again and again. So filter only in a reader that is the platform's one
        reader of the outputs it drops."""
        unknown = set(kinds or ()) - KINDS
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        sub = await self.nc.subscribe(platform_deliveries(self.subjects), queue=PLATFORM_CONSUMER)
        self._readers.add(sub)
        try:
            async for msg in sub.messages:
                if not msg.reply:  # not a delivery of the consumer: nothing to ack
                    continue
                event = parse(msg.data)
                if (
                    event is not None
                    and (user_id is None or event.user_id == user_id)
                    and (kinds is None or event.kind in kinds)
                ):
                    yield event
                await msg.ack()
        finally:
            if sub in self._readers and not self.nc.is_closed:
                self._readers.discard(sub)
                await sub.unsubscribe()

    async def refusals(
        self, *, since: datetime | None = None, user_id: str | None = None
    ) -> AsyncIterator[RefusedInput]:
        """The inputs stepout refused, with their reasons, from the durable consumer of the dead letters
        declared for the platform, oldest first; each is acked when the caller's loop body has run and it
        asks for the next one (at least once, as `events()`). Refused before `since`, or for another
        participant than `user_id`, they are acked and skipped: the consumer is the platform's one
        position in its dead letters, shared by its readers."""
        sub = await self.nc.subscribe(refusal_deliveries(self.subjects), queue=PLATFORM_REFUSALS)
        self._readers.add(sub)
        try:
            async for msg in sub.messages:
                if not msg.reply:  # not a delivery of the consumer: nothing to ack
                    continue
                refused = refused_input(msg)
                if (since is None or refused.refused_at >= since) and (user_id is None or refused.user_id == user_id):
                    yield refused
                await msg.ack()
        finally:
            if sub in self._readers and not self.nc.is_closed:
                self._readers.discard(sub)
                await sub.unsubscribe()

    async def next_assignment(
        self, user_id: str, *, after: str | None = None, timeout: float = 30.0, settle: float = 2.0
    ) -> ChallengeAssigned | PlanPaused | PlanNotice:
        """The participant's open assignment other than `after` (the assignment id already handled),
        as soon as there is one; or why none comes: the `plan.paused` in force, or a `plan.notice` on
        an input that changed nothing. Raises `Withdrawn` (or `Erased`) when no assignment will ever
        come, and `Timeout` when nothing came in `timeout` seconds. A pause the plan shows at the call
        is the answer after `settle` seconds in which no output of the participant was heard (an input
        sent just before, such as a resume, may not be decided yet).

        It hears the participant's outputs as they are published (core subscriptions) and asks the
        plan query, so an assignment or a pause is found whether it came before the call or after; a
        notice, which the plan does not keep, only when it comes after the call began."""
        heard: asyncio.Queue[Msg] = asyncio.Queue()

        async def hear(msg: Msg) -> None:
            heard.put_nowait(msg)

        subs = [
            await self.nc.subscribe(self.subjects.event("challenge", "assigned", user_id), cb=hear),
            await self.nc.subscribe(self.subjects.event("plan", "*", user_id), cb=hear),
        ]
        try:
            async with asyncio.timeout(timeout):
                now = await self._from_plan(user_id, after)
                # A pause the plan shows may be ending: an input sent just before (a resume) may not be
                # decided yet. It is the answer only when nothing else is heard for `settle` seconds.
                in_force = now if isinstance(now, PlanPaused) else None
                found: ChallengeAssigned | PlanPaused | PlanNotice | None = None if in_force else now
                while found is None:
                    try:
                        msg = await asyncio.wait_for(heard.get(), settle if in_force else None)
                    except TimeoutError:  # only with a pause in force: `settle` passed in silence
                        assert in_force is not None
                        return in_force
                    event = parse(msg.data)
                    if isinstance(event, ChallengeAssignedEvent) and event.data.assignment_id != after:
                        found = event.data
                    elif isinstance(event, PlanPausedEvent):
                        found = _unless_final(event.data)
                    elif isinstance(event, PlanResumedEvent):
                        in_force = None  # its assignment follows
                    elif isinstance(event, PlanNoticeEvent):
                        found = await self._from_plan(user_id, after) or event.data
        except TimeoutError:
            raise WaitedTooLong(f"no assignment, pause or notice for {user_id} in {timeout} s") from None
        finally:
            for sub in subs:
                if not self.nc.is_closed:
                    await sub.unsubscribe()
        assert found is not None
        return found

    async def _from_plan(self, user_id: str, after: str | None) -> ChallengeAssigned | PlanPaused | None:
        """What the plan says now: an open assignment other than `after`, or the pause in force."""
        try:
            plan = await self.plan(user_id)
        except NotEnrolled:
            return None  # the enrolment is not recorded yet: its assignment will be heard
        if plan.erased:
            raise Erased(f"{user_id} was erased")
        if plan.status == "withdrawn":
            raise Withdrawn(f"{user_id} has withdrawn")
        if plan.status == "paused":
            warning_id = plan.active_warning.warning_id if plan.active_warning else None
            reason = plan.pause_reason or "participant"
            return PlanPaused(user_id=user_id, reason=reason, until=plan.paused_until, warning_id=warning_id)
        if plan.open_assignment is not None and plan.open_assignment.assignment_id != after:
            return plan.open_assignment
        return None

    # Queries (CONTRACT §6).

    async def progress(self, user_id: str) -> ProgressView:
        """The participant's progress view. Raises `NotEnrolled` for a participant stepout does not know."""
        return await self._ask("progress", _request(UserQuery, user_id=user_id), ProgressView)

    async def plan(self, user_id: str) -> PlanView:
        """The participant's plan: status, level, open assignment, pause end."""
        return await self._ask("plan", _request(UserQuery, user_id=user_id), PlanView)

    async def history(self, user_id: str, *, limit: int = 100, cursor: str | None = None) -> HistoryReply:
        """One page of the participant's inputs and decisions as CloudEvents, oldest first, notes
        left out; pass its `next_cursor` as `cursor` for the next page."""
        return await self._ask(
            "history", _request(HistoryQuery, user_id=user_id, limit=limit, cursor=cursor), HistoryReply
        )

    async def whole_history(self, user_id: str, *, page: int = 500) -> AsyncIterator[CloudEvent]:
        """Every event of the participant's history, oldest first, read a page at a time."""
        cursor: str | None = None
        while True:
            reply = await self.history(user_id, limit=page, cursor=cursor)
            for event in reply.events:
                yield event
            if reply.next_cursor is None:
                return
            cursor = reply.next_cursor

    async def escalations(self, *, coach_id: str | None = None, limit: int = 100) -> EscalationsReply:
        """The participants with an active warning, of one coach or of everyone: most severe first."""
        return await self._ask(
            "escalations", _request(EscalationsQuery, coach_id=coach_id, limit=limit), EscalationsReply
        )

    async def _ask(self, name: str, request: BaseModel, reply: type[M]) -> M:
        body = request.model_dump_json(exclude_none=True).encode()
        subject = self.subjects.query(name)
        answer: Msg = await retried(lambda: self.nc.request(subject, body, timeout=5.0), self.backoff, name)
        parsed = json.loads(answer.data)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            error = parsed["error"]
            raise refusal(str(error.get("code")), str(error.get("message")))
        return reply.model_validate(parsed)


def _request(cls: type[M], **fields: Any) -> M:
    """A query's request, checked here as stepout would (`InvalidRequest` if it breaks the model)."""
    try:
        return cls.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as broken:
        raise InvalidRequest(f"{cls.__name__}: {_wrong(broken)}") from None


def _wrong(broken: ValidationError) -> str:
    """The fields and what they must be, never the values (a note is personal data)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in broken.errors())


def _model(cls: type[M], model: M | None, fields: dict[str, Any]) -> M:
    """The input as the contract's model: the one given, or one made of `fields` (`InvalidData` if they break it)."""
    if model is not None:
        if fields:
            raise TypeError("give the model or its fields, not both")
        return model
    # A time may be given as an aware datetime; the contract reads times as RFC 3339 text.
    fields = {name: rfc3339(v) if isinstance(v, datetime) and v.tzinfo else v for name, v in fields.items()}
    try:
        return cls.model_validate(fields)
    except ValidationError as broken:
        raise InvalidData(f"{cls.__name__}: {_wrong(broken)}") from None


def _unless_final(paused: PlanPaused) -> PlanPaused:
    if paused.reason == "withdrawn":
        raise Withdrawn(f"{paused.user_id} has withdrawn")
    return paused
