"""`stepout run [all|planner|tracker]`: the services, as separate OS processes for `all`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

from stepout_contract.settings import Settings
from stepout_runtime.connection import connect_options

from . import natsd

log = logging.getLogger("stepout.run")
STOP_GRACE_S = 8.0


def run_service(settings: Settings, which: str) -> int:
    if which == "tracker":
        from stepout_tracker.main import serve
    else:
        from stepout_planner.main import serve
    asyncio.run(serve(settings))
    return 0


def run_all(settings: Settings) -> int:
    """NATS (started here when local and silent), then planner and tracker; stop all on a signal."""
    url = settings.nats_url.split(",")[0].strip()
    server: subprocess.Popen[bytes] | None = None
    options = connect_options(settings, "stepout-run")
    options.pop("servers")
    if not asyncio.run(natsd.answers(url, options)):
        if not natsd.is_local(url):
            log.error("NATS does not answer and is not local; not starting one", extra={"nats": url})
            return 1
        store = settings.data_dir / "nats"
        server = natsd.start_local(url, store, settings.data_dir / "nats-server.log")
        deadline = time.monotonic() + 10
        while not asyncio.run(natsd.answers(url, options, timeout=0.5)):
            if server.poll() is not None or time.monotonic() > deadline:
                log.error("nats-server did not start", extra={"log": str(settings.data_dir / "nats-server.log")})
                return 1
            time.sleep(0.1)
        log.info("nats-server started", extra={"nats": url, "store": str(store), "pid": server.pid})
    else:
        log.info("using NATS", extra={"nats": url})

    children = {
        name: subprocess.Popen([sys.executable, "-m", "stepout_cli.main", "run", name], env=os.environ.copy())
        for name in ("planner", "tracker")
    }
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                log.error("service exited", extra={"service": name, "code": child.returncode})
                stopping, code = True, 1
        time.sleep(0.2)
    log.info("stopping")
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    if server is not None:
        server.terminate()
        try:
            server.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            server.kill()
    log.info("stopped")
    return code
