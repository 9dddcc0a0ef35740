"""The console in a real headless Chromium (Debian's, driven by Playwright) against a real system:
nats-server, planner, tracker and console as processes. Screenshots of every page are written to
SCREENSHOTS (var/screenshots/console under the checkout) on every run."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepout_console.accounts import hash_password
from support import ROOT, Platform, System, free_port

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("STEPOUT_SCREENSHOTS_DIR", ROOT / "var" / "screenshots" / "console"))
PASSWORDS = {"coach-a": "coach-a-password", "coach-b": "coach-b-password", "auditor": "auditor-password"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.async_api")


def _browser_or_skip() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("STEPOUT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"STEPOUT_REQUIRE_BROWSER=1 and no {CHROMIUM}: run `make browser`")
    pytest.skip(f"no {CHROMIUM} (`make browser` installs Debian's chromium)")


@pytest.fixture
def console(system: System, tmp_path: Path) -> Iterator[str]:
    """`stepout run console` beside the system, with a coach of c-a, a coach of c-b and an auditor."""
    _browser_or_skip()
    assert system.tracker is not None
    users = ",".join(
        f"{name}:{role}:{coach}:{hash_password(PASSWORDS[name])}"
        for name, role, coach in (("coach-a", "coach", "c-a"), ("coach-b", "coach", "c-b"), ("auditor", "auditor", ""))
    )
    port = free_port()
    env = {**system.tracker.env, "STEPOUT_CONSOLE_PORT": str(port), "STEPOUT_CONSOLE_USERS": users}
    log = (tmp_path / "console.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "stepout_cli.main", "run", "console"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"console did not start:\n{(tmp_path / 'console.log').read_text()}")
        time.sleep(0.1)
    yield base
    process.terminate()
    assert process.wait(timeout=15) == 0


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def signed_in(browser: Any, base: str, name: str, width: int = 1280) -> Any:
    context = await browser.new_context(base_url=base, viewport={"width": width, "height": 900})
    page = await context.new_page()
    await page.goto("/")
    assert "/signin" in page.url
    await shot(page, "signin")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORDS[name])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/")
    return page


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def crisis(platform: Platform, user_id: str, attempts: int) -> None:
    """`attempts` ordinary attempts, then one reporting a crisis: a crisis warning, the plan paused."""
    for n in range(attempts):
        await platform.attempt(user_id, suds_before=20 + n, suds_peak=40 + 5 * n, suds_after=15, predicted_suds=50)
    await platform.attempt(user_id, outcome="rejected", suds_peak=90, suds_after=60, crisis_reported=True)
    await platform.wait_for("overload.warning", user_id)
    await platform.wait_for("plan.paused", user_id)


async def escalated(platform: Platform, user_id: str, present: bool = True) -> None:
    """Wait until the planner's escalations list `user_id` (or no longer does)."""
    for _ in range(100):
        listed = await platform.query("escalations", {})
        if any(row["user_id"] == user_id for row in listed["escalations"]) == present:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{user_id} escalated: expected {present}")


