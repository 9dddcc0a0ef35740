"""Bearer tokens for the HTTP `/v1/` routes (CONTRACT §7, §9): from STEPOUT_API_TOKENS, or, when
none is set, one made on first start and kept under the data directory (mode 0600)."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from stepout_contract.settings import Settings

from .first_start import made_on_first_start

TOKEN_FILE = "api-tokens"
# Roles that may read each route family; both roles read everything today.
READERS = frozenset({"platform", "auditor"})


def parse(entries: str) -> list[tuple[str, bytes]]:
    """`ROLE:TOKEN,...` as (role, token bytes) pairs."""
    found = []
    for entry in entries.split(","):
        role, _, token = entry.strip().partition(":")
        if role and token:
            found.append((role, token.encode()))
    return found


def token_file(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE


class ApiTokens:
    """Which role, if any, a request's `Authorization` header names."""

    def __init__(self, entries: str) -> None:
        self._tokens = parse(entries)

    @classmethod
    def of(cls, settings: Settings) -> ApiTokens:
        if settings.api_tokens:
            return cls(settings.api_tokens)
        made = made_on_first_start(
            token_file(settings),
            lambda: f"platform:{secrets.token_urlsafe(32)}",
            "an API token for the /v1/ routes (no STEPOUT_API_TOKENS set)",
        )
        return cls(made)

    def role_of(self, authorization: bytes | None) -> str | None:
        """The role of a `Bearer TOKEN` header, compared in constant time with every known token."""
        if authorization is None or not authorization.startswith(b"Bearer "):
            return None
        given = authorization[len(b"Bearer ") :].strip()
        role = None
        for known_role, token in self._tokens:
            if hmac.compare_digest(given, token):  # every token is compared: no early exit
                role = known_role
        return role
