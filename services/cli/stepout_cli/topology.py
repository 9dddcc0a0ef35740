"""`stepout topology apply`: the operator declares every stream and durable consumer.

Run at deploy time (a one-shot service in docker-compose.yml) and by `stepout run all`, under an
identity allowed to shape the topology (`admin` in deploy/nats/nats-server.conf): the services only read
what it declared. Idempotent: run it again with the same settings and nothing changes.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.js.errors import ServiceUnavailableError

from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects
from stepout_runtime.connection import ADMIN_INBOX_PREFIX, NatsRefusedError, closing, connect
from stepout_runtime.server_version import ServerTooOld, require_supported_server
from stepout_runtime.topology import (
    PLATFORM_CONSUMER,
    PLATFORM_REFUSALS,
    StreamLimits,
    TopologyError,
    apply_topology,
    consumers,
)

log = logging.getLogger("stepout.topology")

# A JetStream cluster may take a while to answer after a start or an election.
PATIENCE_S = 60.0
REQUEST_S = 10.0


async def apply(settings: Settings) -> None:
    """Declare the topology the settings ask for, again while JetStream cannot answer yet (up to
    PATIENCE_S). Raises `TopologyError` with one line when it cannot, a refused request included: the
    server never answers a request its sender may not make."""
    subjects = Subjects(settings.subject_prefix)
    nc = await connect(settings, "stepout-topology", ADMIN_INBOX_PREFIX)
    try:
        require_supported_server(nc)
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while True:
            try:
                await apply_topology(
                    nc.jetstream(timeout=REQUEST_S),
                    subjects,
                    settings.max_deliver,
                    settings.ack_wait_seconds,
                    settings.tracker_partitions,
                    limits=StreamLimits.of(settings),
                    replicas=settings.stream_replicas,
                )
                break
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise TopologyError(
                        f"JetStream did not answer for {PATIENCE_S:.0f} s ({type(exc).__name__}): the server may "
                        "refuse this identity the right to declare streams and consumers (STEPOUT_NATS_USER "
                        "should be the operator's, `admin` in deploy/nats/nats-server.conf)"
                    ) from None
                log.warning("JetStream not answering yet, declaring the topology again", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)
    finally:
        # Closing its own connection is no outage to report.
        was_closing, closing.now = closing.now, True
        await nc.close()
        closing.now = was_closing
    declared = [*consumers(subjects, settings.tracker_partitions), PLATFORM_CONSUMER, PLATFORM_REFUSALS]
    log.info(
        "topology declared",
        extra={"streams": subjects.prefix, "partitions": settings.tracker_partitions, "consumers": declared},
    )


def apply_command(settings: Settings) -> int:
    """The command: 0 when declared, 1 with one line when not, 2 when the settings are refused."""
    try:
        asyncio.run(apply(settings))
    except (TopologyError, ServerTooOld) as exc:
        log.error(str(exc))
        return 1
    except NatsRefusedError as exc:
        log.error(str(exc))
        return 2
    return 0
