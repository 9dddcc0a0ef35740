"""What a platform integrator meets in the first week, finding by finding, over a real nats-server:
strict inputs, an answer for every input, an honest progress view, a daily limit in attempts,
coming back after a break, and words and metrics that say what happens."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from nats.aio.msg import Msg

from support import AS_PLATFORM, Platform, System, attempt_data, cloud_event

WAIT_S = 15.0


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def answer(platform: Platform, user: str, n: int, **fields: Any) -> dict[str, Any]:
    """Wait for the n-th assignment, then log an attempt at it (its own challenge and level)."""
    assigned = (await platform.wait_for("challenge.assigned", user, count=n))[n - 1]["data"]
    return await platform.attempt(
        user, assignment_id=assigned["assignment_id"], challenge_id=assigned["challenge_id"], level=None, **fields
    )


async def dead_letters(platform: Platform, system: System, count: int) -> list[Msg]:
    stream = f"{system.prefix.upper()}_DLQ"
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        found = await platform.stream_messages(stream, f"{system.prefix}.deadletter.>")
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)


def letters_of(letters: list[Msg], user: str) -> list[tuple[str, str, str]]:
    """(service, reason, detail) of each dead letter published on `user`'s subjects."""
    return [
        (m.subject.rsplit(".", 1)[1], m.headers["Stepout-Reason"], m.headers["Stepout-Detail"])
        for m in letters
        if m.headers and m.headers["Stepout-Original-Subject"].endswith(f".{user}")
    ]


async def notices(platform: Platform, user: str, count: int) -> list[dict[str, Any]]:
    return [e["data"] for e in await platform.wait_for("plan.notice", user, count=count)]


