"""The queries a coaching console asks over real NATS (CONTRACT §6): the escalations, the plan's
pause reason and active warning, and each service's audit of its own store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepout_contract.outputs import PlanView
from stepout_contract.queries import AuditReply, ErrorReply, EscalationsReply
from stepout_domain.ruleset import CURRENT_VERSION
from support import Platform, System, tamper_event


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def stepout(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line, run with the system's settings."""
    assert system.tracker is not None
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env=system.tracker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def answer(platform: Platform, user: str, n_assigned: int, **fields: Any) -> dict[str, Any]:
    """Wait for the n-th assignment, then log an attempt at it."""
    assigned = (await platform.wait_for("challenge.assigned", user, count=n_assigned))[n_assigned - 1]["data"]
    return await platform.attempt(
        user, assignment_id=assigned["assignment_id"], challenge_id=assigned["challenge_id"], level=None, **fields
    )


async def report_crisis(platform: Platform, user: str) -> dict[str, Any]:
    """An attempt at the first assignment reporting a crisis; the attempt, once the plan paused for it."""
    attempt = await answer(
        platform, user, 1, crisis_reported=True, suds_before=50, suds_peak=80, suds_after=70, occurred_at=ago(hours=1)
    )
    await platform.wait_for("plan.paused", user)
    return attempt


async def two_hostile_rejections(platform: Platform, user: str, first_assignment: int = 1) -> list[dict[str, Any]]:
    """Two hostile rejections within a week: a high warning, and a 48-hour pause."""
    attempts = []
    for n, hours in ((first_assignment, 30), (first_assignment + 1, 2)):
        attempts.append(
            await answer(
                platform,
                user,
                n,
                outcome="hostile",
                suds_before=40,
                suds_peak=70,
                suds_after=50,
                occurred_at=ago(hours=hours),
            )
        )
    await platform.wait_for("plan.paused", user)
    return attempts


