"""The tracker's cost against the length of a participant's history.

- decision cost: the pure decider (`tracking.decide` then `replay`) deciding one more attempt for a
  participant with a history of 10, 100, 1,000 and 5,000 attempts, in process, with the rule set the
  service runs when STEPOUT_RULESET names none (`load_ruleset(None)`);
- drain: the tracker service draining 20,000 preloaded attempts of 10 participants (2,000 each)
  against 20,000 of 200 participants (100 each), on one nats-server and SQLite;
- cold restart: that tracker restarted, then one attempt for each of the 10 long-history
  participants: the time from publishing to its `progress.updated`;
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from stepout_contract.subjects import Subjects
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.ruleset import load_ruleset
from stepout_domain.tracker_commands import Enrol, RecordAttempt, TrackerCommand
from stepout_domain.tracker_events import TrackerEvent
from stepout_domain.tracking import Refusal, TrackerState, decide, initial_state, replay
from stepout_runtime.topology import apply_topology

from .common import NatsServer, Service, cloud_event, next_attempt, service_env
from .ingest import drained, enrolled, publish_all

HISTORIES = (10, 100, 1_000, 5_000)
SPACING = timedelta(hours=3)  # a participant's attempts, this far apart
# What the service decides with by default (not the built-in base thresholds, DEFAULT_RULESET).
RULES = load_ruleset(None)
OUTCOMES = (Outcome.ACCEPTED, Outcome.REJECTED, Outcome.REJECTED, Outcome.SKIPPED, Outcome.HOSTILE)


# Decision cost, in process --------------------------------------------------------------------------


def _attempt(n: int, start: datetime) -> Attempt:
    peak = 30 + (n * 7) % 40
    return Attempt(
        attempt_id=str(uuid.UUID(int=n + 1)),
        occurred_at=start + n * SPACING,
        level=1 + (n // 200) % 8,
        outcome=OUTCOMES[n % len(OUTCOMES)],
        challenge_id="money-03-ask-for-coffee-discount",
        assignment_id=None,
        suds_before=peak - 10,
        suds_peak=peak,
        suds_after=peak - 20,
        crisis_reported=False,
    )


def _folded(count: int, start: datetime) -> TrackerState:
    state = initial_state("bench-user")
    state = replay(state, _decided(state, Enrol("Europe/Berlin", start - timedelta(days=1))))
    for n in range(count):
        attempt = _attempt(n, start)
        state = replay(state, _decided(state, RecordAttempt(attempt, attempt.occurred_at)))
    return state


def run_decision_cost(repeats: int = 400, rounds: int = 5) -> dict[str, Any]:
    """Microseconds to decide and fold one more attempt, at each history length: the median over
    `repeats` different next attempts, each decided on the same state (the history does not grow),
    of each attempt's fastest of `rounds` rounds. The rounds go through all the attempts in turn, so
    no decision follows one of the same attempt; the fastest of them is the decision's own cost,
    without the time other processes on the machine took the core from it."""
    start = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    per_attempt: dict[str, float] = {}
    for size in HISTORIES:
        state = _folded(size, start)
        nexts = [_attempt(size + k, start) for k in range(repeats)]
        fastest = [float("inf")] * repeats
        for _ in range(rounds):
            for k, attempt in enumerate(nexts):
                began = time.perf_counter()
                replay(state, _decided(state, RecordAttempt(attempt, attempt.occurred_at)))
                fastest[k] = min(fastest[k], time.perf_counter() - began)
        per_attempt[str(size)] = statistics.median(fastest) * 1e6
    return {
        "ruleset_version": RULES.version,
        "us_per_attempt": per_attempt,
        "ratio_5000_to_10": per_attempt["5000"] / per_attempt["10"],
    }


def _decided(state: TrackerState, command: TrackerCommand) -> list[TrackerEvent]:
    events = decide(state, command, RULES)
    assert not isinstance(events, Refusal), events
    return events


# Drain and cold restart, on the real service --------------------------------------------------------


def _attempts(prefix: str, users: list[str], per_user: int) -> list[tuple[str, bytes, str]]:
    """`per_user` attempts of each user, interleaved as they arrive, each user's `SPACING` apart."""
    start = datetime.now(UTC) - (per_user + 1) * SPACING
    messages = []
    for n in range(per_user):
        for u, user in enumerate(users):
            event_id = str(uuid.uuid4())
            data = {
                "attempt_id": str(uuid.uuid4()),
                "user_id": user,
                "assignment_id": None,
                "challenge_id": "self-chosen-bench",  # not in the catalog: the level is the participant's
                "level": 1 + (n // 200) % 8,
                "outcome": OUTCOMES[(n + u) % len(OUTCOMES)].value,
                "suds_before": 30,
                "suds_peak": 30 + (n * 7) % 40,
                "suds_after": 20,
                "occurred_at": (start + n * SPACING + timedelta(seconds=u)).isoformat(),
            }
            body = cloud_event("stepout.attempt.logged.v1", user, data, event_id)
            messages.append((f"{prefix}.attempt.logged.{user}", body, event_id))
    return messages


async def _drain(work: Path, label: str, participants: int, per_user: int, cold_check: bool) -> dict[str, Any]:
    server = NatsServer(work / f"nats-{label}")
    server.start()
    prefix = f"bench{label}"
    subjects = Subjects(prefix)
    data = work / f"data-{label}"
    data.mkdir(parents=True, exist_ok=True)
    tracker = Service("tracker", service_env(server.url, data, prefix), work / f"tracker-{label}.log")
    users = [f"{label}-{i:06d}" for i in range(participants)]
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await apply_topology(js, subjects, max_deliver=20, ack_wait=30)
        await enrolled(js, prefix, users, tracker, subjects)
        tracker.stop()
        messages = _attempts(prefix, users, per_user)
        await publish_all(js, messages)
        tracker.start()
        seconds = await drained(js, subjects.in_stream, "tracker", len(messages), 3600)
        dead = (await js.stream_info(subjects.dlq_stream)).state.messages
        if dead:
            raise RuntimeError(f"{dead} inputs were dead-lettered: the drain measured refusals, not decisions")
        result: dict[str, Any] = {
            "participants": participants,
            "attempts_each": per_user,
            "attempts_per_s": len(messages) / seconds,
            "rss_mb": tracker.rss_mb(),
        }
        if cold_check:
            await all_published(js, subjects.out_stream)  # restarted with nothing left to relay
            tracker.stop()
            tracker.start()
            result["cold_answers_s"] = await _answers(nc, js, prefix, users)
        await nc.close()
        return result
    finally:
        tracker.stop()
        server.stop()


async def all_published(js: Any, stream: str) -> None:
    """Until the outbox relay has published every output: the output stream still for a second."""
    last, still_since = -1, time.monotonic()
    while time.monotonic() - still_since < 1.0:
        count = (await js.stream_info(stream)).state.messages
        if count != last:
            last, still_since = count, time.monotonic()
        await asyncio.sleep(0.1)


async def _answers(nc: Any, js: Any, prefix: str, users: list[str]) -> list[float]:
    """Seconds from publishing one attempt of each user to its `progress.updated`, one user at a time."""
    arrived: asyncio.Queue[str] = asyncio.Queue()

    async def on_progress(msg: Any) -> None:
        await arrived.put(json.loads(msg.data)["data"]["last_attempt"]["attempt_id"])

    sub = await nc.subscribe(f"{prefix}.progress.updated.*", cb=on_progress)
    answered = []
    for user in users:
        subject, body, attempt_id = next_attempt(prefix, user)
        began = time.perf_counter()
        await js.publish(subject, body)
        while await asyncio.wait_for(arrived.get(), timeout=30) != attempt_id:
            pass
        answered.append(time.perf_counter() - began)
    await sub.unsubscribe()
    return answered


async def run_drain(work: Path) -> dict[str, Any]:
    long = await _drain(work, "long", 10, 2_000, cold_check=True)
    short = await _drain(work, "short", 200, 100, cold_check=False)
    return {"long": long, "short": short, "ratio": long["attempts_per_s"] / short["attempts_per_s"]}
