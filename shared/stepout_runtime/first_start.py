"""Secrets a development start makes for itself under the data directory (the master key, the API
token), each once, readable by its owner only, and shared by every process using that directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from .data_dir import private_dir

log = logging.getLogger(__name__)


def made_on_first_start(path: Path, make: Callable[[], str], what: str) -> str:
    """The text kept in `path`, made now with `make()` when absent: written to a draft readable by
    the owner only, then linked into place, so that of several processes starting together the
    first one's file is the one everybody reads. The log says where it is, never what it holds."""
    if not path.exists():
        private_dir(path.parent)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
        try:
            os.link(draft, path)  # fails if another process made it first: theirs is kept
            log.warning(f"made {what} on first start", extra={"file": str(path)})
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
