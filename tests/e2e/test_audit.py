"""Audit and replay (CONTRACT §10): hash-chained exports, replay as of a time, decisions re-derived
with the rule set recorded on them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stepout_domain.ruleset import CURRENT_VERSION, SHIPPED_DIR
from support import Platform, System, tamper_event

NOTE = "the-barista-smirked-7f3a"
RULESET_2026_2 = SHIPPED_DIR / "2026.2.json"


def stepout(system: System, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert system.tracker is not None
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env={**system.tracker.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def answer(platform: Platform, user: str, n_assigned: int, **fields: Any) -> dict[str, Any]:
    """Wait for the n-th assignment, then log an attempt at it."""
    assigned = (await platform.wait_for("challenge.assigned", user, count=n_assigned))[n_assigned - 1]["data"]
    return await platform.attempt(
        user, assignment_id=assigned["assignment_id"], challenge_id=assigned["challenge_id"], level=None, **fields
    )


async def five_rejections_in_a_day(platform: Platform, user: str) -> None:
    """Under 2026.1 the fifth raises a caution; under 2026.2 the fourth already would."""
    await platform.enrol(user, starting_level=4)
    for i in range(5):
        await answer(
            platform,
            user,
            i + 1,
            suds_before=30,
            suds_peak=60 - 4 * i,
            suds_after=40,
            occurred_at=ago(hours=10 - i),
            note=NOTE,
        )
        await platform.wait_for("progress.updated", user, count=i + 1)
    await platform.wait_for("overload.warning", user)
    await platform.wait_for("challenge.assigned", user, count=6)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tamper(system: System, user: str, topic_end: str, old: bytes, new: bytes) -> int:
    """Change the first stored tracker event of `user` whose topic ends with `topic_end`; its version."""
    return tamper_event(system, "tracker", user, topic_end, old, new)


async def test_the_history_query_and_the_export_are_one_trail(
    platform: Platform, system: System, tmp_path: Path
) -> None:
    """The history an integrator pages through and the export an auditor verifies are the same
    events in the same order: one merged trail of both services, each input once."""
    user = "u-one-trail"
    await five_rejections_in_a_day(platform, user)
    await platform.wait_for("challenge.assigned", user, count=6)
    queried = await platform.history(user, page=4)  # several pages, each cut between the services
    assert "error" not in queried, queried
    system.stop()

    out = tmp_path / "trail.jsonl"
    exported = stepout(system, "audit", "export", "--user", user, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    chained = ("stepoutseq", "stepouthash")
    lines = [{k: v for k, v in e.items() if k not in chained} for e in lines_of(out)]
    assert [e["id"] for e in queried["events"]] == [e["id"] for e in lines]
    assert queried["events"] == lines


async def test_export_is_deterministic_and_verify_names_the_changed_line(
    platform: Platform, system: System, tmp_path: Path
) -> None:
    user = "u-audit"
    await five_rejections_in_a_day(platform, user)
    system.stop()

    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    for out in (first, second):
        exported = stepout(system, "audit", "export", "--user", user, "--out", str(out))
        assert exported.returncode == 0, exported.stdout + exported.stderr
    assert first.read_bytes() == second.read_bytes()
    assert NOTE not in first.read_text(encoding="utf-8") and "sealed_note" not in first.read_text(encoding="utf-8")

    events = lines_of(first)
    assert [e["stepoutseq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)  # each input once, though both services stored it
    types = Counter(e["type"].removeprefix("stepout.").removesuffix(".v1") for e in events)
    assert types == {
        "participant.enrolled": 1,
        "attempt.logged": 5,
        "progress.updated": 5,
        "overload.warning": 1,
        "challenge.assigned": 6,
    }
    assert events[0]["type"] == "stepout.participant.enrolled.v1"  # a cause before its decisions

    verified = stepout(system, "audit", "verify", str(first))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{len(events)} lines" in verified.stdout and events[-1]["stepouthash"] in verified.stdout

    text = first.read_text(encoding="utf-8").splitlines(keepends=True)
    target = next(i for i, e in enumerate(events) if e["type"] == "stepout.attempt.logged.v1")
    assert '"suds_before":30' in text[target]
    text[target] = text[target].replace('"suds_before":30', '"suds_before":31')  # one character
    first.write_text("".join(text), encoding="utf-8")
    broken = stepout(system, "audit", "verify", str(first))
    assert broken.returncode == 1
    assert f"line {target + 1} " in broken.stdout, broken.stdout

    assert stepout(system, "audit", "verify", str(tmp_path / "missing.jsonl")).returncode == 2
    assert stepout(system, "audit", "verify").returncode == 2


@pytest.mark.sqlite_only
async def test_export_refuses_a_changed_tracker_store_and_names_the_version(
    platform: Platform, system: System, tmp_path: Path
) -> None:
    user = "u-changed"
    await platform.enrol(user)
    await answer(platform, user, 1, suds_peak=50)
    await platform.wait_for("challenge.assigned", user, count=2)
    system.stop()

    version = tamper(system, user, "Decided", b'"suds_peak":50', b'"suds_peak":40')
    out = tmp_path / "export.jsonl"
    refused = stepout(system, "audit", "export", "--user", user, "--out", str(out))
    assert refused.returncode == 1
    assert "tracker" in refused.stdout and f"version {version}" in refused.stdout and user in refused.stdout
    assert not out.exists()

    unknown = stepout(system, "audit", "export", "--user", "u-nobody", "--out", str(out))
    assert unknown.returncode == 1 and "u-nobody" in unknown.stderr


async def test_replay_as_of_a_time_between_two_attempts_shows_the_first(platform: Platform, system: System) -> None:
    user = "u-replay"
    await platform.enrol(user)
    await answer(platform, user, 1)
    await platform.wait_for("progress.updated", user)
    await platform.wait_for("challenge.assigned", user, count=2)
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await answer(platform, user, 2)
    await platform.wait_for("progress.updated", user, count=2)
    await platform.wait_for("challenge.assigned", user, count=3)
    system.stop()

    then = stepout(system, "replay", "--user", user, "--as-of", between.isoformat(), "--json")
    assert then.returncode == 0, then.stderr
    state = json.loads(then.stdout)
    assert state["progress"]["position"] == 1
    assert state["plan"]["status"] == "active" and state["plan"]["open_assignment"] is not None
    assert [d["kind"] for d in state["decisions"]] == ["assignment", "assignment"]
    assert all(d["ruleset_version"] == CURRENT_VERSION for d in state["decisions"])

    now = stepout(system, "replay", "--user", user, "--json")
    assert json.loads(now.stdout)["progress"]["position"] == 2

    text = stepout(system, "replay", "--user", user, "--as-of", between.isoformat())
    assert text.returncode == 0 and "position 1" in text.stdout and "replayed" in text.stdout

    assert stepout(system, "replay", "--user", "u-nobody").returncode == 1
    assert stepout(system, "replay", "--user", user, "--as-of", "yesterday").returncode == 2
    assert stepout(system, "replay", "--user", user, "--as-of", "2026-11-26T20:15:00").returncode == 2


@pytest.mark.sqlite_only
async def test_decisions_rederive_with_their_recorded_rule_sets_and_name_a_tampered_one(
    platform: Platform, system: System
) -> None:
    user = "u-rules"
    await five_rejections_in_a_day(platform, user)
    system.stop()

    # The rule set in force is now 2026.2, under which the fourth rejection would have raised
    # a warning: the audit must judge each decision by the version stamped on it.
    audited = stepout(system, "audit", "decisions", "--user", user, STEPOUT_RULESET=str(RULESET_2026_2))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert CURRENT_VERSION in audited.stdout and "warnings 1" in audited.stdout and "assignments 6" in audited.stdout

    # Decisions made after the change are stamped 2026.2 and re-derived with it: two peaks of 82
    # are high distress under 2026.2 (80) but not under the base thresholds (85), so the new warning
    # supersedes the old.
    assert system.tracker is not None
    system.tracker.env["STEPOUT_RULESET"] = str(RULESET_2026_2)  # the planner shares the same environment
    system.start()
    for n, hours in ((6, 4), (7, 3)):
        await answer(
            platform,
            user,
            n,
            outcome="accepted",
            suds_before=40,
            suds_peak=82,
            suds_after=30,
            occurred_at=ago(hours=hours),
        )
        await platform.wait_for("progress.updated", user, count=n)
    [raised] = (await platform.wait_for("overload.warning", user, count=2))[1:]
    assert [r["rule"] for r in raised["data"]["rules"]] == ["high_distress"]
    assert raised["data"]["ruleset_version"] == "2026.2"
    await platform.wait_for("overload.cleared", user)
    await platform.wait_for("challenge.assigned", user, count=8)
    system.stop()
    mixed = stepout(system, "audit", "decisions", "--user", user)
    assert mixed.returncode == 0, mixed.stdout + mixed.stderr
    assert f"2026.2, {CURRENT_VERSION}" in mixed.stdout
    assert "warnings 2" in mixed.stdout and "clearings 1" in mixed.stdout

    version = tamper(system, user, "Decided", b'"escalate":false', b'"escalate":true')
    tampered = stepout(system, "audit", "decisions", "--user", user)
    assert tampered.returncode == 1
    assert f"mismatch: tracker store, participant {user}, event version {version}" in tampered.stdout
    assert "escalate" in tampered.stdout
    assert f"chain broken: tracker store, participant {user}, event version {version}" in tampered.stdout


async def test_export_after_erasure_still_verifies_and_keeps_the_counts(
    platform: Platform, system: System, tmp_path: Path
) -> None:
    user = "u-erased"
    await platform.enrol(user)
    await answer(platform, user, 1, note=NOTE)
    await answer(platform, user, 2, note=NOTE)
    await platform.wait_for("progress.updated", user, count=2)
    # The planner assigns the third challenge after the second completion; the withdrawal must come after it.
    await platform.wait_for("challenge.assigned", user, count=3)
    await platform.publish("participant.withdrawn", user, {"user_id": user, "erase": True})
    await platform.wait_for("plan.paused", user)
    await asyncio.sleep(0.5)  # the erasure runs in the tracker's outbox, after the commit
    system.stop()

    out = tmp_path / "erased.jsonl"
    exported = stepout(system, "audit", "export", "--user", user, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert stepout(system, "audit", "verify", str(out)).returncode == 0
    events = lines_of(out)
    # What erasure leaves: one record per service, with the counts, kinds and rule ids; nothing personal.
    assert [e["type"] for e in events] == ["stepout.participant.erased.v1"] * 2
    summaries = {e["source"]: e["data"]["summary"] for e in events}
    tracker = summaries["urn:stepout:tracker"]
    assert tracker["position"] == 2 and tracker["completed"] == 2 and tracker["attempts"]["rejected"] == 2
    assert summaries["urn:stepout:planner"]["ChallengeAssigned"] == 3
    assert NOTE not in out.read_text(encoding="utf-8") and "suds" not in out.read_text(encoding="utf-8")
    decided = stepout(system, "audit", "decisions", "--user", user)
    assert decided.returncode == 0 and "was erased" in decided.stdout, decided.stdout
