"""`stepout projections rebuild [--verify]`: read models rebuilt from the event stores."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console

from stepout_contract.settings import Settings

from .bars import progress_bars
from .stores import SERVICES, open_app


def _rebuild(app: object, service: str, console: Console) -> int:
    total = app.recorder.max_notification_id() or 0  # type: ignore[attr-defined]
    with progress_bars(console) as bar:
        task = bar.add_task(service, total=total)
        app.project(progress=lambda done: bar.update(task, completed=done))  # type: ignore[attr-defined]
    return int(total)  # every stored event was read past, whether or not it changed a view


def rebuild(settings: Settings, verify: bool) -> int:
    """Rebuild every read model (in place, or aside to compare). Exit 1 when --verify finds a difference."""
    console = Console(stderr=True)
    events, started, differences = 0, time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="stepout-rebuild-") as aside:
        for service in SERVICES:
            views_at = Path(aside) / f"{service}.db" if verify else None
            with open_app(settings, service, views_at) as app:
                if not verify:
                    app.views.reset(app.projection, app.projection_views, app.projection_version)
                events += _rebuild(app, service, console)
                if verify:
                    with open_app(settings, service) as live:
                        differences += _differences(service, app, live)
    elapsed = time.perf_counter() - started
    rate = events / elapsed if elapsed > 0 else 0.0
    if differences:
        service, view, key = differences[0]
        print(f"differs: {service} view {view!r} of participant {key!r} ({len(differences)} difference(s) in all)")
        return 1
    what = "verified" if verify else "rebuilt"
    print(f"{what} {events} events from {len(SERVICES)} stores in {elapsed:.2f}s ({rate:,.0f} events/s)")
    return 0


def _differences(service: str, rebuilt: object, live: object) -> list[tuple[str, str, str]]:
    found = []
    for view in rebuilt.projection_views:  # type: ignore[attr-defined]
        mine = dict(rebuilt.views.all(view))  # type: ignore[attr-defined]
        theirs = dict(live.views.all(view))  # type: ignore[attr-defined]
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                found.append((service, view, key))
    return found
