"""Signing in to the console and out of it, and who a request is signed in as.

A password is checked under the sign-in throttle (throttle.py: by address, and by name from that
address), a few checks at a time; a sign-in begins a session on the server with a new id (sessions.py)
and sets its cookie: HttpOnly, SameSite=Lax, for 8 hours, and Secure when the console is reached over
HTTPS. Signing out ends the session everywhere: every copy of its cookie, and its live views. The
checks every form passes (the session's CSRF token, the browser's Origin) are here too.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from .accounts import Account, hash_password, password_matches
from .live_views import LiveViews
from .sessions import MAX_AGE_S, Session, SessionStore, account_changed
from .throttle import SignInThrottle

log = logging.getLogger(__name__)

SESSION_COOKIE = "stepout_console"
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # as accounts.py has them
# scrypt takes 16 MiB and ~50 ms a check: a flood of sign-ins waits its turn rather than take the memory.
PASSWORD_CHECKS_AT_ONCE = 2
NO_MATCH = "That name and password do not match."


class Renders(Protocol):
    """A page of the console (`Console.page`)."""

    def __call__(
        self, request: Request, template: str, account: Account | None, status: int = 200, **context: Any
    ) -> Response: ...


class SignIn:
    def __init__(
        self,
        accounts: dict[str, Account],
        sessions: SessionStore,
        live: LiveViews,
        *,
        secure: bool,
        page: Renders,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.live = live
        self.secure = secure
        self.page = page
        self.clock = clock  # the throttle's
        self.throttle = SignInThrottle()
        self.checking = asyncio.Semaphore(PASSWORD_CHECKS_AT_ONCE)
        # scrypt's work for an unknown account name too: a hash of a password nobody knows.
        self.decoy_hash = hash_password(secrets.token_urlsafe(16))

    def signed_in_as(self, request: Request, *, used: bool) -> tuple[Session, Account] | None:
        """The request's live session and its account; None when signed out, or when the account was
        removed or changed since (that session is ended). With `used`, the idle time starts again."""
        session = self.sessions.current(request.cookies.get(SESSION_COOKIE), used=used)
        if session is None:
            return None
        if account_changed(session, self.accounts):
            self.sessions.end(session.key)
            return None
        return session, self.accounts[session.name]

    async def form(self, request: Request) -> Response:
        return self.page(request, "signin.html", None, next=local(request.query_params.get("next")))

    async def submit(self, request: Request) -> Response:
        if not same_origin(request):
            return PlainTextResponse("the form did not come from this console", status_code=403)
        form = await read_form(request, max_fields=8, max_part_size=4096)
        if form is None:
            return Response(status_code=400)
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:1024]
        target = local(str(form.get("next", "/"))[:2048])
        address = request.client.host if request.client else ""
        if not ACCOUNT_NAME.match(name):
            return self.page(request, "signin.html", None, status=401, next=target, error=NO_MATCH)
        now = self.clock()
        wait_s = math.ceil(self.throttle.wait_s(name, address, now))
        if wait_s > 0:
            log.warning("console sign-in throttled", extra={"account": self.logged_name(name), "address": address})
            error = f"Too many failed sign-ins from here: try again in {wait_s} seconds."
            answer = self.page(request, "signin.html", None, status=429, next=target, error=error)
            answer.headers["retry-after"] = str(wait_s)
            return answer
        self.throttle.tried(name, address, now)
        account = self.accounts.get(name)
        # The same work for an unknown name as for a wrong password: neither is told apart.
        stored = account.password_hash if account else self.decoy_hash
        async with self.checking:
            matches = await asyncio.to_thread(password_matches, password, stored)
        if account is None or not matches:
            log.info("console sign-in refused", extra={"account": self.logged_name(name), "address": address})
            return self.page(request, "signin.html", None, status=401, next=target, error=NO_MATCH)
        self.throttle.succeeded(name, address, now)
        earlier = self.sessions.current(request.cookies.get(SESSION_COOKIE), used=False)
        if earlier is not None:
            self.end(earlier)  # a new id for every sign-in: none planted in advance is ever signed in
        cookie, _ = self.sessions.begin(account)
        log.info("console sign-in", extra={"account": account.name, "role": account.role})
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            SESSION_COOKIE, cookie, max_age=MAX_AGE_S, path="/", secure=self.secure, httponly=True, samesite="lax"
        )
        return answer

    async def sign_out(self, request: Request, account: Account) -> Response:
        form = await read_form(request)
        if form is None:
            return Response(status_code=400)
        if not same_origin_form(request, form):
            return PlainTextResponse("the form did not come from this console", status_code=403)
        self.end(request.state.session)
        log.info("console sign-out", extra={"account": account.name})
        answer = RedirectResponse("/signin", status_code=303)
        answer.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure, httponly=True, samesite="lax")
        return answer

    def logged_name(self, name: str) -> str:
        """The name a sign-in line may carry: an account's, or none. What was typed into the name field
        may be anything a person wrote there (their password, typed in the wrong field)."""
        return name if name in self.accounts else "(not an account)"

    def end(self, session: Session) -> None:
        """Ends the session everywhere: every copy of its cookie, and its live views."""
        self.sessions.end(session.key)
        self.live.end_session(session.key)


async def read_form(request: Request, **limits: int) -> FormData | None:
    """The request's form; None when the client went away while sending it."""
    try:
        return await request.form(**limits)
    except ClientDisconnect:
        return None


def same_origin(request: Request) -> bool:
    """Whether the browser says the request came from this console (or says nothing)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def same_origin_form(request: Request, form: FormData) -> bool:
    """The form carries the session's CSRF token, and the browser says it came from here."""
    given = form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(request.state.session.csrf, given):
        return False
    return same_origin(request)


def local(target: str | None) -> str:
    """A redirect target on this site only (a path), never another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
