"""One service's answer to the audit queries (`audit`, `audit-planner`): its own store's chain for a
participant, and the participant as of a time as that store alone tells it (`replay`).

Each service answers about its own store, so an auditor learns which store breaks its chain
and still sees what the other one holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stepout_contract.vocabulary import rfc3339

from .entries import UnreadableEvent, entries
from .erasure import before_erasure_hidden
from .merge import ordered
from .replay import decisions_of, planner_as_of, tracker_as_of
from .trail import chain_break


def service_audit(app: Any, service: str, user_id: str, at: datetime, limit: int) -> dict[str, Any] | None:
    """The `audit` reply of `service` (its application `app`) about `user_id` as of `at`, with the
    last `limit` decisions up to then; None when the store has nothing of the participant."""
    found = chain_break(app, service, user_id)
    chain = {
        "holds": found is None,
        "broken_at_version": None if found is None else found.version,
        "reason": None if found is None else found.reason,
    }
    reply: dict[str, Any] = {"service": service, "user_id": user_id, "as_of": rfc3339(at), "chain": chain}
    try:
        read = before_erasure_hidden(entries(app, service, user_id), user_id)
    except UnreadableEvent as exc:
        return {**reply, **_empty(service), "unreadable": f"stored event {exc.version} does not read: {exc.reason}"}
    if not read:
        return None
    part = tracker_as_of(user_id, read, at) if service == "tracker" else planner_as_of(user_id, read, at)
    rows = [row for row in ordered((read,)) if row.timestamp <= at]
    decisions = decisions_of(rows)
    return {
        **reply,
        **part,
        "unreadable": None,
        "inputs": sum(1 for row in rows if row.is_input),
        "decisions": decisions[-limit:],
        "decisions_total": len(decisions),
    }


def _empty(service: str) -> dict[str, Any]:
    shown: dict[str, Any] = {"progress": None, "active_warning": None} if service == "tracker" else {"plan": None}
    return {**shown, "stored_events": 0, "erased": False, "inputs": 0, "decisions": [], "decisions_total": 0}
