"""Baseline (raw nats-py) and stepout's ingest, on the same preloaded messages."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Protocol

import nats

from stepout_contract.subjects import Subjects
from stepout_runtime.topology import apply_topology

from .common import NatsServer, Service, attempt_messages, cloud_event, cpu_seconds, service_env
from .watch import BASELINE, add_baseline_consumer

USERS = [f"b-{i:04d}" for i in range(200)]


async def publish_all(js: Any, messages: list[tuple[str, bytes, str]]) -> None:
    window = []
    for subject, body, event_id in messages:
        window.append(await js.publish_async(subject, body, headers={"Nats-Msg-Id": event_id}))
        if len(window) >= 2000:
            await asyncio.gather(*window)
            window = []
    await asyncio.gather(*window)


async def baseline_rate(js: Any, stream: str, n: int) -> float:
    """A raw pull consumer that fetches, parses and acks every message: the transport's ceiling here."""
    sub = await js.pull_subscribe_bind(BASELINE, stream=stream)
    seen, started = 0, time.perf_counter()
    while seen < n:
        batch = await sub.fetch(1000, timeout=5)
        for msg in batch:
            json.loads(msg.data)
            await msg.ack()
        seen += len(batch)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return n / elapsed


async def drained(js: Any, stream: str, durable: str, n: int, timeout: float) -> float:
    """Seconds from the first delivery to the last ack of `durable`."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await js.consumer_info(stream, durable)
        if first is None and info.delivered.stream_seq > 0:
            first = time.perf_counter()
        if first is not None and info.num_pending == 0 and info.num_ack_pending == 0 and info.ack_floor.stream_seq > 0:
            return time.perf_counter() - first
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{durable} did not drain {n} messages")


def enrolment_messages(prefix: str, users: list[str]) -> list[tuple[str, bytes, str]]:
    """One `participant.enrolled` of each of `users`: subject, body and message id."""
    return [
        (
            f"{prefix}.participant.enrolled.{u}",
            cloud_event("stepout.participant.enrolled.v1", u, {"user_id": u}, f"e-{u}"),
            f"e-{u}",
        )
        for u in users
    ]


async def enrolled(js: Any, prefix: str, users: list[str], tracker: Service, subjects: Subjects) -> None:
    """`users` enrolled: their enrolments published, and the tracker started and drained of them."""
    await publish_all(js, enrolment_messages(prefix, users))
    tracker.start()
    await drained(js, subjects.in_stream, "tracker", len(users), 600)


class Server(Protocol):
    """One nats-server or a cluster of them: where the services connect, started and stopped."""

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    async def ready(self) -> None: ...

    def pids(self) -> list[int]: ...

    def stop(self) -> None: ...


async def run_ingest(
    work: Path, n: int, store: dict[str, str], label: str, server: Server | None = None
) -> dict[str, float]:
    """The tracker draining `n` preloaded attempts of 200 enrolled participants, against a raw consumer
    of the same messages; on one nats-server of its own unless `server` is given. `store` holds the
    service's STEPOUT_* settings: the store, and STEPOUT_STREAM_REPLICAS on a cluster."""
    server = server or NatsServer(work / f"nats-{label}")
    server.start()
    prefix = f"bench{label}"
    subjects = Subjects(prefix)
    env = service_env(server.url, work / f"data-{label}", prefix, **store)
    (work / f"data-{label}").mkdir(parents=True, exist_ok=True)
    tracker = Service("tracker", env, work / f"tracker-{label}.log")
    try:
        await server.ready()
        nc = await nats.connect(server.url.split(","))
        js = nc.jetstream()
        replicas = int(store.get("STEPOUT_STREAM_REPLICAS", "1"))
        await apply_topology(js, subjects, max_deliver=20, ack_wait=30, replicas=replicas)
        await add_baseline_consumer(js, subjects.in_stream)
        # Enrol first so that every attempt is valid, then preload the attempts.
        await enrolled(js, prefix, USERS, tracker, subjects)
        tracker.stop()
        await publish_all(js, attempt_messages(prefix, USERS, n))

        baseline = await baseline_rate(js, subjects.in_stream, n + len(USERS))
        tracker.start()
        # CPU while draining: what the tracker and the nats-server processes each spend per attempt.
        tracker_cpu, nats_cpu = cpu_seconds(tracker.pids()), cpu_seconds(server.pids())
        seconds = await drained(js, subjects.in_stream, "tracker", n, 600)
        tracker_cpu, nats_cpu = cpu_seconds(tracker.pids()) - tracker_cpu, cpu_seconds(server.pids()) - nats_cpu
        rss = tracker.rss_mb()
        await nc.close()
        return {
            "baseline_msgs_per_s": baseline,
            "ingest_attempts_per_s": n / seconds,
            "ratio": n / seconds / baseline,
            "rss_mb": rss,
            "tracker_cpu_ms_per_attempt": tracker_cpu * 1000 / n,
            "nats_cpu_ms_per_attempt": nats_cpu * 1000 / n,
        }
    finally:
        tracker.stop()
        server.stop()
