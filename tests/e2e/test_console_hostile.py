"""The console attacked as a health-data web app, over plain HTTP against a real system: nats-server,
planner, tracker and console as processes (one system and one console for the module, SQLite: the
console only speaks the public contract, whatever the store).

What a platform controls and the console renders (coach ids, challenge ids, reviews' coach ids),
what a visitor controls (paths, `next=`, `as_of`, `coach`, the search box), who may see and change
what, forged forms, the same review twice, services that stop answering, sessions (signed out
everywhere, idle, changed accounts), sign-in guessing, the live views' caps, oversized and slow
requests (to the planner's and tracker's HTTP too), the headers and cookies, and notes and user ids,
which no page, file or log line may show. A check that fails on a known defect is marked
`xfail(strict=True)` with the defect in its reason: it turns into a failure once the defect is fixed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import itsdangerous
import pytest

from stepout_console.accounts import hash_password
from stepout_console.live_views import PER_ACCOUNT
from stepout_console.live_views import TOTAL as LIVE_VIEWS_TOTAL
from stepout_console.sessions import COOKIE_SALT
from stepout_runtime.http import BODY_TIMEOUT_S, HEAD_TIMEOUT_S
from support import NatsServer, Platform, System, free_port

PASSWORDS = {"coach-a": "coach-a-password", "coach-b": "coach-b-password", "auditor": "auditor-password"}
ACCOUNTS = (("coach-a", "coach", "c-a"), ("coach-b", "coach", "c-b"), ("auditor", "auditor", ""))
SECRET = "hostile-console-session-secret-0123456789"
# One hash per account, made once: a console started again with the same entry keeps its sessions.
HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}
XSS = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>"  # 56 characters: a valid coach_id
RAW_MARKUP = ("<script>alert(1)", "<img src=x", "onerror=alert(2)>")
NOTE_MARKER = "NOTE-MARKER-7f3a91 my therapist said"
REVIEWED = "stepout.participant.reviewed.v1"


def users(*names: str) -> str:
    return ",".join(f"{name}:{role}:{coach}:{HASHES[name]}" for name, role, coach in ACCOUNTS if name in names)


def many_coaches(count: int) -> tuple[list[str], str]:
    """`count` coach accounts (coach-000 ...), all with coach-a's password: their names and entries."""
    names = [f"coach-{n:03d}" for n in range(count)]
    return names, ",".join(f"{name}:coach:c-{name}:{HASHES['coach-a']}" for name in names)


