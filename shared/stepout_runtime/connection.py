"""Connecting to NATS with the settings of CONTRACT §9 (user/password, token, creds, TLS)."""

from __future__ import annotations

import ssl
from typing import Any

from stepout_contract.settings import Settings


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context when a CA or a client certificate is configured."""
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
    )
    if settings.nats_tls_cert:
        context.load_cert_chain(
            str(settings.nats_tls_cert), str(settings.nats_tls_key) if settings.nats_tls_key else None
        )
    return context


def connect_options(settings: Settings, name: str) -> dict[str, Any]:
    """Keyword arguments for `nats.connect` (also used by the command line and the tests)."""
    options: dict[str, Any] = {
        "servers": [url.strip() for url in settings.nats_url.split(",")],
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 2,
    }
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password or ""
    if settings.nats_token:
        options["token"] = settings.nats_token
    if settings.nats_creds:
        options["user_credentials"] = str(settings.nats_creds)
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


def broker_options(settings: Settings, name: str) -> dict[str, Any]:
    """Keyword arguments for FastStream's `NatsBroker`, which takes credentials as a security object."""
    from faststream.nats.security import NatsCredentials, NatsSecurity, NatsToken, NatsUserPassword

    options = connect_options(settings, name)
    context = options.pop("tls", None)
    security: NatsSecurity | None = None
    if "user" in options:
        security = NatsUserPassword(
            username=options.pop("user"), password=options.pop("password"), ssl_context=context
        )
    elif "token" in options:
        security = NatsToken(token=options.pop("token"), ssl_context=context)
    elif "user_credentials" in options:
        security = NatsCredentials(credentials=options.pop("user_credentials"), ssl_context=context)
    elif context is not None:
        security = NatsSecurity(ssl_context=context)
    options["security"] = security
    return options
