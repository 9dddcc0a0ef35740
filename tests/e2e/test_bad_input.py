"""Bad input becomes a dead letter with its reason; duplicates have no effect; good input is never lost."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from support import Platform, System, attempt_data, cloud_event


async def dead_letters(platform: Platform, system: System, count: int) -> list[Any]:
    stream = f"{system.prefix.upper()}_DLQ"
    for _ in range(60):
        found = await platform.stream_messages(stream, f"{system.prefix}.deadletter.>")
        if len(found) >= count:
            return found
    raise AssertionError(f"expected {count} dead letters")


async def publish_raw(platform: Platform, subject_tail: str, body: bytes) -> None:
    await platform.js.publish(f"{platform.prefix}.{subject_tail}", body, headers={"Nats-Msg-Id": str(uuid.uuid4())})


async def test_every_kind_of_bad_input_is_a_dead_letter_with_its_reason(platform: Platform, system: System) -> None:
    user = "u-bad"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)

    def attempt_event(**fields: Any) -> dict[str, Any]:
        return cloud_event("stepout.attempt.logged.v1", user, attempt_data(user, **fields))

    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    cases: list[tuple[str, str, bytes]] = [
        ("attempt.logged." + user, "invalid_json", b"this is not json {"),
        ("attempt.logged." + user, "invalid_envelope", json.dumps({"hello": "world"}).encode()),
        ("attempt.logged." + user, "invalid_envelope", json.dumps([1, 2]).encode()),
        (
            "attempt.logged." + user,
            "unknown_type",
            json.dumps({**attempt_event(), "type": "stepout.attempt.logged.v9"}).encode(),
        ),
        ("attempt.logged." + user, "invalid_data", json.dumps(attempt_event(suds_peak=101)).encode()),
        ("attempt.logged." + user, "invalid_data", json.dumps(attempt_event(suds_before=60, suds_peak=50)).encode()),
        ("attempt.logged." + user, "invalid_data", json.dumps(attempt_event(attempt_id="not-a-uuid")).encode()),
        ("attempt.logged." + user, "invalid_data", json.dumps(attempt_event(note="x" * 2001)).encode()),
        ("attempt.logged." + user, "invalid_data", json.dumps(attempt_event(occurred_at=future)).encode()),
        ("attempt.logged." + user, "invalid_data", json.dumps(attempt_event(outcome="maybe")).encode()),
        (
            "attempt.logged." + user,
            "invalid_subject",
            json.dumps(cloud_event("stepout.attempt.logged.v1", user, attempt_data("someone-else"))).encode(),
        ),
        (
            "attempt.logged.bad$user",
            "invalid_subject",
            json.dumps(cloud_event("stepout.attempt.logged.v1", "bad$user", attempt_data("bad$user"))).encode(),
        ),
        ("attempt.logged." + user, "too_large", json.dumps(attempt_event(note="y" * 70_000)).encode()),
        (
            "attempt.logged.nobody",
            "not_enrolled",
            json.dumps(cloud_event("stepout.attempt.logged.v1", "nobody", attempt_data("nobody"))).encode(),
        ),
        (
            "participant.enrolled." + user,
            "invalid_data",
            json.dumps(
                cloud_event("stepout.participant.enrolled.v1", user, {"user_id": user, "starting_level": 11})
            ).encode(),
        ),
    ]
    for tail, _, body in cases:
        await publish_raw(platform, tail, body)
    good = await platform.attempt(user)  # published after all the bad ones: it must not be lost
    [progress] = await platform.wait_for("progress.updated", user)
    assert progress["data"]["position"] == 1

    # One dead letter per bad input: a participant input that both services read is the planner's to
    # dead-letter, everything else the tracker's, so counts and alerts do not double.
    letters = await dead_letters(platform, system, len(cases))
    for msg in letters:
        assert msg.subject in {f"{system.prefix}.deadletter.tracker", f"{system.prefix}.deadletter.planner"}
        assert msg.headers["Stepout-Detail"]
    tracker_letters = [m for m in letters if m.subject.endswith(".tracker")]
    planner_letters = [m for m in letters if m.subject.endswith(".planner")]
    attempts = [reason for tail, reason, _ in cases if tail.startswith("attempt.")]
    assert sorted(m.headers["Stepout-Reason"] for m in tracker_letters) == sorted(attempts)
    assert [m.headers["Stepout-Reason"] for m in planner_letters] == ["invalid_data"]
    assert "starting_level: must be at most 10" in planner_letters[0].headers["Stepout-Detail"]
    assert len(await platform.stream_messages(f"{system.prefix.upper()}_DLQ", f"{system.prefix}.deadletter.>")) == len(
        cases
    )
    bodies = {m.data for m in letters}
    kept = [body for _, reason, body in cases if reason != "too_large"]
    assert all(body in bodies for body in kept)  # the body is kept untouched
    [large] = [m for m in tracker_letters if m.headers["Stepout-Reason"] == "too_large"]
    [large_body] = [body for _, reason, body in cases if reason == "too_large"]
    assert large.data == b""  # too large to keep: its digest and size stand for it
    assert large.headers["Stepout-Body-Sha256"] == hashlib.sha256(large_body).hexdigest()
    assert large.headers["Stepout-Body-Size"] == str(len(large_body))
    for msg in letters:
        assert "yyyy" not in msg.headers["Stepout-Detail"] and "xxxx" not in msg.headers["Stepout-Detail"]

    assert system.tracker is not None
    metrics = httpx.get(f"{system.tracker.base_url}/metrics").text
    assert 'stepout_dead_letters_total{reason="invalid_data",service="tracker"} 6.0' in metrics
    assert 'stepout_dead_letters_total{reason="too_large",service="tracker"} 1.0' in metrics
    assert good["attempt_id"] in json.dumps(progress)


async def test_an_attempt_id_has_effect_once_whatever_its_event_id(platform: Platform, system: System) -> None:
    user = "u-dup"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    data = attempt_data(user)
    for _ in range(3):  # three deliveries of the same attempt, each with a new CloudEvent id
        await platform.publish("attempt.logged", user, data)
    await platform.attempt(user)
    progress = await platform.wait_for("progress.updated", user, count=2)
    assert [p["data"]["position"] for p in progress] == [1, 2]
    assert system.tracker is not None
    metrics = httpx.get(f"{system.tracker.base_url}/metrics").text
    assert "stepout_attempts_duplicate_total 2.0" in metrics
    assert 'stepout_attempts_logged_total{outcome="rejected"} 2.0' in metrics


async def test_repeated_enrolments_and_control_messages_are_harmless(platform: Platform, system: System) -> None:
    user = "u-repeat"
    for _ in range(3):
        await platform.enrol(user, starting_level=2)
    await platform.wait_for("challenge.assigned", user)
    for _ in range(2):
        await platform.publish("participant.paused", user, {"user_id": user})
    [paused] = await platform.wait_for("plan.paused", user)
    assert paused["data"]["reason"] == "participant"
    for _ in range(2):
        await platform.publish("participant.resumed", user, {"user_id": user})
    resumed = await platform.wait_for("challenge.assigned", user, count=2)
    await platform.enrol(user, starting_level=9, daily_limit=5)  # changes only the daily limit etc.
    plan = await platform.query("plan", {"user_id": user})
    assert plan["level"] == 2 and plan["status"] == "active"
    assert resumed[1]["data"]["reason"] == "resume"
    assert len(platform.events("plan.paused", user)) == 1
    assert len(platform.events("challenge.assigned", user)) == 2


async def test_a_withdrawn_participant_gets_nothing_more_and_late_attempts_are_dead_letters(
    platform: Platform, system: System
) -> None:
    user = "u-gone"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    await platform.publish("participant.withdrawn", user, {"user_id": user})
    [paused] = await platform.wait_for("plan.paused", user)
    assert paused["data"]["reason"] == "withdrawn"
    await platform.attempt(user)
    letters = await dead_letters(platform, system, 1)
    assert [m.headers["Stepout-Reason"] for m in letters] == ["withdrawn"]
    assert (await platform.query("plan", {"user_id": user}))["status"] == "withdrawn"
