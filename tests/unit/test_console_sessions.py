"""Console sessions kept on the server, on a clock the tests move: signed out everywhere (every copy of
the cookie), ended by a changed account, by idleness and 8 hours after sign-in; the store's file and
what it holds; the cookie's attributes and HSTS by where the console listens; the live views' caps;
and log lines without a participant's user id. The console runs in-process (Starlette's test client)
with a fake of the services' contract."""

from __future__ import annotations

import asyncio
import logging
import stat
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from stepout_console.accounts import Account, hash_password
from stepout_console.app import Console, build_app
from stepout_console.board import Board
from stepout_console.contract_client import ContractClient
from stepout_console.live_views import LiveViewRefused, LiveViews
from stepout_console.sessions import MAX_AGE_S, SESSIONS_PER_ACCOUNT, SessionStore
from stepout_console.settings import loopback_only, secure_cookies
from stepout_console.signin import SESSION_COOKIE
from stepout_contract.settings import Settings

PASSWORD = "a-long-password-9f2"
HASH = hash_password(PASSWORD)  # about 50 ms: made once
SECRET = "s" * 40
IDLE_S = 30 * 60.0
COACH = Account("coach-a", "coach", "c-a", HASH)
AUDITOR = Account("auditor", "auditor", None, HASH)
USER_ID = "u-logged-never"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeContract:
    """What the pages below ask of the services."""

    def __init__(self) -> None:
        self.reviews: list[uuid.UUID] = []

    async def escalations(self, coach_id: str | None) -> dict[str, Any]:
        return {"escalations": [], "total": 0}

    async def plan(self, user_id: str) -> dict[str, Any]:
        return {"user_id": user_id, "coach_id": "c-a", "status": "paused"}

    async def publish_review(self, user_id: str, coach_id: str, review_id: uuid.UUID) -> None:
        self.reviews.append(review_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SessionStore:
    return SessionStore(tmp_path / "sessions.db", SECRET, idle_s=IDLE_S, clock=clock)


def console_of(store: SessionStore, *, secure: bool = False) -> Console:
    contract = cast(ContractClient, FakeContract())
    return Console(contract, Board(contract), {"coach-a": COACH, "auditor": AUDITOR}, store, secure=secure)


def browser(console: Console, address: str = "192.0.2.10", scheme: str = "http") -> TestClient:
    return TestClient(
        build_app(console), base_url=f"{scheme}://console.test", client=(address, 40000), follow_redirects=False
    )


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    return client.post("/signin", data={"name": name, "password": password})


def signed_in(console: Console, name: str = "coach-a", **where: str) -> TestClient:
    client = browser(console, **where)
    assert sign_in(client, name).status_code == 303
    return client


def copy_of(client: TestClient, console: Console) -> TestClient:
    """Another browser holding a copy of `client`'s session cookie."""
    thief = browser(console, address="203.0.113.66")
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE], domain="console.test")
    return thief


def csrf_of(client: TestClient) -> str:
    page = client.get("/")
    return page.text.split('name="csrf" value="')[1].split('"')[0]


# Ending a session ------------------------------------------------------------------------------


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(store: SessionStore) -> None:
    console = console_of(store)
    coach = signed_in(console)
    thief = copy_of(coach, console)
    assert thief.get("/escalations/rows").status_code == 200
    token = csrf_of(coach)
    signed_out = coach.post("/signout", data={"csrf": token})
    assert signed_out.status_code == 303 and 'stepout_console=""' in signed_out.headers["set-cookie"]
    assert thief.get("/escalations/rows").status_code == 401
    assert thief.get("/").status_code == 303
    review = thief.post(f"/participants/{USER_ID}/review", data={"csrf": token, "review_id": str(uuid.uuid4())})
    assert review.status_code == 401
    assert cast(FakeContract, console.client).reviews == []


def test_another_sessions_of_the_same_account_stays_signed_in(store: SessionStore) -> None:
    console = console_of(store)
    desk, laptop = signed_in(console), signed_in(console)
    assert desk.post("/signout", data={"csrf": csrf_of(desk)}).status_code == 303
    assert laptop.get("/escalations/rows").status_code == 200


def test_a_changed_account_ends_its_sessions_only(store: SessionStore) -> None:
    console = console_of(store)
    coach, auditor = signed_in(console, "coach-a"), signed_in(console, "auditor")
    console.accounts["coach-a"] = replace(COACH, password_hash=hash_password("another-password-42"))
    assert coach.get("/escalations/rows").status_code == 401
    assert auditor.get("/escalations/rows").status_code == 200
    # Back to the hash it had: the ended session stays ended.
    console.accounts["coach-a"] = COACH
    assert coach.get("/escalations/rows").status_code == 401


