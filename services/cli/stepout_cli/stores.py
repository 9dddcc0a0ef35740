"""Opening both services' event stores from the command line, without NATS, and reading a
participant's trail from them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console

from stepout_audit.entries import SERVICES
from stepout_audit.trail import Trail, read_trail
from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects
from stepout_domain.catalog import load_catalog
from stepout_domain.ruleset import load_ruleset
from stepout_planner.application import PlannerApplication
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.master_key import master_key
from stepout_runtime.metrics import PlannerMetrics, TrackerMetrics
from stepout_runtime.store import StoreLocation, eventsourcing_env, location
from stepout_runtime.views import RowSealer, ViewStore
from stepout_tracker.application import TrackerApplication

from .bars import drawn_on, progress_bars


@contextmanager
def open_app(
    settings: Settings, service: str, views_at: Path | None = None
) -> Iterator[TrackerApplication | PlannerApplication]:
    """The service's application on its store; its read models at `views_at` (a SQLite file) if given."""
    where = location(settings, service)
    keys = KeyStore(keystore_location(settings), master_key(settings))
    views = ViewStore(StoreLocation("sqlite", sqlite_path=views_at) if views_at else where, RowSealer(keys))
    common = {
        "rules": load_ruleset(settings.ruleset),
        "catalog": load_catalog(settings.catalog),
        "views": views,
        "subjects": Subjects(settings.subject_prefix),
        "keys": keys,
        "legacy_cipher_key": settings.cipher_key,
    }
    env = eventsourcing_env(settings, where)
    app: TrackerApplication | PlannerApplication
    if service == "tracker":
        app = TrackerApplication(
            env,
            metrics=TrackerMetrics(CollectorRegistry()),
            store_location=where,
            **common,  # type: ignore[arg-type]
        )
    else:
        app = PlannerApplication(env, metrics=PlannerMetrics(CollectorRegistry()), **common)  # type: ignore[arg-type]
    try:
        yield app
    finally:
        app.close()
        views.close()
        keys.close()


@contextmanager
def opened(settings: Settings) -> Iterator[dict[str, Any]]:
    """Both services' applications on their stores, by service name."""
    with ExitStack() as stack:
        yield {service: stack.enter_context(open_app(settings, service)) for service in SERVICES}


def trail_of(settings: Settings, user_id: str, console: Console, *, stop_at_break: bool = False) -> Trail:
    """The participant's trail read from both stores, a bar per store on `console` (`read_trail`)."""
    with opened(settings) as apps, progress_bars(console) as bars:
        return read_trail(apps, user_id, progress=drawn_on(bars), stop_at_break=stop_at_break)
