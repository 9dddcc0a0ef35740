"""Streams and durable consumers of CONTRACT §1: declared by the operator, checked by the services.

`apply_topology` (`stepout topology apply`, run at deploy time and by `stepout run all`) creates or
updates every stream and durable consumer, idempotently, under an identity that may shape the
topology (`admin` in deploy/nats/nats-server.conf). No runtime identity may: a party allowed to create
a consumer can aim a push consumer's deliveries at another's pull API and steal its messages, or
redefine another's consumer. The services only read what the server stored (`check_topology`) and
refuse to run on anything else. The input stream keeps a message only while a consumer still has
interest in it, so all its consumers exist before the first input arrives, whichever service starts
first. What the server stored is compared with what was asked: a server may accept a setting it does
not know and drop it (nats-server 2.9 drops `filter_subjects`), and a consumer without its filters
would take in everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.errors import APIError, NotFoundError

from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 120.0
OUT_MAX_AGE_S = 30 * 24 * 3600.0
DLQ_MAX_AGE_S = 90 * 24 * 3600.0
ACK_WAIT_S = 30.0
MAX_ACK_PENDING = 20_000
MAX_WAITING = 512
LIMIT_SETTINGS = ("STEPOUT_IN_STREAM_MAX_BYTES", "STEPOUT_OUT_STREAM_MAX_BYTES", "STEPOUT_DLQ_STREAM_MAX_BYTES")
NO_STORAGE = 10047  # JetStream's "insufficient storage resources available"


class TopologyError(RuntimeError):
    """The streams and consumers cannot be declared as asked; the message is one line."""


class TopologyMissing(TopologyError):
    """A stream or consumer a service reads is not declared (yet): the operator's `stepout topology apply`
    has not run against this server and prefix."""


class TopologyMismatch(TopologyError):
    """The server stored a stream or consumer other than asked; the message is one line naming
    the object, the field, what was asked and what was stored."""


@dataclass(frozen=True)
class StreamLimits:
    """The byte limit of each stream (STEPOUT_IN_STREAM_MAX_BYTES and the others)."""

    in_max_bytes: int
    out_max_bytes: int
    dlq_max_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> StreamLimits:
        return cls(settings.in_stream_max_bytes, settings.out_stream_max_bytes, settings.dlq_stream_max_bytes)


DEFAULT_LIMITS = StreamLimits(
    *(Settings.model_fields[f"{stream}_stream_max_bytes"].default for stream in ("in", "out", "dlq"))
)


@dataclass(frozen=True)
class Consumer:
    stream: str
    durable: str
    filter_subjects: tuple[str, ...]


def tracker_durables(partitions: int) -> list[str]:
    return ["tracker"] if partitions == 1 else [f"tracker-p{k}" for k in range(partitions)]


def planner_partitions(partitions: int) -> dict[str, list[str]]:
    """The planner's consumers by the lease that covers them: one planner decides all of a partition
    (its participant inputs and the tracker's outcomes), so one participant's at a time, in order."""
    if partitions == 1:
        return {"planner": ["planner", "planner-outcomes"]}
    return {f"planner-p{k}": [f"planner-p{k}", f"planner-outcomes-p{k}"] for k in range(partitions)}


# The platform's own durable consumer on the output stream, declared for it: it reads every output with
# acks and a position kept for it, without any right to create or change a consumer. A push consumer whose
# delivery subject the operator fixes, not a pull one: a pull request names its own reply subject, which
# the server does not check, so a right to pull would let the platform have JetStream write stored outputs
# onto any subject, the output stream's own included. Its instances share the deliveries (a queue group),
# and an output is redelivered until acked however long the platform is away (no max_deliver).
PLATFORM_CONSUMER = "platform"
PLATFORM_MAX_ACK_PENDING = 1_000


def platform_consumer(subjects: Subjects) -> Consumer:
    """The platform's consumer: every public output, in stream order."""
    return Consumer(subjects.out_stream, PLATFORM_CONSUMER, tuple(subjects.out_stream_subjects()))


def platform_deliveries(subjects: Subjects) -> str:
    """Where the platform's consumer of the outputs delivers (`P.deliver.platform`)."""
    return platform_deliveries_of(subjects, PLATFORM_CONSUMER)


def platform_consumer_config(subjects: Subjects, ack_wait: float) -> ConsumerConfig:
    return _delivering(consumer_config(platform_consumer(subjects), max_deliver=-1, ack_wait=ack_wait), subjects)


# The platform's consumer of the dead letters: why each input was refused (CONTRACT §5), the body as sent.
# Every input a dead letter holds was sent by the platform, or by the console (a coach's review, which
# names a participant and a coach the platform enrolled them with); an erased participant's dead letters
# are replaced by a record without personal data before this consumer can deliver them again.
PLATFORM_REFUSALS = "platform-refusals"


def platform_refusals(subjects: Subjects) -> Consumer:
    return Consumer(subjects.dlq_stream, PLATFORM_REFUSALS, tuple(subjects.dlq_stream_subjects()))


def platform_refusals_config(subjects: Subjects, ack_wait: float) -> ConsumerConfig:
    return _delivering(consumer_config(platform_refusals(subjects), max_deliver=-1, ack_wait=ack_wait), subjects)


def platform_deliveries_of(subjects: Subjects, durable: str) -> str:
    """Where the platform's consumer `durable` delivers: a subject no stream takes, only the platform reads."""
    return f"{subjects.prefix}.deliver.{durable}"


def _delivering(config: ConsumerConfig, subjects: Subjects) -> ConsumerConfig:
    """A platform's consumer: pushed to a delivery subject the operator fixes, shared by its readers (a
    queue group of the consumer's name), redelivered until acked however long the platform is away."""
    assert config.durable_name is not None
    return replace(
        config,
        max_ack_pending=PLATFORM_MAX_ACK_PENDING,
        max_waiting=None,
        deliver_subject=platform_deliveries_of(subjects, config.durable_name),
        deliver_group=config.durable_name,
    )


# Consumers of a single planner that a partitioned topology no longer has: deleted at start, so that an
# input stream with interest retention does not keep every message for a consumer nobody reads.
SINGLE_PLANNER = ("planner", "planner-outcomes")


def consumers(subjects: Subjects, partitions: int = 1) -> dict[str, Consumer]:
    """Every durable consumer stepout reads with, by durable name.

    With several partitions the input stream maps each well-formed input subject
    `P.<family>.<event>.<user_id>` to `P.<k>.<family>.<event>.<user_id>` (k = a hash of the user
    id), and tracker partition k reads only those. Every other subject stays as published, under
    `P.participant.>` or `P.attempt.>`, and partition 0 reads those too, so that each still becomes
    a dead letter (a participant input's is the planner's to write). A platform cannot publish to
    `P.<k>...` itself: no stream takes it.
    """
    p = subjects.prefix
    found: list[Consumer] = []
    if partitions == 1:
        found.append(Consumer(subjects.in_stream, "planner", (f"{p}.participant.>",)))
        found.append(Consumer(subjects.out_stream, "planner-outcomes", (f"{p}.progress.updated.*", f"{p}.overload.>")))
        found.append(Consumer(subjects.in_stream, "tracker", (f"{p}.participant.>", f"{p}.attempt.>")))
        return {c.durable: c for c in found}
    for k in range(partitions):
        # The planner reads every participant input, well-formed or not (it dead-letters the bad ones):
        # partition 0 also what the mapping left as published.
        unmapped = [f"{p}.participant.>"] if k == 0 else []
        found.append(Consumer(subjects.in_stream, f"planner-p{k}", (f"{p}.{k}.participant.*.*", *unmapped)))
        found.append(Consumer(subjects.outcomes_stream, f"planner-outcomes-p{k}", (f"{p}.{k}.>",)))
    for k, durable in enumerate(tracker_durables(partitions)):
        filters = [f"{p}.{k}.participant.>", f"{p}.{k}.attempt.>"]
        if k == 0:
            filters += [f"{p}.participant.>", f"{p}.attempt.>"]  # whatever the mapping left as published
        found.append(Consumer(subjects.in_stream, durable, tuple(filters)))
    return {c.durable: c for c in found}


def partition_transform(subjects: Subjects, partitions: int) -> SubjectTransform | None:
    if partitions == 1:
        return None
    p = subjects.prefix
    return SubjectTransform(
        src=f"{p}.*.*.*",
        dest=f"{p}.{{{{partition({partitions},3)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}",
    )


def outcome_transforms(subjects: Subjects, partitions: int) -> list[SubjectTransform]:
    """The tracker's outputs the planner reads, with the partition of their user id after the prefix:
    the same `partition(N, user_id)` as the input stream's, so a participant's inputs and outcomes meet
    in one partition."""
    p, n = subjects.prefix, partitions
    return [
        SubjectTransform(
            src=f"{p}.progress.updated.*",
            dest=f"{p}.{{{{partition({n},1)}}}}.progress.updated.{{{{wildcard(1)}}}}",
        ),
        SubjectTransform(
            src=f"{p}.overload.*.*",
            dest=f"{p}.{{{{partition({n},2)}}}}.overload.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}",
        ),
    ]


def stream_configs(
    subjects: Subjects, partitions: int = 1, limits: StreamLimits = DEFAULT_LIMITS
) -> list[StreamConfig]:
    common: dict[str, Any] = {"storage": StorageType.FILE, "duplicate_window": DUPLICATE_WINDOW_S}
    outcomes = (
        []
        if partitions == 1
        else [
            # The planner's copy of the tracker's outcomes, by partition; each message kept until the one
            # consumer whose partition it is acks it. Full, it holds back the copying, never drops.
            StreamConfig(
                name=subjects.outcomes_stream,
                sources=[
                    StreamSource(name=subjects.out_stream, subject_transforms=outcome_transforms(subjects, partitions))
                ],
                retention=RetentionPolicy.WORK_QUEUE,
                max_age=OUT_MAX_AGE_S,
                max_bytes=limits.out_max_bytes,
                discard=DiscardPolicy.NEW,
                **common,
            )
        ]
    )
    return [
        # Inputs hold personal notes: kept only until every stepout consumer has acked them.
        # Full, it refuses new inputs (the platform retries) rather than drop unread ones.
        StreamConfig(
            name=subjects.in_stream,
            subjects=subjects.in_stream_subjects(),
            retention=RetentionPolicy.INTEREST,
            subject_transform=partition_transform(subjects, partitions),
            max_bytes=limits.in_max_bytes,
            discard=DiscardPolicy.NEW,
            **common,
        ),
        # Full, it refuses new outputs (the outbox relay retries) rather than drop unread ones.
        StreamConfig(
            name=subjects.out_stream,
            subjects=subjects.out_stream_subjects(),
            retention=RetentionPolicy.LIMITS,
            max_age=OUT_MAX_AGE_S,
            max_bytes=limits.out_max_bytes,
            discard=DiscardPolicy.NEW,
            **common,
        ),
        # Full, it drops its oldest dead letters: refusing one would hold up the batch it came from.
        StreamConfig(
            name=subjects.dlq_stream,
            subjects=subjects.dlq_stream_subjects(),
            retention=RetentionPolicy.LIMITS,
            max_age=DLQ_MAX_AGE_S,
            max_bytes=limits.dlq_max_bytes,
            discard=DiscardPolicy.OLD,
            **common,
        ),
        *outcomes,
    ]


def consumer_config(consumer: Consumer, max_deliver: int, ack_wait: float) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=consumer.durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subjects=list(consumer.filter_subjects),
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=MAX_ACK_PENDING,
        max_waiting=MAX_WAITING,
    )


