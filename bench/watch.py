"""What a benchmark reads of JetStream while a service works: when durable consumers first deliver,
when they have drained, and how many messages of one subject a stream holds.

Every moment is a `time.perf_counter()` reading taken by polling consumer info every `POLL_S`, so
each end of a measurement is late by at most one poll, the start and the end alike.
"""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

POLL_S = 0.02
BASELINE = "bench-baseline"  # the durable `ingest._baseline` binds to


async def add_baseline_consumer(js: JetStreamContext, stream: str) -> None:
    """The raw consumer `ingest._baseline` reads: every message of `stream`, with room for its
    fetches of 1,000 (the default `max_ack_pending` of 1,000 would stall them). Create it before
    the first publish, so that it sees everything the services see."""
    config = ConsumerConfig(durable_name=BASELINE, ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000)
    await js.add_consumer(stream, config)


async def add_counter(js: JetStreamContext, stream: str, durable: str, subject: str) -> None:
    """A durable consumer of `subject` that nobody reads: its pending count is how many messages of
    `subject` the stream holds, answered by the server without delivering any."""
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=subject,
    )
    await js.add_consumer(stream, config)


async def counted(js: JetStreamContext, stream: str, counter: str) -> int:
    """How many messages the `add_counter` consumer `counter` has seen stored."""
    return int((await js.consumer_info(stream, counter)).num_pending or 0)


async def count_reached(js: JetStreamContext, stream: str, counter: str, target: int, timeout: float) -> float:
    """The moment `counter` has counted `target` messages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await counted(js, stream, counter) >= target:
            return time.perf_counter()
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{counter} did not count {target} messages in {timeout:.0f} s")


async def delivered(js: JetStreamContext, stream: str, durables: list[str]) -> dict[str, int]:
    """How many deliveries each of `durables` has made so far."""
    return {d: int((await js.consumer_info(stream, d)).delivered.consumer_seq or 0) for d in durables}


async def outstanding(js: JetStreamContext, stream: str, durables: list[str]) -> dict[str, tuple[int, int]]:
    """For each of `durables`: (messages not yet delivered, messages delivered and not yet acked)."""
    found = {}
    for durable in durables:
        info = await js.consumer_info(stream, durable)
        found[durable] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
    return found


async def first_deliveries(
    js: JetStreamContext, stream: str, since: dict[str, int], timeout: float
) -> dict[str, float]:
    """The moment each durable of `since` first delivers past the count given there. Watch only
    durables with something to deliver: one with nothing never would."""
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = await delivered(js, stream, [d for d in since if d not in found])
        found.update({d: time.perf_counter() for d, count in now.items() if count > since[d]})
        if len(found) == len(since):
            return found
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"no delivery in {timeout:.0f} s by {sorted(set(since) - set(found))}")


async def drained_at(js: JetStreamContext, stream: str, durables: list[str], timeout: float) -> float:
    """The moment none of `durables` has a message left to deliver or to see acked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(sum(counts) for counts in (await outstanding(js, stream, durables)).values()):
            return time.perf_counter()
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{', '.join(durables)} not drained in {timeout:.0f} s")


async def dead_letters(js: JetStreamContext, stream: str) -> int:
    """How many dead letters `stream` holds: a benchmark that made any measured refusals, not decisions."""
    return int((await js.stream_info(stream)).state.messages)
