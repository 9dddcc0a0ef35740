"""Ways to pull from a JetStream durable pull consumer, side by side on one nats-server.

The ingest loop needs two things of its fetcher: a backlog taken in full batches, and a lone input
handed over at once. Each way here reads a consumer of its own, with the tracker's consumer
settings, on the same input stream preloaded with `attempt.logged` CloudEvents:

- drain: fetch, parse (`json.loads`) and ack `n` preloaded messages in batches of 500, timed from
  the moment the way is bound to its consumer until the last batch is acked; every drain runs
  before the first lone message is published, and must leave its consumer with nothing unacked;
- lone: one message published to an idle consumer until it is handed to the code, over `lone`
  messages, each published `LONE_GAP_S` after the previous one was handed over (median and p99).

nats-py's `fetch` takes each message through `next_msg`, two asyncio tasks and a timer per message.
A fetcher that took what is already delivered straight from the subscription's queue (nats-py's
private `_pending_queue`, as the ingest did before) drained about 3x faster here (17,970 against
6,427 msg/s in one run), but no public API does so; the ingest uses the public fetch, which is
still several times faster than the tracker decides.

Which ways wait for a batch to fill depends on the versions. nats-py 2.16's `fetch(n, timeout)`, its
local queue empty, sends one request with `no_wait` and `expires`; nats-server 2.15 holds such a
request until a first message, delivers what there is and ends it with a 404, so the fetch returns
at once. Only a request without `no_wait` (nats-py's second request, sent when the first came back
empty) is held until `n` messages or its expiry. FastStream 0.7.8's `PullSub(batch=True)` fetches
again until the batch is full or its `timeout` has passed, so a lone message waits for the timeout:
that way spends about `lone` x timeout seconds on the lone measure. It also drops a partial batch
now and then: when a request expires with no time left for another, nats-py's fetch raises the
builtin `TimeoutError`, which FastStream's pull loop does not catch (it catches nats-py's
`nats.errors.TimeoutError`, a subclass); the loop's task is restarted and the messages it had
collected stay unacked until the consumer's ack wait redelivers them. The lone measure waits for
that redelivery and counts the messages that came only with it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import nats
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from stepout_contract.subjects import Subjects
from stepout_runtime import ingest as stepout_ingest
from stepout_runtime.fetching import PromptFetcher
from stepout_runtime.topology import ACK_WAIT_S, apply_topology, consumer_config, consumers

from .common import NatsServer, attempt_messages, next_attempt
from .ingest import USERS, publish_all

BATCH = 500
LONE = 50  # FastStream's batch subscriber hands each over only after its timeout
ROUNDS = 3
LONE_GAP_S = 0.02
MAX_DELIVER = 20
PREFIX = "benchfetch"
LONE_USER = "b-lone"

# Found on the nats-jetstream 0.3.0 wheel and with `uv pip compile --universal --python-version 3.11`: its
# metadata says Python >=3.11, but its code does not compile before 3.12 and its nats-core dependency
# has code only in releases for 3.13 and later (0.0.0, the one left for 3.11, is an empty placeholder).
NATS_JETSTREAM_NOT_MEASURED = (
    "needs Python >= 3.12 (PEP 695 generics in nats/jetstream/api/client.py) and nats-core >= 0.1 for "
    "`nats.client` (Python >= 3.13); on 3.11 it resolves to the empty nats-core 0.0.0 and its import fails. "
    "It also installs into the top-level `nats` package that nats-py 2.16 owns"
)

OnBatch = Callable[[float, list[Any]], None]
"""Told of every batch once it is parsed and acked: the moment it was handed over, and its bodies."""

FetchBatch = Callable[[], Awaitable[list[Msg]]]
MakeFetch = Callable[[JetStreamContext.PullSubscription, int, float], FetchBatch]


class Reader(Protocol):
    """One way of pulling: while the context is open, every batch pulled from consumer `durable` is
    parsed, acked and reported to `on_batch`."""

    def __call__(self, durable: str, on_batch: OnBatch) -> AbstractAsyncContextManager[None]: ...


async def fetched(sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> list[Msg]:
    """nats-py's `fetch` as it is, with an expired request as an empty batch."""
    try:
        return await sub.fetch(batch, timeout=timeout)
    except (TimeoutError, NatsTimeout, FetchTimeoutError):
        return []


