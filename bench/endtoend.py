"""End to end: preloaded `attempt.logged` in, one `challenge.assigned` out for each, with the tracker
and the planner running on one nats-server and SQLite, against the raw consumer's baseline.

Every attempt of `attempt_messages` leads to exactly one `challenge.assigned` (read off
services/planner and `stepout_domain.planning`): the tracker answers each recorded attempt with
one `progress.updated`, and the planner answers each new progress position of an active plan by
closing the open assignment and issuing the next one. A plan stops issuing only while paused or
withdrawn, and pauses come from `high` and `crisis` warnings, a participant's pause or a
withdrawal; the bench's attempts (rejected, accepted, skipped, peaks 30-60, no crisis reported,
no hostile outcome) raise at most a `caution`, which eases the next assignment off and pauses
nothing. The daily limit does not stop an assignment either: past it, the assignment is still
issued, with `not_before` on the next local day that has room. So the enrolments keep the
contract's default daily limit (the contract allows no more than 10 anyway), and the run checks
the count: exactly `n` more assignments, no dead letter.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js import JetStreamContext

from stepout_contract.subjects import Subjects
from stepout_runtime.topology import apply_topology

from .common import NatsServer, Service, attempt_messages, service_env
from .history import all_published
from .ingest import baseline_rate, enrolled, publish_all
from .watch import (
    add_baseline_consumer,
    add_counter,
    count_reached,
    counted,
    dead_letters,
    delivered,
    drained_at,
    first_deliveries,
)

ASSIGNED = "bench-assigned"  # counts the output stream's `challenge.assigned`
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Timing:
    """`perf_counter` moments of one timed run: the tracker's first delivery, the tracker's
    consumer drained, and the last expected `challenge.assigned` stored."""

    first_delivery: float
    tracker_drained: float
    all_assigned: float


async def answered(
    js: JetStreamContext, prefix: str, users: list[str], tracker: Service, planner: Service, subjects: Subjects
) -> None:
    """`users` enrolled and each answered with their first `challenge.assigned`, and both services
    idle: everything the enrolments caused is out of the way before anything is timed."""
    planner.start()
    await enrolled(js, prefix, users, tracker, subjects)
    await count_reached(js, subjects.out_stream, ASSIGNED, len(users), TIMEOUT_S)
    await all_published(js, subjects.out_stream)
    await drained_at(js, subjects.in_stream, ["planner"], TIMEOUT_S)
    await drained_at(js, subjects.out_stream, ["planner-outcomes"], TIMEOUT_S)


async def timed(js: JetStreamContext, subjects: Subjects, tracker: Service, planner: Service, target: int) -> Timing:
    """Start the planner, then the tracker, and time from the tracker's first delivery until the
    output stream holds `target` assignments. The first delivery is watched while the tracker
    starts, so that a delivery before it answers `/readyz` is not missed."""
    planner.start()  # ready before the tracker's first output; nothing to do until then
    since = await delivered(js, subjects.in_stream, ["tracker"])
    watching = asyncio.create_task(first_deliveries(js, subjects.in_stream, since, TIMEOUT_S))
    try:
        await asyncio.to_thread(tracker.start)
    except BaseException:
        watching.cancel()
        raise
    first = (await watching)["tracker"]
    tracker_done, all_assigned = await asyncio.gather(
        drained_at(js, subjects.in_stream, ["tracker"], TIMEOUT_S),
        count_reached(js, subjects.out_stream, ASSIGNED, target, TIMEOUT_S),
    )
    return Timing(first, tracker_done, all_assigned)


async def run_end_to_end(work: Path, n: int, participants: int = 200) -> dict[str, float]:
    """Attempts per second decided by the tracker, assignments per second issued by the planner
    from the same attempts, and the latter's ratio to the raw consumer's rate on the same stream.

    `participants` are enrolled and answered first; then both services stop, `n` attempts are
    preloaded and read by the baseline, and both start again. `planner_lag_s` is how long the last
    assignment came after the tracker had acked its last attempt.
    """
    run = f"e2e-{uuid.uuid4().hex[:6]}"
    prefix = "benche2e"
    subjects = Subjects(prefix)
    server = NatsServer(work / f"nats-{run}")
    data = work / f"data-{run}"
    data.mkdir(parents=True, exist_ok=True)
    env = service_env(server.url, data, prefix)
    tracker = Service("tracker", env, work / f"tracker-{run}.log")
    planner = Service("planner", env, work / f"planner-{run}.log")
    users = [f"x-{i:04d}" for i in range(participants)]
    server.start()
    try:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await apply_topology(js, subjects, max_deliver=20, ack_wait=30)
            await add_baseline_consumer(js, subjects.in_stream)
            await add_counter(js, subjects.out_stream, ASSIGNED, subjects.all_of("challenge", "assigned"))
            await answered(js, prefix, users, tracker, planner, subjects)
            before = await counted(js, subjects.out_stream, ASSIGNED)
            tracker.stop()
            planner.stop()
            await publish_all(js, attempt_messages(prefix, users, n))
            baseline = await baseline_rate(js, subjects.in_stream, n + len(users))
            timing = await timed(js, subjects, tracker, planner, before + n)
            await all_published(js, subjects.out_stream)
            assigned = await counted(js, subjects.out_stream, ASSIGNED) - before
            dead = await dead_letters(js, subjects.dlq_stream)
        finally:
            await nc.close()
    finally:
        tracker.stop()
        planner.stop()
        server.stop()
    if dead:
        raise RuntimeError(f"{dead} inputs were dead-lettered: the run measured refusals, not decisions")
    assigned_per_s = n / (timing.all_assigned - timing.first_delivery)
    return {
        "participants": participants,
        "attempts": n,
        "assigned": assigned,
        "baseline_msgs_per_s": baseline,
        "attempts_per_s": n / (timing.tracker_drained - timing.first_delivery),
        "assigned_per_s": assigned_per_s,
        "ratio": assigned_per_s / baseline,
        "planner_lag_s": timing.all_assigned - timing.tracker_drained,
    }
