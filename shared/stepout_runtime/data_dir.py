"""The data directory and what stepout keeps in it, readable and writable by their owner only.

A copy of `keys.db` taken before an erasure, with the master key, undoes that erasure: the stores,
the key store, the master key, the API token and everything else stepout writes under
STEPOUT_DATA_DIR are made 0600, in directories made 0700. The command line sets the umask to 0077
before anything else (`keep_private`), so that files made by libraries (SQLite's -wal, -shm and
-journal files, nats-server's store and log) are private too; the stores are also made 0600 before
SQLite first opens them, and SQLite gives its -wal, -shm and -journal files the mode of their
database. A data directory, or a store or secret file in it, that others may read or write stops
the start (`check`) with one line naming the path, its mode and the `chmod` that fixes it.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE, FILE_MODE = 0o700, 0o600
# Files at the top of the data directory that hold personal data or secrets: the stores (and SQLite's
# files beside them), the master key, the API tokens, and the console's development accounts and secret.
STORE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")
SECRET_FILES = frozenset({"master.key", "api-tokens", "console-accounts", "console-secret"})


class DataDirOpen(RuntimeError):
    """The data directory, or a store or secret file in it, is open to group or others; the message is one line."""


def keep_private() -> None:
    """From now on, what this process and the processes it starts create is their owner's only."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """`path`, made (with any missing parent) with mode 0700 when it does not exist yet."""
    if not path.is_dir():
        for missing in reversed([path, *path.parents]):
            if not missing.exists():
                missing.mkdir(mode=DIR_MODE, exist_ok=True)
    return path


def private_file(path: Path) -> Path:
    """`path`, made empty with mode 0600 when it does not exist yet (an existing file is left as it is)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, mode 0600 whether or not the file was there before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(text)


def is_kept_file(path: Path) -> bool:
    """Whether `path`, at the top of the data directory, is a store or a secret stepout keeps."""
    return path.name in SECRET_FILES or path.name.endswith(STORE_SUFFIXES)


def _open_to_others(path: Path) -> int | None:
    """The permission bits of `path` when group or others may read or write it, else None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & 0o066 else None


def check(data_dir: Path) -> None:
    """Raise DataDirOpen when `data_dir`, or a store or secret file in it, is readable or writable by
    group or others."""
    mode = _open_to_others(data_dir)
    if mode is not None:
        raise DataDirOpen(
            f"the data directory {data_dir} (mode {mode:04o}) is open to group or others: "
            f"chmod {DIR_MODE:o} {shlex.quote(str(data_dir))}"
        )
    open_files = sorted(
        (path, mode)
        for path in data_dir.iterdir()
        if is_kept_file(path) and path.is_file() and (mode := _open_to_others(path))
    )
    if open_files:
        first, first_mode = open_files[0]
        which = f"{first} (mode {first_mode:04o})"
        others = len(open_files) - 1
        which += f" and {others} more file{'s' if others > 1 else ''} are" if others else " is"
        paths = " ".join(shlex.quote(str(path)) for path, _ in open_files)
        raise DataDirOpen(f"{which} open to group or others: chmod {FILE_MODE:o} {paths}")


def prepare(data_dir: Path) -> Path:
    """The data directory, made with mode 0700 if absent, and checked (`check`)."""
    check(private_dir(data_dir))
    return data_dir