def stepout(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    assert system.tracker is not None
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env=system.tracker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- finding 3: lax parsing with lasting effects ------------------------------------------------


async def test_lax_values_are_dead_letters_naming_the_field_and_leave_no_effect(
    platform: Platform, system: System
) -> None:
    user = "u-lax"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    await platform.publish("participant.withdrawn", user, {"user_id": user, "erase": "yes"})
    await platform.attempt(user, crisis_reported="true")
    await platform.attempt(user, occurred_at=1764187200)
    without_subject = cloud_event("stepout.attempt.logged.v1", user, attempt_data(user))
    del without_subject["subject"]
    text_plain = {**cloud_event("stepout.attempt.logged.v1", user, attempt_data(user)), "datacontenttype": "text/plain"}
    for body in (without_subject, text_plain):
        await platform.js.publish(f"{platform.prefix}.attempt.logged.{user}", json.dumps(body).encode())
    good = await platform.attempt(user)  # after all of them: accepted, not held back
    [progress] = await platform.wait_for("progress.updated", user)
    assert progress["data"]["position"] == 1 and progress["data"]["last_attempt"]["attempt_id"] == good["attempt_id"]

    found = letters_of(await dead_letters(platform, system, 5), user)
    assert sorted((service, reason) for service, reason, _ in found) == [
        ("planner", "invalid_data"),
        ("tracker", "invalid_data"),
        ("tracker", "invalid_data"),
        ("tracker", "invalid_envelope"),
        ("tracker", "invalid_envelope"),
    ]
    details = " | ".join(detail for _, _, detail in found)
    for says in (
        "erase: must be true or false",
        "crisis_reported: must be true or false",
        "occurred_at: must be an RFC 3339 time",
        "subject: is required",
        "datacontenttype: must be one of 'application/json'",
    ):
        assert says in details, details
    assert "yes" not in details and "1764187200" not in details
    assert not platform.events("overload.warning", user)  # no crisis raised from the text "true"
    plan = await platform.query("plan", {"user_id": user})
    assert plan["status"] == "active" and plan["erased"] is False  # nobody erased by "yes"


# --- finding 4: inputs that vanish --------------------------------------------------------------


async def test_every_participant_input_is_recorded_and_one_that_changes_nothing_is_told_why(
    platform: Platform, system: System, tmp_path: Any
) -> None:
    user = "u-trace"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    past = await platform.publish("participant.paused", user, {"user_id": user, "until": ago(hours=1)})
    [over] = await notices(platform, user, 1)
    assert (over["reason"], over["input_id"], over["input_type"]) == (
        "pause_over",
        past,
        "stepout.participant.paused.v1",
    )
    pause = {"user_id": user, "until": (datetime.now(UTC) + timedelta(days=2)).isoformat()}
    await platform.publish("participant.paused", user, pause)
    await platform.wait_for("plan.paused", user)
    again = await platform.publish("participant.paused", user, pause)  # the same wish, a new input
    resumed = await platform.publish("participant.resumed", user, {"user_id": user})
    [resume] = await platform.wait_for("plan.resumed", user)
    assert resume["data"]["reason"] == "participant"
    not_paused = await platform.publish("participant.resumed", user, {"user_id": user})
    said = await notices(platform, user, 3)
    assert [(n["reason"], n["input_id"]) for n in said[1:]] == [("already_paused", again), ("not_paused", not_paused)]

    history = await platform.history(user)
    ids = [event["id"] for event in history["events"]]
    for input_id in (past, again, resumed, not_paused):
        assert input_id in ids  # recorded: in the history ...
    system.stop()
    out = tmp_path / "trace.jsonl"
    assert stepout(system, "audit", "export", "--user", user, "--out", str(out)).returncode == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert {past, again, resumed, not_paused} <= {line["id"] for line in exported}  # ... and in the export
    assert sum(1 for line in exported if line["type"] == "stepout.plan.notice.v1") == 3
    system.start()


# --- finding 5: the daily limit -----------------------------------------------------------------


async def test_the_daily_limit_counts_attempts_completed_on_their_own_day(platform: Platform, system: System) -> None:
    user = "u-limit"
    await platform.enrol(user, daily_limit=2)
    await platform.wait_for("challenge.assigned", user)
    # Two self-chosen attempts synced late, done yesterday: they count for yesterday, not today.
    for hours in (30, 29):
        await platform.attempt(user, occurred_at=ago(hours=hours))
    await platform.wait_for("progress.updated", user, count=2)
    await answer(platform, user, 3)  # the first completed today
    third = (await platform.wait_for("challenge.assigned", user, count=4))[3]["data"]
    assert datetime.fromisoformat(third["not_before"]) <= datetime.now(UTC)  # not pushed a day
    await answer(platform, user, 4)  # the second completed today: the limit
    fourth = (await platform.wait_for("challenge.assigned", user, count=5))[4]["data"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert datetime.fromisoformat(fourth["not_before"]) == tomorrow  # UTC participant: next local midnight


async def test_an_assignment_replaced_before_it_was_tried_uses_up_nothing(platform: Platform, system: System) -> None:
    user = "u-replaced"
    await platform.enrol(user, daily_limit=1)
    await platform.wait_for("challenge.assigned", user)
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    for _ in range(3):  # each pause and resume replaces the open assignment
        await platform.publish("participant.paused", user, {"user_id": user, "until": until})
        await platform.publish("participant.resumed", user, {"user_id": user})
    await platform.wait_for("plan.resumed", user, count=3)
    # The first, then one from each pause (for when it ends) and one from each resume, published after
    # the plan.resumed of its decision.
    latest = (await platform.wait_for("challenge.assigned", user, count=7))[-1]["data"]
    assert datetime.fromisoformat(latest["not_before"]) <= datetime.now(UTC)


# --- finding 6: progress that lies --------------------------------------------------------------


async def test_progress_is_true_when_asked_and_under_late_data(platform: Platform, system: System) -> None:
    user = "u-honest"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    # The planner's assignment may come before the tracker has recorded the enrolment: ask until it has.
    empty = await platform.query("progress", {"user_id": user})
    for _ in range(100):
        if "error" not in empty:
            break
        await asyncio.sleep(0.1)
        empty = await platform.query("progress", {"user_id": user})
    assert empty["position"] == 0 and empty["level"] is None and empty["streak_days"] == 0  # enrolled: empty view
    unknown = await platform.query("progress", {"user_id": "u-stranger"})
    assert unknown["error"]["code"] == "not_found"

    # Seven days in a row, 30 to 24 days ago (synced late): a streak of 7 then, none now.
    for days in range(30, 23, -1):
        await platform.attempt(user, occurred_at=ago(days=days))
    updates = await platform.wait_for("progress.updated", user, count=7)
    assert updates[-1]["data"]["streak_days"] == 7
    now = await platform.query("progress", {"user_id": user})
    assert now["streak_days"] == 0 and now["streak_until"] is None

    newest = await platform.attempt(user, occurred_at=ago(hours=1))
    await platform.attempt(user, occurred_at=ago(days=2))  # late: older than the newest
    views = await platform.wait_for("progress.updated", user, count=9)
    assert views[-1]["data"]["last_attempt_at"] == views[-2]["data"]["last_attempt_at"]  # never backwards
    assert views[-2]["data"]["last_attempt"]["attempt_id"] == newest["attempt_id"]

    view = await platform.query("progress", {"user_id": user})
    plan = await platform.query("plan", {"user_id": user})
    assert view["practice_level"] == view["level"] and plan["plan_level"] == plan["level"]
    assert system.tracker is not None
    http = httpx.get(f"{system.tracker.base_url}/v1/participants/{user}/progress", headers=AS_PLATFORM).json()
    assert http["streak_days"] == view["streak_days"]


# --- finding 7: dead letters that mislead or leak -----------------------------------------------


async def test_a_bad_user_id_is_named_as_such_once_and_not_quoted(platform: Platform, system: System) -> None:
    email = "someone@example"
    body = cloud_event("stepout.participant.enrolled.v1", email, {"user_id": email})
    await platform.js.publish(f"{platform.prefix}.participant.enrolled.someone@example", json.dumps(body).encode())
    await platform.js.publish(f"{platform.prefix}.participant.enrolled.user.123", json.dumps(body).encode())
    letters = await dead_letters(platform, system, 2)
    assert [m.subject.rsplit(".", 1)[1] for m in letters] == ["planner", "planner"]  # one service owns them
    for m in letters:
        assert m.headers is not None and m.headers["Stepout-Reason"] == "invalid_subject"
        assert "user id in the subject is not valid" in m.headers["Stepout-Detail"]
        assert "example" not in m.headers["Stepout-Detail"] and "123" not in m.headers["Stepout-Detail"]


# --- finding 8: silence where a platform needs an answer ----------------------------------------


async def test_every_input_gets_an_answer(platform: Platform, system: System) -> None:
    user = "u-answers"
    await platform.enrol(user)
    first = (await platform.wait_for("challenge.assigned", user))[0]["data"]
    crisis = await answer(platform, user, 1, crisis_reported=True)
    await platform.wait_for("plan.paused", user)
    own_resume = await platform.publish("participant.resumed", user, {"user_id": user})
    [ignored] = await notices(platform, user, 1)
    assert (ignored["reason"], ignored["input_id"]) == ("crisis_pause", own_resume)
    await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": "coach-1"})
    [resumed] = await platform.wait_for("plan.resumed", user)
    assert resumed["data"]["reason"] == "review"
    current = (await platform.wait_for("challenge.assigned", user, count=2))[1]["data"]  # the resume

    # An attempt naming an assignment that is not the open one (the first, closed by the crisis attempt).
    stale = await platform.attempt(user, assignment_id=first["assignment_id"], challenge_id=first["challenge_id"])
    said = await notices(platform, user, 2)
    assert (said[1]["reason"], said[1]["attempt_id"]) == ("assignment_not_open", stale["attempt_id"])
    # The open assignment with another challenge.
    other = await platform.attempt(user, assignment_id=current["assignment_id"], challenge_id="self-chosen-walk")
    said = await notices(platform, user, 3)
    assert (said[2]["reason"], said[2]["attempt_id"]) == ("challenge_not_assigned", other["attempt_id"])

    # A catalog challenge with another level, and an attempt_id used again with other content.
    await platform.attempt(user, challenge_id=current["challenge_id"], level=(current["level"] % 10) + 1)
    await platform.publish("attempt.logged", user, {**crisis, "suds_peak": crisis["suds_peak"] - 1})
    await platform.publish("attempt.logged", user, crisis)  # the same again: a repeat, no effect, no letter
    found = letters_of(await dead_letters(platform, system, 2), user)
    assert [(s, r) for s, r, _ in found] == [("tracker", "invalid_data"), ("tracker", "attempt_conflict")]
    assert "catalog level" in found[0][2]

    await platform.publish("participant.withdrawn", user, {"user_id": user, "erase": False})
    await platform.wait_for("plan.paused", user, count=2)
    await platform.enrol(user)
    found = letters_of(await dead_letters(platform, system, 3), user)
    assert found[-1][:2] == ("planner", "withdrawn") and "enrolling again is refused" in found[-1][2]
    assert len(found) == 3  # each refused once
    assert crisis["attempt_id"] not in json.dumps(said)  # the repeat was no notice either


# --- finding 9: metrics and words that drift -----------------------------------------------------


async def test_the_overloaded_gauge_leaves_withdrawn_participants_out_and_replay_says_what_ends_a_pause(
    platform: Platform, system: System
) -> None:
    user = "u-gauge"
    await platform.enrol(user)
    await answer(platform, user, 1, crisis_reported=True)
    await platform.wait_for("plan.paused", user)
    assert system.tracker is not None

    async def overloaded() -> float:
        text = httpx.get(f"{system.tracker.base_url}/metrics").text  # type: ignore[union-attr]
        return float(
            next(line for line in text.splitlines() if line.startswith("stepout_participants_overloaded ")).split()[1]
        )

    for _ in range(50):
        if await overloaded() == 1.0:
            break
        await asyncio.sleep(0.2)
    assert await overloaded() == 1.0
    await platform.publish("participant.withdrawn", user, {"user_id": user})
    await platform.wait_for("plan.paused", user, count=2)
    for _ in range(50):
        if await overloaded() == 0.0:
            break
        await asyncio.sleep(0.2)
    assert await overloaded() == 0.0

    replayed = stepout(system, "replay", "--user", user)
    assert replayed.returncode == 0, replayed.stderr
    assert "crisis until a coach's review" in replayed.stdout and "withdrawn for good" in replayed.stdout
    assert "resume or review" not in replayed.stdout


# --- finding 11: coming back after a break -------------------------------------------------------


async def test_back_after_three_weeks_the_baseline_restarts_and_the_next_step_is_lower(
    platform: Platform, system: System
) -> None:
    user = "u-back"
    await platform.enrol(user, starting_level=4)
    # Four assignments done three weeks ago (synced late), peaks not falling.
    for n, days in enumerate((24, 23, 22, 21), start=1):
        await answer(platform, user, n, suds_before=40, suds_peak=70, suds_after=40, occurred_at=ago(days=days))
    await platform.wait_for("progress.updated", user, count=4)
    before = platform.events("challenge.assigned", user)
    await platform.wait_for("challenge.assigned", user, count=5)
    plan_level = (await platform.query("plan", {"user_id": user}))["plan_level"]
    warnings_before = len(platform.events("overload.warning", user))

    await answer(platform, user, 5, suds_before=40, suds_peak=75, suds_after=40)  # back today
    [*_, back] = await platform.wait_for("progress.updated", user, count=5)
    assert back["data"]["last_attempt"]["after_break"] is True
    assert back["data"]["at_level"]["attempts"] == 1 and back["data"]["at_level"]["first_peak"] == 75
    returning = (await platform.wait_for("challenge.assigned", user, count=6))[5]["data"]
    assert returning["reason"] == "returning" and returning["level"] == plan_level - 1
    assert len(platform.events("overload.warning", user)) == warnings_before  # no no_habituation against old peaks
    assert before  # the four before the break were assigned as usual


async def test_an_input_is_recorded_even_if_the_same_kind_came_later(platform: Platform, system: System) -> None:
    user = "u-order"
    await platform.enrol(user)
    await platform.wait_for("challenge.assigned", user)
    event = cloud_event("stepout.participant.resumed.v1", user, {"user_id": user})
    event["time"] = ago(days=1)
    newer = cloud_event("stepout.participant.resumed.v1", user, {"user_id": user})
    for body in (newer, event):
        await platform.js.publish(
            f"{platform.prefix}.participant.resumed.{user}",
            json.dumps(body).encode(),
            headers={"Nats-Msg-Id": body["id"]},
        )
    said = await notices(platform, user, 2)
    assert [(n["input_id"], n["reason"]) for n in said] == [(newer["id"], "not_paused"), (event["id"], "stale")]
    assert uuid.UUID(said[0]["input_id"])
