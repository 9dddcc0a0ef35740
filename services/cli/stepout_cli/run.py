"""`stepout run [all|planner|tracker|console]`: the services and the console, as separate OS processes
for `all`."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

from stepout_contract.settings import Settings
from stepout_runtime.connection import connect_options
from stepout_runtime.keystore import KeyStore, keystore_location
from stepout_runtime.master_key import master_key

from . import natsd, topology
from .processes import Signals, stop_all, watch

log = logging.getLogger("stepout.run")
STOP_GRACE_S = 8.0


def run_service(settings: Settings, which: str) -> int:
    if which == "tracker":
        from stepout_tracker.main import serve
    elif which == "console":
        from stepout_console.main import serve
    else:
        from stepout_planner.main import serve
    asyncio.run(serve(settings))
    return 0


def jetstream_key(settings: Settings) -> str:
    """The key the embedded nats-server encrypts JetStream with: the key store's `jetstream` key."""
    keys = KeyStore(keystore_location(settings), master_key(settings))
    try:
        return keys.purpose_key("jetstream").hex()
    finally:
        keys.close()


def run_all(settings: Settings) -> int:
    """NATS (found, or started here: see `natsd.find_or_start`), then planner, tracker and console; stop all
    on a signal."""
    # From the start: a signal while NATS is being found or started still stops what was started.
    signals = Signals()
    options = connect_options(settings, "stepout-run")
    options.pop("servers")
    try:
        nats_server = natsd.find_or_start(settings, options, jetstream_key(settings))
    except natsd.NoServer as exc:
        log.error(str(exc))
        return 1
    env = os.environ.copy()
    if nats_server.url != settings.nats_url.split(",")[0].strip():
        env["STEPOUT_NATS_URL"] = nats_server.url  # the server started beside an older one
        settings = settings.model_copy(update={"nats_url": nats_server.url})
    # The topology first, as an operator declares it at deploy time: the services only read it.
    if not signals.stopping and topology.apply_command(settings) != 0:
        nats_server.stop()
        return 1
    children = {
        name: subprocess.Popen([sys.executable, "-m", "stepout_cli.main", "run", name], env=env)
        for name in (() if signals.stopping else ("planner", "tracker", "console"))
    }
    code = watch(children, signals, "service")
    log.info("stopping")
    stop_all(children, STOP_GRACE_S)
    nats_server.stop()
    log.info("stopped")
    return code