async def apply_topology(
    js: JetStreamContext,
    subjects: Subjects,
    max_deliver: int,
    ack_wait: float = ACK_WAIT_S,
    partitions: int = 1,
    *,
    limits: StreamLimits = DEFAULT_LIMITS,
    replicas: int | None = None,
) -> None:
    """Create or update every stream and durable consumer (the services' and the platform's); safe to
    run from any number of processes, and again: an object already as asked is left alone.

    Raises `TopologyMismatch` when what the server stored differs from what was asked, and
    `TopologyError` when the server has no room for a stream's byte limit.
    """
    in_limit, out_limit, dlq_limit = LIMIT_SETTINGS
    # The setting that bounds each stream; the outcomes stream has the output stream's limit.
    setting_of = {
        subjects.in_stream: in_limit,
        subjects.out_stream: out_limit,
        subjects.dlq_stream: dlq_limit,
        subjects.outcomes_stream: out_limit,
    }
    for stream in stream_configs(subjects, partitions, limits):
        assert stream.name is not None
        setting = setting_of[stream.name]
        try:
            existing = await js.stream_info(stream.name)
        except NotFoundError:
            existing = None
        # `replicas` (STEPOUT_STREAM_REPLICAS) when given; else a new stream has 1 and an existing one
        # keeps the count an operator gave it (`nats stream edit --replicas 3`).
        count = replicas or (1 if existing is None else existing.config.num_replicas or 1)
        asked = replace(stream, num_replicas=count)
        try:
            if existing is None:
                stored = await js.add_stream(asked)
            elif stream_fields(existing.config) != stream_fields(asked):
                stored = await js.update_stream(asked)
            else:
                # Already as asked: no update, which on a cluster could meet another process's create of
                # the same stream and leave both requests unanswered.
                stored = existing
        except APIError as exc:
            if exc.err_code != NO_STORAGE:
                raise
            # The server reserves each stream's whole byte limit from its JetStream storage up front.
            raise TopologyError(
                f"stream {stream.name}: the NATS server has no room to reserve max_bytes {stream.max_bytes} "
                f"({setting}): lower it, or give JetStream more storage (max_file_store)"
            ) from None
        if existing is None:
            log.info("stream created", extra={"stream": stream.name})
        check_stored(f"stream {stream.name}", stream_fields(asked), stream_fields(stored.config))
    if partitions > 1:
        await _delete_single_planner(js, subjects)
    declared = [(c.stream, consumer_config(c, max_deliver, ack_wait)) for c in consumers(subjects, partitions).values()]
    declared.append((subjects.out_stream, platform_consumer_config(subjects, ack_wait)))
    declared.append((subjects.dlq_stream, platform_refusals_config(subjects, ack_wait)))
    for stream_name, config in declared:
        info = await js.add_consumer(stream_name, config)
        check_stored(
            f"consumer {config.durable_name} of stream {stream_name}",
            consumer_fields(config),
            consumer_fields(info.config),
        )