@pytest.mark.parametrize(
    "changed",
    [
        {"password_hash": "scrypt$16384$8$1$c2FsdA==$ZGlnZXN0"},
        {"role": "auditor", "coach_id": None},
        {"coach_id": "c-b"},
    ],
    ids=["password", "role", "coach"],
)
def test_at_start_the_sessions_of_changed_or_removed_accounts_are_ended(
    tmp_path: Path, clock: Clock, changed: dict[str, Any]
) -> None:
    before = SessionStore(tmp_path / "s.db", SECRET, idle_s=IDLE_S, clock=clock)
    coach_cookie, _ = before.begin(COACH)
    auditor_cookie, _ = before.begin(AUDITOR)
    gone_cookie, _ = before.begin(Account("gone", "auditor", None, HASH))
    before.close()
    after = SessionStore(tmp_path / "s.db", SECRET, idle_s=IDLE_S, clock=clock)  # a restart
    assert after.end_changed({"coach-a": replace(COACH, **changed), "auditor": AUDITOR}) == 2
    assert after.current(coach_cookie, used=False) is None
    assert after.current(gone_cookie, used=False) is None
    assert after.current(auditor_cookie, used=False) is not None  # kept across the restart


def test_a_session_unused_for_the_idle_time_is_ended(store: SessionStore, clock: Clock) -> None:
    console = console_of(store)
    coach = signed_in(console)
    for _ in range(3):  # used just in time, again and again
        clock.now += IDLE_S - 1
        assert coach.get("/").status_code == 200
    clock.now += IDLE_S
    assert coach.get("/").status_code == 303
    clock.now -= IDLE_S  # ended for good, not only out of time
    assert coach.get("/").status_code == 303


def test_what_the_escalations_page_asks_by_itself_is_no_use(store: SessionStore, clock: Clock) -> None:
    console = console_of(store)
    coach = signed_in(console)
    for _ in range(int(IDLE_S // 60) - 1):  # an unattended page reading its rows every minute
        clock.now += 60
        assert coach.get("/escalations/rows").status_code == 200
    clock.now += 60
    assert coach.get("/escalations/rows").status_code == 401


def test_a_session_ends_eight_hours_after_sign_in_however_busy(store: SessionStore, clock: Clock) -> None:
    console = console_of(store)
    coach = signed_in(console)
    signed_at = clock.now
    while clock.now + 600 < signed_at + MAX_AGE_S:
        clock.now += 600
        assert coach.get("/").status_code == 200
    clock.now = signed_at + MAX_AGE_S
    assert coach.get("/").status_code == 303


def test_signing_in_again_ends_the_session_the_browser_had(store: SessionStore) -> None:
    console = console_of(store)
    coach = signed_in(console)
    planted = copy_of(coach, console)
    assert sign_in(coach, "coach-a").status_code == 303
    assert coach.get("/escalations/rows").status_code == 200
    assert planted.get("/escalations/rows").status_code == 401


# The store ---------------------------------------------------------------------------------------


def test_the_file_is_its_owners_only_and_holds_no_session_id(tmp_path: Path, store: SessionStore) -> None:
    cookie, session = store.begin(COACH)
    session_id = cookie.rsplit(".", 1)[0]
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert session_id.encode() not in path.read_bytes(), path
    assert store.current(cookie, used=False) == session


@pytest.mark.parametrize(
    "forged",
    ["", "not-signed", "abc.def", "%%%;;"],
)
def test_a_cookie_not_signed_here_is_no_session(store: SessionStore, forged: str) -> None:
    store.begin(COACH)
    assert store.current(forged, used=False) is None


def test_an_id_signed_with_another_secret_or_unknown_is_no_session(tmp_path: Path, store: SessionStore) -> None:
    elsewhere = SessionStore(tmp_path / "other.db", "o" * 40, idle_s=IDLE_S)
    foreign, _ = elsewhere.begin(COACH)
    assert store.current(foreign, used=False) is None
    mine, session = store.begin(COACH)
    store.end(session.key)
    assert store.current(mine, used=False) is None
    tampered = mine[:-2] + ("AA" if not mine.endswith("AA") else "BB")
    assert store.current(tampered, used=False) is None


def test_the_sessions_kept_per_account_are_bounded(store: SessionStore, clock: Clock) -> None:
    cookies = []
    for _ in range(SESSIONS_PER_ACCOUNT + 2):
        clock.now += 1
        cookies.append(store.begin(COACH)[0])
    assert [store.current(c, used=False) is not None for c in cookies] == [False] * 2 + [True] * SESSIONS_PER_ACCOUNT


# Secure cookies and HSTS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("console.example.org", False),
    ],
)
def test_only_a_loopback_host_is_reached_from_this_machine_alone(host: str, loopback: bool) -> None:
    assert loopback_only(host) is loopback


