"""What every fault test checks once the load has settled: every attempt counted once, every decision
published once with one id, each participant's progress published in order, and the read models equal
to a rebuild from the event stores."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import nats
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig

from support import Platform, ServiceProcess

# The planner's line when it decides past an output of the tracker that never came: out of order.
OUT_OF_ORDER = "deciding past an output that never came"


async def ask(platform: Platform, name: str, request: dict[str, object]) -> dict[str, Any]:
    """A query that waits out a reconnect or an election (a request sent then may time out)."""
    for _ in range(50):
        try:
            reply = await platform.query(name, request)
            return reply
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await asyncio.sleep(0.2)
    raise AssertionError(f"no answer to {name}")


async def stored(platform: Platform, stream: str, subject: str) -> list[Any]:
    """Everything `stream` keeps on `subject`, read to the last message (the consumer's pending count at
    its start), again while a cluster cannot serve a consumer yet."""
    for _ in range(50):
        try:
            # No acks: nothing is delivered again however long the reading takes.
            sub = await platform.js.pull_subscribe(
                subject, stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
            )
        except (nats.errors.Error, nats.js.errors.APIError):
            await asyncio.sleep(0.3)
            continue
        try:
            total = (await sub.consumer_info()).num_pending
            found: dict[int, Any] = {}  # by stream sequence
            for _ in range(total // 100 + 60):
                if len(found) >= total:
                    return [found[seq] for seq in sorted(found)]
                try:
                    batch = await sub.fetch(min(500, total - len(found)), timeout=2.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                found.update((msg.metadata.sequence.stream, msg) for msg in batch)
            raise AssertionError(f"read {len(found)} of {total} messages of {stream}")
        finally:
            await sub.unsubscribe()
    raise AssertionError(f"{stream} never readable")


async def stream_count(platform: Platform, stream: str, subject: str) -> int:
    """How many messages `stream` keeps on `subject` (0 while a cluster cannot say)."""
    try:
        info = await platform.js.stream_info(stream, subjects_filter=subject)
    except (nats.errors.Error, nats.js.errors.APIError):
        return 0
    return sum((info.state.subjects or {}).values())


async def whole_history(platform: Platform, user: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    request: dict[str, object] = {"user_id": user, "limit": 500}
    while True:
        reply = await ask(platform, "history", request)
        events.extend(reply["events"])
        if reply.get("next_cursor") is None:
            return events
        request = {"user_id": user, "limit": 500, "cursor": reply["next_cursor"]}


async def settled(platform: Platform, users: Sequence[str], attempts_each: int, timeout_s: float = 180.0) -> None:
    """Until every participant's progress counts `attempts_each` and their plan answered the last one."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    for user in users:
        while True:
            reply = await ask(platform, "progress", {"user_id": user})
            if reply.get("position") == attempts_each:
                break
            assert asyncio.get_running_loop().time() < deadline, f"{user} never reached {attempts_each}: {reply}"
            await asyncio.sleep(0.2)
    for user in users:
        while (await ask(platform, "plan", {"user_id": user})).get("open_assignment") is None:
            assert asyncio.get_running_loop().time() < deadline, f"{user}: no assignment after the last attempt"
            await asyncio.sleep(0.2)


async def check_exactly_once(
    platform: Platform,
    prefix: str,
    users: Sequence[str],
    attempts_each: int,
    *,
    history_of: Sequence[str] | None = None,
    assignments_each: int | None = None,
) -> None:
    """Every attempt once in the tracker's count and in the history, every decision once on the output
    stream with one id, each participant's progress positions there once each and in order. `history_of`:
    the participants whose history is read back (all by default); `assignments_each`: how many
    assignments each must have."""
    for user in history_of if history_of is not None else users:
        history = await whole_history(platform, user)
        attempts = [e["data"]["attempt_id"] for e in history if e["type"] == "stepout.attempt.logged.v1"]
        assert len(attempts) == len(set(attempts)) == attempts_each, user
    expected = len(users) * attempts_each
    for _ in range(60):  # publication follows the commit: wait until it has caught up
        if await stream_count(platform, f"{prefix.upper()}_OUT", f"{prefix}.progress.>") >= expected:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)
    outputs = await stored(platform, f"{prefix.upper()}_OUT", f"{prefix}.>")
    by_decision: dict[tuple[str, ...], list[str]] = defaultdict(list)
    positions: dict[str, list[int]] = defaultdict(list)
    for msg in outputs:
        event = json.loads(msg.data)
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event["id"]
        data = event["data"]
        if event["type"] == "stepout.progress.updated.v1":
            key: tuple[str, ...] = ("progress", data["user_id"], str(data["position"]))
            if data["position"]:
                positions[data["user_id"]].append(data["position"])
        elif event["type"] == "stepout.challenge.assigned.v1":
            key = ("assigned", data["assignment_id"])
        elif event["type"] == "stepout.overload.warning.v1":
            key = ("warning", data["warning_id"])
        else:
            key = (event["type"], event["id"])
        by_decision[key].append(event["id"])
    doubled = {key: ids for key, ids in by_decision.items() if len(ids) != 1}
    assert doubled == {}, sorted(doubled.items())[:3]
    for user in users:
        # Each position once and in order, as stored: a publish lost with a connection or an election and
        # published again does not land behind a later output of the same participant.
        assert positions[user] == list(range(1, attempts_each + 1)), f"{user}: progress {positions[user]}"
    assert sum(1 for k in by_decision if k[0] == "progress" and k[2] != "0") == expected
    assigned = [k for k in by_decision if k[0] == "assigned"]
    if assignments_each is not None:
        assert len(assigned) == len(users) * assignments_each


def rebuild_verifies(service: ServiceProcess) -> None:
    """`stepout projections rebuild --verify` with the service's settings (the services stopped): exit 0."""
    verify = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "projections", "rebuild", "--verify"],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def decided_in_order(logs: str) -> None:
    """No planner decided a participant's output past one it had not observed."""
    assert OUT_OF_ORDER not in logs