@dataclass
class ConsoleProcess:
    """`stepout run console` beside the system, on a port of its own."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code, None when it had to be killed."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            return None

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def cpu_s(self) -> float:
        """The CPU seconds the console has used (user and system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime, stime: in clock ticks (100 a second)


def start_console(system: System, log: Path, accounts: str, **settings: str) -> ConsoleProcess:
    assert system.tracker is not None
    port = free_port()
    env = {
        **system.tracker.env,
        "STEPOUT_CONSOLE_PORT": str(port),
        "STEPOUT_CONSOLE_USERS": accounts,
        "STEPOUT_CONSOLE_SECRET": SECRET,
        **settings,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepout_cli.main", "run", "console"], env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return ConsoleProcess(base, process, log)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"console did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def hostile_system(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(
        nats_server.url, tmp_path_factory.mktemp("hostile") / "data", overrides={"STEPOUT_STORE": "sqlite"}
    )
    running.data_dir.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def console(hostile_system: System) -> Iterator[ConsoleProcess]:
    """The console of the module: coach-a (coach c-a), coach-b (coach c-b) and an auditor."""
    started = start_console(hostile_system, hostile_system.data_dir / "console.log", users(*PASSWORDS))
    yield started
    assert started.stop() == 0, started.log.read_text()[-3000:]


@pytest.fixture
def private_console(hostile_system: System, tmp_path: Path) -> Iterator[ConsoleProcess]:
    """A console of the test's own, for what may leave a console broken; killed if SIGTERM does not stop it."""
    started = start_console(hostile_system, tmp_path / "console.log", users("coach-a"))
    yield started
    started.stop(grace=2.0)


@pytest.fixture
async def platform(hostile_system: System, nats_server: NatsServer) -> AsyncIterator[Platform]:
    client = await Platform.connect(nats_server.url, hostile_system.prefix)
    yield client
    await client.close()


def new_user(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


async def signed_in(base: str, name: str, password: str | None = None) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    answer = await client.post("/signin", data={"name": name, "password": password or PASSWORDS[name]})
    assert answer.status_code == 303, answer.text
    return client


async def session_cookies(base: str, names: list[str]) -> list[str]:
    """A session of each of `names` (coach-a's password), a few signing in at a time: an attempt is
    held as a failure of its address until it succeeds, and one address has ten free."""
    few = asyncio.Semaphore(4)

    async def one(name: str) -> str:
        async with few:
            client = await signed_in(base, name, PASSWORDS["coach-a"])
        cookie = client.cookies["stepout_console"]
        await client.aclose()
        return cookie

    return list(await asyncio.gather(*(one(name) for name in names)))


def from_address(base: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches the console)."""
    return httpx.AsyncClient(base_url=base, timeout=30, transport=httpx.AsyncHTTPTransport(local_address=address))


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def review_id_of(page: str) -> str:
    return re.search(r'name="review_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


async def enrolled(platform: Platform, user_id: str, coach_id: str | None) -> None:
    await platform.enrol(user_id, **({"coach_id": coach_id} if coach_id is not None else {}))
    await platform.wait_for("challenge.assigned", user_id)


async def crisis(platform: Platform, user_id: str, **fields: Any) -> None:
    """An attempt reporting a crisis: a crisis warning, the plan paused, the planner listing it."""
    await platform.attempt(user_id, suds_peak=90, suds_after=60, crisis_reported=True, **fields)
    await platform.wait_for("plan.paused", user_id)
    for _ in range(100):
        listed = await platform.query("escalations", {})
        if any(row["user_id"] == user_id for row in listed["escalations"]):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{user_id} not escalated")


async def reviews_of(platform: Platform, user_id: str) -> list[str]:
    history = await platform.history(user_id)
    return [e["id"] for e in history["events"] if e["type"] == REVIEWED]


def assert_no_raw_markup(answer: httpx.Response) -> None:
    for raw in RAW_MARKUP:
        assert raw not in answer.text, f"{answer.request.url}: {raw!r} rendered unescaped"


# Access ---------------------------------------------------------------------------------------------


async def test_every_route_but_health_and_static_needs_a_session(console: ConsoleProcess) -> None:
    async with httpx.AsyncClient(base_url=console.base) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/static/console.css")).status_code == 200
        for path in (
            "/",
            "/?coach=c-a",
            "/participants?user_id=u-1",
            "/participants/u-1",
            "/participants/u-1/audit",
            "/participants/u-1/audit?as_of=2026-01-01T00:00:00Z",
            "/participants/u-1/audit/export.jsonl",
        ):
            answer = await anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/signin?next=/"), path
        for path in ("/escalations/rows", "/escalations/events"):
            assert (await anonymous.get(path)).status_code == 401, path
        for path in ("/participants/u-1/review", "/signout"):
            answer = await anonymous.post(path, data={"review_id": str(uuid.uuid4()), "csrf": "x"})
            assert answer.status_code == 401, path
        for escape in ("/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2f%2e%2e/pyproject.toml"):
            assert (await anonymous.get(escape)).status_code == 404, escape


async def test_tampered_or_foreign_session_cookies_are_signed_out(console: ConsoleProcess) -> None:
    coach = await signed_in(console.base, "coach-a")
    cookie = coach.cookies["stepout_console"]
    await coach.aclose()
    session_id, signature = cookie.rsplit(".", 1)
    as_auditor = base64.b64encode(json.dumps({"name": "auditor", "role": "auditor", "csrf": "x"}).encode())
    role_swapped = base64.b64encode(json.dumps({"name": "coach-a", "role": "auditor", "csrf": "x"}).encode())
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]  # the last character may hold only padding bits
    forged = {
        "signature changed": f"{session_id}.{flipped}",
        "id changed, signature kept": f"{secrets.token_urlsafe(32)}.{signature}",
        "payload swapped, signature kept": f"{as_auditor.decode()}.{signature}",
        "signed with another secret": itsdangerous.TimestampSigner("another-secret-" * 3).sign(as_auditor).decode(),
        "not signed": as_auditor.decode(),
        # Signed with the console's own secret, but the role is not the account's: signed out all the same.
        "role not the account's": itsdangerous.TimestampSigner(SECRET).sign(role_swapped).decode(),
        "not a cookie": "%%%;;",
        # A session id signed as the console signs them, but never given out: no session on the server.
        "an id never given out": itsdangerous.Signer(SECRET, salt=COOKIE_SALT, digest_method=hashlib.sha256)
        .sign(secrets.token_urlsafe(32))
        .decode(),
    }
    for what, value in forged.items():
        async with httpx.AsyncClient(base_url=console.base, cookies={"stepout_console": value}) as client:
            page = await client.get("/participants/u-1/audit")
            assert page.status_code == 303 and page.headers["location"].startswith("/signin"), what
            assert (await client.get("/escalations/rows")).status_code == 401, what


async def test_sign_in_redirects_only_within_the_console(console: ConsoleProcess) -> None:
    hostile_targets = [
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "https://evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        " //evil.example",
        "///evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/%09/evil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/%0d%0aSet-Cookie:x=1",
        '/"><script>alert(1)</script>',
    ]
    console_host = urlsplit(console.base).netloc
    for target in hostile_targets:
        async with httpx.AsyncClient(base_url=console.base) as client:
            form = await client.get("/signin", params={"next": target})
            assert form.status_code == 200
            assert "<script>alert(1)" not in form.text
            answer = await client.post(
                "/signin", data={"name": "coach-a", "password": PASSWORDS["coach-a"], "next": target}
            )
            assert answer.status_code == 303, target
            location = answer.headers["location"]
            assert location.startswith("/") and not location.startswith("//") and "\\" not in location, target
            assert not any(c in location for c in "\t\r\n "), target
            assert urlsplit(urljoin(console.base + "/", location)).netloc == console_host, target
    # A page asked for before signing in is where sign-in leads.
    async with httpx.AsyncClient(base_url=console.base) as client:
        asked = await client.get("/participants/u-1/audit")
        form = await client.get(asked.headers["location"])
        target = re.search(r'name="next" value="([^"]*)"', form.text).group(1)  # type: ignore[union-attr]
        answer = await client.post(
            "/signin", data={"name": "auditor", "password": PASSWORDS["auditor"], "next": target}
        )
        assert answer.headers["location"] == "/participants/u-1/audit"


async def test_another_coachs_participant_is_exactly_an_unknown_one(
    console: ConsoleProcess, platform: Platform
) -> None:
    theirs = new_user("hb")
    await enrolled(platform, theirs, "c-b")
    await crisis(platform, theirs)
    nobody = "n" + theirs[1:]  # as long as theirs: the pages differ in nothing else
    coach = await signed_in(console.base, "coach-a")
    token = csrf_of((await coach.get("/")).text)
    for suffix in ("", "/audit", "/audit?as_of=2026-01-01T00:00:00Z", "/audit/export.jsonl"):
        other = await coach.get(f"/participants/{theirs}{suffix}")
        unknown = await coach.get(f"/participants/{nobody}{suffix}")
        assert other.status_code == unknown.status_code == 404, suffix
        assert other.headers["content-type"] == unknown.headers["content-type"], suffix
        assert other.text.replace(theirs, "X") == unknown.text.replace(nobody, "X"), suffix
    for user_id in (theirs, nobody):
        answer = await coach.post(
            f"/participants/{user_id}/review", data={"csrf": token, "review_id": str(uuid.uuid4())}
        )
        assert answer.status_code == 404, user_id
    # The search box leads to the same 404.
    found = await coach.get("/participants", params={"user_id": theirs}, follow_redirects=True)
    assert found.status_code == 404
    # A coach's escalations are their own, whatever `coach` the address asks for.
    for path in ("/", "/escalations/rows"):
        listed = await coach.get(path, params={"coach": "c-b"})
        assert listed.status_code == 200 and theirs not in listed.text, path
    await coach.aclose()
    assert await reviews_of(platform, theirs) == []
    auditor = await signed_in(console.base, "auditor")
    assert theirs in (await auditor.get("/", params={"coach": "c-b"})).text
    await auditor.aclose()


async def test_an_auditor_changes_nothing(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("ha")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    auditor = await signed_in(console.base, "auditor")
    page = await auditor.get(f"/participants/{user_id}")
    assert page.status_code == 200 and 'id="mark-reviewed"' not in page.text
    token = csrf_of(page.text)
    for target in (user_id, "nobody-at-all"):
        answer = await auditor.post(
            f"/participants/{target}/review", data={"csrf": token, "review_id": str(uuid.uuid4())}
        )
        assert answer.status_code == 403, target
    await auditor.aclose()
    assert await reviews_of(platform, user_id) == []


async def test_accounts_removed_or_changed_are_signed_out_after_a_restart(
    console: ConsoleProcess, hostile_system: System, tmp_path: Path
) -> None:
    sessions = {}
    for name in PASSWORDS:
        client = await signed_in(console.base, name)
        sessions[name] = client.cookies["stepout_console"]
        await client.aclose()
    # Started again (same secret, same data directory): coach-b removed, coach-a's password changed
    # (another hash, whatever the password), the auditor's entry as it was.
    changed = f"coach-a:coach:c-a:{hash_password(PASSWORDS['coach-a'])},{users('auditor')}"
    again = start_console(hostile_system, tmp_path / "console.log", changed)
    try:
        for name, expected in (("coach-b", 401), ("coach-a", 401), ("auditor", 200)):
            async with httpx.AsyncClient(base_url=again.base, cookies={"stepout_console": sessions[name]}) as client:
                assert (await client.get("/escalations/rows")).status_code == expected, name
                page = await client.get("/")
                assert page.status_code == (200 if expected == 200 else 303), name
    finally:
        assert again.stop() == 0


# Injection ------------------------------------------------------------------------------------------


async def test_what_a_platform_sends_is_shown_as_text(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hx")
    await enrolled(platform, user_id, XSS)
    await crisis(platform, user_id, challenge_id=f"<b>self</b>{XSS[:30]}", level=3, note=NOTE_MARKER)
    # A resume during the crisis pause: a notice, with its detail, in the timeline.
    await platform.publish("participant.resumed", user_id, {"user_id": user_id})
    await platform.wait_for("plan.notice", user_id)
    auditor = await signed_in(console.base, "auditor")
    for path, params in (("/", {"coach": XSS}), ("/escalations/rows", {"coach": XSS}), ("/", {})):
        listed = await auditor.get(path, params=params)
        assert listed.status_code == 200
        assert f'data-user="{user_id}"' in listed.text, path
        assert_no_raw_markup(listed)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed.text
    # The filter goes back to the server URL-encoded, never as markup or another parameter.
    filtered = (await auditor.get("/", params={"coach": XSS})).text
    hx_get = re.search(r'hx-get="([^"]*)"', filtered).group(1)  # type: ignore[union-attr]
    assert hx_get.startswith("/escalations/rows?coach=%3Cscript%3E") and "&" not in hx_get.replace("&amp;", "")
    # A review by a coach id of the platform's choosing: in the timeline, as text.
    await platform.publish("participant.reviewed", user_id, {"user_id": user_id, "coach_id": XSS})
    await platform.wait_for("overload.cleared", user_id)
    for _ in range(50):
        page = await auditor.get(f"/participants/{user_id}")
        if "reviewed by coach" in page.text:
            break
        await asyncio.sleep(0.1)
    assert page.status_code == 200
    assert_no_raw_markup(page)
    assert "reviewed by coach &lt;script&gt;" in page.text
    assert "crisis_pause:" in page.text  # the notice's reason and detail
    audit = await auditor.get(f"/participants/{user_id}/audit")
    assert audit.status_code == 200
    assert_no_raw_markup(audit)
    export = await auditor.get(f"/participants/{user_id}/audit/export.jsonl")
    assert export.status_code == 200
    # The export holds the values as sent (it is the audit file), as a download never rendered.
    assert export.headers["content-type"].startswith("application/jsonl")
    assert export.headers["content-disposition"] == f'attachment; filename="{user_id}-audit.jsonl"'
    assert export.headers["x-content-type-options"] == "nosniff"
    await auditor.aclose()


async def test_what_a_visitor_types_is_shown_as_text(console: ConsoleProcess) -> None:
    coach = await signed_in(console.base, "coach-a")
    auditor = await signed_in(console.base, "auditor")
    answers = [
        await coach.get("/participants", params={"user_id": XSS}),
        await coach.get("/participants", params={"user_id": "a" * 70 + XSS}),
        await coach.get("/participants/%3Csvg%20onload=alert(1)%3E"),
        await coach.get("/participants/%3Cscript%3Ealert(1)%3C%2Fscript%3E/audit"),
        await coach.get("/participants/u-1/audit", params={"as_of": XSS}),
        await auditor.get("/", params={"coach": XSS}),
        await auditor.get("/escalations/rows", params={"coach": XSS}),
    ]
    for answer in answers:
        assert answer.status_code in (200, 400, 404), answer.request.url
        assert_no_raw_markup(answer)
        assert "<svg onload" not in answer.text
    assert answers[0].status_code == answers[1].status_code == answers[2].status_code == 404
    assert answers[4].status_code == 400 and "as_of is not a time" in answers[4].text
    await coach.aclose()
    await auditor.aclose()


async def test_a_user_id_at_the_limit(console: ConsoleProcess, platform: Platform) -> None:
    user_id = ("L" * 64 + new_user(""))[-64:].replace("-", "_")
    assert len(user_id) == 64
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    coach = await signed_in(console.base, "coach-a")
    assert f'data-user="{user_id}"' in (await coach.get("/")).text
    for suffix, heading in (("", f"Participant {user_id}"), ("/audit", f"Audit of {user_id}")):
        page = await coach.get(f"/participants/{user_id}{suffix}")
        assert page.status_code == 200 and heading in page.text, suffix
    export = await coach.get(f"/participants/{user_id}/audit/export.jsonl")
    assert export.status_code == 200
    assert export.headers["content-disposition"] == f'attachment; filename="{user_id}-audit.jsonl"'
    found = await coach.get("/participants", params={"user_id": f"  {user_id} "})
    assert found.headers["location"] == f"/participants/{user_id}"
    assert (await coach.get(f"/participants/{user_id}x")).status_code == 404
    assert (await coach.get("/participants", params={"user_id": user_id + "x"})).status_code == 404
    await coach.aclose()


# Forms ----------------------------------------------------------------------------------------------


async def test_forged_review_forms_change_nothing(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hf")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    coach = await signed_in(console.base, "coach-a")
    other_session = await signed_in(console.base, "coach-a")
    page = (await coach.get(f"/participants/{user_id}")).text
    token, theirs, review_id = csrf_of(page), csrf_of((await other_session.get("/")).text), review_id_of(page)
    path = f"/participants/{user_id}/review"
    forged = [
        await coach.post(path, data={"review_id": review_id}),
        await coach.post(path, data={"review_id": review_id, "csrf": ""}),
        await coach.post(path, data={"review_id": review_id, "csrf": theirs}),
        await coach.post(
            path, data={"review_id": review_id, "csrf": token}, headers={"origin": "https://evil.example"}
        ),
        await coach.post(path, data={"review_id": review_id, "csrf": token}, headers={"origin": "null"}),
        await coach.post(
            path, data={"review_id": review_id, "csrf": token}, headers={"origin": console.base + ".evil"}
        ),
        await coach.post(path, json={"review_id": review_id, "csrf": token}),
    ]
    assert [a.status_code for a in forged] == [403] * len(forged)
    assert (await coach.post("/signout", data={"csrf": theirs})).status_code == 403
    await asyncio.sleep(0.5)
    assert await reviews_of(platform, user_id) == []
    # The genuine form, from this console's own origin, is accepted.
    sent = await coach.post(path, data={"review_id": review_id, "csrf": token}, headers={"origin": console.base})
    assert sent.status_code == 303
    await platform.wait_for("overload.cleared", user_id)
    await coach.aclose()
    await other_session.aclose()


async def test_the_same_review_sent_again_is_one_review(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hr")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    coach = await signed_in(console.base, "coach-a")
    page = (await coach.get(f"/participants/{user_id}")).text
    token, review_id = csrf_of(page), review_id_of(page)
    path = f"/participants/{user_id}/review"
    for malformed in ("", "x", "not-a-uuid", review_id + "0", "1" * 32 + "zz", "../../x"):
        answer = await coach.post(path, data={"csrf": token, "review_id": malformed})
        assert answer.status_code == 400, malformed
    # A double click, and the same id written otherwise: one review, with the form's id.
    for written in (review_id, review_id, review_id.upper(), "{" + review_id + "}", f"urn:uuid:{review_id}"):
        answer = await coach.post(path, data={"csrf": token, "review_id": written})
        assert answer.status_code == 303 and answer.headers["location"] == f"/participants/{user_id}?reviewed=1"
    await platform.wait_for("overload.cleared", user_id)
    await asyncio.sleep(1.0)  # any second one would be recorded by now
    assert await reviews_of(platform, user_id) == [review_id]
    assert [c["data"]["by"] for c in platform.events("overload.cleared", user_id)] == ["review"]
    await coach.aclose()


async def test_an_erased_participant_is_gone_for_their_coach_and_readable_for_an_auditor(
    console: ConsoleProcess, platform: Platform
) -> None:
    user_id = new_user("he")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id, note=NOTE_MARKER)
    coach = await signed_in(console.base, "coach-a")
    page = (await coach.get(f"/participants/{user_id}")).text
    token = csrf_of(page)
    # Reviewed and exported first: the console's log has lines about this participant.
    sent = await coach.post(f"/participants/{user_id}/review", data={"csrf": token, "review_id": review_id_of(page)})
    assert sent.status_code == 303
    await platform.wait_for("overload.cleared", user_id)
    assert (await coach.get(f"/participants/{user_id}/audit/export.jsonl")).status_code == 200
    await platform.publish("participant.withdrawn", user_id, {"user_id": user_id, "erase": True})
    for _ in range(100):
        if (await platform.query("plan", {"user_id": user_id})).get("erased"):
            break
        await asyncio.sleep(0.1)
    for suffix in ("", "/audit", "/audit/export.jsonl"):
        assert (await coach.get(f"/participants/{user_id}{suffix}")).status_code == 404, suffix
    answer = await coach.post(f"/participants/{user_id}/review", data={"csrf": token, "review_id": str(uuid.uuid4())})
    assert answer.status_code == 404
    auditor = await signed_in(console.base, "auditor")
    for suffix in ("", "/audit", "/audit/export.jsonl"):
        read = await auditor.get(f"/participants/{user_id}{suffix}")
        assert read.status_code == 200, suffix
        assert NOTE_MARKER not in read.text
    assert "erased" in (await auditor.get(f"/participants/{user_id}/audit")).text
    await coach.aclose()
    await auditor.aclose()
    # Nothing in the console's log names them: the review is logged by its id.
    logged = console.log.read_text()
    assert "console review sent" in logged and "console audit export" in logged
    assert user_id not in logged


async def test_a_review_of_a_withdrawn_participant_is_not_claimed_sent(
    console: ConsoleProcess, platform: Platform
) -> None:
    user_id = new_user("hw")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    await platform.publish("participant.withdrawn", user_id, {"user_id": user_id})
    await platform.wait_for("plan.paused", user_id, count=2)
    coach = await signed_in(console.base, "coach-a")
    page = await coach.get(f"/participants/{user_id}")
    assert page.status_code == 200 and "withdrawn" in page.text
    answer = await coach.post(
        f"/participants/{user_id}/review", data={"csrf": csrf_of(page.text), "review_id": str(uuid.uuid4())}
    )
    assert answer.status_code < 500
    told = (await coach.get(answer.headers["location"])).text if answer.status_code == 303 else answer.text
    await coach.aclose()
    assert "Review sent" not in told, "the console says the review was sent; the planner dead-letters it"


async def test_sign_in_from_another_site_is_refused(console: ConsoleProcess) -> None:
    async with httpx.AsyncClient(base_url=console.base) as client:
        answer = await client.post(
            "/signin",
            data={"name": "coach-b", "password": PASSWORDS["coach-b"]},
            headers={"origin": "https://evil.example"},
        )
        assert answer.status_code == 403
        assert "stepout_console=" not in answer.headers.get("set-cookie", "")


# Sessions -------------------------------------------------------------------------------------------


async def test_signing_out_ends_the_session(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hq")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    coach = await signed_in(console.base, "coach-a")
    cookie = coach.cookies["stepout_console"]
    page = (await coach.get(f"/participants/{user_id}")).text
    token, review_id = csrf_of(page), review_id_of(page)
    live = await open_live_views(console.base, [cookie], together=False)
    assert live.served == 1
    assert (await coach.post("/signout", data={"csrf": token})).status_code == 303
    await coach.aclose()
    # A copy of the cookie taken before: nothing read, nothing sent, and its live view ended at once.
    async with httpx.AsyncClient(base_url=console.base, cookies={"stepout_console": cookie}) as replayed:
        assert (await replayed.get("/escalations/rows")).status_code == 401
        assert (await replayed.get(f"/participants/{user_id}")).status_code == 303
        sent = await replayed.post(f"/participants/{user_id}/review", data={"csrf": token, "review_id": review_id})
        assert sent.status_code == 401
    _, lines = live.opened[0]
    rest = await asyncio.wait_for(_drained(lines), 5)
    assert "event: changed" not in rest
    await live.close_together()
    await asyncio.sleep(0.5)
    assert await reviews_of(platform, user_id) == []


async def _drained(lines: Any) -> str:
    return "".join([text async for text in lines])


async def test_a_session_left_idle_is_ended(hostile_system: System, tmp_path: Path) -> None:
    idle_s = 3.0
    quick = start_console(
        hostile_system, tmp_path / "console.log", users("coach-a"), STEPOUT_CONSOLE_IDLE_MINUTES=str(idle_s / 60)
    )
    try:
        coach = await signed_in(quick.base, "coach-a")
        await asyncio.sleep(idle_s - 1.0)
        assert (await coach.get("/")).status_code == 200  # used: the idle time starts again
        await asyncio.sleep(1.5)
        assert (await coach.get("/escalations/rows")).status_code == 200  # past idle_s since sign-in, not since use
        await asyncio.sleep(idle_s)  # what the page asks by itself is no use
        assert (await coach.get("/escalations/rows")).status_code == 401
        assert (await coach.get("/")).status_code == 303
        await coach.aclose()
    finally:
        assert quick.stop() == 0


async def test_a_stranger_guessing_cannot_lock_the_coach_out(console: ConsoleProcess) -> None:
    stranger = from_address(console.base, "127.0.0.2")
    answers = []
    for n in range(12):
        answer = await stranger.post("/signin", data={"name": "coach-b", "password": f"guess-{n}"})
        answers.append(answer.status_code)
    assert answers[:3] == [401, 401, 401] and set(answers[3:]) == {429}, answers
    held = await stranger.post("/signin", data={"name": "coach-b", "password": PASSWORDS["coach-b"]})
    assert held.status_code == 429 and "retry-after" in held.headers  # from there, even the right one waits
    await stranger.aclose()
    # The coach, from their own desk, while the stranger is held back.
    coach = from_address(console.base, "127.0.0.3")
    signed = await coach.post("/signin", data={"name": "coach-b", "password": PASSWORDS["coach-b"]})
    assert signed.status_code == 303
    assert (await coach.get("/")).status_code == 200
    await coach.aclose()


async def test_sign_in_attempts_do_not_make_the_console_hold_their_names(console: ConsoleProcess) -> None:
    before = console.rss_mib()
    async with httpx.AsyncClient(base_url=console.base, timeout=60) as client:
        for n in range(6):
            answer = await client.post("/signin", data={"name": f"{n}" + "n" * 10_000_000, "password": "x"})
            assert answer.status_code == 413
    await asyncio.sleep(0.5)
    assert console.rss_mib() - before < 30, f"the console grew by {console.rss_mib() - before:.0f} MiB"


# Oversized and slow requests ------------------------------------------------------------------------


async def test_forms_larger_than_a_few_kib_are_refused_before_they_are_parsed(
    console: ConsoleProcess, platform: Platform
) -> None:
    user_id = new_user("hz")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    coach = await signed_in(console.base, "coach-a")
    page = (await coach.get(f"/participants/{user_id}")).text
    token, review_id = csrf_of(page), review_id_of(page)
    cpu_before = console.cpu_s()
    async with httpx.AsyncClient(base_url=console.base, timeout=60) as anonymous:
        big = await anonymous.post("/signin", data={"name": "coach-a", "password": "p" * 9000})
        assert big.status_code == 413
        # What took 17 s of CPU to parse: 128 MiB of fields.
        huge = await anonymous.post(
            "/signin",
            content=b"a=b&" * (32 * 1024 * 1024),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413
    padded = await coach.post(
        f"/participants/{user_id}/review", data={"csrf": token, "review_id": review_id, "pad": "x" * 9000}
    )
    assert padded.status_code == 413
    assert console.cpu_s() - cpu_before < 5.0, f"{console.cpu_s() - cpu_before:.1f} s of CPU"
    await asyncio.sleep(0.5)
    assert await reviews_of(platform, user_id) == []
    # The form as the page sends it still goes.
    sent = await coach.post(f"/participants/{user_id}/review", data={"csrf": token, "review_id": review_id})
    assert sent.status_code == 303
    await coach.aclose()


async def _cut_off_after(host: str, port: int, opening: bytes) -> tuple[float, bytes]:
    """Send `opening`, then one byte a second, until the server closes: the seconds that took, and
    what it answered."""
    reader, writer = await asyncio.open_connection(host, port)
    began, said = time.monotonic(), b""
    writer.write(opening)

    async def read_all() -> None:
        nonlocal said
        try:
            while chunk := await reader.read(4096):
                said += chunk
        except ConnectionError:
            pass  # reset: a byte sent as the server closed was never read

    reading = asyncio.create_task(read_all())
    try:
        while not reading.done() and time.monotonic() - began < 60:
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(1.0)
        await asyncio.wait_for(reading, 5)
    except ConnectionError:
        pass
    finally:
        writer.close()
        reading.cancel()
    return time.monotonic() - began, said


async def test_clients_sending_slowly_are_cut_off_by_every_http_server(
    console: ConsoleProcess, hostile_system: System
) -> None:
    assert hostile_system.planner is not None and hostile_system.tracker is not None
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
    body = b"POST /signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    body += b"Content-Length: 1000\r\n\r\nname=coach-a&password="
    slow = {
        "console, its head": (console.base, head, HEAD_TIMEOUT_S),
        "console, its body": (console.base, body, BODY_TIMEOUT_S),
        "planner": (hostile_system.planner.base_url, head, HEAD_TIMEOUT_S),
        "tracker": (hostile_system.tracker.base_url, head, HEAD_TIMEOUT_S),
        "console, saying nothing": (console.base, b"", HEAD_TIMEOUT_S),
    }
    took = await asyncio.gather(
        *(
            _cut_off_after(urlsplit(base).hostname or "", urlsplit(base).port or 0, opening)
            for base, opening, _ in slow.values()
        )
    )
    for (what, (_, _, bound)), (seconds, said) in zip(slow.items(), took, strict=True):
        assert seconds < bound + 3, f"{what}: still connected after {seconds:.0f} s"
        # A 408, or nothing when the last byte sent arrived as the server closed (a reset then).
        assert said == b"" or said.startswith(b"HTTP/1.1 408"), (what, said[:80])
    # Meanwhile and after, everyone else is answered.
    async with httpx.AsyncClient(base_url=console.base) as client:
        assert (await client.get("/healthz")).status_code == 200


# Pages and headers ----------------------------------------------------------------------------------


async def test_security_headers_cookie_and_no_inline_code(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hh")
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    async with httpx.AsyncClient(base_url=console.base) as client:
        signin = await client.get("/signin")
        signed = await client.post("/signin", data={"name": "coach-a", "password": PASSWORDS["coach-a"]})
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie
        # On loopback (this console's 127.0.0.1) plain http keeps working: no Secure, no HSTS.
        assert "secure" not in cookie and "strict-transport-security" not in signed.headers
        answers = [
            signin,
            signed,
            await client.get("/"),
            await client.get("/escalations/rows"),
            await client.get(f"/participants/{user_id}"),
            await client.get(f"/participants/{user_id}/audit"),
            await client.get(f"/participants/{user_id}/audit/export.jsonl"),
            await client.get("/participants/nobody-at-all"),
            await client.get("/participants/u-1/audit", params={"as_of": "nonsense"}),
            await client.get("/participants", params={"user_id": user_id}),
        ]
        for answer in answers:
            where = f"{answer.request.method} {answer.request.url.path}"
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp, where
            assert answer.headers["cache-control"] == "no-store", where
            assert answer.headers["x-content-type-options"] == "nosniff", where
            assert answer.headers["x-frame-options"] == "DENY", where
            if answer.headers.get("content-type", "").startswith("text/html"):
                html = answer.text
                scripts = re.findall(r"<script\b([^>]*)>", html)
                assert all("src=" in s or 'type="application/json"' in s for s in scripts), where
                assert not re.search(r"\son[a-z]+\s*=", html), where  # no inline event handlers
                assert not re.search(r"\sstyle\s*=", html), where  # no inline styles
                assert "javascript:" not in html, where
        static = await client.get("/static/console.js")
        assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
        events = client.stream("GET", "/escalations/events")
        async with events as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-store"
            async for chunk in stream.aiter_text():
                assert chunk.startswith("retry:")
                break


@pytest.mark.parametrize(
    ("settings", "secure"),
    [
        ({"STEPOUT_HTTP_HOST": "0.0.0.0"}, True),
        ({"STEPOUT_CONSOLE_SECURE_COOKIES": "true"}, True),
        ({"STEPOUT_HTTP_HOST": "0.0.0.0", "STEPOUT_CONSOLE_SECURE_COOKIES": "false"}, False),
    ],
    ids=["listening-beyond-loopback", "forced-on", "forced-off"],
)
async def test_cookies_are_secure_and_hsts_sent_unless_the_console_is_on_loopback(
    hostile_system: System, tmp_path: Path, settings: dict[str, str], secure: bool
) -> None:
    started = start_console(hostile_system, tmp_path / "console.log", users("coach-a"), **settings)
    try:
        async with httpx.AsyncClient(base_url=started.base) as client:
            signed = await client.post("/signin", data={"name": "coach-a", "password": PASSWORDS["coach-a"]})
            assert signed.status_code == 303
            cookie = signed.headers["set-cookie"].lower()
            assert ("; secure" in cookie) is secure, cookie
            hsts = signed.headers.get("strict-transport-security")
            assert hsts == ("max-age=31536000" if secure else None)
            assert (await client.get("/signin")).headers.get("strict-transport-security") == hsts
    finally:
        assert started.stop() == 0


async def test_no_note_in_any_page_fragment_or_export(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hn")
    await enrolled(platform, user_id, "c-a")
    for n in range(3):
        await platform.attempt(user_id, suds_peak=50 + n, note=f"{NOTE_MARKER} #{n}")
    await crisis(platform, user_id, note=f"{NOTE_MARKER} crisis")
    history = await platform.history(user_id)
    assert sum(e["type"] == "stepout.attempt.logged.v1" for e in history["events"]) == 4
    for name in ("coach-a", "auditor"):
        client = await signed_in(console.base, name)
        for path in (
            "/",
            "/?coach=c-a",
            "/escalations/rows",
            f"/participants/{user_id}",
            f"/participants/{user_id}?reviewed=1",
            f"/participants/{user_id}/audit",
            f"/participants/{user_id}/audit?as_of=2030-01-01T00:00:00Z",
            f"/participants/{user_id}/audit/export.jsonl",
        ):
            answer = await client.get(path)
            assert answer.status_code == 200, (name, path)
            assert "NOTE-MARKER" not in answer.text and "therapist" not in answer.text, (name, path)
        export = (await client.get(f"/participants/{user_id}/audit/export.jsonl")).text
        assert all("note" not in json.loads(line)["data"] for line in export.splitlines())
        await client.aclose()


async def test_huge_query_strings_are_refused_or_answered_never_crash(console: ConsoleProcess) -> None:
    auditor = await signed_in(console.base, "auditor")
    big = "A" * 60_000
    for path, name in (
        ("/", "coach"),
        ("/escalations/rows", "coach"),
        ("/participants", "user_id"),
        ("/participants/u-1/audit", "as_of"),
    ):
        answer = await auditor.get(path, params={name: big})
        assert answer.status_code in (200, 400, 404, 414, 431), path
        assert len(answer.content) < 400_000, path
    cookie = auditor.cookies["stepout_console"]
    host, port = urlsplit(console.base).hostname, urlsplit(console.base).port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /?coach={'A' * 1_000_000} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Cookie: stepout_console={cookie}\r\nConnection: close\r\n\r\n".encode()
    )
    try:
        await writer.drain()
    except ConnectionError:
        pass  # refused before it was all sent
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
    except ConnectionError:
        status_line = b""
    writer.close()
    assert status_line == b"" or status_line.split()[1] in (b"400", b"414", b"431")
    assert (await auditor.get("/healthz")).status_code == 200
    assert (await auditor.get("/")).status_code == 200
    await auditor.aclose()


async def test_as_of_times_are_read_as_given(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("ht")
    await enrolled(platform, user_id, "c-a")
    auditor = await signed_in(console.base, "auditor")
    path = f"/participants/{user_id}/audit"
    for given, shown in (
        ("2001-01-01T05:00:00Z", "2001-01-01T05:00:00Z"),
        ("2001-01-01T10:00:00+05:00", "2001-01-01T05:00:00Z"),
        ("2001-01-01T05:00", "2001-01-01T05:00:00Z"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
    ):
        page = await auditor.get(path, params={"as_of": given})
        assert page.status_code == 200, given
        assert f"As of {shown}" in page.text, given
        assert "not enrolled yet" in page.text
    for bad in ("2026-13-01T00:00:00", "yesterday", "2026-01-01T00:00:00+25:00", "\x00"):
        page = await auditor.get(path, params={"as_of": bad})
        assert page.status_code == 400, bad
        assert "as_of is not a time" in page.text
    await auditor.aclose()


async def test_the_as_of_field_shows_the_time_in_utc(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hu")
    await enrolled(platform, user_id, "c-a")
    auditor = await signed_in(console.base, "auditor")
    page = await auditor.get(f"/participants/{user_id}/audit", params={"as_of": "2026-01-01T10:00:00+05:00"})
    await auditor.aclose()
    assert page.status_code == 200
    field = re.search(r'id="as_of"[^>]*value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    assert field.startswith("2026-01-01T05:00"), field


async def test_an_as_of_out_of_range_is_a_bad_request(console: ConsoleProcess, platform: Platform) -> None:
    user_id = new_user("hv")
    await enrolled(platform, user_id, "c-a")
    auditor = await signed_in(console.base, "auditor")
    page = await auditor.get(f"/participants/{user_id}/audit", params={"as_of": "9999-12-31T23:59:59-12:00"})
    await auditor.aclose()
    assert page.status_code == 400, page.text[-400:]


async def test_a_coach_filter_too_long_is_not_told_as_the_planner_down(console: ConsoleProcess) -> None:
    auditor = await signed_in(console.base, "auditor")
    page = await auditor.get("/", params={"coach": "c" * 65})
    await auditor.aclose()
    assert "did not answer" not in page.text


# Services down --------------------------------------------------------------------------------------


async def test_pages_say_why_when_a_service_is_down(
    console: ConsoleProcess, hostile_system: System, nats_server: NatsServer
) -> None:
    user_id = new_user("hd")
    # A platform of its own, gone while the services are down: its `P.>` subscription would take the
    # queries too, and turn "no responders" into a 5 s timeout.
    platform = await Platform.connect(nats_server.url, hostile_system.prefix)
    await enrolled(platform, user_id, "c-a")
    await crisis(platform, user_id)
    await platform.close()
    coach = await signed_in(console.base, "coach-a")
    page = (await coach.get(f"/participants/{user_id}")).text
    token, review_id = csrf_of(page), review_id_of(page)
    assert hostile_system.planner is not None and hostile_system.tracker is not None
    for stopped, reason in ((hostile_system.planner, "plan: no answer"), (hostile_system.tracker, "no answer")):
        stopped.stop()
        try:
            for suffix in ("", "/audit", "/audit/export.jsonl"):
                answer = await coach.get(f"/participants/{user_id}{suffix}")
                assert answer.status_code == 503, (stopped.name, suffix)
                assert reason in answer.text, (stopped.name, suffix)
            listed = await coach.get("/")
            assert listed.status_code != 500
            if stopped is hostile_system.planner:
                assert "The planner did not answer" in listed.text
                answer = await coach.post(
                    f"/participants/{user_id}/review", data={"csrf": token, "review_id": review_id}
                )
                assert answer.status_code == 503 and "plan: no answer" in answer.text
                assert "Nothing was changed" in answer.text
        finally:
            stopped.start()
    # Both back: the page is whole again, and the review not sent while the planner was down goes now.
    platform = await Platform.connect(nats_server.url, hostile_system.prefix)
    try:
        assert (await coach.get(f"/participants/{user_id}")).status_code == 200
        sent = await coach.post(f"/participants/{user_id}/review", data={"csrf": token, "review_id": review_id})
        assert sent.status_code == 303
        await platform.wait_for("overload.cleared", user_id)
    finally:
        await platform.close()
        await coach.aclose()


async def test_the_escalations_page_answers_503_when_the_planner_is_down(
    console: ConsoleProcess, hostile_system: System
) -> None:
    coach = await signed_in(console.base, "coach-a")
    assert hostile_system.planner is not None
    hostile_system.planner.stop()
    try:
        listed = await coach.get("/")
    finally:
        hostile_system.planner.start()
        await coach.aclose()
    assert listed.status_code == 503


# The live view --------------------------------------------------------------------------------------


@pytest.fixture
def crowded_console(hostile_system: System, tmp_path: Path) -> Iterator[tuple[ConsoleProcess, list[str]]]:
    """A console of the test's own with enough coaches to fill every live view, and their names."""
    names, entries = many_coaches(LIVE_VIEWS_TOTAL // PER_ACCOUNT + 25)
    started = start_console(hostile_system, tmp_path / "console.log", f"{users('coach-a')},{entries}")
    yield started, names
    started.stop(grace=2.0)


@dataclass
class LiveViews:
    """Live views of the escalations held open (each read up to its first line), and their client."""

    client: httpx.AsyncClient
    opened: list[tuple[httpx.Response, Any]]

    @property
    def served(self) -> int:
        return sum(response.status_code == 200 for response, _ in self.opened)

    def statuses(self) -> list[int]:
        return [response.status_code for response, _ in self.opened]

    async def close_together(self) -> None:
        await asyncio.gather(*(response.aclose() for response, _ in self.opened), return_exceptions=True)
        await self.client.aclose()


async def open_live_views(base: str, cookies: list[str], *, together: bool, leave: bool = False) -> LiveViews:
    """A live view for each of `cookies` (a cookie given n times: n views of that session), all at once
    or one after another; with `leave`, each closed as soon as it has its first line (a page left, or
    reloaded, right away)."""
    client = httpx.AsyncClient(
        base_url=base,
        timeout=20,
        limits=httpx.Limits(max_connections=len(cookies) + 10, max_keepalive_connections=0),
    )

    async def one(cookie: str) -> tuple[httpx.Response, Any]:
        request = client.build_request("GET", "/escalations/events", headers={"cookie": f"stepout_console={cookie}"})
        response = await client.send(request, stream=True)
        lines = response.aiter_text()  # kept: dropping the iterator would close the connection
        if response.status_code == 200:
            await lines.__anext__()
        else:
            await response.aread()
        if leave:
            await response.aclose()
        return response, lines

    if together:
        opened = list(await asyncio.gather(*(one(cookie) for cookie in cookies)))
    else:
        opened = [await one(cookie) for cookie in cookies]
    return LiveViews(client, opened)


def each(cookies: list[str], times: int) -> list[str]:
    return [cookie for cookie in cookies for _ in range(times)]


async def test_one_account_holds_at_most_its_share_of_live_views(private_console: ConsoleProcess) -> None:
    first, second = await session_cookies(private_console.base, ["coach-a", "coach-a"])
    views = await open_live_views(private_console.base, [first] * (PER_ACCOUNT + 1), together=False)
    assert views.statuses() == [200] * PER_ACCOUNT + [429]
    # Another session of the same account: the same share.
    more = await open_live_views(private_console.base, [second, second], together=True)
    assert more.statuses() == [429, 429]
    response, _ = more.opened[0]
    assert "live views are open per account" in (await response.aread()).decode()
    await more.close_together()
    # One closed (a tab closed): one more may open.
    oldest, _ = views.opened[0]
    await oldest.aclose()
    await asyncio.sleep(0.3)
    again = await open_live_views(private_console.base, [second], together=False)
    assert again.served == 1
    await again.close_together()
    await views.close_together()


async def test_the_live_view_is_capped_for_clients_one_after_another(
    crowded_console: tuple[ConsoleProcess, list[str]],
) -> None:
    console, names = crowded_console
    filling = LIVE_VIEWS_TOTAL // PER_ACCOUNT
    cookies = await session_cookies(console.base, names[: filling + 1])
    views = await open_live_views(console.base, each(cookies[:filling], PER_ACCOUNT), together=False)
    assert views.served == LIVE_VIEWS_TOTAL
    async with httpx.AsyncClient(base_url=console.base, cookies={"stepout_console": cookies[-1]}) as latecomer:
        refused = await latecomer.get("/escalations/events")
        assert refused.status_code == 503 and "too many live views" in refused.text
        assert (await latecomer.get("/")).status_code == 200  # the pages still answer
    # Killed first: closing many views at once is test_the_live_view_survives_clients_leaving_together.
    console.process.kill()
    await views.close_together()


async def test_the_live_view_is_capped_for_clients_arriving_together(
    crowded_console: tuple[ConsoleProcess, list[str]],
) -> None:
    console, names = crowded_console
    cookies = await session_cookies(console.base, names)
    views = await open_live_views(console.base, each(cookies, PER_ACCOUNT), together=True)
    console.process.kill()
    await views.close_together()
    assert len(views.opened) > LIVE_VIEWS_TOTAL
    assert views.served <= LIVE_VIEWS_TOTAL, f"{views.served} live views served"


async def test_the_live_view_survives_clients_leaving_together(
    crowded_console: tuple[ConsoleProcess, list[str]], platform: Platform
) -> None:
    console, names = crowded_console
    user_id = new_user("hs")
    await enrolled(platform, user_id, "c-a")
    cookies = await session_cookies(console.base, names[:15])
    for _ in range(2):  # a room of coaches opening the console and moving on at once
        views = await open_live_views(console.base, each(cookies, PER_ACCOUNT), together=True, leave=True)
        assert views.served == 15 * PER_ACCOUNT
        await views.close_together()
        await asyncio.sleep(0.5)
    coach = await signed_in(console.base, "coach-a")
    watching = await open_live_views(console.base, [coach.cookies["stepout_console"]], together=False)
    await coach.aclose()
    assert watching.served == 1
    await platform.attempt(user_id, suds_peak=90, suds_after=60, crisis_reported=True)
    _, lines = watching.opened[0]

    async def changed() -> bool:
        async for text in lines:
            if "event: changed" in text:
                return True
        return False

    try:
        told = await asyncio.wait_for(changed(), 6)
    except TimeoutError:
        told = False
    await watching.close_together()
    assert told, "the warning raised was not told to the live view"
    assert console.stop(grace=5.0) == 0, "the console did not stop on SIGTERM"
