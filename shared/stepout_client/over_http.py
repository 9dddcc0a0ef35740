"""The HTTP reads (CONTRACT §7) with a bearer token: `pip install stepout-client[http]` (httpx)."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel

from stepout_contract.outputs import PlanView, ProgressView

from .errors import Forbidden, Unauthorized, Unavailable, refusal

M = TypeVar("M", bound=BaseModel)


class HttpReads:
    """The progress (tracker) and plan (planner) reads over HTTP, with the platform's API token."""

    def __init__(
        self,
        *,
        planner_url: str = "http://127.0.0.1:8081",
        tracker_url: str = "http://127.0.0.1:8082",
        token: str | None,
        timeout: float = 5.0,
    ) -> None:
        self.planner_url = planner_url.rstrip("/")
        self.tracker_url = tracker_url.rstrip("/")
        self._token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def progress(self, user_id: str) -> ProgressView:
        """`GET /v1/participants/{user_id}/progress` on the tracker."""
        return await self._get(f"{self.tracker_url}/v1/participants/{user_id}/progress", ProgressView)

    async def plan(self, user_id: str) -> PlanView:
        """`GET /v1/participants/{user_id}/plan` on the planner."""
        return await self._get(f"{self.planner_url}/v1/participants/{user_id}/plan", PlanView)

    async def _get(self, url: str, reply: type[M]) -> M:
        try:
            response = await self._http.get(url)
        except httpx.TransportError as failure:
            raise Unavailable(f"{url}: {failure!r}") from failure
        if response.status_code == 200:
            return reply.model_validate_json(response.content)
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = f"http_{response.status_code}", response.text[:200]
        if response.status_code == 401:
            raise Unauthorized(message, token_missing=not self._token)
        if response.status_code == 403:
            raise Forbidden(message)
        if response.status_code >= 500:
            raise Unavailable(f"{url}: {response.status_code} {message}")
        raise refusal(code, message)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HttpReads:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
