"""The shell every service runs in: NATS, topology, ingest loops, outbox relay, queries, HTTP.

A service provides its decisions (batch handlers, output mapping, query answers); this
module wires them to NATS and HTTP and stops everything cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from faststream.nats.prometheus import NatsPrometheusMiddleware
from nats.aio.client import Client
from nats.js.errors import ServiceUnavailableError
from prometheus_client import CollectorRegistry

from stepout_contract.queries import QUERIES
from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects

from .api_tokens import ApiTokens
from .connection import answerable, closing, connect_broker, service_inbox_prefix
from .http import HttpApp, bound_port, make_server
from .ingest import BatchHandler, DeadLetters, IngestLoop
from .leases import Leases
from .metrics import CommonMetrics
from .outbox import OutboxRelay
from .server_version import require_supported_server
from .topology import StreamLimits, TopologyError, TopologyMissing, check_topology, consumers

log = logging.getLogger(__name__)

QueryAnswer = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
QUERY_ASKERS = {query.name: query.asked_by for query in QUERIES}


# A JetStream cluster may take a while to answer after a start or an election.
TOPOLOGY_PATIENCE_S = 60.0
TOPOLOGY_REQUEST_S = 10.0


class ServiceFailed(RuntimeError):
    """A part of a running service died; the process must end with a non-zero status."""


class QueryError(Exception):
    """A query that cannot be answered: becomes `{"error": {"code", "message"}}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ServiceParts:
    """What one service plugs into the shell."""

    name: str
    port: int
    metrics: CommonMetrics
    registry: CollectorRegistry
    ingest: dict[str, tuple[dict[str, Any], BatchHandler]]  # durable -> (types, handler)
    relay: Callable[[Any], OutboxRelay]  # given the JetStream context
    queries: dict[str, QueryAnswer]
    lookups: dict[str, Callable[[str], Awaitable[dict[str, Any] | None]]]
    store_ready: Callable[[], Awaitable[None]]
    executor: ThreadPoolExecutor
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    leases: Leases = field(default_factory=Leases)
    # Consumers by the lease that covers them (one process consumes all of a lease's consumers);
    # unset: each consumer is its own lease.
    lease_groups: dict[str, list[str]] | None = None
    replicas: int = 1  # how many processes of this service are expected to share the leases
    refresh_gauges: Callable[[], Awaitable[None]] | None = None  # called every few seconds
    dead_letters: DeadLetters = field(default_factory=DeadLetters)
    nc: Client | None = None  # the service's NATS connection, once connected


async def answer_query(answer: QueryAnswer, body: bytes) -> dict[str, Any]:
    """Parse a query body and answer it; every failure is an error reply, never silence."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return {"error": {"code": "invalid_request", "message": "request is not JSON"}}
    if not isinstance(request, dict):
        return {"error": {"code": "invalid_request", "message": "request must be a JSON object"}}
    try:
        return await answer(request)
    except QueryError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}


class Service:
    def __init__(self, settings: Settings, parts: ServiceParts) -> None:
        self.settings = settings
        self.parts = parts
        self.subjects = Subjects(settings.subject_prefix)
        self.nc: Client | None = None
        self.broker: NatsBroker | None = None
        self.loops: list[IngestLoop] = []
        self.relay: OutboxRelay | None = None
        self._stop = asyncio.Event()

    async def readiness(self) -> str | None:
        if self.nc is None or not self.nc.is_connected:
            return "NATS is not connected"
        try:
            await asyncio.wait_for(self.parts.store_ready(), timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - any store failure means not ready
            return f"store does not answer: {type(exc).__name__}"
        return None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        parts = self.parts
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

        # A signal while NATS is still away stops the wait instead of being ignored.
        # One connection: FastStream's broker serves the queries, its nats-py client everything else.
        connecting = asyncio.ensure_future(
            connect_broker(
                self.settings,
                f"stepout-{parts.name}",
                service_inbox_prefix(parts.name),
                middlewares=[NatsPrometheusMiddleware(registry=parts.registry, app_name=f"stepout-{parts.name}")],
                log_level=logging.DEBUG,
            )
        )
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            log.info("stopped before NATS answered", extra={"service": parts.name})
            return
        stopping.cancel()
        self.broker = connecting.result()
        self.nc = parts.nc = self.broker.connection
        require_supported_server(self.nc)  # raises ServerTooOld: the process ends with a non-zero status
        js = self.nc.jetstream()
        await self._check_topology(self.nc)

        # Queries: FastStream subscribers on core NATS, one queue group per service; its Prometheus
        # middleware measures them into our registry.
        for name, answer in parts.queries.items():
            self._register_query(self.broker, name, answer)
        await self.broker.start()

        self.relay = parts.relay(js)
        self._known = consumers(self.subjects, self.settings.tracker_partitions)
        self._js = js

        http = HttpApp(parts.registry, self.readiness, parts.lookups, ApiTokens.of(self.settings))
        server = make_server(http, self.settings.http_host, parts.port)
        tasks = [
            asyncio.create_task(self._consume(), name="consumers"),
            asyncio.create_task(self._relay_while_leader(), name="outbox"),
        ]
        reporter = asyncio.create_task(self._report_pending(), name="pending")
        http_task = asyncio.create_task(server.serve(), name="http")
        while not server.started and not http_task.done():
            await asyncio.sleep(0.02)
        if http_task.done():
            http_task.result()
        log.info(
            f"{parts.name} ready",
            extra={
                "service": parts.name,
                "http": f"http://{self.settings.http_host}:{bound_port(server)}",
                "nats": self.nc.connected_url.geturl() if self.nc.connected_url else self.settings.nats_url,
            },
        )
        stop_wait = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop_wait, *tasks, http_task], return_when=asyncio.FIRST_COMPLETED)
        failed = [task for task in done if task is not stop_wait and not task.cancelled() and task.exception()]
        for task in failed:
            log.error("a part of the service failed", extra={"part": task.get_name()}, exc_info=task.exception())
        if not self._stop.is_set() and not failed:
            failed = [task for task in done if task is not stop_wait]  # a part ended on its own: no less a failure
            log.error("a part of the service ended", extra={"parts": [task.get_name() for task in failed]})
        reporter.cancel()
        await self._shutdown(tasks, server, http_task)
        if failed:
            # A supervisor restarting on failure must see one: the process ends with a non-zero status.
            raise ServiceFailed(f"{parts.name}: {', '.join(task.get_name() for task in failed)} failed")

    async def _check_topology(self, nc: Client) -> None:
        """`check_topology` for this service's consumers, again while the topology is not declared yet
        (`stepout topology apply` still running) or a JetStream cluster cannot answer (no meta leader, a
        stream being placed or electing its leader): up to TOPOLOGY_PATIENCE_S, then the last error stops
        the start. A topology that differs from the settings stops it at once."""
        deadline = asyncio.get_running_loop().time() + TOPOLOGY_PATIENCE_S
        while True:
            try:
                await check_topology(
                    nc.jetstream(timeout=TOPOLOGY_REQUEST_S),
                    self.subjects,
                    list(self.parts.ingest),
                    self.settings.max_deliver,
                    self.settings.ack_wait_seconds,
                    self.settings.tracker_partitions,
                    limits=StreamLimits.of(self.settings),
                    replicas=self.settings.stream_replicas,
                )
                return
            except TopologyMissing as exc:
                if asyncio.get_running_loop().time() > deadline or self._stop.is_set():
                    raise TopologyError(
                        f"{exc}: the operator declares the streams and consumers with `stepout topology apply` "
                        "(an identity allowed to, `admin` in deploy/nats/nats-server.conf), with the same "
                        "STEPOUT_SUBJECT_PREFIX and STEPOUT_TRACKER_PARTITIONS"
                    ) from None
                log.warning("waiting for the topology to be declared", extra={"missing": str(exc)})
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError) as exc:
                if asyncio.get_running_loop().time() > deadline or self._stop.is_set():
                    raise
                log.warning("JetStream not answering yet, reading the streams again", extra={"error": repr(exc)})
            await asyncio.sleep(1.0)

    def _loop_for(self, durable: str) -> IngestLoop:
        types, handler = self.parts.ingest[durable]
        assert self.relay is not None
        return IngestLoop(
            js=self._js,
            consumer=self._known[durable],
            subjects=self.subjects,
            types=types,
            handle=handler,
            executor=self.parts.executor,
            metrics=self.parts.metrics,
            batch_size=self.settings.batch_size,
            max_deliver=self.settings.max_deliver,
            on_committed=self.relay.wake,
            dead_letters=self.parts.dead_letters,
        )

    async def _consume(self) -> None:
        """Run an ingest loop for every consumer of every lease this process holds.

        Each process first takes its fair share of the leases; one left free for three checks in a
        row (its holder died) is taken by whoever sees it, beyond its share.
        """
        leases = self.parts.leases
        groups = self.parts.lease_groups or {durable: [durable] for durable in self.parts.ingest}
        names = list(groups)
        share = -(-len(names) // self.parts.replicas) if len(names) > 1 else 1
        running: dict[str, list[asyncio.Task[None]]] = {}
        free_checks: dict[str, int] = dict.fromkeys(names, 0)
        offset = random.randrange(len(names))
        order = names[offset:] + names[:offset]
        try:
            while not self._stop.is_set():
                if not await asyncio.to_thread(leases.alive):
                    raise ServiceFailed("store session lost: stopping so that no partition has two consumers")
                held_elsewhere = await asyncio.to_thread(leases.holders, [n for n in order if n not in running])
                for name in order:
                    if name in running:
                        continue
                    free_checks[name] = 0 if name in held_elsewhere else free_checks[name] + 1
                    if len(running) >= share and free_checks[name] < 3:
                        continue
                    if await asyncio.to_thread(leases.try_acquire, name):
                        running[name] = []
                        for durable in groups[name]:
                            loop_ = self._loop_for(durable)
                            self.loops.append(loop_)
                            running[name].append(asyncio.create_task(loop_.run(), name=f"ingest-{durable}"))
                            log.info("consuming", extra={"consumer": durable, "service": self.parts.name})
                for task in [t for tasks in running.values() for t in tasks]:
                    if task.done():
                        task.result()  # a loop only ends on stop; anything else is a failure to report
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=1.0)
                except TimeoutError:
                    pass
        finally:
            for loop_ in self.loops:
                loop_.stop()
            if running:
                await asyncio.wait([t for tasks in running.values() for t in tasks], timeout=5.0)

    async def _relay_while_leader(self) -> None:
        """One outbox relay per store: the process holding the `outbox` lease."""
        assert self.relay is not None
        while not self._stop.is_set():
            if await asyncio.to_thread(self.parts.leases.try_acquire, "outbox"):
                await self.relay.run()
                return
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def _register_query(self, broker: NatsBroker, name: str, answer: QueryAnswer) -> None:
        subject = self.subjects.query(name)
        asked_by = QUERY_ASKERS.get(name)

        @broker.subscriber(subject, queue=f"stepout-{self.parts.name}", title=f"query.{name}", no_reply=True)
        async def handle(msg: NatsMessage) -> None:
            if not answerable(msg.reply_to, asked_by):
                # Answering would publish under this service's identity wherever the asker pointed.
                log.warning("query not answered: its reply subject is no inbox", extra={"query": name})
                return
            reply = await answer_query(answer, msg.body)
            await broker.publish(reply, msg.reply_to)

    async def _report_pending(self) -> None:
        while True:
            for loop_ in self.loops:
                try:
                    await loop_.report_pending()
                except Exception:  # noqa: BLE001 - a missed gauge refresh is harmless
                    pass
            if self.parts.refresh_gauges is not None:
                try:
                    await self.parts.refresh_gauges()
                except Exception:  # noqa: BLE001 - a missed gauge refresh is harmless
                    pass
            await asyncio.sleep(2.0)

    async def _shutdown(self, tasks: Sequence[asyncio.Task[Any]], server: Any, http_task: asyncio.Task[Any]) -> None:
        log.info("stopping", extra={"service": self.parts.name})
        for loop_ in self.loops:
            loop_.stop()
        if self.relay is not None:
            self.relay.stop()
        server.should_exit = True
        _, pending = await asyncio.wait([*tasks, http_task], timeout=6.0)
        for task in pending:
            task.cancel()
        if self.broker is not None:
            closing.now = True
            await self.broker.stop()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=2.0)
            except Exception:  # noqa: BLE001 - closing anyway
                await self.nc.close()
        for stop in self.parts.on_stop:
            stop()
        self.parts.leases.close()
        self.parts.executor.shutdown(wait=True, cancel_futures=True)
        log.info("stopped", extra={"service": self.parts.name})