async def check_topology(
    js: JetStreamContext,
    subjects: Subjects,
    durables: list[str],
    max_deliver: int,
    ack_wait: float = ACK_WAIT_S,
    partitions: int = 1,
    *,
    limits: StreamLimits = DEFAULT_LIMITS,
    replicas: int | None = None,
) -> None:
    """Read every stream and the consumers named in `durables` as stored, without changing anything.

    Raises `TopologyMissing` when one is not declared, `TopologyMismatch` when one differs from what
    `apply_topology` with the same settings would declare (its replica count only when `replicas` is given).
    """
    for stream in stream_configs(subjects, partitions, limits):
        assert stream.name is not None
        try:
            stored = (await js.stream_info(stream.name)).config
        except NotFoundError:
            raise TopologyMissing(f"stream {stream.name} is not declared") from None
        asked = stream_fields(replace(stream, num_replicas=replicas or stored.num_replicas or 1))
        check_stored(f"stream {stream.name}", asked, stream_fields(stored))
    declared = consumers(subjects, partitions)
    for durable in durables:
        consumer = declared[durable]
        try:
            info = await js.consumer_info(consumer.stream, durable)
        except NotFoundError:
            raise TopologyMissing(f"consumer {durable} of stream {consumer.stream} is not declared") from None
        config = consumer_config(consumer, max_deliver, ack_wait)
        check_stored(
            f"consumer {durable} of stream {consumer.stream}", consumer_fields(config), consumer_fields(info.config)
        )


