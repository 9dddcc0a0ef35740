"""Latency at a steady rate: attempt published -> its `progress.updated` received, and attempt
published -> the participant's next `challenge.assigned` received (the planner answers each
progress of an active plan with one assignment, and the bench's attempts pause no plan)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import defaultdict, deque
from pathlib import Path

import nats

from .common import NatsServer, Service, attempt_messages, cloud_event, service_env

USERS = [f"l-{i:04d}" for i in range(200)]


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max, in milliseconds, of latencies in seconds."""
    ms = sorted(x * 1000 for x in latencies)
    return {"p50_ms": statistics.median(ms), "p99_ms": ms[int(len(ms) * 0.99) - 1], "max_ms": ms[-1]}


async def run_latency(work: Path, rate: int, seconds: int) -> dict[str, object]:
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
        # Per participant, when each attempt not yet answered by an assignment was sent.
        unanswered: dict[str, deque[float]] = defaultdict(deque)
        to_assignment: list[float] = []
        starts: list[str] = []  # the enrolments' first assignments, before any attempt

        async def on_progress(msg: nats.aio.msg.Msg) -> None:
            attempt = json.loads(msg.data)["data"]["last_attempt"]["attempt_id"]
            if attempt in sent:
                latencies.append(time.perf_counter() - sent.pop(attempt))

        async def on_assigned(msg: nats.aio.msg.Msg) -> None:
            user = json.loads(msg.data)["data"]["user_id"]
            waiting = unanswered.get(user)
            if waiting:
                to_assignment.append(time.perf_counter() - waiting.popleft())
            else:
                starts.append(user)

        await nc.subscribe(f"{prefix}.progress.updated.*", cb=on_progress)
        await nc.subscribe(f"{prefix}.challenge.assigned.*", cb=on_assigned)
        for user in USERS:
            await js.publish(
                f"{prefix}.participant.enrolled.{user}",
                cloud_event("stepout.participant.enrolled.v1", user, {"user_id": user, "daily_limit": 10}, f"e-{user}"),
            )
        deadline = time.monotonic() + 60
        while len(starts) < len(USERS) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # every participant has their first assignment: none is taken for an answer
        messages = attempt_messages(prefix, USERS, rate * seconds, seed=3)
        started = time.perf_counter()
        pending = []
        for i, (subject, body, event_id) in enumerate(messages):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            data = json.loads(body)["data"]
            sent[data["attempt_id"]] = now = time.perf_counter()
            unanswered[data["user_id"]].append(now)
            pending.append(await js.publish_async(subject, body, headers={"Nats-Msg-Id": event_id}))
            if len(pending) > 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 30
        while (sent or any(unanswered.values())) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await nc.close()
        return {
            "rate_per_s": rate,
            "seconds": seconds,
            "received": len(latencies),
            "missing": len(sent),
            **percentiles(latencies),
            "to_assignment": {
                "received": len(to_assignment),
                "missing": sum(len(w) for w in unanswered.values()),
                **percentiles(to_assignment),
            },
        }
    finally:
        planner.stop()
        tracker.stop()
        server.stop()
