"""Child processes the command line runs together (`run all`, `cluster`): stopped on SIGINT or SIGTERM,
all stopped when one exits, each given a grace period before it is killed."""

from __future__ import annotations

import logging
import signal
import subprocess
import time

log = logging.getLogger("stepout.run")


class Signals:
    """Set by SIGINT or SIGTERM from the moment it is made."""

    def __init__(self) -> None:
        self.stopping = False
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True


def watch(children: dict[str, subprocess.Popen[bytes]], signals: Signals, what: str) -> int:
    """Until a signal (0) or one of `children` exiting (1, the others then stopped too)."""
    code = 0
    while not signals.stopping:
        for name, child in children.items():
            if child.poll() is not None:
                log.error(f"{what} exited", extra={what: name, "code": child.returncode})
                signals.stopping, code = True, 1
        time.sleep(0.2)
    return code


def stop_all(children: dict[str, subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM to each child still running, then SIGKILL to any still running after `grace_s`."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
