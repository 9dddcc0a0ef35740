"""`stepout console hash-password`: the HASH of a console account, from a password on standard input."""

from __future__ import annotations

import getpass
import sys

from stepout_console.accounts import hash_password

PASSWORD_MIN = 12


def hash_password_command() -> int:
    """Print the hash of the password read from standard input (prompted for at a terminal)."""
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < PASSWORD_MIN:
        print(f"stepout: a console password has at least {PASSWORD_MIN} characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
