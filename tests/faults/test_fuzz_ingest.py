"""Random bytes and near-valid JSON through real NATS: each input is accepted or dead-lettered,
nothing stays pending, and the tracker keeps serving."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.subjects import Subjects
from stepout_runtime.inbound import DeadLetter, decode
from support import Platform, System, attempt_data, cloud_event

CASES = 300
SEED = 20261126


def mutate(rng: random.Random, event: dict[str, Any]) -> bytes:
    choice = rng.random()
    if choice < 0.15:
        return rng.randbytes(rng.randint(0, 300))
    body = json.loads(json.dumps(event))
    target = body["data"] if rng.random() < 0.7 else body
    key = rng.choice(sorted(target))
    action = rng.randrange(4)
    if action == 0:
        target.pop(key)
    elif action == 1:
        target[key] = rng.choice([None, -1, 101, 3.5, "", "x" * 80, [], {}, True, "2031-01-01T00:00:00Z"])
    elif action == 2:
        target[rng.choice(["extra", "note", "crisis_reported"])] = rng.choice(["ok", 1, False])
    text = json.dumps(body)
    if rng.random() < 0.1:
        cut = rng.randrange(len(text))
        text = text[:cut]
    return text.encode()


async def test_fuzzed_inputs_end_accepted_or_dead_lettered_and_the_tracker_survives(
    platform: Platform, system: System
) -> None:
    rng = random.Random(SEED)
    user = "u-fuzz"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    subjects = Subjects(system.prefix)
    now = datetime.now(UTC)
    expected_dead = 0
    for _ in range(CASES):
        data = attempt_data(
            user, attempt_id=str(uuid.UUID(int=rng.getrandbits(128))), challenge_id="money-03-ask-for-coffee-discount"
        )
        body = mutate(rng, cloud_event("stepout.attempt.logged.v1", user, data))
        subject = f"{system.prefix}.attempt.logged.{user}"
        verdict = decode(body, subject, INPUT_TYPES, subjects, stream_seq=0, delivered=1, received_at=now)
        expected_dead += isinstance(verdict, DeadLetter)
        await platform.js.publish(subject, body, headers={"Nats-Msg-Id": str(uuid.uuid4())})
    final = await platform.attempt(user)

    dlq = f"{system.prefix.upper()}_DLQ"
    letters: list[Any] = []
    for _ in range(100):
        letters = await platform.stream_messages(dlq, f"{system.prefix}.deadletter.tracker")
        info = await platform.js.consumer_info(f"{system.prefix.upper()}_IN", "tracker")
        if info.num_pending == 0 and info.num_ack_pending == 0 and len(letters) >= expected_dead:
            break
        await asyncio.sleep(0.1)
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert expected_dead > 50
    # Some inputs valid at the edge are refused by the domain (an unknown challenge without a level).
    assert len(letters) >= expected_dead
    progress = await platform.query("progress", {"user_id": user})
    accepted = progress["position"]
    assert accepted + len(letters) == CASES + 1  # every input ended one way or the other, once
    assert accepted >= 1 and final["attempt_id"] in json.dumps(await platform.history(user))
    assert system.tracker is not None
    assert httpx.get(f"{system.tracker.base_url}/readyz").status_code == 200
