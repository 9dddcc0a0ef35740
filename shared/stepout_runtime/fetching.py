"""Fetching a pull consumer promptly with nats-py's public `fetch`.

A pull request for `batch` messages is held by the server until `batch` have been delivered or it
expires, so asking for a full batch when fewer are waiting adds the whole timeout to every input's
latency under light load. Every JetStream message says how many are still pending after it
(`metadata.num_pending`): the fetcher asks for exactly that many (up to `batch`), which the server
delivers at once, and for one message, waiting, when none are known to be pending; the message
that ends such a wait says how many arrived behind it, and those are asked for at once too. Under
load every request is a full batch; when idle a single lingering request waits for the next input.

A count the server cannot serve at once costs one request that returns after its timeout with
what there was, and the next one asks again: messages purged meanwhile (an erased participant's),
or more unacknowledged than the consumer's `max_ack_pending` allows (the ingest keeps two batches
in flight, far below it, unless many inputs wait for redelivery).
"""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import FetchTimeoutError


class PromptFetcher:
    def __init__(self, sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> None:
        self.sub = sub
        self.batch = batch
        self.timeout = timeout
        # Unknown at start: the first request asks for one message, which tells how many wait behind it.
        self.pending = 0

    async def fetch(self) -> list[Msg]:
        """Up to `batch` messages, returned as soon as those known to be waiting are delivered;
        an empty list when none came within the timeout."""
        msgs = await self._requested(max(1, min(self.batch, self.pending)))
        # The first of a burst tells how many came with it: those are taken too, at once.
        while msgs and self.pending and len(msgs) < self.batch:
            more = await self._requested(min(self.batch - len(msgs), self.pending))
            if not more:
                break
            msgs.extend(more)
        return msgs

    async def _requested(self, wanted: int) -> list[Msg]:
        try:
            msgs = await self.sub.fetch(wanted, timeout=self.timeout)
        except (TimeoutError, NatsTimeout, FetchTimeoutError):
            self.pending = 0
            return []
        self.pending = msgs[-1].metadata.num_pending if msgs else 0
        return msgs
