"""Wiring of the planner: settings -> event store, plan read model, ingest, outbox, queries, HTTP."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.outputs import OUTPUT_TYPES
from stepout_contract.queries import EscalationsQuery
from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects, is_user_id
from stepout_domain.catalog import load_catalog
from stepout_domain.ruleset import load_ruleset
from stepout_runtime.audit_query import audit_answer
from stepout_runtime.dead_letter_index import DeadLetterIndex
from stepout_runtime.erasure import purge_outputs, remove_dead_letters
from stepout_runtime.history_pages import PAGE_MAX
from stepout_runtime.ingest import DeadLetters, deliveries_spanning
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.leases import leases_for
from stepout_runtime.master_key import master_key
from stepout_runtime.metrics import PlannerMetrics
from stepout_runtime.outbox import Erase, OutboxRelay, relay_for
from stepout_runtime.service import QueryError, Service, ServiceParts
from stepout_runtime.store import eventsourcing_env, location, setup_lock
from stepout_runtime.topology import planner_partitions
from stepout_runtime.views import RowSealer, ViewStore

from .application import PlannerApplication, owner_of
from .history import planner_page

log = logging.getLogger(__name__)

PARTICIPANT_TYPES = {k: v for k, v in INPUT_TYPES.items() if v[0] == "participant"}
OUTCOME_TYPES = {k: v for k, v in OUTPUT_TYPES.items() if v[0] in ("progress", "overload")}


def build(settings: Settings) -> tuple[ServiceParts, PlannerApplication]:
    registry = CollectorRegistry()
    metrics = PlannerMetrics(registry)
    where = location(settings, "planner")
    rules, catalog = load_ruleset(settings.ruleset), load_catalog(settings.catalog)  # a bad file stops the start first
    keys = KeyStore(keystore_location(settings), master_key(settings))
    views = ViewStore(where, RowSealer(keys))
    dead_letter_index = DeadLetterIndex(where)
    app = PlannerApplication(
        eventsourcing_env(settings, where),
        rules=rules,
        catalog=catalog,
        views=views,
        subjects=Subjects(settings.subject_prefix),
        metrics=metrics,
        keys=keys,
        legacy_cipher_key=settings.cipher_key,
        patience=deliveries_spanning(2 * settings.ack_wait_seconds + 1.0, settings.max_deliver),
    )
    # The relay reads the log and moves its position beside the ingest, not behind it.
    outbox = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
    store = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner-store")
    reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="planner-reads")

    async def plan_of(user_id: str) -> dict[str, Any] | None:
        return await asyncio.get_running_loop().run_in_executor(reads, app.plan_of, user_id, datetime.now(UTC))

    async def query_plan(request: dict[str, Any]) -> dict[str, Any]:
        user_id = request.get("user_id")
        if not is_user_id(user_id):
            raise QueryError("invalid_request", "user_id must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        view = await plan_of(str(user_id))
        if view is None:
            raise QueryError("not_found", f"no plan for participant {user_id}")
        return view

    async def query_planner_history(request: dict[str, Any]) -> dict[str, Any]:
        user_id = request.get("user_id")
        if not is_user_id(user_id):
            raise QueryError("invalid_request", "user_id must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        after, limit = request.get("after", [0, -1]), request.get("limit", PAGE_MAX)
        try:
            position, index = int(after[0]), int(after[1])
            if not 1 <= int(limit) <= PAGE_MAX:
                raise ValueError(limit)
        except (TypeError, ValueError, IndexError, KeyError):
            raise QueryError("invalid_request", f"after must be [version, index], limit 1 to {PAGE_MAX}") from None
        found = await asyncio.get_running_loop().run_in_executor(
            reads, planner_page, app, str(user_id), (position, index), int(limit)
        )
        if found is None:
            raise QueryError("not_found", f"no plan for participant {user_id}")
        entries, more = found
        return {"entries": [e.as_wire() for e in entries], "more": more}

    async def query_escalations(request: dict[str, Any]) -> dict[str, Any]:
        try:
            query = EscalationsQuery.model_validate(request)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise QueryError("invalid_request", f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        found = await asyncio.get_running_loop().run_in_executor(
            reads, app.escalations, datetime.now(UTC), query.coach_id
        )
        return {"escalations": found[: query.limit], "total": len(found)}

    async def store_ready() -> None:
        await asyncio.get_running_loop().run_in_executor(reads, app.recorder.max_notification_id)

    def relay(js: Any) -> OutboxRelay:
        async def erase(action: Erase) -> None:
            loop = asyncio.get_running_loop()
            # Named before their key goes: the pseudonym then names nobody, and the log never had the user id.
            named = await loop.run_in_executor(store, app.naming, action.user_id)
            await loop.run_in_executor(store, app.erase, action.user_id)
            # What NATS still keeps of them goes too: the planner's dead letters and their outputs.
            removed = await remove_dead_letters(js, app.subjects, dead_letter_index, action.user_id)
            await purge_outputs(js, app.subjects, action.user_id)
            log.info("participant erased", extra={**named, "dead_letters_removed": removed})

        return relay_for(app, js, executor=outbox, metrics=metrics, erase=erase)

    partitions = planner_partitions(settings.tracker_partitions)
    read_by_partition: tuple[dict[str, Any], dict[str, Any]] = (PARTICIPANT_TYPES, OUTCOME_TYPES)
    parts = ServiceParts(
        name="planner",
        port=settings.planner_port,
        metrics=metrics,
        registry=registry,
        # Each partition: the participant inputs' consumer, then the tracker's outcomes'.
        ingest={
            durable: (types, app.handle_batch)
            for durables in partitions.values()
            for durable, types in zip(durables, read_by_partition, strict=True)
        },
        # A partition's participant inputs and the tracker's outcomes: one lease, one planner at a time.
        lease_groups=partitions,
        replicas=settings.planner_replicas,
        relay=relay,
        # history-planner: the planner's part of `history`, asked by the tracker.
        queries={
            "plan": query_plan,
            "history-planner": query_planner_history,
            "escalations": query_escalations,
            "audit-planner": audit_answer(app, "planner", reads),
        },
        lookups={"plan": plan_of},
        store_ready=store_ready,
        executor=store,
        on_stop=[reads.shutdown, outbox.shutdown, views.close, dead_letter_index.close, keys.close, app.close],
        dead_letters=DeadLetters(erased=lambda user_id: keys.is_erased(owner_of(user_id)), index=dead_letter_index),
        leases=leases_for(where, f"{settings.subject_prefix}/planner"),
    )
    return parts, app


async def serve(settings: Settings) -> None:
    with setup_lock(location(settings, "planner")):
        parts, app = build(settings)
        # Read models of another version are rebuilt before anything reads them (one process at a time).
        if await asyncio.get_running_loop().run_in_executor(parts.executor, app.upgrade_read_models):
            await asyncio.get_running_loop().run_in_executor(parts.executor, app.project)
    await asyncio.get_running_loop().run_in_executor(parts.executor, app.project)
    await Service(settings, parts).run()
