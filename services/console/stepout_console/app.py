"""The console's HTTP shell: sign-in, the escalations, participant and audit pages, and Mark reviewed.

Every route but `/healthz`, `/signin` and the static files needs a session (signin.py, sessions.py:
an HttpOnly cookie holding a signed session id, the session kept on the server). A coach sees and reviews
only the participants enrolled with their `coach_id`; another coach's participant answers 404, as an
unknown one does. An auditor reads everyone and changes nothing. Every form that changes something
carries the session's CSRF token. No log line carries a participant's user id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stepout_audit.chain import chained_lines
from stepout_contract.subjects import is_user_id

from . import participant_page
from .accounts import Account
from .board import Board
from .contract_client import ContractClient, NotFound, Unavailable
from .live_views import LiveViewRefused, LiveViews
from .moments import age, as_of_param
from .sessions import SessionStore
from .signin import SignIn, read_form, same_origin_form

log = logging.getLogger(__name__)

SSE_HEARTBEAT_S = 15.0
# A browser that was told this once comes back over HTTPS only, for a year (when the cookies are Secure).
HSTS = (b"strict-transport-security", b"max-age=31536000")
# Scripts, styles and data only from the console itself: nothing inline, nothing from elsewhere.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]

Handler = Callable[[Request, Account], Awaitable[Response]]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, `no-store` to every one but the static files, and
    with `hsts` Strict-Transport-Security."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.extra = [*SECURITY_HEADERS, HSTS] if hsts else SECURITY_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + self.extra
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class Console:
    def __init__(
        self,
        client: ContractClient,
        board: Board,
        accounts: dict[str, Account],
        sessions: SessionStore,
        *,
        secure: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.board = board
        self.accounts = accounts
        self.sessions = sessions
        self.secure = secure  # the cookies Secure, and HSTS sent
        self.templates = Jinja2Templates(directory=str(files("stepout_console") / "templates"))
        self.templates.env.globals["age"] = age
        self.live = LiveViews()
        self.signin = SignIn(accounts, sessions, self.live, secure=secure, page=self.page, clock=clock)

    def page(
        self, request: Request, template: str, account: Account | None, status: int = 200, **context: Any
    ) -> Response:
        session = getattr(request.state, "session", None)
        context.update(account=account, csrf=session.csrf if session else "")
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def not_found(self, request: Request, account: Account, user_id: str) -> Response:
        return self.page(request, "not_found.html", account, status=404, user_id=user_id)

    def signed_in(
        self, handler: Handler, *, page: bool = True, used: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` for a signed-in account; otherwise to the sign-in page (a page) or 401. Unless
        `used` is False (what a page asks by itself), the request restarts the session's idle time."""

        async def route(request: Request) -> Response:
            found = self.signin.signed_in_as(request, used=used)
            if found is None:
                if page and request.method == "GET":
                    return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
                return PlainTextResponse("sign in first", status_code=401)
            request.state.session, account = found
            return await handler(request, account)

        return route

    # Escalations ------------------------------------------------------------------------------

    def _coach_filter(self, request: Request, account: Account) -> str | None:
        if account.role == "coach":
            return account.coach_id
        wanted = request.query_params.get("coach", "").strip()[:64]
        return wanted or None

    async def _escalations(self, request: Request, account: Account) -> dict[str, Any]:
        """What both the page and its live part show: the planner's answer now, or why there is none."""
        coach = self._coach_filter(request, account)
        error: str | None = None
        try:
            answer = await self.client.escalations(coach)
        except Unavailable as exc:
            answer, error = {"escalations": [], "total": 0}, str(exc)
        return {"rows": answer["escalations"], "total": answer["total"], "error": error, "coach": coach}

    async def escalations(self, request: Request, account: Account) -> Response:
        shown = await self._escalations(request, account)
        status = 503 if shown["error"] else 200
        return self.page(request, "escalations.html", account, status=status, now=datetime.now(UTC), **shown)

    async def escalation_rows(self, request: Request, account: Account) -> Response:
        shown = await self._escalations(request, account)
        return self.page(request, "escalation_rows.html", account, now=datetime.now(UTC), **shown)

    async def escalation_events(self, request: Request, account: Account) -> Response:
        """Server-sent events: `changed` whenever the board is read again, a comment now and then;
        ended with the session (signed out at once; timed out at the next comment at the latest)."""
        try:
            view = self.live.open(account.name, request.state.session.key)
        except LiveViewRefused as refused:
            return PlainTextResponse(refused.reason, status_code=refused.status)

        async def stream() -> AsyncIterator[str]:
            try:
                seen = self.board.version
                yield "retry: 3000\n\n"
                while not await request.is_disconnected():
                    now = await self.board.wait_changed(seen, SSE_HEARTBEAT_S, view.ended)
                    if view.ended.is_set() or self.sessions.find(view.session) is None:
                        return
                    yield f"event: changed\ndata: {now}\n\n" if now > seen else ": still here\n\n"
                    seen = now
            finally:
                self.live.close(view)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    # Participants -----------------------------------------------------------------------------

    async def visible_plan(self, account: Account, user_id: str) -> dict[str, Any] | None:
        """The participant's plan when `account` may see them; None as for an unknown one."""
        if not is_user_id(user_id):
            return None
        try:
            plan = await self.client.plan(user_id)
        except NotFound:
            return None
        if account.role == "coach" and plan.get("coach_id") != account.coach_id:
            return None
        return plan

    async def find(self, request: Request, account: Account) -> Response:
        user_id = request.query_params.get("user_id", "").strip()
        if not is_user_id(user_id):
            return self.not_found(request, account, user_id[:64])
        return RedirectResponse(f"/participants/{user_id}", status_code=303)

    async def participant(self, request: Request, account: Account) -> Response:
        user_id = request.path_params["user_id"]
        try:
            plan = await self.visible_plan(account, user_id)
            if plan is None:
                return self.not_found(request, account, user_id)
            progress, (events, complete), audits = await asyncio.gather(
                self.client.progress(user_id), self.client.history(user_id), self.client.audit(user_id, None)
            )
        except Unavailable as exc:
            return self.page(request, "unavailable.html", account, status=503, reason=str(exc))
        found = participant_page.attempts(events)
        points = participant_page.levels(events)
        return self.page(
            request,
            "participant.html",
            account,
            user_id=user_id,
            plan=plan,
            progress=progress,
            attempts=found,
            complete=complete,
            chart=participant_page.chart_data(found, points),
            timeline=participant_page.timeline(events, participant_page.rulesets_of(audits)),
            review_id=uuid.uuid4(),
            reviewed=request.query_params.get("reviewed") == "1",
            now=datetime.now(UTC),
        )

    async def review(self, request: Request, account: Account) -> Response:
        user_id = request.path_params["user_id"]
        if account.role != "coach" or account.coach_id is None:
            return PlainTextResponse("only a participant's coach marks them reviewed", status_code=403)
        form = await read_form(request)
        if form is None:
            return Response(status_code=400)
        if not same_origin_form(request, form):
            return PlainTextResponse("the form did not come from this console", status_code=403)
        try:
            review_id = uuid.UUID(str(form.get("review_id", "")))
        except ValueError:
            return PlainTextResponse("review_id is not a UUID", status_code=400)
        try:
            plan = await self.visible_plan(account, user_id)
            if plan is None:
                return self.not_found(request, account, user_id)
            if plan["status"] == "withdrawn":
                return PlainTextResponse(
                    f"{user_id} has withdrawn: a review is not recorded for them; nothing was sent", status_code=409
                )
            await self.client.publish_review(user_id, account.coach_id, review_id)
        except Unavailable as exc:
            return self.page(request, "unavailable.html", account, status=503, reason=str(exc))
        log.info("console review sent", extra={"account": account.name, "id": str(review_id)})
        return RedirectResponse(f"/participants/{user_id}?reviewed=1", status_code=303)

    # Audit ------------------------------------------------------------------------------------

    async def audit(self, request: Request, account: Account) -> Response:
        user_id = request.path_params["user_id"]
        try:
            as_of = as_of_param(request.query_params.get("as_of"))
        except ValueError as exc:
            return self.page(request, "unavailable.html", account, status=400, reason=str(exc))
        try:
            if await self.visible_plan(account, user_id) is None:
                return self.not_found(request, account, user_id)
            audits = await self.client.audit(user_id, as_of or datetime.now(UTC))
        except Unavailable as exc:
            return self.page(request, "unavailable.html", account, status=503, reason=str(exc))
        decisions = sorted(
            (d | {"service": s} for s, reply in audits.items() if reply for d in reply["decisions"]),
            key=lambda d: d["time"],
            reverse=True,
        )
        return self.page(
            request,
            "audit.html",
            account,
            user_id=user_id,
            audits=audits,
            decisions=decisions,
            as_of=as_of,
            tracker=audits.get("tracker"),
            planner=audits.get("planner"),
        )

    async def export(self, request: Request, account: Account) -> Response:
        """The participant's inputs and decisions as the hash-chained JSON Lines `stepout audit export`
        writes; nothing when a store's chain is broken or the planner does not answer."""
        user_id = request.path_params["user_id"]
        try:
            if await self.visible_plan(account, user_id) is None:
                return self.not_found(request, account, user_id)
            audits = await self.client.audit(user_id, None)
            broken = [s for s, reply in audits.items() if reply and not reply["chain"]["holds"]]
            if broken:
                return PlainTextResponse(
                    f"chain broken in the {' and '.join(broken)} store: nothing exported", status_code=409
                )
            events, _ = await self.client.history(user_id, pages=1_000_000)
        except Unavailable as exc:
            return PlainTextResponse(f"not exported: {exc}", status_code=503)
        body = "".join(line + "\n" for line in chained_lines(events)).encode()
        log.info("console audit export", extra={"account": account.name, "events": len(events)})
        return Response(
            body,
            media_type="application/jsonl",
            headers={"content-disposition": f'attachment; filename="{user_id}-audit.jsonl"'},
        )

    # Health -----------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def build_app(console: Console) -> Starlette:
    c = console
    routes = [
        Route("/healthz", c.healthz),
        Route("/signin", c.signin.form, methods=["GET"]),
        Route("/signin", c.signin.submit, methods=["POST"]),
        Route("/signout", c.signed_in(c.signin.sign_out, page=False), methods=["POST"]),
        Route("/", c.signed_in(c.escalations)),
        # What the escalations page asks by itself is no use of the session: an unattended page times out.
        Route("/escalations/rows", c.signed_in(c.escalation_rows, page=False, used=False)),
        Route("/escalations/events", c.signed_in(c.escalation_events, page=False, used=False)),
        Route("/participants", c.signed_in(c.find)),
        Route("/participants/{user_id}", c.signed_in(c.participant)),
        Route("/participants/{user_id}/review", c.signed_in(c.review, page=False), methods=["POST"]),
        Route("/participants/{user_id}/audit", c.signed_in(c.audit)),
        Route("/participants/{user_id}/audit/export.jsonl", c.signed_in(c.export)),
        Mount("/static", StaticFiles(packages=[("stepout_console", "static")]), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders, hsts=c.secure)])
