"""Rebuild: `stepout projections rebuild` over a store of at least a million events, and
tracker memory with many enrolled participants."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nats

from stepout_contract.subjects import Subjects
from stepout_runtime.topology import ensure_topology

from .common import NatsServer, Service, cloud_event, service_env
from .ingest import USERS, _drained, _publish_all, run_ingest


def _multiply_store(db: Path, copies: int) -> int:
    """Copy every participant's events `copies` times under new ids (and user ids), so the
    rebuild reads a store of realistic events without deciding each one again."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        base = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
        for copy in range(1, copies):
            conn.execute(
                "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                "SELECT substr(originator_id, 1, 26) || printf('%06d', ?), originator_version, topic, "
                "CAST(replace(CAST(state AS TEXT), '\"b-', '\"c' || ? || '-') AS BLOB) "
                "FROM stored_events WHERE rowid <= ?",
                (copy, copy, base),
            )
        conn.commit()
        return int(conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])


def run_rebuild(work: Path, target_events: int) -> dict[str, float]:
    data = work / "data-sqlite"
    db = data / "tracker.db"
    if not db.exists():
        asyncio.run(run_ingest(work, 20_000, {"STEPOUT_STORE": "sqlite"}, "sqlite"))
    with sqlite3.connect(db) as conn:
        base = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
    total = _multiply_store(db, -(-target_events // base))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPOUT_")}
    env.update(STEPOUT_DATA_DIR=str(data), STEPOUT_SUBJECT_PREFIX="benchsqlite")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "projections", "rebuild"], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    reported = re.search(r"\(([\d,]+) events/s\)", done.stdout)
    return {
        "events": total,
        "seconds_wall": elapsed,
        "events_per_s_wall": total / elapsed,
        "events_per_s_reported": float(reported.group(1).replace(",", "")) if reported else 0.0,
    }


async def run_memory(work: Path, participants: int) -> dict[str, float]:
    server = NatsServer(work / "nats-memory")
    server.start()
    prefix = "benchmem"
    data = work / "data-memory"
    data.mkdir(parents=True, exist_ok=True)
    env = service_env(server.url, data, prefix)
    tracker = Service("tracker", env, work / "tracker-mem.log")
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_topology(js, Subjects(prefix), max_deliver=20, ack_wait=30)
        users = [f"m-{i:06d}" for i in range(participants)]
        await _publish_all(
            js,
            [
                (
                    f"{prefix}.participant.enrolled.{u}",
                    cloud_event("stepout.participant.enrolled.v1", u, {"user_id": u}, f"e-{u}"),
                    f"e-{u}",
                )
                for u in users
            ],
        )
        tracker.start()
        before = tracker.rss_mb()
        await _drained(js, f"{prefix.upper()}_IN", "tracker", participants, 900)
        await asyncio.sleep(1)
        after = tracker.rss_mb()
        await nc.close()
        return {"participants": participants, "rss_mb_at_start": before, "rss_mb": after}
    finally:
        tracker.stop()
        server.stop()


__all__ = ["USERS", "run_memory", "run_rebuild"]
