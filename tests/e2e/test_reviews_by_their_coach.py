"""A review counts only when it is the participant's coach's, end to end over real NATS: another
coach's review is dead-lettered `not_their_coach` and the crisis holds; their coach's lifts it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from support import Platform, System

COACH_A, COACH_B = "coach-a-7f3", "coach-b-91c"


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def dead_letters(platform: Platform, system: System, count: int) -> list[Any]:
    stream = f"{system.prefix.upper()}_DLQ"
    for _ in range(60):
        found = await platform.stream_messages(stream, f"{system.prefix}.deadletter.>")
        if len(found) >= count:
            return found
    raise AssertionError(f"expected {count} dead letters")


async def test_another_coachs_review_is_a_dead_letter_and_the_crisis_holds_until_their_coach_reviews(
    platform: Platform, system: System
) -> None:
    user = "u-coached-by-a"
    await platform.enrol(user, coach_id=COACH_A, starting_level=3)
    [first] = await platform.wait_for("challenge.assigned", user)
    await platform.attempt(
        user,
        assignment_id=first["data"]["assignment_id"],
        challenge_id=first["data"]["challenge_id"],
        level=None,
        crisis_reported=True,
        suds_before=50,
        suds_peak=80,
        suds_after=70,
        occurred_at=ago(hours=1),
    )
    [warning] = await platform.wait_for("overload.warning", user)
    crisis_id = warning["data"]["warning_id"]
    assert warning["data"]["severity"] == "crisis"
    [paused] = await platform.wait_for("plan.paused", user)
    assert paused["data"]["reason"] == "crisis"

    # Coach B reviews coach A's participant: refused, acked, never retried.
    review_id = await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": COACH_B})
    [letter] = await dead_letters(platform, system, 1)
    assert letter.subject == f"{system.prefix}.deadletter.planner"  # a participant input: the planner's to tell
    assert letter.headers["Stepout-Reason"] == "not_their_coach"
    assert letter.headers["Stepout-Original-Subject"] == f"{system.prefix}.participant.reviewed.{user}"
    detail = letter.headers["Stepout-Detail"]
    assert detail and user not in detail and COACH_A not in detail and COACH_B not in detail
    assert json.loads(letter.data)["id"] == review_id  # the body as it was sent

    # The tracker reads inputs in order: the progress of an attempt sent after the review shows what
    # the review left, the crisis warning still active.
    await platform.attempt(user, suds_before=20, suds_peak=30, suds_after=10, occurred_at=ago(minutes=30))
    progressed = (await platform.wait_for("progress.updated", user, count=2))[1]["data"]
    assert progressed["position"] == 2 and progressed["active_warning"]["warning_id"] == crisis_id
    assert platform.events("overload.cleared", user) == [] and platform.events("plan.resumed", user) == []
    plan = await platform.query("plan", {"user_id": user})
    assert (plan["status"], plan["pause_reason"], plan["open_assignment"]) == ("paused", "crisis", None)
    assert plan["active_warning"]["warning_id"] == crisis_id and plan["coach_id"] == COACH_A
    progress = await platform.query("progress", {"user_id": user})
    assert progress["active_warning"]["warning_id"] == crisis_id
    assert len(platform.events("challenge.assigned", user)) == 1
    history = await platform.history(user)
    assert review_id not in [event["id"] for event in history["events"]]  # nothing was recorded

    # Coach A reviews: the crisis clears and the next assignment comes.
    await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": COACH_A})
    [cleared] = await platform.wait_for("overload.cleared", user)
    assert cleared["data"]["by"] == "review" and cleared["data"]["warning_id"] == crisis_id
    resumed = (await platform.wait_for("challenge.assigned", user, count=2))[1]["data"]
    assert resumed["reason"] == "resume"
    [plan_resumed] = await platform.wait_for("plan.resumed", user)
    assert plan_resumed["data"]["reason"] == "review"
    plan = await platform.query("plan", {"user_id": user})
    assert plan["status"] == "active" and plan["open_assignment"]["assignment_id"] == resumed["assignment_id"]
    assert (await platform.query("progress", {"user_id": user}))["active_warning"] is None
    assert len(await dead_letters(platform, system, 1)) == 1
