"""The HTTP side of a service (CONTRACT §7): health, readiness, metrics and GET routes; and the
server every HTTP service (planner, tracker, console) is started with, bounded against slow or
oversized requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import h11
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from uvicorn.protocols.http.h11_impl import H11Protocol

from .api_tokens import READERS, ApiTokens

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[str | None]]  # None when ready, else the reason
Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HttpApp:
    """A small ASGI app: exact routes plus `/v1/participants/{user_id}/<view>`."""

    def __init__(
        self, registry: CollectorRegistry, readiness: Readiness, lookups: dict[str, Lookup], tokens: ApiTokens
    ) -> None:
        self.tokens = tokens
        self.registry = registry
        self.readiness = readiness
        self.lookups = lookups
        names = "|".join(re.escape(name) for name in lookups) or "(?!)"
        self._route = re.compile(rf"^/v1/participants/([A-Za-z0-9_-]{{1,64}})/({names})$")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, {"error": {"code": "method_not_allowed", "message": "only GET"}})
        elif path == "/healthz":
            await _send(send, 200, {"status": "ok"})
        elif path == "/readyz":
            reason = await self.readiness()
            await _send(
                send,
                503 if reason else 200,
                {"status": "unavailable", "reason": reason} if reason else {"status": "ready"},
            )
        elif path == "/metrics":
            await _send_raw(send, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path.startswith("/v1/") and (refused := self._refusal(scope)) is not None:
            status, body = refused
            await _send(send, status, body, [(b"www-authenticate", b"Bearer")] if status == 401 else [])
        elif match := self._route.match(path):
            user_id, view = match.groups()
            found = await self.lookups[view](user_id)
            if found is None:
                await _send(send, 404, {"error": {"code": "not_found", "message": f"no participant {user_id}"}})
            else:
                await _send(send, 200, found)
        elif path.startswith("/v1/participants/"):
            await _send(send, 404, {"error": {"code": "not_found", "message": "unknown route or invalid user id"}})
        else:
            await _send(send, 404, {"error": {"code": "not_found", "message": f"no route {path}"}})

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """401 without a known bearer token, 403 for a role that may not read; None: go on."""
        authorization = next((v for k, v in scope.get("headers", []) if k == b"authorization"), None)
        role = self.tokens.role_of(authorization)
        if role is None:
            # Say which: a missing token is a setup step skipped, a wrong one a token to replace.
            if authorization is None or not authorization.startswith(b"Bearer ") or not authorization[7:].strip():
                message = "an Authorization: Bearer token is required"
            else:
                message = "the Authorization: Bearer token is not recognised"
            return 401, {"error": {"code": "unauthorized", "message": message}}
        if role not in READERS:
            return 403, {"error": {"code": "forbidden", "message": f"role {role} may not read this"}}
        return None


async def _send(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send_raw(send, status, json.dumps(body).encode(), "application/json", extra)


async def _send_raw(
    send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# What every server allows a client. A request's head (request line and headers) is at most
# HEAD_MAX_BYTES and arrives within HEAD_TIMEOUT_S; its body is at most BODY_MAX_BYTES (the console's
# forms are a few hundred bytes; the services' routes take none) and arrives within BODY_TIMEOUT_S of
# the head; an idle kept-alive connection is closed after KEEP_ALIVE_S.
HEAD_MAX_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
BODY_MAX_BYTES = 8 * 1024
BODY_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5


class BoundedRequests:
    """Refuses, before the app sees the request: a head larger than HEAD_MAX_BYTES with 431 (h11 holds
    a head to that size only while it is incomplete: one that arrives whole in one read passes it); a
    body larger than `max_body` bytes with 413, before a byte of it is read; and a body of unstated
    length (chunked) with 411, as the length a request states is the most h11 lets it send. A refused
    body is read and dropped by the server (within the body's deadline), so that a client still
    sending it reads the refusal rather than a reset connection."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                status, reason = refusal
                await _send_raw(send, status, reason.encode(), "text/plain; charset=utf-8")
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        headers = scope.get("headers", [])
        head = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
        head += sum(len(name) + len(value) + 4 for name, value in headers)
        if head > HEAD_MAX_BYTES:
            return 431, f"a request's head is at most {HEAD_MAX_BYTES} bytes"
        stated = None
        for name, value in headers:
            if name == b"transfer-encoding":
                return 411, "a request body must state its length"
            if name == b"content-length":
                stated = value
        if stated is not None and (not stated.isdigit() or int(stated) > self.max_body):
            return 413, f"a request body is at most {self.max_body} bytes"
        return None


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines it lacks (0.54 times only the wait between requests,
    and a byte received restarts that wait): a request's head is in within `head_s` of its first byte
    (of the connection, for the first request), its body within `body_s` of its head; a client slower
    than that is answered 408 (if nothing was answered yet) and disconnected. An answer the app takes
    its time over (a live view) is not timed: only what the client sends is.

    Reaches into the protocol's `conn` (the h11 connection), `cycle` and `transport`: pinned to
    uvicorn's h11 implementation, and tested in tests/unit/test_http_limits.py."""

    head_s: ClassVar[float] = HEAD_TIMEOUT_S
    body_s: ClassVar[float] = BODY_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._timed_cycle: object | None = None  # the request whose body the deadline is for
        self._arm(self.head_s)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm(self.head_s)  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have been read with it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """The deadline for what the client is sending now: its head, its body, or nothing."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._timed_cycle is not self.cycle:  # the head is in: the body's deadline starts
                self._timed_cycle = self.cycle
                self._arm(self.body_s)
        elif state is not h11.IDLE:
            self._disarm()  # the request is all in (or the connection is closing)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if not answering:
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 27\r\n"
                b"connection: close\r\n\r\nthe request came too slowly"
            )
        self.transport.close()


def make_server(
    app: Any,
    host: str,
    port: int,
    *,
    max_body: int = BODY_MAX_BYTES,
    head_s: float = HEAD_TIMEOUT_S,
    body_s: float = BODY_TIMEOUT_S,
) -> uvicorn.Server:
    """A uvicorn server for the ASGI `app` that leaves the signals to the process, and holds every
    request to the limits above (`max_body`, `head_s` and `body_s` as given)."""
    protocol = type("TimedH11Protocol", (TimedH11Protocol,), {"head_s": head_s, "body_s": body_s})
    config = uvicorn.Config(
        BoundedRequests(app, max_body),
        host=host,
        port=port,
        http=protocol,
        h11_max_incomplete_event_size=HEAD_MAX_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_config=None,
        access_log=False,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    # The service handles SIGINT/SIGTERM itself and stops the server with everything else.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


def bound_port(server: uvicorn.Server) -> int | None:
    """The port a started server listens on (useful when it was asked for port 0)."""
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    return None
