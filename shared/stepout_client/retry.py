"""Transient failures retried with a growing delay; what is not transient is raised at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors

from .errors import Unavailable

T = TypeVar("T")

# NATS did not answer in time, nobody listens yet (a service restarting), JetStream is busy or between
# leaders, the connection is being re-established: each may pass by itself, so the call is made again.
TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,  # nats.errors.TimeoutError is one
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.ServiceUnavailableError,
)


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all, waiting `first` seconds after the first failure, doubled each time up to `most`."""

    attempts: int = 6
    first: float = 0.25
    most: float = 4.0

    def delays(self) -> list[float]:
        return [min(self.first * 2**k, self.most) for k in range(self.attempts - 1)]


async def retried(call: Callable[[], Awaitable[T]], backoff: Backoff, what: str) -> T:
    """The result of `call`, tried again after each transient failure; `Unavailable` after the last one."""
    for delay in [*backoff.delays(), None]:
        try:
            return await call()
        except TRANSIENT as failure:
            if delay is None:
                raise Unavailable(f"{what}: no answer after {backoff.attempts} tries ({failure!r})") from failure
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