async def ask_until(
    platform: Platform, name: str, request: dict[str, Any], done: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    """Ask the query until its reply is `done` (the planner reads the tracker's outputs asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await platform.query(name, request)
        if done(reply) or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


async def ask_raw(platform: Platform, name: str, body: bytes) -> dict[str, Any]:
    reply = await platform.nc.request(f"{platform.prefix}.query.{name}", body, timeout=5)
    return json.loads(reply.data)  # type: ignore[no-any-return]


def error_code(reply: dict[str, Any]) -> str:
    return ErrorReply.model_validate(reply).error.code


def as_shown(warning: dict[str, Any]) -> dict[str, Any]:
    """A published warning as the planner shows it: everything but the participant."""
    return {k: v for k, v in warning.items() if k != "user_id"}


async def test_escalations_list_active_warnings_most_severe_first_until_a_review_clears_them(
    platform: Platform,
) -> None:
    crisis, calm, high = "u-crisis", "u-calm", "u-high"
    await platform.enrol(crisis, coach_id="c-a", starting_level=3)
    await platform.enrol(calm, coach_id="c-a")
    await platform.enrol(high, coach_id="c-b", starting_level=5)
    reported = await report_crisis(platform, crisis)
    await two_hostile_rejections(platform, high)
    [crisis_warning] = await platform.wait_for("overload.warning", crisis)
    [high_warning] = await platform.wait_for("overload.warning", high)
    assert platform.events("overload.warning", calm) == []

    everyone = await ask_until(platform, "escalations", {}, lambda r: r.get("total") == 2)
    assert [e.user_id for e in EscalationsReply.model_validate(everyone).escalations] == [crisis, high]
    assert everyone["total"] == 2

    coach_a = await platform.query("escalations", {"coach_id": "c-a"})
    EscalationsReply.model_validate(coach_a)
    assert coach_a["total"] == 1
    [listed] = coach_a["escalations"]
    assert listed == everyone["escalations"][0]
    assert listed["user_id"] == crisis and listed["coach_id"] == "c-a"
    assert listed["status"] == "paused" and listed["pause_reason"] == "crisis" and listed["paused_until"] is None
    shown = listed["warning"]
    assert shown["warning_id"] == crisis_warning["data"]["warning_id"]
    assert shown["severity"] == "crisis" and shown["escalate"] is True
    assert shown["rules"] and "crisis_reported" in [r["rule"] for r in shown["rules"]]
    assert shown["evidence"] == [reported["attempt_id"]]
    assert shown["ruleset_version"] == CURRENT_VERSION
    assert shown == as_shown(crisis_warning["data"])

    coach_b = await platform.query("escalations", {"coach_id": "c-b"})
    assert coach_b["total"] == 1 and coach_b["escalations"] == everyone["escalations"][1:]
    [paused_high] = coach_b["escalations"]
    assert paused_high["status"] == "paused" and paused_high["pause_reason"] == "overload"
    assert paused_high["paused_until"] is not None
    assert paused_high["warning"] == as_shown(high_warning["data"])
    assert paused_high["warning"]["severity"] == "high" and paused_high["warning"]["escalate"] is True

    first_only = await platform.query("escalations", {"limit": 1})
    assert first_only == {"escalations": everyone["escalations"][:1], "total": 2}
    assert await platform.query("escalations", {"coach_id": "c-nobody"}) == {"escalations": [], "total": 0}

    await platform.publish("participant.reviewed", crisis, {"user_id": crisis, "coach_id": "c-a"})
    [cleared] = await platform.wait_for("overload.cleared", crisis)
    assert cleared["data"]["by"] == "review"
    after = await ask_until(platform, "escalations", {"coach_id": "c-a"}, lambda r: r.get("total") == 0)
    assert after == {"escalations": [], "total": 0}
    assert await platform.query("escalations", {}) == {"escalations": everyone["escalations"][1:], "total": 1}

    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "5"}, {"coach_id": ""}, {"coach_id": "c" * 65}):
        assert error_code(await platform.query("escalations", bad)) == "invalid_request", bad
    for body in (b"not json", b"[]"):
        assert error_code(await ask_raw(platform, "escalations", body)) == "invalid_request", body


async def test_the_plan_shows_its_coach_its_pause_reason_and_the_warning_it_responds_to(
    platform: Platform,
) -> None:
    user = "u-plan"
    await platform.enrol(user, coach_id="c-plan", starting_level=3)
    await platform.wait_for("challenge.assigned", user)
    before = PlanView.model_validate(await platform.query("plan", {"user_id": user}))
    assert before.coach_id == "c-plan" and before.pause_reason is None and before.active_warning is None

    reported = await report_crisis(platform, user)
    [warning] = await platform.wait_for("overload.warning", user)
    plan = await platform.query("plan", {"user_id": user})
    PlanView.model_validate(plan)
    assert plan["status"] == "paused" and plan["pause_reason"] == "crisis" and plan["paused_until"] is None
    assert plan["coach_id"] == "c-plan"
    active = plan["active_warning"]
    assert active == as_shown(warning["data"])
    assert active["severity"] == "crisis" and active["escalate"] is True and active["rules"]
    assert active["evidence"] == [reported["attempt_id"]] and active["ruleset_version"] == CURRENT_VERSION

    await platform.publish("participant.reviewed", user, {"user_id": user, "coach_id": "c-plan"})
    await platform.wait_for("overload.cleared", user)
    await platform.wait_for("challenge.assigned", user, count=2)
    resumed = await ask_until(platform, "plan", {"user_id": user}, lambda r: r.get("active_warning") is None)
    assert resumed["status"] == "active" and resumed["pause_reason"] is None and resumed["active_warning"] is None
    assert resumed["coach_id"] == "c-plan"


async def test_each_service_audits_its_own_store_and_together_they_are_the_replay(
    platform: Platform, system: System
) -> None:
    user = "u-audited"
    await platform.enrol(user, coach_id="c-audit", starting_level=5)
    [first_assignment] = await platform.wait_for("challenge.assigned", user)
    await asyncio.sleep(0.2)  # the tracker stores the enrolment too
    before_first = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await answer(platform, user, 1, suds_before=30, suds_peak=50, suds_after=20, occurred_at=ago(hours=40))
    await two_hostile_rejections(platform, user, first_assignment=2)
    await platform.wait_for("progress.updated", user, count=3)
    [warning] = await platform.wait_for("overload.warning", user)
    assigned = await platform.wait_for("challenge.assigned", user, count=4)
    assert assigned[-1]["data"]["reason"] == "resume"
    await asyncio.sleep(0.3)  # the last decisions stored and published
    now = datetime.now(UTC)

    tracker = await platform.query("audit", {"user_id": user, "as_of": now.isoformat()})
    planner = await platform.query("audit-planner", {"user_id": user, "as_of": now.isoformat()})
    for reply, service in ((tracker, "tracker"), (planner, "planner")):
        AuditReply.model_validate(reply)
        assert reply["service"] == service and reply["user_id"] == user
        assert reply["chain"] == {"holds": True, "broken_at_version": None, "reason": None}
        assert reply["unreadable"] is None and reply["erased"] is False
        assert reply["stored_events"] > 0 and reply["decisions_total"] == len(reply["decisions"])
        assert all(d["ruleset_version"] == CURRENT_VERSION for d in reply["decisions"])

    assert tracker["progress"]["position"] == 3 and AuditReply.model_validate(tracker).plan is None
    assert tracker["inputs"] == 3  # the attempts; the planner recorded the enrolment
    assert tracker["active_warning"] == warning["data"]
    assert [d["kind"] for d in tracker["decisions"]] == ["warning"]
    assert [d["id"] for d in tracker["decisions"]] == [warning["id"]]

    shown = AuditReply.model_validate(planner)
    assert shown.progress is None and shown.active_warning is None and planner["inputs"] == 1
    assert planner["plan"]["status"] == "paused" and planner["plan"]["pause_reason"] == "overload"
    assert planner["plan"]["active_warning"] == {"warning_id": warning["data"]["warning_id"], "severity": "high"}
    kinds = [d["kind"] for d in planner["decisions"]]
    assert kinds.count("assignment") == 4 and "pause" in kinds
    published = {e["id"] for kind in ("challenge.assigned", "plan.paused") for e in platform.events(kind, user)}
    assert {d["id"] for d in planner["decisions"]} == published

    latest = await platform.query("audit-planner", {"user_id": user, "as_of": now.isoformat(), "limit": 1})
    assert latest["decisions"] == planner["decisions"][-1:] and latest["decisions_total"] == planner["decisions_total"]
    unasked = await platform.query("audit", {"user_id": user})  # as of now
    assert unasked["progress"] == tracker["progress"] and unasked["decisions"] == tracker["decisions"]

    tracker_then = await platform.query("audit", {"user_id": user, "as_of": before_first.isoformat()})
    planner_then = await platform.query("audit-planner", {"user_id": user, "as_of": before_first.isoformat()})
    AuditReply.model_validate(tracker_then)
    AuditReply.model_validate(planner_then)
    assert tracker_then["chain"]["holds"] is True and planner_then["chain"]["holds"] is True
    assert tracker_then["progress"] is None and tracker_then["active_warning"] is None
    assert tracker_then["decisions"] == [] and tracker_then["decisions_total"] == 0
    assert [d["id"] for d in planner_then["decisions"]] == [first_assignment["id"]]
    assert planner_then["plan"]["status"] == "active" and planner_then["plan"]["active_warning"] is None
    assert planner_then["plan"]["open_assignment"] == first_assignment["data"]

    for name in ("audit", "audit-planner"):
        assert error_code(await platform.query(name, {"user_id": "u-nobody"})) == "not_found"
        for bad in (
            {},
            {"user_id": user, "limit": 0},
            {"user_id": user, "as_of": "2026-01-01T00:00:00"},  # no offset
            {"user_id": user, "as_of": "yesterday"},
        ):
            assert error_code(await platform.query(name, bad)) == "invalid_request", (name, bad)
        assert error_code(await ask_raw(platform, name, b"not json")) == "invalid_request"

    system.stop()
    for at, (of_tracker, of_planner) in ((now, (tracker, planner)), (before_first, (tracker_then, planner_then))):
        replayed = stepout(system, "replay", "--user", user, "--as-of", at.isoformat(), "--json")
        assert replayed.returncode == 0, replayed.stderr
        state = json.loads(replayed.stdout)
        assert state["as_of"] == of_tracker["as_of"] == of_planner["as_of"]
        assert state["progress"] == of_tracker["progress"]
        assert state["active_warning"] == of_tracker["active_warning"]
        assert state["plan"] == of_planner["plan"]
        assert state["stored_events"] == of_tracker["stored_events"] + of_planner["stored_events"]
        assert state["inputs"] == of_tracker["inputs"] + of_planner["inputs"]
        both = {d["id"]: d for d in of_tracker["decisions"] + of_planner["decisions"]}
        assert len(both) == len(of_tracker["decisions"]) + len(of_planner["decisions"])
        assert len({d["id"] for d in state["decisions"]}) == len(state["decisions"])
        assert {d["id"]: d for d in state["decisions"]} == both


@pytest.mark.sqlite_only
async def test_a_changed_tracker_event_breaks_the_tracker_chain_only(platform: Platform, system: System) -> None:
    user = "u-changed"
    await platform.enrol(user)
    await answer(platform, user, 1, suds_peak=50)
    await platform.wait_for("progress.updated", user)
    await platform.wait_for("challenge.assigned", user, count=2)
    system.stop()

    version = tamper_event(system, "tracker", user, "Decided", b'"suds_peak":50', b'"suds_peak":40')
    system.start()
    tracker = await platform.query("audit", {"user_id": user})
    planner = await platform.query("audit-planner", {"user_id": user})
    AuditReply.model_validate(tracker)
    AuditReply.model_validate(planner)
    assert tracker["chain"]["holds"] is False
    assert tracker["chain"]["broken_at_version"] == version and tracker["chain"]["reason"]
    assert planner["chain"] == {"holds": True, "broken_at_version": None, "reason": None}
    assert planner["plan"]["status"] == "active"
