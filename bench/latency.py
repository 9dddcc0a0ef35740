"""Latency: attempt published -> its `progress.updated` received, at a steady rate."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import nats

from .common import NatsServer, Service, attempt_messages, cloud_event, service_env

USERS = [f"l-{i:04d}" for i in range(200)]


async def run_latency(work: Path, rate: int, seconds: int) -> dict[str, float]:
    server = NatsServer(work / "nats-latency")
    server.start()
    prefix = "benchlat"
    data = work / "data-latency"
    data.mkdir(parents=True, exist_ok=True)
    env = service_env(server.url, data, prefix)
    tracker, planner = (
        Service("tracker", env, work / "tracker-lat.log"),
        Service("planner", env, work / "planner-lat.log"),
    )
    try:
        tracker.start()
        planner.start()
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        sent: dict[str, float] = {}
        latencies: list[float] = []

        async def on_progress(msg: nats.aio.msg.Msg) -> None:
            attempt = json.loads(msg.data)["data"]["last_attempt"]["attempt_id"]
            if attempt in sent:
                latencies.append(time.perf_counter() - sent.pop(attempt))

        await nc.subscribe(f"{prefix}.progress.updated.*", cb=on_progress)
        for user in USERS:
            await js.publish(
                f"{prefix}.participant.enrolled.{user}",
                cloud_event("stepout.participant.enrolled.v1", user, {"user_id": user, "daily_limit": 10}, f"e-{user}"),
            )
        await asyncio.sleep(2)
        messages = attempt_messages(prefix, USERS, rate * seconds, seed=3)
        started = time.perf_counter()
        pending = []
        for i, (subject, body, event_id) in enumerate(messages):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            attempt_id = json.loads(body)["data"]["attempt_id"]
            sent[attempt_id] = time.perf_counter()
            pending.append(await js.publish_async(subject, body, headers={"Nats-Msg-Id": event_id}))
            if len(pending) > 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 30
        while sent and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await nc.close()
        latencies.sort()
        ms = [x * 1000 for x in latencies]
        return {
            "rate_per_s": rate,
            "seconds": seconds,
            "received": len(ms),
            "missing": len(sent),
            "p50_ms": statistics.median(ms),
            "p99_ms": ms[int(len(ms) * 0.99) - 1],
            "max_ms": ms[-1],
        }
    finally:
        planner.stop()
        tracker.stop()
        server.stop()
