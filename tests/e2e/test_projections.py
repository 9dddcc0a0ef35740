"""Read models are exactly a rebuild from the event stores, and `--verify` names any difference."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import Platform, System, tamper_view


def stepout(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    assert system.tracker is not None
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", *args],
        env=system.tracker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.sqlite_only
async def test_rebuild_verify_passes_then_names_a_tampered_participant(platform: Platform, system: System) -> None:
    for user in ("u-a", "u-b"):
        await platform.enrol(user)
        await platform.wait_for("challenge.assigned", user)
        await platform.attempt(user)
        await platform.wait_for("challenge.assigned", user, count=2)
    system.stop()

    verified = stepout(system, "projections", "rebuild", "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified" in verified.stdout

    tamper_view(system, "tracker", "progress", "u-b", {"position": 7})
    tampered = stepout(system, "projections", "rebuild", "--verify")
    assert tampered.returncode == 1
    assert "u-b" in tampered.stdout and "tracker" in tampered.stdout

    rebuilt = stepout(system, "projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert stepout(system, "projections", "rebuild", "--verify").returncode == 0
    system.start()
    assert (await platform.query("progress", {"user_id": "u-b"}))["position"] == 1
