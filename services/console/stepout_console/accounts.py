"""Who may sign in to the console, and as what.

An account is `NAME:ROLE:COACH_ID:HASH`: a coach is bound to the `coach_id` their participants were
enrolled with (they see and review only those); an auditor reads everyone and changes nothing (no
COACH_ID). HASH is scrypt's (`hash_password`), so the settings never hold a password. In development,
with no accounts set, two are made on first start, with their passwords in a file only its owner reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from stepout_contract.settings import Settings, SettingsError
from stepout_runtime.first_start import made_on_first_start

Role = Literal["coach", "auditor"]
ROLES: tuple[Role, ...] = ("coach", "auditor")
FIRST_START_FILE = "console-accounts"
# The accounts a development start makes: the simulator's coach, and an auditor.
FIRST_START_ACCOUNTS = (("sim-coach", "coach", "sim-coach"), ("auditor", "auditor", ""))

# scrypt's cost: 2^14 rounds, 16 MiB of memory, about 50 ms a check.
_N, _R, _P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    role: Role
    coach_id: str | None
    password_hash: str


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$SALT$HASH`, salt and hash in base64."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` (a `hash_password` text) was made from."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        again = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
        return hmac.compare_digest(again, base64.b64decode(digest))
    except ValueError:
        return False


def parse_accounts(text: str, where: str) -> dict[str, Account]:
    """Accounts from `NAME:ROLE:COACH_ID:HASH` entries, comma- or newline-separated; `#` starts a
    comment. SettingsError naming `where` and the entry for one that is not an account."""
    found: dict[str, Account] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
    for number, entry in enumerate((e for e in entries if e), start=1):
        parts = entry.split(":")
        if len(parts) != 4:
            raise SettingsError(f"{where}: entry {number} is not NAME:ROLE:COACH_ID:HASH")
        name, role, coach_id, password_hash = parts
        if not _NAME.match(name):
            raise SettingsError(f"{where}: entry {number}: a name is 1 to 64 of A-Z a-z 0-9 _ . @ -")
        if role not in ROLES:
            raise SettingsError(f"{where}: entry {number}: the role is coach or auditor, not {role!r}")
        if (role == "coach") != bool(coach_id):
            raise SettingsError(f"{where}: entry {number}: a coach names a COACH_ID, an auditor none")
        if not password_hash.startswith("scrypt$") or password_hash.count("$") != 5:
            raise SettingsError(f"{where}: entry {number}: HASH is made by `stepout console hash-password`")
        if name in found:
            raise SettingsError(f"{where}: entry {number}: account {name!r} appears twice")
        found[name] = Account(name, role, coach_id or None, password_hash)  # type: ignore[arg-type]
    if not found:
        raise SettingsError(f"{where}: no account")
    return found


def accounts_of(settings: Settings) -> dict[str, Account]:
    """The console's accounts: from STEPOUT_CONSOLE_USERS or STEPOUT_CONSOLE_USERS_FILE; in development
    with neither, those made on first start (`first_start_passwords`). SettingsError otherwise."""
    if settings.console_users:
        return parse_accounts(settings.console_users, "STEPOUT_CONSOLE_USERS")
    if settings.console_users_file is not None:
        return parse_accounts(settings.console_users_file.read_text(), "STEPOUT_CONSOLE_USERS_FILE")
    if settings.environment == "production":
        raise SettingsError("STEPOUT_CONSOLE_USERS: required when STEPOUT_ENVIRONMENT=production (or the _FILE)")
    found = {}
    for name, password in first_start_passwords(settings).items():
        role, coach_id = next((r, c) for n, r, c in FIRST_START_ACCOUNTS if n == name)
        found[name] = Account(name, role, coach_id or None, hash_password(password))  # type: ignore[arg-type]
    return found


def first_start_passwords(settings: Settings) -> dict[str, str]:
    """name -> password of the development accounts, made once under the data directory."""
    text = made_on_first_start(
        settings.data_dir / FIRST_START_FILE,
        lambda: "\n".join(f"{name} {secrets.token_urlsafe(12)}" for name, _, _ in FIRST_START_ACCOUNTS),
        "the console's development accounts (no STEPOUT_CONSOLE_USERS set)",
    )
    return dict(line.split(" ", 1) for line in text.splitlines() if line.strip())


def session_secret(settings: Settings) -> str:
    """What signs the session cookies: STEPOUT_CONSOLE_SECRET, or one made on first start."""
    if settings.console_secret:
        return settings.console_secret
    if settings.environment == "production":
        raise SettingsError("STEPOUT_CONSOLE_SECRET: required when STEPOUT_ENVIRONMENT=production")
    return made_on_first_start(
        settings.data_dir / "console-secret",
        lambda: secrets.token_urlsafe(48),
        "the console's session secret (no STEPOUT_CONSOLE_SECRET set)",
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
