"""The audit queries' shell (`audit`, `audit-planner`): the request read by its contract model, the
reply computed from the service's own store (`stepout_audit.service_audit`) off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from stepout_audit.service_audit import service_audit
from stepout_contract.queries import AuditQuery

from .service import QueryAnswer, QueryError


def audit_answer(app: Any, service: str, reads: Executor) -> QueryAnswer:
    """The answer of `service` (its application `app`) to its audit query, read in `reads`."""

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        try:
            query = AuditQuery.model_validate(request)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "request"
            raise QueryError("invalid_request", f"{where}: {first['msg']}") from None
        try:
            at = (query.as_of or datetime.now(UTC)).astimezone(UTC)
        except OverflowError:
            raise QueryError("invalid_request", "as_of: out of range in UTC") from None
        found = await asyncio.get_running_loop().run_in_executor(
            reads, service_audit, app, service, query.user_id, at, query.limit
        )
        if found is None:
            raise QueryError("not_found", f"no participant {query.user_id} in the {service} store")
        return found

    return answer
