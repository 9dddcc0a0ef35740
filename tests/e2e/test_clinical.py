"""The clinical rules end to end over real NATS: warnings, easing off, pauses, review, step up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from support import Platform


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def answer(platform: Platform, user: str, n_assigned: int, **fields: Any) -> dict[str, Any]:
    """Wait for the n-th assignment, then log an attempt at it."""
    assigned = (await platform.wait_for("challenge.assigned", user, count=n_assigned))[n_assigned - 1]["data"]
    return await platform.attempt(
        user, assignment_id=assigned["assignment_id"], challenge_id=assigned["challenge_id"], level=None, **fields
    )


async def test_five_rejections_in_a_day_raise_caution_and_ease_off_one_level(platform: Platform) -> None:
    user = "u-streak"
    await platform.enrol(user, starting_level=4)
    attempts = []
    for i in range(5):
        attempts.append(
            await answer(
                platform,
                user,
                i + 1,
                suds_before=30,
                suds_peak=60 - 4 * i,
                suds_after=40,
                occurred_at=ago(hours=10 - i),
            )
        )
        await platform.wait_for("progress.updated", user, count=i + 1)
    [warning] = await platform.wait_for("overload.warning", user)
    data = warning["data"]
    assert data["severity"] == "caution"
    assert [r["rule"] for r in data["rules"]] == ["rejection_streak"]
    assert set(data["evidence"]) == {a["attempt_id"] for a in attempts}
    assert data["escalate"] is False
    sixth = (await platform.wait_for("challenge.assigned", user, count=6))[5]["data"]
    assert sixth["reason"] == "ease_off"
    assert sixth["level"] == 3
    # the warning is published before the progress of the attempt that raised it
    order = [m.subject.split(".")[1] for m in platform.received if m.subject.endswith(user)]
    fifth_progress = [i for i, kind in enumerate(order) if kind == "progress"][4]
    assert order.index("overload") < fifth_progress


async def test_four_rejections_in_a_day_raise_nothing(platform: Platform) -> None:
    user = "u-four"
    await platform.enrol(user, starting_level=4)
    for i in range(4):
        await answer(
            platform, user, i + 1, suds_before=30, suds_peak=60 - 4 * i, suds_after=40, occurred_at=ago(hours=10 - i)
        )
    await platform.wait_for("challenge.assigned", user, count=5)
    assert platform.events("overload.warning", user) == []
    assert (await platform.wait_for("challenge.assigned", user, count=5))[4]["data"]["reason"] == "repeat"


async def test_two_hostile_rejections_pause_the_plan_for_48h_then_resume_a_level_lower(platform: Platform) -> None:
    user = "u-hostile"
    await platform.enrol(user, starting_level=5)
    await answer(
        platform, user, 1, outcome="hostile", suds_before=40, suds_peak=70, suds_after=50, occurred_at=ago(hours=30)
    )
    second = await answer(
        platform, user, 2, outcome="hostile", suds_before=40, suds_peak=70, suds_after=50, occurred_at=ago(hours=2)
    )
    [warning] = await platform.wait_for("overload.warning", user)
    assert warning["data"]["severity"] == "high"
    assert "hostile_rejections" in [r["rule"] for r in warning["data"]["rules"]]
    assert warning["data"]["escalate"] is True
    [paused] = await platform.wait_for("plan.paused", user)
    until = datetime.fromisoformat(paused["data"]["until"])
    assert paused["data"]["reason"] == "overload"
    assert paused["data"]["warning_id"] == warning["data"]["warning_id"]
    assert until == datetime.fromisoformat(second["occurred_at"]) + timedelta(hours=48)
    resumed = (await platform.wait_for("challenge.assigned", user, count=3))[2]["data"]
    assert resumed["reason"] == "resume"
    assert resumed["level"] == 4
    assert datetime.fromisoformat(resumed["not_before"]) == until
    plan = await platform.query("plan", {"user_id": user})
    assert plan["status"] == "paused" and plan["paused_until"] is not None


async def test_a_crisis_pauses_until_a_coach_reviews(platform: Platform) -> None:
    user = "u-crisis"
    await platform.enrol(user, starting_level=3)
    await answer(
        platform, user, 1, crisis_reported=True, suds_before=50, suds_peak=80, suds_after=70, occurred_at=ago(hours=1)
    )
    [warning] = await platform.wait_for("overload.warning", user)
    assert warning["data"]["severity"] == "crisis" and warning["data"]["escalate"] is True
    [paused] = await platform.wait_for("plan.paused", user)
    assert paused["data"]["reason"] == "crisis" and paused["data"]["until"] is None
    await platform.wait_for("progress.updated", user)
    assert len(platform.events("challenge.assigned", user)) == 1
    plan = await platform.query("plan", {"user_id": user})
    assert plan["status"] == "paused" and plan["open_assignment"] is None

    await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": "coach-1"})
    [cleared] = await platform.wait_for("overload.cleared", user)
    assert cleared["data"]["by"] == "review" and cleared["data"]["warning_id"] == warning["data"]["warning_id"]
    resumed = (await platform.wait_for("challenge.assigned", user, count=2))[1]["data"]
    assert resumed["reason"] == "resume"
    assert resumed["level"] == 2
    assert (await platform.query("plan", {"user_id": user}))["status"] == "active"


async def test_habituation_over_two_days_makes_the_participant_ready_and_steps_up(platform: Platform) -> None:
    user = "u-ready"
    await platform.enrol(user, starting_level=3)
    peaks = [(ago(days=2), 60), (ago(days=1, hours=2), 45), (ago(hours=3), 25)]
    for i, (when, peak) in enumerate(peaks):
        await answer(platform, user, i + 1, suds_before=20, suds_peak=peak, suds_after=min(peak, 30), occurred_at=when)
    progress = (await platform.wait_for("progress.updated", user, count=3))[2]["data"]
    assert progress["level_ready"] is True
    assert progress["at_level"] == {"attempts": 3, "first_peak": 60, "latest_peak": 25}
    stepped = (await platform.wait_for("challenge.assigned", user, count=4))[3]["data"]
    assert stepped["reason"] == "step_up"
    assert stepped["level"] == 4