def test_cookies_are_secure_off_loopback_unless_a_setting_says_otherwise() -> None:
    assert secure_cookies(Settings(http_host="127.0.0.1")) is False
    assert secure_cookies(Settings(http_host="0.0.0.0")) is True
    assert secure_cookies(Settings(http_host="0.0.0.0", console_secure_cookies=False)) is False
    assert secure_cookies(Settings(http_host="127.0.0.1", console_secure_cookies=True)) is True


def test_a_secure_console_sets_secure_cookies_and_hsts(store: SessionStore) -> None:
    console = console_of(store, secure=True)
    client = browser(console, scheme="https")
    signed = sign_in(client, "coach-a")
    cookie = signed.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie
    for answer in (signed, client.get("/signin"), client.get("/"), client.get("/static/console.css")):
        assert answer.headers["strict-transport-security"] == "max-age=31536000", answer.url


def test_a_console_on_loopback_keeps_plain_http(store: SessionStore) -> None:
    console = console_of(store, secure=False)
    client = browser(console)
    signed = sign_in(client, "coach-a")
    assert "secure" not in signed.headers["set-cookie"].lower()
    assert "strict-transport-security" not in signed.headers
    assert client.get("/").status_code == 200


# Sign-in throttling through the pages -------------------------------------------------------------


def test_a_stranger_guessing_a_coachs_password_does_not_lock_the_coach_out(store: SessionStore) -> None:
    console = console_of(store)
    stranger = browser(console, address="203.0.113.9")
    answers = [sign_in(stranger, "coach-a", f"guess-{n}").status_code for n in range(8)]
    assert answers[:3] == [401, 401, 401] and set(answers[3:]) == {429}
    held = sign_in(stranger, "coach-a")  # even the right password: from there, not now
    assert held.status_code == 429 and int(held.headers["retry-after"]) >= 1
    assert "Too many failed sign-ins from here" in held.text
    coach = browser(console, address="198.51.100.7")
    assert sign_in(coach, "coach-a").status_code == 303
    assert coach.get("/").status_code == 200


# Live views --------------------------------------------------------------------------------------


def test_live_views_are_capped_per_account_and_in_all() -> None:
    views = LiveViews(total=6, per_account=2)
    mine = [views.open("coach-a", "s1"), views.open("coach-a", "s2")]
    with pytest.raises(LiveViewRefused) as refused:
        views.open("coach-a", "s3")  # another session of the same account: the same share
    assert refused.value.status == 429
    views.close(mine[0])
    views.open("coach-a", "s1")
    for n in range(4):
        views.open(f"coach-{n}", "s")
    with pytest.raises(LiveViewRefused) as full:
        views.open("coach-z", "s")
    assert full.value.status == 503 and len(views) == 6


async def test_a_live_view_ends_when_its_session_is_signed_out(store: SessionStore) -> None:
    board = Board(cast(ContractClient, FakeContract()))
    views = LiveViews()
    view, other = views.open("coach-a", "s1"), views.open("coach-a", "s2")
    waiting = asyncio.create_task(board.wait_changed(board.version, 60.0, view.ended))
    await asyncio.sleep(0.05)
    views.end_session("s1")
    assert await asyncio.wait_for(waiting, 1.0) == board.version
    assert view.ended.is_set() and not other.ended.is_set()


# Logs --------------------------------------------------------------------------------------------


def test_no_log_line_carries_a_participants_user_id(store: SessionStore, caplog: pytest.LogCaptureFixture) -> None:
    console = console_of(store)
    coach = signed_in(console)
    review_id = uuid.uuid4()
    with caplog.at_level(logging.DEBUG):
        sent = coach.post(f"/participants/{USER_ID}/review", data={"csrf": csrf_of(coach), "review_id": str(review_id)})
    assert sent.status_code == 303
    said = [(r.getMessage(), r.__dict__) for r in caplog.records if r.name.startswith(("stepout", "uvicorn"))]
    assert any(message == "console review sent" and fields["id"] == str(review_id) for message, fields in said)
    for message, fields in said:
        assert USER_ID not in message and USER_ID not in str(fields), message


def test_what_was_typed_as_a_name_is_logged_only_when_it_is_an_account(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A password typed into the name field is free text a person wrote: never in a log line."""
    client = browser(console_of(store))
    with caplog.at_level(logging.DEBUG):
        for _ in range(6):  # refused, then throttled
            sign_in(client, "MySecretPassword1", "whatever")
        sign_in(client, "coach-a", "not-the-password")
    said = [str(r.__dict__) + r.getMessage() for r in caplog.records if r.name.startswith("stepout")]
    assert said and not [line for line in said if "MySecretPassword1" in line]
    assert any("coach-a" in line for line in said)
