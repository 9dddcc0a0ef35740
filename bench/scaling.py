"""Scaling out: the ingest of `bench/ingest.py` with several tracker processes sharing the input
partitions on PostgreSQL, against the raw consumer's baseline on the same stream.

The trackers run with `STEPOUT_TRACKER_PARTITIONS=4` and `STEPOUT_TRACKER_REPLICAS` = their
number: partition k of the input stream has its own durable consumer (`tracker_durables`), and
each tracker holds a PostgreSQL advisory-lock lease on the partitions it consumes, taking its
fair share (partitions / replicas, rounded up) of the free ones at once and a share-exceeding one
only after seeing it free for three checks a second apart.

What is timed is the sharing, not the handing over of leases. A tracker that starts alone, or
a second or more before the others, takes its share at once and, three seconds on, everything
left free; restarting the trackers over preloaded inputs would time that race. So the bench takes
every partition's lease itself (the same advisory locks, through `PostgresLeases`) before the
timed start: the trackers start, become ready and consume nothing, since every partition is held
elsewhere. Releasing all of them at once (closing that session) leaves each tracker to take its
share on its next check, within a second, none of them past its share. The clock starts at the
first delivery of any partition; `start_skew_s` is how much later the last partition first
delivered (time during which not every tracker was working yet, at most about one check).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import nats
import psycopg
from nats.js import JetStreamContext

from stepout_contract.subjects import Subjects
from stepout_runtime.leases import PostgresLeases
from stepout_runtime.topology import apply_topology, tracker_durables

from .common import (
    NatsServer,
    Service,
    attempt_messages,
    busy_share,
    cpu_seconds,
    free_port,
    machine_ticks,
    service_env,
)
from .ingest import baseline_rate, enrolment_messages, publish_all
from .watch import add_baseline_consumer, dead_letters, delivered, drained_at, first_deliveries, outstanding

PARTITIONS = 4
TIMEOUT_S = 600.0
SCHEMA_PARTS = ("tracker", "keys")  # what a tracker keeps on PostgreSQL: `<schema>_<part>`


async def start_all(services: list[Service]) -> None:
    """Start every service at once and wait until each is ready."""
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in services))


async def stop_all(services: list[Service]) -> None:
    """Stop every service at once (stopped one after another, the last would take over the others'
    partitions)."""
    await asyncio.gather(*(asyncio.to_thread(s.stop) for s in services))


def log_entries(log: Path, offset: int) -> list[dict[str, object]]:
    """The JSON log entries a service wrote after `offset` bytes of its log."""
    if not log.exists():
        return []
    entries = []
    with log.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line that is not a log entry (a traceback, the runtime's own output)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def hold_partitions(dsn: str, prefix: str, durables: list[str]) -> PostgresLeases:
    """Every partition's lease, held by the bench in a session of its own (closing it releases all)."""
    held = PostgresLeases(dsn, f"{prefix}/tracker")  # the trackers' lease namespace
    taken = [d for d in durables if held.try_acquire(d)]
    if len(taken) != len(durables):
        held.close()
        raise RuntimeError(f"partition leases held by someone else: {sorted(set(durables) - set(taken))}")
    return held


async def ready_to_time(js: JetStreamContext, stream: str, durables: list[str], n: int) -> dict[str, int]:
    """Check that the partitions hold the `n` preloaded attempts and nothing delivered earlier
    (which would make a tracker wait out the ack wait first); return the durables' delivery counts."""
    counts = await outstanding(js, stream, durables)
    waiting = sum(pending for pending, _ in counts.values())
    unacked = sum(unacked for _, unacked in counts.values())
    if waiting != n or unacked:
        raise RuntimeError(f"partitions hold {waiting} inputs ({unacked} unacked), expected {n} undelivered")
    since = await delivered(js, stream, durables)
    return {d: since[d] for d, (pending, _) in counts.items() if pending}


def drop_schemas(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for part in SCHEMA_PARTS:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema}_{part} CASCADE")


