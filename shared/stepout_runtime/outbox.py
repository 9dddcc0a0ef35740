"""The outbox relay: stored decisions -> JetStream, each with `Nats-Msg-Id` = its CloudEvent id.

The relay reads the store's notification log after its last published position, turns
each stored event into zero or more outputs (ids derived from the stored event, so a
republished output keeps its id), publishes a page with acks pipelined across participants
(`waves`), and only then moves its position. A crash between commit and publish loses nothing
(the position has not moved) and doubles nothing (JetStream drops a repeated `Nats-Msg-Id`).
A participant's output is published only once their previous one is acknowledged, so one lost
with a connection or an election and published again never lands behind a later one of theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification
from nats.js import JetStreamContext

from stepout_contract.envelope import CONTENT_TYPE, encode

from .metrics import CommonMetrics
from .views import ViewStore

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
POSITION_NAME = "outbox"


@dataclass(frozen=True, slots=True)
class Output:
    subject: str
    event: dict[str, Any]  # a CloudEvent, ready to encode

    @property
    def type(self) -> str:
        return str(self.event["type"])

    @property
    def user_id(self) -> str:
        """Whose output it is: the last token of `P.<family>.<event>.<user_id>`."""
        return self.subject.rsplit(".", 1)[-1]


def waves(outputs: Sequence[Output]) -> list[list[Output]]:
    """`outputs` in waves, each participant's k-th output in wave k: published wave after wave, each
    participant's outputs keep their order whatever is lost and published again, while the outputs of
    different participants go out together."""
    found: list[list[Output]] = []
    seen: dict[str, int] = {}
    for output in outputs:
        k = seen.get(output.user_id, 0)
        seen[output.user_id] = k + 1
        if k == len(found):
            found.append([])
        found[k].append(output)
    return found


@dataclass(frozen=True, slots=True)
class Erase:
    """Crypto-shred a participant's personal fields and purge their inputs before `before_seq`."""

    user_id: str
    before_seq: int


Effect = Output | Erase
OutputKind = tuple[str, str]  # (family, event name): `P.<family>.<event>.<user_id>`, `stepout.<family>.<event>.v1`


class OutputRegistry:
    """Which of a decider's events are published, as what output, with what data: typed, by the
    event's class, so nothing maps stored events to outputs by their names."""

    def __init__(self, kinds: dict[type, tuple[OutputKind, Callable[[Any, str], dict[str, Any]]]]) -> None:
        self._kinds = kinds

    def of(self, event: Any, user_id: str) -> tuple[OutputKind, dict[str, Any]] | None:
        """The output `event` (decided for `user_id`) is published as, if any: its kind and data."""
        found = self._kinds.get(type(event))
        return None if found is None else (found[0], found[1](event, user_id))


def relay_for(
    app: Any,
    js: JetStreamContext,
    *,
    executor: Executor,
    metrics: CommonMetrics,
    erase: Callable[[Erase], Awaitable[None]] | None = None,
) -> OutboxRelay:
    """The relay of a service's application (its recorder's log, its `to_outputs`, its views)."""
    return OutboxRelay(
        js=js,
        stream=app.subjects.out_stream,
        read_notifications=lambda start, limit: app.recorder.select_notifications(start, limit),
        max_notification_id=app.recorder.max_notification_id,
        to_outputs=app.to_outputs,
        views=app.views,
        executor=executor,
        metrics=metrics,
        erase=erase,
        feed=app.outbox_feed,
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        js: JetStreamContext,
        stream: str,
        read_notifications: Callable[[int, int], Sequence[Notification]],
        max_notification_id: Callable[[], int | None],
        to_outputs: Callable[[Notification], Sequence[Effect]],
        views: ViewStore,
        executor: Executor,
        metrics: CommonMetrics,
        erase: Callable[[Erase], Awaitable[None]] | None = None,
        feed: deque[tuple[int, int, list[Effect]]] | None = None,
    ) -> None:
        self.js = js
        self.feed: deque[tuple[int, int, list[Effect]]] = feed if feed is not None else deque()
        self.stream = stream
        self.read_notifications = read_notifications
        self.max_notification_id = max_notification_id
        self.to_outputs = to_outputs
        self.views = views
        self.executor = executor
        self.metrics = metrics
        self.erase = erase
        self._wake = asyncio.Event()
        self._stopping = False
        self.position = 0

    def wake(self) -> None:
        """Called after a commit: there may be something to publish."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _in_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run(self) -> None:
        self.position = await self._in_store(self.views.position, POSITION_NAME)
        while not self._stopping:
            try:
                published = await self.relay_once()
            except Exception as exc:  # noqa: BLE001 - NATS or the store away: try again shortly
                log.warning("outbox relay failed, retrying", extra={"error": repr(exc)})
                published = 0
                await asyncio.sleep(0.5)
            if published == 0 and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one page after the current position; the number of stored events passed."""
        fed = self._from_feed()
        if fed is not None:
            last, effects = fed
            await self.publish(effects)
            await self._in_store(self.views.commit, POSITION_NAME, last, {})
            passed, self.position = last - self.position, last
            return passed
        page: Sequence[Notification] = await self._in_store(self._page)
        if not page:
            self.metrics.projection_lag.labels("outbox").set(0)
            return 0
        outputs = [output for notification in page for output in self.to_outputs(notification)]
        await self.publish(outputs)
        last = page[-1].id
        await self._in_store(self.views.commit, POSITION_NAME, last, {})
        self.position = last
        return len(page)

    def _from_feed(self) -> tuple[int, list[Effect]] | None:
        """The next stretch of the log straight from the committing thread, when it is exactly
        the next one; anything else (a restart, a gap) is read from the log."""
        feed = self.feed
        while feed and feed[0][1] <= self.position:
            feed.popleft()
        if feed and feed[0][0] == self.position + 1:
            _, last, effects = feed.popleft()
            return last, effects
        return None

    def _page(self) -> Sequence[Notification]:
        page = self.read_notifications(self.position + 1, PAGE_SIZE)
        if page:
            newest = self.max_notification_id() or 0
            self.metrics.projection_lag.labels("outbox").set(max(0, newest - page[-1].id))
        return page

    async def publish(self, effects: Sequence[Effect]) -> None:
        """Publish in order with acks pipelined; raises if any is not acknowledged.
        An erasure waits for what was published before it, then runs in its place."""
        run: list[Output] = []
        for effect in effects:
            if isinstance(effect, Erase):
                await self._publish_run(run)
                run = []
                if self.erase is not None:
                    await self.erase(effect)
            else:
                run.append(effect)
        await self._publish_run(run)

    async def _publish_run(self, outputs: Sequence[Output]) -> None:
        """Publish wave after wave (`waves`), the acks of a wave pipelined; the first output not
        acknowledged raises before the next wave, so the page is published again from its start."""
        for wave in waves(outputs):
            futures = []
            for output in wave:
                headers = {"Nats-Msg-Id": str(output.event["id"]), "Content-Type": CONTENT_TYPE}
                futures.append(
                    await self.js.publish_async(
                        output.subject, encode(output.event), headers=headers, stream=self.stream, wait_stall=5.0
                    )
                )
            for output, future in zip(wave, futures, strict=True):
                ack = await asyncio.wait_for(future, timeout=10.0)
                if not ack.duplicate:
                    self.metrics.published(output.type)
