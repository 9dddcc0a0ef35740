"""Stores of many participants (`population`): `stepout projections rebuild` over about a million
stored events, and the tracker's memory deciding on for 100,000 participants of 50 attempts each."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats

from stepout_contract.subjects import Subjects
from stepout_runtime.topology import apply_topology

from .common import NatsServer, Service, next_attempt, service_env
from .ingest import drained, publish_all
from .population import populate, user_of

ATTEMPTS_EACH = 50


def run_rebuild(work: Path, participants: int) -> dict[str, float]:
    """Rebuild the read model of `participants` x 50 attempts, each participant sealed with their own
    key: every event is opened, decoded and projected."""
    data = work / "data-rebuild"
    prefix = "benchrebuild"
    began = time.perf_counter()
    stored = populate(data, prefix, participants, ATTEMPTS_EACH)
    populated = time.perf_counter() - began
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPOUT_")}
    env.update(STEPOUT_DATA_DIR=str(data), STEPOUT_SUBJECT_PREFIX=prefix)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "projections", "rebuild"], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    reported = re.search(r"\(([\d,]+) events/s\)", done.stdout)
    return {
        "participants": participants,
        "events": stored["events"],
        "populate_seconds": populated,
        "seconds_wall": elapsed,
        "events_per_s_wall": stored["events"] / elapsed,
        "events_per_s_reported": float(reported.group(1).replace(",", "")) if reported else 0.0,
    }


async def run_memory(work: Path, participants: int) -> dict[str, Any]:
    """The tracker's RSS once it has loaded and decided one more attempt for each of `participants`
    participants with 50 attempts each: every aggregate passes through its cache, so what is measured
    is the bound on it (and on everything else kept per participant)."""
    prefix = "benchmem"
    data = work / "data-memory"
    began = time.perf_counter()
    populate(data, prefix, participants, ATTEMPTS_EACH)
    populated = time.perf_counter() - began
    server = NatsServer(work / "nats-memory")
    server.start()
    subjects = Subjects(prefix)
    tracker = Service("tracker", service_env(server.url, data, prefix), work / "tracker-mem.log")
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await apply_topology(js, subjects, max_deliver=20, ack_wait=30)
        await publish_all(js, [next_attempt(prefix, user_of(copy)) for copy in range(participants)])
        tracker.start()
        before = tracker.rss_mb()
        seconds = await drained(js, subjects.in_stream, "tracker", participants, 3600)
        dead = (await js.stream_info(subjects.dlq_stream)).state.messages
        if dead:
            raise RuntimeError(f"{dead} attempts were dead-lettered: the tracker did not decide them")
        await asyncio.sleep(1)
        after = tracker.rss_mb()
        await nc.close()
        return {
            "participants": participants,
            "attempts_each": ATTEMPTS_EACH,
            "populate_seconds": populated,
            "answered_per_s": participants / seconds,
            "rss_mb_at_start": before,
            "rss_mb": after,
        }
    finally:
        tracker.stop()
        server.stop()
