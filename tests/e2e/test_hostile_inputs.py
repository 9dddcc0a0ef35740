"""Hostile and edge-case inputs over the real nats-server and services: each is refused at the
edge with its reason, on its first delivery, and nothing it does holds back, confuses or stops
the services."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from support import ROOT, NatsServer, Platform, System, attempt_data, cloud_event, new_prefix, service_env

WAIT_S = 15.0


# --- helpers ---------------------------------------------------------------------------------


async def publish_raw(platform: Platform, subject_tail: str, body: bytes) -> None:
    """Publish `body` as it is, with a fresh Nats-Msg-Id."""
    await platform.js.publish(f"{platform.prefix}.{subject_tail}", body, headers={"Nats-Msg-Id": str(uuid.uuid4())})


def event_body(kind: str, user_id: str, data: dict[str, Any], **attributes: Any) -> bytes:
    """A CloudEvent of `stepout.<kind>.v1` with some attributes replaced, as JSON bytes."""
    return json.dumps({**cloud_event(f"stepout.{kind}.v1", user_id, data), **attributes}).encode()


async def dead_letters(platform: Platform, system: System, count: int, timeout: float = WAIT_S) -> list[Msg]:
    """Every dead letter of this system, once there are at least `count` (or the timeout passed)."""
    stream = f"{system.prefix.upper()}_DLQ"
    deadline = time.monotonic() + timeout
    while True:
        found = await platform.stream_messages(stream, f"{system.prefix}.deadletter.>")
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def service_of(letter: Msg) -> str:
    return letter.subject.rsplit(".", 1)[-1]


def reasons_by_body(letters: list[Msg]) -> dict[bytes, set[tuple[str, str]]]:
    """Body -> {(service, reason)} of the dead letters."""
    found: dict[bytes, set[tuple[str, str]]] = {}
    for letter in letters:
        assert letter.headers is not None
        found.setdefault(letter.data, set()).add((service_of(letter), letter.headers["Stepout-Reason"]))
    return found


def assert_services_up(system: System) -> None:
    for service in system.services():
        assert service.process is not None and service.process.poll() is None, (
            f"{service.name} exited:\n{service.log_path.read_text()[-3000:]}"
        )
        ready = httpx.get(f"{service.base_url}/readyz", timeout=2.0)
        assert ready.status_code == 200, (service.name, ready.status_code, ready.text)


async def assert_first_delivery_only(platform: Platform, system: System, letters: list[Msg]) -> None:
    """Nothing was retried: no `retries_exhausted` and no input redelivered to either service."""
    for letter in letters:
        assert letter.headers is not None
        assert letter.headers["Stepout-Reason"] != "retries_exhausted", letter.headers
    for durable in ("tracker", "planner"):
        info = await platform.js.consumer_info(f"{system.prefix.upper()}_IN", durable)
        assert info.num_redelivered == 0, (durable, info.num_redelivered)


async def enrolled(platform: Platform, user: str, **data: Any) -> str:
    event_id = await platform.enrol(user, **data)
    await platform.wait_for("challenge.assigned", user)
    return event_id


async def progress_position(platform: Platform, user: str, position: int, timeout: float = WAIT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = await platform.query("progress", {"user_id": user})
        if reply.get("position") == position or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


async def history_ids(platform: Platform, user: str) -> list[str]:
    reply = await platform.query("history", {"user_id": user, "limit": 100})
    return [e["id"] for e in reply.get("events", [])]


# --- 1. nesting ------------------------------------------------------------------------------


async def test_deeply_nested_body_is_a_dead_letter_and_services_stay_up(platform: Platform, system: System) -> None:
    user = "u-deep"
    await enrolled(platform, user)
    body = b"[" * 60_000
    await publish_raw(platform, f"attempt.logged.{user}", body)
    letters = await dead_letters(platform, system, 1)
    assert [(service_of(m), m.headers["Stepout-Reason"]) for m in letters] == [("tracker", "invalid_json")]
    assert_services_up(system)
    good = await platform.attempt(user)
    [progress] = await platform.wait_for("progress.updated", user, timeout=10)
    assert progress["data"]["position"] == 1 and good["attempt_id"] in json.dumps(progress)
    await assert_first_delivery_only(platform, system, letters)
    assert_services_up(system)


# --- 2. time zones ---------------------------------------------------------------------------


async def test_timezone_that_is_not_a_zone_name_is_invalid_data_dead_lettered_once(
    platform: Platform, system: System
) -> None:
    zones = {"u-tz-folder": "America", "u-tz-long": "Europe/" + "x" * 293, "u-tz-path": "../../etc/passwd"}
    bodies = {
        user: event_body("participant.enrolled", user, {"user_id": user, "timezone": zone})
        for user, zone in zones.items()
    }
    for user, body in bodies.items():
        await publish_raw(platform, f"participant.enrolled.{user}", body)
    await enrolled(platform, "u-tz-good", timezone="Europe/Berlin")  # published after: still planned

    # Both services read participant inputs and refuse these; the planner alone dead-letters them.
    letters = await dead_letters(platform, system, len(zones))
    found = reasons_by_body(letters)
    for user, body in bodies.items():
        assert found.get(body) == {("planner", "invalid_data")}, (user, found.get(body))
    assert len(letters) == len(zones)
    assert not platform.events("challenge.assigned", "u-tz-folder")
    assert_services_up(system)


# --- 3. calendar edges -----------------------------------------------------------------------


async def test_times_at_the_ends_of_the_calendar_are_refused_at_once_and_hold_nothing_back(
    platform: Platform, system: System
) -> None:
    user = "u-cal"
    await enrolled(platform, user)
    cases = {
        event_body("attempt.logged", user, attempt_data(user), time="9999-12-31T23:59:59-01:00"): "invalid_envelope",
        event_body("attempt.logged", user, attempt_data(user, occurred_at="0001-01-01T00:30:00+01:00")): "invalid_data",
        event_body("participant.paused", user, {"user_id": user, "until": "9999-12-31T23:59:59-12:00"}): "invalid_data",
    }
    subjects = ["attempt.logged", "attempt.logged", "participant.paused"]
    for tail, body in zip(subjects, cases, strict=True):
        await publish_raw(platform, f"{tail}.{user}", body)

    good = await platform.attempt(user)  # after the three: not held back by any of them
    [progress] = await platform.wait_for("progress.updated", user, timeout=5)
    assert progress["data"]["position"] == 1 and good["attempt_id"] in json.dumps(progress)

    letters = await dead_letters(platform, system, 3)  # the pause by the planner, whose input it is
    found = reasons_by_body(letters)
    for body, reason in cases.items():
        service = "planner" if b"participant.paused" in body else "tracker"
        assert found.get(body) == {(service, reason)}, (json.loads(body)["type"], found.get(body))
    await assert_first_delivery_only(platform, system, letters)

    inside = "u-cal-2000"  # just inside the bound: accepted
    await enrolled(platform, inside)
    await platform.attempt(inside, occurred_at="2000-01-01T00:00:00Z")
    [accepted] = await platform.wait_for("progress.updated", inside, timeout=5)
    assert accepted["data"]["position"] == 1
    assert len(await dead_letters(platform, system, 3, timeout=0)) == 3
    assert_services_up(system)


# --- 4. a review delivered twice ---------------------------------------------------------------


async def test_a_review_delivered_again_does_not_clear_a_later_crisis(platform: Platform, system: System) -> None:
    user = "u-review-twice"
    await enrolled(platform, user)
    await platform.attempt(user, crisis_reported=True)
    [w1] = await platform.wait_for("overload.warning", user)
    [p1] = await platform.wait_for("plan.paused", user)
    assert w1["data"]["severity"] == "crisis" and p1["data"]["reason"] == "crisis"

    review = cloud_event("stepout.participant.reviewed.v1", user, {"user_id": user, "coach_id": "coach-1"})
    review_body = json.dumps(review).encode()
    await platform.js.publish(
        f"{platform.prefix}.participant.reviewed.{user}", review_body, headers={"Nats-Msg-Id": review["id"]}
    )
    [cleared] = await platform.wait_for("overload.cleared", user)
    assert cleared["data"]["warning_id"] == w1["data"]["warning_id"] and cleared["data"]["by"] == "review"
    assigned = await platform.wait_for("challenge.assigned", user, count=2)
    assert assigned[1]["data"]["reason"] == "resume"

    await platform.attempt(user, crisis_reported=True)
    warnings = await platform.wait_for("overload.warning", user, count=2)
    pauses = await platform.wait_for("plan.paused", user, count=2)
    w2 = warnings[1]["data"]["warning_id"]
    assert warnings[1]["data"]["severity"] == "crisis" and pauses[1]["data"]["reason"] == "crisis"

    # The first review again: same CloudEvent id and bytes, past JetStream's duplicate window.
    await platform.js.publish(
        f"{platform.prefix}.participant.reviewed.{user}", review_body, headers={"Nats-Msg-Id": str(uuid.uuid4())}
    )
    # A marker behind it, through both services: once its effects are out, the review was handled.
    await enrolled(platform, "u-marker")
    await platform.attempt("u-marker")
    await platform.wait_for("progress.updated", "u-marker")

    progress = await platform.query("progress", {"user_id": user})
    assert (progress.get("active_warning") or {}).get("warning_id") == w2, progress.get("active_warning")
    assert [c for c in platform.events("overload.cleared", user) if c["data"]["warning_id"] == w2] == []
    assert len(platform.events("challenge.assigned", user)) == 2
    assert (await platform.query("plan", {"user_id": user}))["status"] == "paused"

    await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": "coach-1"})  # a new review
    cleared_both = await platform.wait_for("overload.cleared", user, count=2)
    assert cleared_both[1]["data"]["warning_id"] == w2 and cleared_both[1]["data"]["by"] == "review"
    resumed = await platform.wait_for("challenge.assigned", user, count=3)
    assert resumed[2]["data"]["reason"] == "resume"
    assert (await platform.query("plan", {"user_id": user}))["status"] == "active"


# --- 5. a crisis synced late -------------------------------------------------------------------


async def test_a_crisis_synced_after_a_review_but_dated_before_it_still_pauses_the_plan(
    platform: Platform, system: System
) -> None:
    user = "u-late-crisis"
    await enrolled(platform, user)
    await platform.attempt(user)
    await platform.wait_for("progress.updated", user)
    review_id = await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": "coach-1"})
    deadline = time.monotonic() + WAIT_S
    while review_id not in await history_ids(platform, user):  # the review is recorded
        assert time.monotonic() < deadline, "review never showed in history"
        await asyncio.sleep(0.1)

    before_review = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    crisis = await platform.attempt(user, crisis_reported=True, occurred_at=before_review)
    [warning] = await platform.wait_for("overload.warning", user, timeout=10)
    assert warning["data"]["severity"] == "crisis"
    assert crisis["attempt_id"] in warning["data"]["evidence"]
    [paused] = await platform.wait_for("plan.paused", user, timeout=10)
    assert paused["data"]["reason"] == "crisis"


# --- 6. posing as stepout ----------------------------------------------------------------------


async def test_inputs_cannot_pose_as_stepout_and_history_keeps_every_accepted_input(
    platform: Platform, system: System
) -> None:
    user = "u-pose"
    accepted = [await enrolled(platform, user)]
    for _ in range(2):
        event = cloud_event("stepout.attempt.logged.v1", user, attempt_data(user))
        await platform.publish("attempt.logged", user, event["data"], event_id=event["id"])
        accepted.append(event["id"])
    accepted.append(await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": "c-1"}))
    accepted.append(await platform.publish("participant.paused", user, {"user_id": user}))
    await platform.wait_for("plan.paused", user)
    accepted.append(await platform.publish("participant.resumed", user, {"user_id": user}))
    await platform.wait_for("progress.updated", user, count=2)

    posing: dict[bytes, int] = {}  # body -> how many services read it
    for source in ("urn:stepout:tracker", "urn:stepout:planner"):
        for tail, body, readers in (
            ("participant.enrolled", event_body("participant.enrolled", user, {"user_id": user}, source=source), 2),
            ("attempt.logged", event_body("attempt.logged", user, attempt_data(user), source=source), 1),
            (
                "participant.reviewed",
                event_body("participant.reviewed", user, {"user_id": user, "coach_id": "c-1"}, source=source),
                2,
            ),
        ):
            await publish_raw(platform, f"{tail}.{user}", body)
            posing[body] = readers
    letters = await dead_letters(platform, system, len(posing))
    found = reasons_by_body(letters)
    for body, readers in posing.items():
        # One dead letter each: participant inputs by the planner, attempts by the tracker.
        expected = {("planner", "invalid_envelope")}
        if readers == 1:
            expected = {("tracker", "invalid_envelope")}
        assert found.get(body) == expected, (json.loads(body)["type"], json.loads(body)["source"], found.get(body))

    await platform.wait_for("challenge.assigned", user, count=2)  # the resume
    recorded = await history_ids(platform, user)
    missing = [event_id for event_id in accepted if event_id not in recorded]
    assert missing == [], f"accepted inputs missing from history: {missing}"
    assert not {json.loads(body)["id"] for body in posing} & set(recorded)


# --- 7. choosing a partition -------------------------------------------------------------------


@pytest.mark.postgres
async def test_an_input_cannot_choose_its_partition(
    nats_server: NatsServer, tmp_path: Path, store_kind: str, store_settings: dict[str, str]
) -> None:
    if store_kind != "postgres":
        pytest.skip("several partitions need PostgreSQL")
    partitions = 4
    running = System(
        nats_server.url, tmp_path / "data", overrides={**store_settings, "STEPOUT_TRACKER_PARTITIONS": str(partitions)}
    )
    running.data_dir.mkdir()
    running.start()
    platform = await Platform.connect(nats_server.url, running.prefix)
    try:
        user = "u-partition"
        await enrolled(platform, user)
        p = running.prefix
        # The partition the server gives this user: publish plainly, read the mapped subject back.
        probe = await platform.js.pull_subscribe(f"{p}.*.attempt.logged.{user}", stream=f"{p.upper()}_IN")
        try:
            await platform.attempt(user)
            [stored] = await probe.fetch(1, timeout=5)
            right = int(stored.subject.split(".")[1])
            await stored.ack()
        finally:
            await probe.unsubscribe()
        await platform.wait_for("progress.updated", user)
        assert stored.subject == f"{p}.{right}.attempt.logged.{user}" and 0 <= right < partitions

        # A token of its own after the user id, right partition or not, is refused, whatever it is.
        tokens = [*(str(k) for k in range(partitions + 1)), "17", "x", f"{right}.{right}"]
        wrong = {event_body("attempt.logged", user, attempt_data(user)): token for token in tokens}
        for body, token in wrong.items():
            await publish_raw(platform, f"attempt.logged.{user}.{token}", body)
        # A participant input with a token of its own: refused too, by the planner's partitions (a
        # participant input's dead letter is the planner's to write).
        review = {"user_id": user, "coach_id": "c-1"}
        reviews = {event_body("participant.reviewed", user, review): token for token in (str(right), "x")}
        for body, token in reviews.items():
            await publish_raw(platform, f"participant.reviewed.{user}.{token}", body)
        letters = await dead_letters(platform, running, len(wrong) + len(reviews))
        found = reasons_by_body(letters)
        outcome = {token: found.get(body) for body, token in wrong.items()}
        assert outcome == {token: {("tracker", "invalid_subject")} for token in tokens}, (right, outcome)
        refused = {token: found.get(body) for body, token in reviews.items()}
        assert refused == {token: {("planner", "invalid_subject")} for token in reviews.values()}, refused
        # ... and the mapped form cannot be published at all: no stream takes it.
        with pytest.raises((nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError)):
            await platform.js.publish(f"{p}.{right}.attempt.logged.{user}", b"{}", timeout=2)
        # The participant's next attempt is decided as ever, by both services.
        await platform.attempt(user)
        await platform.wait_for("progress.updated", user, count=2)
        await platform.wait_for("challenge.assigned", user, count=3)
        assert_services_up(running)
    finally:
        await platform.close()
        running.stop()


# --- 8. bounds ---------------------------------------------------------------------------------


async def test_history_is_paged_and_every_reply_stays_small(platform: Platform, system: System) -> None:
    user = "u-long"
    await enrolled(platform, user, daily_limit=10)
    note = "n" * 2000
    sent = []
    for _ in range(300):
        sent.append((await platform.attempt(user, note=note))["attempt_id"])
    reply = await progress_position(platform, user, 300, timeout=60)
    assert reply.get("position") == 300, reply

    async def raw_history(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        msg = await platform.nc.request(f"{platform.prefix}.query.history", json.dumps(request).encode(), timeout=5)
        assert note not in msg.data.decode()
        return len(msg.data), json.loads(msg.data)

    async def all_pages(limit: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        request: dict[str, Any] = {"user_id": user, "limit": limit}
        for _ in range(100):
            size, page = await raw_history(request)
            assert size < 512 * 1024, size
            assert "error" not in page, page
            assert len(page["events"]) <= limit
            events.extend(page["events"])
            if not page.get("next_cursor"):
                return events
            assert isinstance(page["next_cursor"], str)
            request = {"user_id": user, "limit": limit, "cursor": page["next_cursor"]}
        raise AssertionError("history never ended")

    by_50 = await all_pages(50)
    ids = [e["id"] for e in by_50]
    assert len(ids) == len(set(ids)), "an event is on two pages"
    attempts = [e["data"]["attempt_id"] for e in by_50 if e["type"] == "stepout.attempt.logged.v1"]
    assert attempts == sent  # every attempt once, oldest first
    assert len(by_50) > 300
    by_500 = await all_pages(500)
    assert [e["id"] for e in by_500] == ids  # the same history, whatever the page size

    _, refused = await raw_history({"user_id": user, "limit": 501})
    assert refused.get("error", {}).get("code") == "invalid_request", refused
    assert_services_up(system)


async def test_a_dead_letter_of_an_oversized_body_keeps_its_digest_not_its_body(
    platform: Platform, system: System
) -> None:
    user = "u-big"
    await enrolled(platform, user)
    body = event_body("attempt.logged", user, attempt_data(user), padding="p" * 100 * 1024)
    assert len(body) > 100 * 1024
    await publish_raw(platform, f"attempt.logged.{user}", body)
    [letter] = await dead_letters(platform, system, 1)
    assert letter.headers is not None
    assert letter.headers["Stepout-Reason"] == "too_large"
    assert letter.headers.get("Stepout-Body-Sha256") == hashlib.sha256(body).hexdigest()
    assert letter.headers.get("Stepout-Body-Size") == str(len(body))
    assert letter.data == b"", f"dead letter kept {len(letter.data)} bytes of the body"


# --- 9. a service that breaks -------------------------------------------------------------------


def children_of(pid: int) -> Iterator[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid`, read from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            yield int(entry.name), cmdline


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready")


def test_run_all_stops_everything_and_fails_when_a_service_dies(nats_server: NatsServer, tmp_path: Path) -> None:
    env = service_env(nats_server.url, tmp_path, new_prefix(), STEPOUT_STORE="sqlite")
    log = (tmp_path / "run-all.log").open("wb")
    run_all = subprocess.Popen(
        [sys.executable, "-m", "stepout_cli.main", "run", "all"], env=env, stdout=log, stderr=log, cwd=ROOT
    )
    try:
        wait_ready(f"http://127.0.0.1:{env['STEPOUT_PLANNER_PORT']}", run_all)
        wait_ready(f"http://127.0.0.1:{env['STEPOUT_TRACKER_PORT']}", run_all)
        children = dict(children_of(run_all.pid))
        [tracker] = [pid for pid, cmd in children.items() if "run tracker" in cmd]
        [planner] = [pid for pid, cmd in children.items() if "run planner" in cmd]
        os.kill(tracker, signal.SIGKILL)
        code = run_all.wait(timeout=10)
        assert code != 0
        assert not alive(planner), "the planner was left running"
    finally:
        if run_all.poll() is None:
            run_all.send_signal(signal.SIGTERM)
            try:
                run_all.wait(timeout=10)
            except subprocess.TimeoutExpired:
                run_all.kill()
        log.close()