async def test_a_coach_acts_on_an_escalation_and_an_auditor_reads(
    console: str, browser: Any, platform: Platform, system: System, tmp_path: Path
) -> None:
    await platform.enrol("u-a1", coach_id="c-a")
    await platform.enrol("u-b1", coach_id="c-b")
    await platform.enrol("u-a2", coach_id="c-a")
    for user_id in ("u-a1", "u-b1", "u-a2"):
        await platform.wait_for("challenge.assigned", user_id)
    await crisis(platform, "u-a1", attempts=4)
    await crisis(platform, "u-b1", attempts=1)
    await escalated(platform, "u-a1")
    await escalated(platform, "u-b1")

    # A coach sees their escalated participant, and not another coach's.
    page = await signed_in(browser, console, "coach-a")
    rows = page.locator("#escalation-rows tr[data-user]")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-user") == "u-a1"
    assert "crisis" in (await rows.first.inner_text()).lower()
    await shot(page, "escalations-coach")

    # Another coach's participant is not found, exactly like an unknown one.
    other = await page.goto("/participants/u-b1")
    unknown_page = await page.context.new_page()
    unknown = await unknown_page.goto(f"{console}/participants/nobody-at-all")
    assert other.status == unknown.status == 404
    await shot(page, "participant-of-another-coach-404")
    await unknown_page.close()

    # The escalations list updates by itself when a warning is raised.
    await page.goto("/")
    await page.wait_for_function("document.querySelector('[sse-connect]') && window.htmx")
    await asyncio.sleep(0.5)  # the event source connects
    await crisis(platform, "u-a2", attempts=0)
    await page.locator("#escalation-rows tr[data-user='u-a2']").wait_for(timeout=20_000)

    # The participant's chart has one point per attempt.
    await page.goto("/participants/u-a1")
    await page.wait_for_function("window.Chart && Chart.getChart('suds-chart')")
    points = await page.evaluate("Chart.getChart('suds-chart').data.datasets[0].data.length")
    assert points == 5
    assert await page.locator("#attempts-table tbody tr").count() == 5
    timeline = await page.locator("#timeline").inner_text()
    assert "WARNING" in timeline.upper() and "rule set" in timeline and "crisis reported" in timeline
    assert "crisis_reported" in timeline  # the warning's rules, as `stepout replay` names them
    await shot(page, "participant-before-review")

    # Mark reviewed: one review however often it is pressed, the crisis cleared, the next assignment.
    review_id = await page.locator("input[name=review_id]").get_attribute("value")
    csrf = await page.locator("form.review input[name=csrf]").get_attribute("value")
    assigned_before = len(platform.events("challenge.assigned", "u-a1"))
    cleared_before = platform.events("overload.cleared", "u-a1")
    await page.get_by_role("button", name="Mark reviewed").click()
    await page.wait_for_url(re.compile(r".*/participants/u-a1\?reviewed=1$"))
    again = await page.request.post(
        f"{console}/participants/u-a1/review", form={"csrf": csrf, "review_id": review_id}, max_redirects=0
    )
    assert again.status == 303  # the same review id: accepted, and the same review
    cleared = await platform.wait_for("overload.cleared", "u-a1", count=len(cleared_before) + 1)
    assert [c["data"]["by"] for c in cleared[len(cleared_before) :]] == ["review"]
    await platform.wait_for("challenge.assigned", "u-a1", count=assigned_before + 1)
    for _ in range(50):
        await page.goto("/participants/u-a1")
        if (await page.locator("#plan-status").inner_text()).startswith("active"):
            break
        await asyncio.sleep(0.2)
    assert (await page.locator("#plan-status").inner_text()).startswith("active")
    assert await page.locator("#active-warning").inner_text() == "None."
    assert await page.locator("#open-assignment").inner_text() != "none"
    assert "REVIEW" in (await page.locator("#timeline").inner_text()).upper()
    history = await platform.history("u-a1")
    reviews = [e for e in history["events"] if e["type"] == "stepout.participant.reviewed.v1"]
    assert [r["id"] for r in reviews] == [review_id]
    await shot(page, "participant-after-review")

    # A forged form (no token of this session) changes nothing.
    forged = await page.request.post(
        f"{console}/participants/u-a1/review", form={"csrf": "not-it", "review_id": review_id}, max_redirects=0
    )
    assert forged.status == 403

    # Readable at 375 px: nothing wider than the screen.
    narrow = await signed_in(browser, console, "coach-a", width=375)
    await narrow.goto("/participants/u-a1")
    assert await narrow.evaluate("document.documentElement.scrollWidth") <= 375
    await shot(narrow, "participant-375px")

    # An auditor reads everyone, cannot review, and downloads the export the command line writes.
    auditor = await signed_in(browser, console, "auditor")
    listed = {await r.get_attribute("data-user") for r in await auditor.locator("#escalation-rows tr[data-user]").all()}
    assert {"u-b1", "u-a2"} <= listed and "u-a1" not in listed
    await shot(auditor, "escalations-auditor")
    await auditor.goto("/participants/u-b1")
    assert await auditor.get_by_role("button", name="Mark reviewed").count() == 0
    token = await auditor.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    refused = await auditor.request.post(
        f"{console}/participants/u-b1/review", form={"csrf": token, "review_id": review_id}, max_redirects=0
    )
    assert refused.status == 403
    await auditor.goto("/participants/u-a1/audit")
    assert "chain holds" in await auditor.locator("#chain-tracker").inner_text()
    assert "chain holds" in await auditor.locator("#chain-planner").inner_text()
    await shot(auditor, "audit-now")
    async with auditor.expect_download() as download_info:
        await auditor.get_by_role("link", name=re.compile("Download the audit export")).click()
    download = await download_info.value
    downloaded = tmp_path / "console-export.jsonl"
    await download.save_as(str(downloaded))
    from_cli = tmp_path / "cli-export.jsonl"
    env = {**system.tracker.env} if system.tracker else {}
    done = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "audit", "export", "--user", "u-a1", "--out", str(from_cli)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert downloaded.read_bytes() == from_cli.read_bytes()

    # As of the moment the review was sent: the plan still paused for the crisis.
    before = reviews[0]["time"]
    await auditor.goto(f"/participants/u-a1/audit?as_of={before[:19]}")
    assert "paused (crisis)" in await auditor.locator("#asof-plan").inner_text()
    await shot(auditor, "audit-as-of")


async def test_signed_out_requests_are_refused(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as http:
        assert (await http.get("/healthz")).status_code == 200
        for path in ("/", "/participants/u-1", "/participants/u-1/audit", "/participants/u-1/audit/export.jsonl"):
            answer = await http.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/signin"), path
        assert (await http.get("/escalations/rows")).status_code == 401
        assert (await http.get("/escalations/events")).status_code == 401
        refused = await http.post("/participants/u-1/review", data={"review_id": "x", "csrf": "x"})
        assert refused.status_code == 401
        wrong = await http.post("/signin", data={"name": "coach-a", "password": "not the password"})
        assert wrong.status_code == 401 and "stepout_console" not in wrong.headers.get("set-cookie", "")
        signed = await http.post("/signin", data={"name": "coach-a", "password": PASSWORDS["coach-a"]})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        page = await http.get("/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
