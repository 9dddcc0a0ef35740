"""The identities of a NATS configuration: each user, in `authorization` or in an account, with the
`publish` and `subscribe` rules of its permissions (a list, or `{allow, deny}`) or of the defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .nats_config import Value


@dataclass(frozen=True)
class Rule:
    """A `publish` or `subscribe` permission: `allow` None is every subject."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Party:
    """One user of the configuration and what it may publish and subscribe to."""

    name: str
    account: str | None
    publish: Rule
    subscribe: Rule
    responses: str | None = None  # `allow_responses`, as written


def parties(config: dict[str, Value]) -> list[Party]:
    """Every user of `authorization { users }` and of each `accounts { NAME { users } }`."""
    found = []
    authorization = _map(_get(config, "authorization"))
    defaults = _get(authorization, "default_permissions")
    for user in _maps(_get(authorization, "users")):
        found.append(_party(user, None, defaults))
    for account, body in _map(_get(config, "accounts")).items():
        body = _map(body)
        for user in _maps(_get(body, "users")):
            found.append(_party(user, account, _get(body, "default_permissions") or defaults))
    if not found:
        raise ValueError("no users in the configuration: neither `authorization { users }` nor `accounts`")
    return found


def _party(user: dict[str, Value], account: str | None, defaults: Value | None) -> Party:
    name = _get(user, "user", "username", "nkey")
    permissions = _map(_get(user, "permissions") or defaults)
    responses = _get(permissions, "allow_responses", "allow_resp")
    return Party(
        name=name if isinstance(name, str) else "?",
        account=account,
        publish=_rule(_get(permissions, "publish", "pub")),
        subscribe=_rule(_get(permissions, "subscribe", "sub")),
        responses=None if responses is None else _text(responses),
    )


def _rule(value: Value | None) -> Rule:
    if value is None:
        return Rule()
    if not isinstance(value, dict):
        return Rule(_strings(value))
    allow = _get(value, "allow")
    return Rule(None if allow is None else _strings(allow), _strings(_get(value, "deny") or []))


def _get(mapping: dict[str, Value], *keys: str) -> Value | None:
    """A key's value, its case ignored as nats-server ignores it; the first of `keys` that is set."""
    lowered = {key.lower(): value for key, value in mapping.items()}
    return next((lowered[key] for key in keys if key in lowered), None)


def _map(value: Value | None) -> dict[str, Value]:
    return value if isinstance(value, dict) else {}


def _maps(value: Value | None) -> list[dict[str, Value]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: Value) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(item for item in items if isinstance(item, str))


def _text(value: Value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {_text(item)}" for key, item in value.items())
    return value if isinstance(value, str) else ", ".join(_text(item) for item in value)
