"""The ingest's fetcher on a real nats-server: it asks for what is known to be waiting, so it hands
messages over as they are delivered instead of holding a request open for a full batch.

The fetch timeout here is far longer than the test's own bound: a fetcher that waited for a batch
to fill (or for its timeout) would not finish inside it. That bound is a check that it returns at
all, not a measure of speed.
"""

from __future__ import annotations

import asyncio
import uuid

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from stepout_runtime.fetching import PromptFetcher
from stepout_runtime.topology import MAX_ACK_PENDING
from support import NatsServer

HELD_OPEN_S = 60.0  # the fetch timeout: what a request for a full batch would wait
BOUND_S = 20.0


async def test_messages_are_handed_over_without_waiting_for_a_full_batch(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    stream = f"FETCH{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.add_consumer(
        stream, ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=MAX_ACK_PENDING)
    )
    sub = await js.pull_subscribe_bind("c", stream=stream)
    fetcher = PromptFetcher(sub, batch=500, timeout=HELD_OPEN_S)
    try:
        for n in range(3):
            await js.publish(f"{stream}.in", str(n).encode())

        # Nothing known to wait: one message is asked for; it tells how many wait behind it, and
        # exactly those are asked for too.
        first = await asyncio.wait_for(fetcher.fetch(), BOUND_S)
        assert [m.data for m in first] == [b"0", b"1", b"2"]
        assert fetcher.pending == 0

        # Idle: one request waits, and returns with the next message as soon as it is published.
        waiting = asyncio.create_task(fetcher.fetch())
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await js.publish(f"{stream}.in", b"3")
        assert [m.data for m in await asyncio.wait_for(waiting, BOUND_S)] == [b"3"]

        # A backlog larger than a batch comes in full batches.
        for n in range(1200):
            await js.publish(f"{stream}.in", str(n).encode())
        sizes = []
        while sum(sizes) < 1200:
            msgs = await asyncio.wait_for(fetcher.fetch(), BOUND_S)
            sizes.append(len(msgs))
            for msg in msgs:
                await msg.ack()
        assert sizes == [500, 500, 200]
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def test_nothing_to_fetch_returns_empty_after_the_timeout(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    stream = f"FETCH{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.add_consumer(stream, ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind("c", stream=stream)
    try:
        assert await PromptFetcher(sub, batch=10, timeout=0.3).fetch() == []
    finally:
        await js.delete_stream(stream)
        await nc.close()
