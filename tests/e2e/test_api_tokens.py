"""The HTTP `/v1/` routes need a bearer token of STEPOUT_API_TOKENS (CONTRACT §7); health,
readiness and metrics do not; with no token set, one is made on first start and kept 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from support import (
    AUDITOR_TOKEN,
    PLATFORM_TOKEN,
    NatsServer,
    Platform,
    ServiceProcess,
    System,
    declare_topology,
    new_prefix,
    service_env,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_v1_routes_answer_only_to_a_known_bearer_token(platform: Platform, system: System) -> None:
    await platform.enrol("u-auth")
    await platform.wait_for("challenge.assigned", "u-auth")
    assert system.tracker is not None and system.planner is not None
    plan = f"{system.planner.base_url}/v1/participants/u-auth/plan"
    async with httpx.AsyncClient() as http:
        refused = await http.get(plan)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "unauthorized" and "u-auth" not in refused.text
        assert (await http.get(plan, headers=bearer(PLATFORM_TOKEN + "x"))).status_code == 401
        assert (await http.get(plan, headers={"Authorization": PLATFORM_TOKEN})).status_code == 401
        # A stranger and an unknown route are refused alike before anything is looked up.
        assert (await http.get(f"{system.tracker.base_url}/v1/participants/nobody/progress")).status_code == 401
        for token in (PLATFORM_TOKEN, AUDITOR_TOKEN):
            assert (await http.get(plan, headers=bearer(token))).json()["user_id"] == "u-auth"
        for service in (system.planner, system.tracker):
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await http.get(f"{service.base_url}{path}")).status_code == 200, path


def test_without_tokens_set_one_is_made_on_first_start_owner_readable_only(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = service_env(nats_server.url, tmp_path, new_prefix(), STEPOUT_STORE="sqlite", STEPOUT_API_TOKENS="")
    declare_topology(env)
    tracker = ServiceProcess("tracker", env, tmp_path / "tracker.log")
    tracker.start()
    try:
        made = tmp_path / "api-tokens"
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
        role, _, token = made.read_text().strip().partition(":")
        assert role == "platform" and len(token) >= 32
        assert str(made) in tracker.log_path.read_text() and token not in tracker.log_path.read_text()
        progress = f"{tracker.base_url}/v1/participants/nobody/progress"
        assert httpx.get(progress).status_code == 401
        assert httpx.get(progress, headers=bearer(token)).status_code == 404
    finally:
        tracker.stop()
    # The next start keeps the token it made.
    tracker.start()
    try:
        assert (tmp_path / "api-tokens").read_text().strip() == f"{role}:{token}"
    finally:
        tracker.stop()