async def _delete_single_planner(js: JetStreamContext, subjects: Subjects) -> None:
    """The consumers of a single planner, gone once the planner is partitioned. What the input stream
    still keeps for them is read again by the partitions' consumers: each input has its effect once."""
    for stream, durable in zip((subjects.in_stream, subjects.out_stream), SINGLE_PLANNER, strict=True):
        try:
            await js.delete_consumer(stream, durable)
        except NotFoundError:
            continue
        log.info("consumer of a single planner deleted", extra={"stream": stream, "consumer": durable})


def _seconds(value: float | None) -> float:
    """A duration as compared: unset is 0, and nanoseconds round-tripped through floats are equal."""
    return round(value or 0.0, 6)


def _word(value: Any) -> str | None:
    """An enum (or the string a server sent) as its wire word."""
    return None if value is None else str(getattr(value, "value", value))


def stream_fields(config: StreamConfig) -> dict[str, Any]:
    """The fields of a stream stepout sets, normalised so that asked and stored compare equal."""
    transform = config.subject_transform
    sources = [
        f"{source.name}: " + ", ".join(f"{t.src} -> {t.dest}" for t in source.subject_transforms or [])
        for source in config.sources or []
    ]
    return {
        "subjects": sorted(config.subjects or []),
        "sources": sorted(sources),
        "subject_transform": f"{transform.src} -> {transform.dest}" if transform and transform.src else None,
        "retention": _word(config.retention),
        "storage": _word(config.storage),
        "discard": _word(config.discard or DiscardPolicy.OLD),
        "max_bytes": -1 if config.max_bytes is None else config.max_bytes,
        "max_age": _seconds(config.max_age),
        "duplicate_window": _seconds(config.duplicate_window),
        "num_replicas": config.num_replicas or 1,
    }


def consumer_fields(config: ConsumerConfig) -> dict[str, Any]:
    """The fields of a consumer stepout sets, normalised: a single filter may come back as
    `filter_subject` rather than a one-entry `filter_subjects`."""
    filters = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    return {
        "filter_subjects": sorted(filters),
        "ack_policy": _word(config.ack_policy),
        "deliver_policy": _word(config.deliver_policy),
        "ack_wait": _seconds(config.ack_wait),
        "max_deliver": config.max_deliver,
        "max_ack_pending": config.max_ack_pending,
        "max_waiting": config.max_waiting,
        "deliver_subject": config.deliver_subject,
        "deliver_group": config.deliver_group,
    }


def check_stored(what: str, asked: dict[str, Any], stored: dict[str, Any]) -> None:
    """Raise `TopologyMismatch` on the first field whose stored value is not the one asked."""
    for name, value in asked.items():
        if stored.get(name) != value:
            raise TopologyMismatch(
                f"{what}: the NATS server stored {name} {stored.get(name)!r}, stepout asked for {value!r}"
            )
