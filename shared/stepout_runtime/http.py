"""The HTTP side of a service (CONTRACT §7): health, readiness, metrics and GET routes."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
            return 401, {"error": {"code": "unauthorized", "message": "an Authorization: Bearer token is required"}}
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


def make_server(app: Any, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the ASGI `app` that leaves the signals to the process."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off", log_level="warning"
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