async def run_trackers(work: Path, n: int, trackers: int, dsn: str, participants: int = 200) -> dict[str, float]:
    """Attempts per second drained by `trackers` tracker processes over 4 partitions on PostgreSQL
    (own schemas, dropped after), and the ratio to the raw consumer on the same stream.

    `participants` are enrolled first; then the trackers stop, `n` attempts are preloaded and read
    by the baseline, and the timed start releases the partitions to trackers already running
    (see the module's docstring). The logs tell how the partitions were shared:
    `trackers_consuming`, `most_partitions_on_one_tracker`, and `redelivery_waits` (a tracker
    waiting out the ack wait for deliveries made to another before taking a partition).
    """
    run = f"{trackers}t{uuid.uuid4().hex[:6]}"
    prefix, schema = f"benchscale{run}", f"bench{run}"
    subjects = Subjects(prefix)
    durables = tracker_durables(PARTITIONS)
    server = NatsServer(work / f"nats-scale-{run}")
    data = work / f"data-scale-{run}"
    data.mkdir(parents=True, exist_ok=True)
    env = service_env(
        server.url,
        data,
        prefix,
        STEPOUT_STORE="postgres",
        STEPOUT_POSTGRES_DSN=dsn,
        STEPOUT_POSTGRES_SCHEMA=schema,
        STEPOUT_TRACKER_PARTITIONS=str(PARTITIONS),
        STEPOUT_TRACKER_REPLICAS=str(trackers),
        STEPOUT_LOG_LEVEL="INFO",  # which partitions each tracker took: a few lines, none per message
    )
    services = [
        Service("tracker", {**env, "STEPOUT_TRACKER_PORT": str(free_port())}, work / f"tracker-scale-{run}-{i}.log")
        for i in range(trackers)
    ]
    users = [f"s-{i:04d}" for i in range(participants)]
    server.start()
    try:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await apply_topology(js, subjects, max_deliver=20, ack_wait=30, partitions=PARTITIONS)
            await add_baseline_consumer(js, subjects.in_stream)
            await publish_all(js, enrolment_messages(prefix, users))
            await start_all(services)
            await drained_at(js, subjects.in_stream, durables, TIMEOUT_S)
            await stop_all(services)

            held = hold_partitions(dsn, prefix, durables)
            try:
                await publish_all(js, attempt_messages(prefix, users, n))
                baseline = await baseline_rate(js, subjects.in_stream, n + len(users))
                since = await ready_to_time(js, subjects.in_stream, durables, n)
                offsets = [s.log.stat().st_size for s in services]
                await start_all(services)
                pids = [pid for s in services for pid in s.pids()]
                machine, trackers_cpu = machine_ticks(), cpu_seconds(pids)
            finally:
                held.close()
            firsts = await first_deliveries(js, subjects.in_stream, since, TIMEOUT_S)
            done = await drained_at(js, subjects.in_stream, durables, TIMEOUT_S)
            busy, trackers_cpu = busy_share(machine, machine_ticks()), cpu_seconds(pids) - trackers_cpu
            dead = await dead_letters(js, subjects.dlq_stream)
        finally:
            await nc.close()
    finally:
        for service in services:
            service.stop()
        server.stop()
        drop_schemas(dsn, schema)
    if dead:
        raise RuntimeError(f"{dead} inputs were dead-lettered: the run measured refusals, not decisions")
    logs = [log_entries(s.log, offset) for s, offset in zip(services, offsets, strict=True)]
    taken = [sum(1 for e in entries if e.get("message") == "consuming") for entries in logs]
    first = min(firsts.values())
    per_s = n / (done - first)
    return {
        "trackers": trackers,
        "partitions": PARTITIONS,
        "attempts": n,
        "baseline_msgs_per_s": baseline,
        "attempts_per_s": per_s,
        "ratio": per_s / baseline,
        "start_skew_s": max(firsts.values()) - first,
        # Where the time went: the machine's cores (every process, PostgreSQL and nats-server too) and
        # the trackers' own CPU per attempt, while draining.
        "machine_busy": busy,
        "trackers_cpu_ms_per_attempt": trackers_cpu * 1000 / n,
        "trackers_consuming": sum(1 for count in taken if count),
        "most_partitions_on_one_tracker": max(taken),
        "redelivery_waits": sum(
            1 for entries in logs for e in entries if e.get("message") == "waiting for unacked deliveries"
        ),
    }
