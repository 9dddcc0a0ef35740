"""Streams and durable consumers of CONTRACT §1, created or updated idempotently at start.

Every service declares the whole topology, consumers of the other service included:
the input stream keeps a message only while a consumer still has interest in it, so
all its consumers must exist before the first input arrives, whichever service starts first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import NotFoundError

from stepout_contract.subjects import Subjects

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 120.0
OUT_MAX_AGE_S = 30 * 24 * 3600.0
DLQ_MAX_AGE_S = 90 * 24 * 3600.0
ACK_WAIT_S = 30.0
MAX_ACK_PENDING = 20_000


@dataclass(frozen=True)
class Consumer:
    stream: str
    durable: str
    filter_subjects: tuple[str, ...]


def tracker_durables(partitions: int) -> list[str]:
    return ["tracker"] if partitions == 1 else [f"tracker-p{k}" for k in range(partitions)]


def consumers(subjects: Subjects, partitions: int = 1) -> dict[str, Consumer]:
    """Every durable consumer stepout reads with, by durable name.

    With several partitions the input stream appends `.<k>` to each well-formed input
    subject (k = a hash of the user id) and tracker partition k reads only those; partition 0
    also reads subjects too short to carry a user id, so they still become dead letters.
    """
    p = subjects.prefix
    found = [
        Consumer(subjects.in_stream, "planner", (f"{p}.participant.>",)),
        Consumer(subjects.out_stream, "planner-outcomes", (f"{p}.progress.updated.*", f"{p}.overload.>")),
    ]
    if partitions == 1:
        found.append(Consumer(subjects.in_stream, "tracker", (f"{p}.participant.>", f"{p}.attempt.>")))
    else:
        for k, durable in enumerate(tracker_durables(partitions)):
            filters = [f"{p}.participant.*.*.{k}", f"{p}.attempt.*.*.{k}"]
            if k == 0:
                filters += [f"{p}.participant.*", f"{p}.attempt.*", f"{p}.participant", f"{p}.attempt"]
            found.append(Consumer(subjects.in_stream, durable, tuple(filters)))
    return {c.durable: c for c in found}


def partition_transform(subjects: Subjects, partitions: int) -> SubjectTransform | None:
    if partitions == 1:
        return None
    p = subjects.prefix
    return SubjectTransform(
        src=f"{p}.*.*.*",
        dest=f"{p}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.{{{{partition({partitions},3)}}}}",
    )


def stream_configs(subjects: Subjects, partitions: int = 1) -> list[StreamConfig]:
    common: dict[str, Any] = {"storage": StorageType.FILE, "duplicate_window": DUPLICATE_WINDOW_S}
    return [
        # Inputs hold personal notes: kept only until every stepout consumer has acked them.
        StreamConfig(
            name=subjects.in_stream,
            subjects=subjects.in_stream_subjects(),
            retention=RetentionPolicy.INTEREST,
            subject_transform=partition_transform(subjects, partitions),
            **common,
        ),
        StreamConfig(
            name=subjects.out_stream,
            subjects=subjects.out_stream_subjects(),
            retention=RetentionPolicy.LIMITS,
            max_age=OUT_MAX_AGE_S,
            **common,
        ),
        StreamConfig(
            name=subjects.dlq_stream,
            subjects=subjects.dlq_stream_subjects(),
            retention=RetentionPolicy.LIMITS,
            max_age=DLQ_MAX_AGE_S,
            **common,
        ),
    ]


async def ensure_topology(
    js: JetStreamContext, subjects: Subjects, max_deliver: int, ack_wait: float = ACK_WAIT_S, partitions: int = 1
) -> None:
    """Create or update every stream and durable consumer; safe to run from any number of processes."""
    for stream in stream_configs(subjects, partitions):
        assert stream.name is not None
        try:
            await js.stream_info(stream.name)
        except NotFoundError:
            await js.add_stream(stream)
            log.info("stream created", extra={"stream": stream.name})
        else:
            await js.update_stream(stream)
    for consumer in consumers(subjects, partitions).values():
        config = ConsumerConfig(
            durable_name=consumer.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subjects=list(consumer.filter_subjects),
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            max_ack_pending=MAX_ACK_PENDING,
            max_waiting=512,
        )
        await js.add_consumer(consumer.stream, config)
