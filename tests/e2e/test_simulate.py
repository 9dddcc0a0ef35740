"""`stepout simulate` against a real running system: a small cohort, its episodes, and its determinism."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest

from stepout_contract.settings import Settings
from stepout_simulate import run_simulation, simulate
from support import NatsServer, System, new_prefix

SUMMARY_KEYS = {
    "participants", "days", "seed", "personas", "attempts", "attempts_by_outcome", "assignments_by_reason",
    "warnings", "escalations", "participants_escalated", "clearings", "pauses_by_reason", "reviews_sent",
    "dead_letters", "stalls", "stalled", "episodes", "steady_warned", "planner_clock_lead", "wall_seconds",
    "attempts_per_second",
}  # fmt: skip


def settings_of(system: System) -> Settings:
    assert system.planner is not None
    # The system's own STEPOUT_* environment, and nothing from the environment of the test run.
    env = system.planner.env
    return Settings.model_validate(
        {k.removeprefix("STEPOUT_").lower(): v for k, v in env.items() if k.startswith("STEPOUT_")}
    )


def by_participant(published: list[tuple[str, str, str, str | None]]) -> dict[str, list[tuple[str, str, str | None]]]:
    """Each participant's inputs in the order it published them (participants run concurrently)."""
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    for kind, user, event_id, attempt_id in published:
        found.setdefault(user, []).append((kind, event_id, attempt_id))
    return found


async def test_a_small_cohort_is_driven_through_and_its_injected_episodes_are_caught(
    system: System, nats_server: NatsServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = await run_simulation(settings_of(system), 12, 6, 7, now=now)

    summary = first.summary
    assert set(summary) == SUMMARY_KEYS
    assert summary["stalls"] == 0, summary["stalled"]
    assert summary["dead_letters"] == {"total": 0, "by_reason": {}, "by_service": {}, "unexpected": {}}
    assert summary["assignments_by_reason"]["start"] == 12
    users = {user for kind, user, _, _ in first.published if kind == "participant.enrolled"}
    attempted = {user for kind, user, _, _ in first.published if kind == "attempt.logged"}
    assert len(users) == 12 and attempted == users  # every participant was assigned something and did it
    assert sum(row["participants"] for row in summary["personas"].values()) == 12
    assert summary["attempts"] == sum(1 for kind, *_ in first.published if kind == "attempt.logged")

    episodes = summary["episodes"]
    assert episodes["injected"] >= 3
    assert set(episodes["by_rule"]) <= {"rejection_streak", "hostile_rejections", "crisis_reported"}
    assert episodes["caught"] == episodes["injected"], episodes["missed"]
    rules = summary["warnings"]["by_rule"]
    for rule, row in episodes["by_rule"].items():
        assert rules.get(rule, 0) >= row["injected"]
    if "crisis_reported" in episodes["by_rule"]:
        assert summary["pauses_by_reason"].get("crisis", 0) >= 1
        assert summary["reviews_sent"] >= 1

    # The same seed against a second, fresh system publishes the same inputs with the same ids.
    other = System(nats_server.url, tmp_path / "other")  # on SQLite: what is published does not depend on the store
    other.data_dir.mkdir()
    other.start()
    try:
        second = await run_simulation(settings_of(other), 12, 6, 7, now=now)
    finally:
        other.stop()
    assert by_participant(second.published) == by_participant(first.published)
    assert second.summary["episodes"] == summary["episodes"]


def test_a_system_that_does_not_answer_exits_1_with_one_line(
    nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.model_validate({"nats_url": nats_server.url, "subject_prefix": new_prefix()})
    assert simulate(settings, 3, 2, 1) == 1
    err = capsys.readouterr().err
    assert err.startswith("stepout simulate: ") and err.count("\n") == 1


def test_a_dead_letter_no_persona_sends_on_purpose_fails_the_run_and_is_split_by_reason_and_service(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the cohort runs, its first participant's attempt arrives garbled (as a faulty gateway would
    send it): the tracker dead-letters it, the summary says by whom and why, and the command exits 1."""
    settings = settings_of(system)
    seed = 11

    async def garble() -> None:
        await asyncio.sleep(1.0)  # the run has subscribed and enrolled its first participant
        nc = await nats.connect(settings.nats_url)
        await nc.jetstream().publish(f"{system.prefix}.attempt.logged.sim{seed}-00000", b"{not json")
        await nc.close()

    injector = threading.Thread(target=asyncio.run, args=(garble(),))
    injector.start()
    code = simulate(settings, 4, 3, seed, as_json=True)
    injector.join()

    out, err = capsys.readouterr()
    letters = json.loads(out)["dead_letters"]
    assert letters == {
        "total": 1,
        "by_reason": {"invalid_json": 1},
        "by_service": {"tracker": {"invalid_json": 1}},
        "unexpected": {"invalid_json": 1},
    }
    assert code == 1
    assert (
        err.splitlines()[-1]
        == "stepout simulate: stepout refused 1 valid input(s) as dead letters (tracker invalid_json 1)"
    )