def nats_py_fetch(sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> FetchBatch:
    """Way 1: `fetch(batch, timeout)` on every call."""
    return partial(fetched, sub, batch, timeout)


def public_prompt_fetch(sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> FetchBatch:
    """Way 2: the ingest's own fetcher (`stepout_runtime.fetching.PromptFetcher`), public API only."""
    return PromptFetcher(sub, batch, timeout).fetch


async def _pull_until(stopping: asyncio.Event, fetch: FetchBatch, on_batch: OnBatch) -> None:
    while not stopping.is_set():
        msgs = await fetch()
        if not msgs:
            continue
        handed = time.perf_counter()
        bodies = [json.loads(msg.data) for msg in msgs]
        for msg in msgs:
            await msg.ack()
        on_batch(handed, bodies)


def nats_py_reader(js: JetStreamContext, stream: str, make_fetch: MakeFetch, timeout: float) -> Reader:
    """A loop of `make_fetch(sub, BATCH, timeout)` on the bench's own nats-py connection.

    The loop is stopped by a flag as well as cancelled: on Python 3.11, `asyncio.wait_for` (inside
    nats-py's `next_msg`) returns a message that arrives as it is cancelled and drops the
    cancellation, and the loop would then pull on for ever.
    """

    @asynccontextmanager
    async def reading(durable: str, on_batch: OnBatch) -> AsyncIterator[None]:
        sub = await js.pull_subscribe_bind(durable, stream=stream)
        stopping = asyncio.Event()
        pulling = asyncio.create_task(_pull_until(stopping, make_fetch(sub, BATCH, timeout), on_batch))
        try:
            yield
        finally:
            stopping.set()
            pulling.cancel()
            with suppress(asyncio.CancelledError):
                await pulling
            await sub.unsubscribe()

    return reading


def faststream_reader(url: str, stream: str, subject: str, timeout: float) -> Reader:
    """FastStream's batch pull subscriber, bound to the existing durable, on a broker of its own.

    The broker does not log each message (its default INFO logging costs a quarter of the
    throughput or more) and does not declare the stream; the handler acks the batch itself.
    """

    @asynccontextmanager
    async def reading(durable: str, on_batch: OnBatch) -> AsyncIterator[None]:
        broker = NatsBroker(url, logger=None)

        @broker.subscriber(
            subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            pull_sub=PullSub(batch_size=BATCH, batch=True, timeout=timeout),
            ack_policy=AckPolicy.MANUAL,
        )
        async def handle(bodies: list[Any], msg: NatsMessage) -> None:
            handed = time.perf_counter()
            await msg.ack()
            on_batch(handed, bodies)

        await broker.start()
        try:
            yield
        finally:
            await broker.stop()

    return reading


async def _drain(reader: Reader, durable: str, n: int) -> float:
    """Messages per second of `reader` draining `n` preloaded messages from `durable`."""
    done = asyncio.Event()
    seen, finished = 0, 0.0

    def count(_handed: float, bodies: list[Any]) -> None:
        nonlocal seen, finished
        seen += len(bodies)
        if seen >= n and not done.is_set():
            finished = time.perf_counter()
            done.set()

    async with reader(durable, count):
        started = time.perf_counter()
        await asyncio.wait_for(done.wait(), 120 + n / 500)
    return n / (finished - started)


async def _lone_latencies(reader: Reader, durable: str, js: JetStreamContext, count: int, wait: float) -> list[float]:
    """Seconds from publishing each of `count` lone attempts to its hand-over by `reader`.

    `wait` must outlast the consumer's ack wait: a way that drops a message it fetched hands it over
    only once the server redelivers it, and that delay is the latency it gives.
    """
    arrived: asyncio.Queue[tuple[float, str]] = asyncio.Queue()

    def note(handed: float, bodies: list[Any]) -> None:
        for body in bodies:
            arrived.put_nowait((handed, body["data"]["attempt_id"]))

    latencies = []
    async with reader(durable, note):
        for i in range(count + 1):  # the first one only warms the way up
            subject, body, attempt_id = next_attempt(PREFIX, LONE_USER)
            await asyncio.sleep(LONE_GAP_S)
            sent = time.perf_counter()
            await js.publish(subject, body)
            try:
                handed, got = await asyncio.wait_for(arrived.get(), wait)
            except TimeoutError:
                raise RuntimeError(f"{durable} did not hand lone attempt {i} over within {wait} s") from None
            if got != attempt_id:
                raise RuntimeError(f"{durable} handed over {got} for lone attempt {attempt_id}")
            if i:
                latencies.append(handed - sent)
    return latencies


async def _settled(js: JetStreamContext, stream: str, durable: str) -> None:
    """Wait until `durable` has nothing pending or unacked: a way that lost a message fails here."""
    for _ in range(500):
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{durable}: {info.num_pending} pending, {info.num_ack_pending} unacked")


def _consumer(subjects: Subjects, durable: str, deliver: DeliverPolicy) -> ConsumerConfig:
    """The tracker's consumer settings under another name."""
    tracker = replace(consumers(subjects)["tracker"], durable=durable)
    return replace(consumer_config(tracker, max_deliver=MAX_DELIVER, ack_wait=ACK_WAIT_S), deliver_policy=deliver)


async def _drained(reader: Reader, durable: str, js: JetStreamContext, n: int) -> float:
    """`_drain` on `durable`, which must then have every message acked."""
    per_s = await _drain(reader, durable, n)
    await _settled(js, Subjects(PREFIX).in_stream, durable)
    return per_s


async def _best_drains(readers: dict[str, Reader], js: JetStreamContext, n: int, rounds: int) -> dict[str, float]:
    """Each way's best drain over `rounds`, the ways taking turns, each round on consumers of its own.

    Other work on the machine only ever slows a drain down: the best of a few, taken in turns,
    compares the ways rather than the moments they happened to run at.
    """
    best = dict.fromkeys(readers, 0.0)
    for round_ in range(rounds):
        for name, reader in readers.items():
            best[name] = max(best[name], await _drained(reader, f"drain-{name}-{round_}", js, n))
    return best


async def _lone(
    reader: Reader, name: str, js: JetStreamContext, publisher: JetStreamContext, count: int, timeout: float
) -> dict[str, float | str]:
    """`_lone_latencies` on a consumer of the way's own that starts at the first lone message."""
    subjects = Subjects(PREFIX)
    await js.add_consumer(subjects.in_stream, _consumer(subjects, f"lone-{name}", DeliverPolicy.NEW))
    wait = ACK_WAIT_S + 2 * timeout + 5
    ms = sorted(s * 1000 for s in await _lone_latencies(reader, f"lone-{name}", publisher, count, wait))
    return {
        "lone_p50_ms": statistics.median(ms),
        "lone_p99_ms": statistics.quantiles(ms, n=100, method="inclusive")[98],
        "lone_max_ms": ms[-1],
        "lone_redelivered": float(sum(m >= ACK_WAIT_S * 1000 for m in ms)),
    }


WAYS = {
    "nats_py_fetch": "nats-py fetch(500, timeout)",
    "public_prompt_fetch": "nats-py fetch(num_pending), the ingest's",
    "faststream_pull_sub": "FastStream PullSub(500, batch=True, timeout)",
    "nats_jetstream": "nats-jetstream 0.3.0",
}


def _readers(js: JetStreamContext, url: str, timeout: float) -> dict[str, Reader | str]:
    """Each way's reader, or why it is not measured."""
    stream = Subjects(PREFIX).in_stream
    return {
        "nats_py_fetch": nats_py_reader(js, stream, nats_py_fetch, timeout),
        "public_prompt_fetch": nats_py_reader(js, stream, public_prompt_fetch, timeout),
        "faststream_pull_sub": faststream_reader(url, stream, f"{PREFIX}.attempt.>", timeout),
        "nats_jetstream": NATS_JETSTREAM_NOT_MEASURED,
    }


async def run_fetchers(
    work: Path,
    n: int,
    *,
    lone: int = LONE,
    rounds: int = ROUNDS,
    timeout: float = stepout_ingest.FETCH_TIMEOUT_S,
) -> dict[str, dict[str, float | str]]:
    """Each way's best drain rate of `n` preloaded attempts over `rounds`, and its latency for `lone`
    lone ones, by way (see WAYS), plus "setup": what was measured. A way that cannot be measured has
    "not_measured" (why) instead."""
    server = NatsServer(work / "nats-fetchers")
    server.start()
    subjects = Subjects(PREFIX)
    results: dict[str, dict[str, float | str]] = {
        "setup": {"messages": n, "batch": BATCH, "rounds": rounds, "lone_messages": lone, "fetch_timeout_s": timeout}
    }
    try:
        nc, pub = await nats.connect(server.url), await nats.connect(server.url)
        js, publisher = nc.jetstream(), pub.jetstream()
        await apply_topology(js, subjects, max_deliver=MAX_DELIVER)
        readers = _readers(js, server.url, timeout)
        measured = {name: reader for name, reader in readers.items() if not isinstance(reader, str)}
        for name, round_ in itertools.product(measured, range(rounds)):
            drain = _consumer(subjects, f"drain-{name}-{round_}", DeliverPolicy.ALL)
            await js.add_consumer(subjects.in_stream, drain)
        await publish_all(publisher, attempt_messages(PREFIX, USERS, n))
        # Every drain runs before the first lone message: a drain consumer takes in the whole stream.
        drains = await _best_drains(measured, js, n, rounds)
        for name, reader in readers.items():
            if isinstance(reader, str):
                results[name] = {"not_measured": reader}
            else:
                results[name] = {
                    "drain_msgs_per_s": drains[name],
                    **await _lone(reader, name, js, publisher, lone, timeout),
                }
        await nc.close()
        await pub.close()
        return results
    finally:
        server.stop()


def rows(result: dict[str, dict[str, float | str]]) -> list[tuple[str, str, str]]:
    """One (measure, value, target) row per way, in bench/run.py's table's shape; each drain is also
    given as a multiple of nats-py's plain `fetch`."""
    setup, baseline = result["setup"], result["nats_py_fetch"].get("drain_msgs_per_s")
    found = []
    for name, label in WAYS.items():
        r = result[name]
        if "not_measured" in r:
            found.append((f"pull: {label}", f"not measured: {r['not_measured']}", ""))
            continue
        drain = f"drain {r['drain_msgs_per_s']:,.0f} msg/s"
        if isinstance(baseline, float):
            drain += f" = {float(r['drain_msgs_per_s']) / baseline:.2f}x"
        lone = f"lone p50 {r['lone_p50_ms']:.1f} ms, p99 {r['lone_p99_ms']:.1f} ms"
        if r["lone_redelivered"]:
            lone += f", {r['lone_redelivered']:.0f} only on redelivery ({ACK_WAIT_S:.0f} s)"
        found.append((f"pull: {label}", f"{drain}; {lone}", ""))
    found.append(
        (
            "pull: setup",
            f"{setup['messages']:,} preloaded, batch {setup['batch']}, best of {setup['rounds']} drains; "
            f"{setup['lone_messages']} lone messages; timeout {setup['fetch_timeout_s']} s",
            "",
        )
    )
    return found
