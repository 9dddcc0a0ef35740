"""Wiring of the tracker: settings -> event store, read model, ingest, outbox, queries, HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects, is_user_id
from stepout_domain.catalog import load_catalog
from stepout_domain.ruleset import load_ruleset
from stepout_runtime.audit_query import audit_answer
from stepout_runtime.dead_letter_index import DeadLetterIndex
from stepout_runtime.erasure import purge_inputs, purge_outputs, remove_dead_letters
from stepout_runtime.history_pages import (
    START,
    Key,
    PageEntry,
    decode_cursor,
    encode_cursor,
    merge_page,
    page_limit,
)
from stepout_runtime.ingest import DeadLetters
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.leases import leases_for
from stepout_runtime.master_key import master_key
from stepout_runtime.metrics import TrackerMetrics
from stepout_runtime.outbox import Erase, OutboxRelay, relay_for
from stepout_runtime.service import QueryError, Service, ServiceParts
from stepout_runtime.store import eventsourcing_env, location, setup_lock
from stepout_runtime.topology import tracker_durables
from stepout_runtime.views import RowSealer, ViewStore

from .application import OVERLOADED, TrackerApplication, owner_of
from .history import tracker_page

HISTORY_PARTS = ("tracker", "planner")
log = logging.getLogger(__name__)


def build(settings: Settings) -> tuple[ServiceParts, TrackerApplication]:
    registry = CollectorRegistry()
    metrics = TrackerMetrics(registry)
    where = location(settings, "tracker")
    rules, catalog = load_ruleset(settings.ruleset), load_catalog(settings.catalog)  # a bad file stops the start first
    keys = KeyStore(keystore_location(settings), master_key(settings))
    views = ViewStore(where, RowSealer(keys))
    dead_letter_index = DeadLetterIndex(where)
    app = TrackerApplication(
        eventsourcing_env(settings, where),
        rules=rules,
        catalog=catalog,
        views=views,
        subjects=Subjects(settings.subject_prefix),
        metrics=metrics,
        keys=keys,
        legacy_cipher_key=settings.cipher_key,
        store_location=where,
    )
    # The relay reads the log and moves its position beside the ingest, not behind it.
    outbox = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
    store = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker-store")
    reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tracker-reads")

    async def in_reads(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(reads, fn, *args)

    def user_of(request: dict[str, Any]) -> str:
        user_id = request.get("user_id")
        if not is_user_id(user_id):
            raise QueryError("invalid_request", "user_id must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        return str(user_id)

    async def query_progress(request: dict[str, Any]) -> dict[str, Any]:
        user_id = user_of(request)
        view = await in_reads(app.progress_of, user_id, datetime.now(UTC))
        if view is None:
            raise QueryError("not_found", f"no progress for participant {user_id}")
        return view

    async def planner_part(user_id: str, after: Key, limit: int) -> tuple[list[PageEntry], bool] | None:
        """The planner's own history of the participant after `after`, asked over NATS (the
        services never import each other); None when the planner did not answer."""
        assert parts.nc is not None
        subject = Subjects(settings.subject_prefix).query("history-planner")
        request = {"user_id": user_id, "after": list(after), "limit": limit}
        try:
            reply = await parts.nc.request(subject, json.dumps(request).encode(), timeout=2.0)
            answer = json.loads(reply.data)
            if "error" in answer:
                return ([], False) if answer["error"].get("code") == "not_found" else None
            return [PageEntry.from_wire(e) for e in answer["entries"]], bool(answer["more"])
        except Exception as exc:  # noqa: BLE001 - any failure only makes the reply partial
            log.warning("planner history unavailable", extra={"error": repr(exc)})
            return None

    async def query_history(request: dict[str, Any]) -> dict[str, Any]:
        user_id = user_of(request)
        try:
            limit = page_limit(request)
            cursor = decode_cursor(request["cursor"], HISTORY_PARTS) if "cursor" in request else None
        except ValueError as exc:
            raise QueryError("invalid_request", str(exc)) from None
        after = cursor or dict.fromkeys(HISTORY_PARTS, START)
        mine = await in_reads(tracker_page, app, user_id, after["tracker"], limit)
        if mine is None:
            raise QueryError("not_found", f"no participant {user_id}")
        theirs = await planner_part(user_id, after["planner"], limit)
        page = merge_page({"tracker": mine, "planner": theirs or ([], False)}, after, limit)
        reply: dict[str, Any] = {"events": page.events, "next_cursor": None}
        if page.cursor is not None:
            reply["next_cursor"] = encode_cursor(page.cursor)
        if theirs is None:
            reply["partial"] = True  # the planner did not answer: its assignments are missing
        return reply

    async def store_ready() -> None:
        await in_reads(app.recorder.max_notification_id)

    async def refresh_gauges() -> None:
        metrics.participants_overloaded.set(await in_reads(views.count_marked, OVERLOADED))

    def relay(js: Any) -> OutboxRelay:
        async def erase(action: Erase) -> None:
            loop = asyncio.get_running_loop()
            # Named before their key goes: the pseudonym then names nobody, and the log never had the user id.
            named = await loop.run_in_executor(store, app.naming, action.user_id)
            await loop.run_in_executor(store, app.erase, action.user_id)
            # What NATS still keeps of them goes too: their queued inputs, dead letters and outputs.
            subjects = app.subjects
            await purge_inputs(js, subjects, action.user_id, action.before_seq, settings.tracker_partitions)
            removed = await remove_dead_letters(js, subjects, dead_letter_index, action.user_id)
            await purge_outputs(js, subjects, action.user_id)
            log.info("participant erased", extra={**named, "dead_letters_removed": removed})

        return relay_for(app, js, executor=outbox, metrics=metrics, erase=erase)

    parts = ServiceParts(
        name="tracker",
        port=settings.tracker_port,
        metrics=metrics,
        registry=registry,
        ingest={durable: (INPUT_TYPES, app.handle_batch) for durable in tracker_durables(settings.tracker_partitions)},
        relay=relay,
        queries={"progress": query_progress, "history": query_history, "audit": audit_answer(app, "tracker", reads)},
        lookups={"progress": lambda user_id: in_reads(app.progress_of, user_id, datetime.now(UTC))},
        store_ready=store_ready,
        executor=store,
        on_stop=[reads.shutdown, outbox.shutdown, views.close, dead_letter_index.close, keys.close, app.close],
        # Participant inputs are the planner's to dead-letter; the tracker dead-letters attempts and the rest.
        dead_letters=DeadLetters(
            owns=lambda subject: not subject.startswith(f"{settings.subject_prefix}.participant."),
            erased=lambda user_id: keys.is_erased(owner_of(user_id)),
            index=dead_letter_index,
        ),
        refresh_gauges=refresh_gauges,
        leases=leases_for(where, f"{settings.subject_prefix}/tracker"),
        replicas=settings.tracker_replicas,
    )
    return parts, app


async def serve(settings: Settings) -> None:
    with setup_lock(location(settings, "tracker")):
        parts, app = build(settings)
        # Read models of another version are rebuilt before anything reads them (one process at a time).
        await asyncio.get_running_loop().run_in_executor(parts.executor, app.index_legacy_attempts)
        if await asyncio.get_running_loop().run_in_executor(parts.executor, app.upgrade_read_models):
            await asyncio.get_running_loop().run_in_executor(parts.executor, app.project)
    await asyncio.get_running_loop().run_in_executor(parts.executor, app.project)
    await Service(settings, parts).run()
