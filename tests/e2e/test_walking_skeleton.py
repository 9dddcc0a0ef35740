"""The first complete loop, as a platform sees it, over a real nats-server and real SQLite."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading

import httpx
import pytest

from stepout_contract.envelope import CloudEvent
from stepout_contract.outputs import OUTPUT_TYPES
from stepout_domain.ruleset import CURRENT_VERSION
from support import AS_PLATFORM, Platform, System


async def test_enrolment_assigns_a_first_challenge_at_the_starting_level(platform: Platform) -> None:
    await platform.enrol("u-start", starting_level=4)
    [assigned] = await platform.wait_for("challenge.assigned", "u-start")
    assert assigned["type"] == "stepout.challenge.assigned.v1"
    assert assigned["source"] == "urn:stepout:planner"
    assert assigned["data"]["reason"] == "start"
    assert assigned["data"]["level"] == 4
    assert assigned["data"]["ruleset_version"] == CURRENT_VERSION


async def test_an_attempt_updates_progress_and_brings_the_next_assignment(platform: Platform) -> None:
    await platform.enrol("u-loop")
    [first] = await platform.wait_for("challenge.assigned", "u-loop")
    challenge = first["data"]
    await platform.attempt(
        "u-loop", assignment_id=challenge["assignment_id"], challenge_id=challenge["challenge_id"], level=None
    )
    [progress] = await platform.wait_for("progress.updated", "u-loop")
    view = progress["data"]
    assert view["position"] == 1
    assert view["attempts"] == {"rejected": 1, "accepted": 0, "hostile": 0, "escaped": 0, "skipped": 0}
    assert view["level"] == challenge["level"]
    assigned = await platform.wait_for("challenge.assigned", "u-loop", count=2)
    assert assigned[1]["data"]["assignment_id"] != challenge["assignment_id"]
    assert assigned[1]["data"]["reason"] in {"repeat", "step_up", "step_down", "ease_off"}


async def test_progress_and_plan_answer_over_nats_and_http(platform: Platform, system: System) -> None:
    await platform.enrol("u-query")
    await platform.wait_for("challenge.assigned", "u-query")
    await platform.attempt("u-query")
    [progress] = await platform.wait_for("progress.updated", "u-query")

    over_nats = await platform.query("progress", {"user_id": "u-query"})
    assert over_nats == progress["data"]
    assert system.tracker is not None and system.planner is not None
    async with httpx.AsyncClient(headers=AS_PLATFORM) as http:
        over_http = (await http.get(f"{system.tracker.base_url}/v1/participants/u-query/progress")).json()
        assert over_http == progress["data"]
        plan = (await http.get(f"{system.planner.base_url}/v1/participants/u-query/plan")).json()
        assert plan["user_id"] == "u-query" and plan["status"] == "active"
        missing = await http.get(f"{system.tracker.base_url}/v1/participants/nobody/progress")
        assert missing.status_code == 404
        assert (await http.get(f"{system.planner.base_url}/v1/participants/nobody/plan")).status_code == 404

    assert (await platform.query("plan", {"user_id": "u-query"}))["level"] == 3
    assert (await platform.query("progress", {"user_id": "nobody"}))["error"]["code"] == "not_found"
    assert (await platform.query("plan", {"user_id": "nobody"}))["error"]["code"] == "not_found"
    assert (await platform.query("progress", {"user": "x"}))["error"]["code"] == "invalid_request"
    history = await platform.query("history", {"user_id": "u-query", "limit": 100})
    types = [event["type"] for event in history["events"]]
    assert types[0] == "stepout.participant.enrolled.v1"
    assert "stepout.attempt.logged.v1" in types and "stepout.progress.updated.v1" in types
    # the planner's decisions are part of it too, in the order they were recorded
    assert types.count("stepout.challenge.assigned.v1") == 2 and "partial" not in history
    assert types.index("stepout.challenge.assigned.v1") < types.index("stepout.attempt.logged.v1")
    assert types.count("stepout.participant.enrolled.v1") == 1  # stored by both, shown once
    ids = [event["id"] for event in history["events"]]
    assert len(ids) == len(set(ids))


async def test_state_and_positions_survive_a_restart_of_both_services(platform: Platform, system: System) -> None:
    await platform.enrol("u-restart")
    await platform.wait_for("challenge.assigned", "u-restart")
    await platform.attempt("u-restart")
    await platform.wait_for("progress.updated", "u-restart")
    await platform.wait_for("challenge.assigned", "u-restart", count=2)

    system.stop()
    system.start()

    await platform.attempt("u-restart")
    progress = await platform.wait_for("progress.updated", "u-restart", count=2)
    assert progress[1]["data"]["position"] == 2
    await platform.wait_for("challenge.assigned", "u-restart", count=3)
    await asyncio.sleep(1.0)  # anything republished after the restart would show up here
    assert len(platform.events("progress.updated", "u-restart")) == 2
    assert len(platform.events("challenge.assigned", "u-restart")) == 3


async def test_every_output_is_a_valid_cloudevent_whose_msg_id_is_its_id(platform: Platform, system: System) -> None:
    await platform.enrol("u-envelope")
    await platform.wait_for("challenge.assigned", "u-envelope")
    await platform.attempt("u-envelope")
    await platform.wait_for("challenge.assigned", "u-envelope", count=2)

    stored = await platform.stream_messages(f"{system.prefix.upper()}_OUT", f"{system.prefix}.>")
    assert len(stored) >= 3
    for msg in stored:
        event = CloudEvent.model_validate_json(msg.data)
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event.id
        assert msg.headers["Content-Type"] == "application/cloudevents+json"
        family, name, model = OUTPUT_TYPES[event.type]
        assert msg.subject == f"{system.prefix}.{family}.{name}.{event.subject}"
        model.model_validate(event.data)


@pytest.mark.sqlite_only
async def test_a_locked_store_is_retried_and_the_attempt_is_not_lost(platform: Platform, system: System) -> None:
    await platform.enrol("u-locked")
    await platform.wait_for("challenge.assigned", "u-locked")

    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(system.data_dir / "tracker.db", timeout=10, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(20)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    await platform.attempt("u-locked")
    await asyncio.sleep(7.0)  # longer than the store's lock timeout: the first commit fails
    assert platform.events("progress.updated", "u-locked") == []
    release.set()
    holder.join()

    [progress] = await platform.wait_for("progress.updated", "u-locked", timeout=30)
    assert progress["data"]["position"] == 1
    assert system.tracker is not None
    metrics = httpx.get(f"{system.tracker.base_url}/metrics").text
    assert "stepout_dead_letters_total" not in metrics or 'reason="retries_exhausted"' not in metrics
    assert "batch not committed, will retry" in system.logs()
    dead = await platform.stream_messages(f"{system.prefix.upper()}_DLQ", f"{system.prefix}.deadletter.>")
    assert dead == []


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_startup_log_says_where_each_part_listens(system: System) -> None:
    ready = [line for line in _json_lines(system.logs()) if str(line.get("message", "")).endswith("ready")]
    assert {line["service"] for line in ready} == {"planner", "tracker"}
    assert all(str(line["http"]).startswith("http://127.0.0.1:") for line in ready)
