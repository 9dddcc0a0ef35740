"""The batched ingest loop: durable pull consumer -> decide and commit a batch -> ack.

One batch is decided and committed in one store transaction (in the store's own
thread, off the event loop); acks go out only after the commit. The next batch is
fetched while the current one commits. Bad inputs go to the dead-letter subject with
their reason and are acked; transient failures are redelivered after a delay, up to
the consumer's `max_deliver`, whose last delivery becomes a `retries_exhausted` dead letter
so that nothing is ever dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from pydantic import BaseModel

from stepout_contract.subjects import Subjects

from .dead_letter_index import DeadLetterIndex
from .fetching import PromptFetcher
from .inbound import (
    MAX_MESSAGE_BYTES,
    DeadLetter,
    Inbound,
    Origin,
    Retry,
    Verdict,
    body_digest,
    decode,
    named_users,
    original_subject,
)
from .metrics import CommonMetrics
from .topology import Consumer

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Inbound]], Sequence[Verdict]]
DLQ_ID_NAMESPACE = uuid.UUID("0f1d2c3b-4a59-5687-9a8b-7c6d5e4f3a2b")
FETCH_TIMEOUT_S = 1.0


def _always(_: str) -> bool:
    return True


def _never(_: str) -> bool:
    return False


@dataclass(frozen=True)
class DeadLetters:
    """How a service treats the inputs it cannot accept.

    `owns(subject)`: whether this service dead-letters an input published on `subject`; an input
    that two services read is dead-lettered by one of them only (the other acks it, unless it
    exhausted its own retries). `erased(user_id)`: a participant whose data was erased; their dead
    letters keep no body. `index`: where each dead letter is recorded under the participants it
    names, for erasure to find.
    """

    owns: Callable[[str], bool] = _always
    erased: Callable[[str], bool] = _never
    index: DeadLetterIndex | None = None


def retry_delay(delivered: int) -> float:
    """Back off 0.5 s, 1 s, 2 s ... up to 30 s between deliveries of a transiently failing input."""
    return float(min(30.0, 0.5 * 2 ** max(0, delivered - 1)))


def deliveries_spanning(seconds: float, max_deliver: int) -> int:
    """The delivery of an input retried since its first that comes `seconds` or more after it,
    at the latest the last one the consumer makes (`max_deliver`)."""
    waited, delivered = 0.0, 1
    while waited < seconds and delivered < max_deliver:
        waited += retry_delay(delivered)
        delivered += 1
    return delivered


class IngestLoop:
    """Consumes one durable consumer in batches and hands each batch to `handle`."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        consumer: Consumer,
        subjects: Subjects,
        types: dict[str, tuple[str, str, type[BaseModel]]],
        handle: BatchHandler,
        executor: Executor,
        metrics: CommonMetrics,
        batch_size: int,
        max_deliver: int,
        on_committed: Callable[[], None] = lambda: None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.js = js
        self.consumer = consumer
        self.subjects = subjects
        self.types = types
        self.handle = handle
        self.executor = executor
        self.metrics = metrics
        self.batch_size = batch_size
        self.max_deliver = max_deliver
        self.origin: Origin = "platform" if consumer.stream == subjects.in_stream else "stepout"
        self.on_committed = on_committed
        self.dead_letters = dead_letters or DeadLetters()
        self._stopping = asyncio.Event()
        self.batches = 0
        # participant -> (stream seq of their input being retried, its redelivery delay)
        self._blocked: dict[str, tuple[int, float]] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def _wait_for_earlier_deliveries(self) -> None:
        """Inputs delivered to a previous owner and never acked come back only after the ack wait;
        starting before that would decide later inputs of a participant before earlier ones."""
        info = await self.js.consumer_info(self.consumer.stream, self.consumer.durable)
        if info.num_ack_pending:
            wait = float(info.config.ack_wait or 30.0) + 0.5
            log.info(
                "waiting for unacked deliveries to come back",
                extra={"consumer": self.consumer.durable, "pending": info.num_ack_pending, "seconds": wait},
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def run(self) -> None:
        await self._wait_for_earlier_deliveries()
        if self._stopping.is_set():
            return
        sub = await self.js.pull_subscribe_bind(self.consumer.durable, stream=self.consumer.stream)
        fetcher = PromptFetcher(sub, self.batch_size, FETCH_TIMEOUT_S)
        fetching: asyncio.Task[list[Msg]] = asyncio.create_task(self._fetch(fetcher))
        try:
            while not self._stopping.is_set():
                msgs = await fetching
                if self._stopping.is_set():
                    await self._release(msgs)
                    break
                # Fetch the next batch while this one is decided and committed.
                fetching = asyncio.create_task(self._fetch(fetcher))
                if msgs and await self._process(msgs):
                    # The store refused the whole batch: back off, handing the prefetched batch back.
                    await self._release(await fetching, delay=retry_delay(1))
                    await asyncio.sleep(retry_delay(1))
                    fetching = asyncio.create_task(self._fetch(fetcher))
        finally:
            if not fetching.done():
                fetching.cancel()
            else:
                await self._release(fetching.result())
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be closed at shutdown
                pass

    async def _release(self, msgs: Sequence[Msg], delay: float | None = None) -> None:
        """Hand unprocessed messages back instead of waiting for their ack timeout."""
        for msg in msgs:
            try:
                await msg.nak(delay=delay)
            except Exception:  # noqa: BLE001 - redelivered after ack_wait anyway
                return

    async def _fetch(self, fetcher: PromptFetcher) -> list[Msg]:
        """The next batch; none while NATS is away or answers a pull with an error status (a 503
        while a restarted server recovers its streams): the loop asks again, it never ends on one."""
        try:
            return await fetcher.fetch()
        except (NatsError, OSError) as exc:
            log.warning("fetch failed, retrying", extra={"consumer": self.consumer.durable, "error": repr(exc)})
            await asyncio.sleep(0.5)
            return []

    async def _process(self, msgs: list[Msg]) -> bool:
        """Decide, commit and settle one batch; True when the store refused all of it."""
        now = datetime.now(UTC)
        verdicts: list[Verdict] = [None] * len(msgs)
        accepted: list[tuple[int, Inbound]] = []
        for i, msg in enumerate(msgs):
            meta = msg.metadata
            item = decode(
                msg.data,
                msg.subject,
                self.types,
                self.subjects,
                origin=self.origin,
                stream_seq=meta.sequence.stream,
                delivered=meta.num_delivered,
                received_at=now,
            )
            if isinstance(item, DeadLetter):
                verdicts[i] = item
            elif item.user_id in self._blocked and item.stream_seq > self._blocked[item.user_id][0]:
                verdicts[i] = Retry("waiting for an earlier input of this participant")
            else:
                accepted.append((i, item))
        if accepted:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                results = await loop.run_in_executor(self.executor, self.handle, [item for _, item in accepted])
            except Exception as exc:  # noqa: BLE001 - a failed commit is retried, never lost
                log.warning(
                    "batch not committed, will retry", extra={"consumer": self.consumer.durable, "error": repr(exc)}
                )
                results = [Retry(repr(exc))] * len(accepted)
            self.metrics.batch_seconds.labels(self.metrics.service).observe(time.perf_counter() - started)
            for (i, item), verdict in zip(accepted, results, strict=True):
                verdicts[i] = verdict
                self._track_order(item, verdict)
            self.on_committed()
        await self._settle(msgs, verdicts)
        self.batches += 1
        return bool(accepted) and all(isinstance(verdicts[i], Retry) for i, _ in accepted)

    def _track_order(self, item: Inbound, verdict: Verdict) -> None:
        """Hold back a participant's later inputs while an earlier one waits for redelivery."""
        blocked = self._blocked.get(item.user_id)
        if isinstance(verdict, Retry) and item.delivered < self.max_deliver:
            if blocked is None or item.stream_seq < blocked[0]:
                self._blocked[item.user_id] = (item.stream_seq, retry_delay(item.delivered))
        elif blocked is not None and blocked[0] == item.stream_seq:
            del self._blocked[item.user_id]

    def _delay_for(self, msg: Msg, verdict: Retry, user_id: str | None) -> float:
        blocked = self._blocked.get(user_id) if user_id else None
        if blocked is not None and msg.metadata.sequence.stream > blocked[0]:
            return blocked[1] + 0.25  # come back after the input it waits for
        return retry_delay(msg.metadata.num_delivered)

    async def _settle(self, msgs: Sequence[Msg], verdicts: Sequence[Verdict]) -> None:
        for msg, verdict in zip(msgs, verdicts, strict=True):
            try:
                if verdict is None:
                    await msg.ack()
                    continue
                if isinstance(verdict, Retry):
                    delivered = msg.metadata.num_delivered
                    if delivered < self.max_deliver:
                        user_id = self.subjects.user_of(original_subject(msg.subject, self.subjects))
                        await msg.nak(delay=self._delay_for(msg, verdict, user_id))
                        continue
                    verdict = DeadLetter(
                        "retries_exhausted", f"gave up after {delivered} deliveries: {verdict.detail}"[:500]
                    )
                elif not self.dead_letters.owns(original_subject(msg.subject, self.subjects)):
                    await msg.ack()  # the other service that reads this input dead-letters it
                    continue
                await self._dead_letter(msg, verdict)
                await msg.ack()
            except Exception as exc:  # noqa: BLE001 - unsettled messages are redelivered after ack_wait
                log.warning("could not settle message", extra={"consumer": self.consumer.durable, "error": repr(exc)})

    async def _any_erased(self, users: set[str]) -> bool:
        for user in users:
            if await asyncio.to_thread(self.dead_letters.erased, user):
                return True
        return False

    async def _dead_letter(self, msg: Msg, letter: DeadLetter) -> None:
        meta = msg.metadata
        msg_id = uuid.uuid5(DLQ_ID_NAMESPACE, f"{self.consumer.stream}/{self.consumer.durable}/{meta.sequence.stream}")
        headers = {
            "Nats-Msg-Id": str(msg_id),
            "Stepout-Reason": letter.reason,
            "Stepout-Detail": letter.detail.replace("\r", " ").replace("\n", " ")[:1000],
            "Stepout-Original-Subject": original_subject(msg.subject, self.subjects)[:1000],
        }
        body = msg.data
        users = named_users(msg.subject, body, self.subjects)
        erased = await self._any_erased(users)
        if len(body) > MAX_MESSAGE_BYTES or erased:
            # Too large to keep, or of an erased participant: what it was stays checkable (its digest
            # and size), its content goes.
            headers["Stepout-Body-Sha256"] = body_digest(body)
            headers["Stepout-Body-Size"] = str(len(body))
            body = b""
        ack = await self.js.publish(
            self.subjects.dead_letter(self.metrics.service), body, headers=headers, stream=self.subjects.dlq_stream
        )
        index = self.dead_letters.index
        if body and users and index is not None:
            await asyncio.to_thread(index.add, users, ack.seq)
            # An erasure that began meanwhile has looked for this one already, or will find it indexed.
            if await self._any_erased(users):
                await self.js.delete_msg(self.subjects.dlq_stream, ack.seq)
        self.metrics.dead_letter(letter.reason)
        log.info(
            "dead letter",
            extra={"reason": letter.reason, "detail": letter.detail, "stream_seq": meta.sequence.stream},
        )

    async def report_pending(self) -> None:
        """Refresh the pending gauge from JetStream's own consumer info."""
        info = await self.js.consumer_info(self.consumer.stream, self.consumer.durable)
        pending = (info.num_pending or 0) + (info.num_ack_pending or 0)
        self.metrics.consumer_pending.labels(self.metrics.service, self.consumer.durable).set(pending)
