"""Connecting to NATS with the settings of CONTRACT §9 (user/password, token, creds, TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from nats import errors
from nats.aio.client import Client

from stepout_contract.settings import Settings

if TYPE_CHECKING:
    from faststream.nats import NatsBroker

T = TypeVar("T")
ErrorCallback = Callable[[Exception], Awaitable[None]]

# Every party takes its replies under an inbox prefix of its own, and deploy/nats/nats-server.conf lets
# each read only its own: what a service pulls arrives in its inbox (inputs with their notes), and a
# query answer in the asker's. The platform keeps the clients' default, `_INBOX`.
PLATFORM_INBOX_PREFIX = "_INBOX"
AUDITOR_INBOX_PREFIX = "_INBOX_stepout_auditor"
CONSOLE_INBOX_PREFIX = "_INBOX_stepout_console"
ADMIN_INBOX_PREFIX = "_INBOX_stepout_admin"


SERVICES = ("tracker", "planner")
# The reply subjects nats-server gives a request that came through a service import from another
# account (deploy/nats/nats-server.conf puts each outside party in an account of its own).
IMPORTED_REPLY_PREFIX = "_R_"


def service_inbox_prefix(service: str) -> str:
    """The inbox prefix of the service `service` (`tracker`, `planner`)."""
    return f"_INBOX_stepout_{service}"


def answerable(reply: str | None, asked_by: str | None) -> bool:
    """Whether a query's answer may go to `reply`: the inbox of the service that asks it (`asked_by`),
    or, for the queries outside parties ask, an inbox that is not a service's nor the operator's, or the
    reply of a request imported from another account. Never a
    subject a service could otherwise publish (an output, the JetStream API, an ack), whatever the asker
    wrote as its reply subject."""
    if not reply or "." not in reply:
        return False
    prefix = reply.split(".", 1)[0]
    if asked_by is not None:
        return prefix == service_inbox_prefix(asked_by)
    if prefix == IMPORTED_REPLY_PREFIX:
        return True  # an asker of another account: the server leads the answer back there, and only there
    own = {ADMIN_INBOX_PREFIX, *(service_inbox_prefix(service) for service in SERVICES)}
    return prefix.startswith(PLATFORM_INBOX_PREFIX) and prefix not in own


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


log = logging.getLogger("stepout.nats")


async def _on_error(error: Exception) -> None:
    # nats-py reports every failed reconnect; one line each, no traceback.
    log.warning("nats error", extra={"error": repr(error)})


class _Closing:
    """Set when the process is shutting down, so that closing our own connections is not
    reported as an outage."""

    now = False


closing = _Closing()


async def _on_disconnected() -> None:
    if not closing.now:
        log.warning("nats disconnected, reconnecting")


async def _on_reconnected() -> None:
    log.info("nats reconnected")


def connect_options(settings: Settings, name: str) -> dict[str, Any]:
    """Keyword arguments for `nats.connect` (also used by the command line and the tests)."""
    options: dict[str, Any] = {
        "servers": [url.strip() for url in settings.nats_url.split(",")],
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "error_cb": _on_error,
        "disconnected_cb": _on_disconnected,
        "reconnected_cb": _on_reconnected,
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


def broker_options(settings: Settings, name: str, inbox_prefix: str) -> dict[str, Any]:
    """Keyword arguments for a service's FastStream `NatsBroker`, which takes credentials as a security object."""
    from faststream.nats.security import NatsCredentials, NatsSecurity, NatsToken, NatsUserPassword

    options = connect_options(settings, name)
    options["inbox_prefix"] = inbox_prefix
    context = options.pop("tls", None)
    security: NatsSecurity | None = None
    if "user" in options:
        security = NatsUserPassword(username=options.pop("user"), password=options.pop("password"), ssl_context=context)
    elif "token" in options:
        security = NatsToken(token=options.pop("token"), ssl_context=context)
    elif "user_credentials" in options:
        security = NatsCredentials(credentials=options.pop("user_credentials"), ssl_context=context)
    elif context is not None:
        security = NatsSecurity(ssl_context=context)
    options["security"] = security
    return options


class NatsRefusedError(Exception):
    """A NATS server answered but refused our credentials or certificates: no retry can help."""


def _refused_certificate(error: Exception) -> bool:
    """The server's TLS alert about our client certificate: missing, unknown CA, bad, expired."""
    reason = getattr(error, "reason", None) or ""
    return isinstance(error, ssl.SSLError) and "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason)


def _is_refusal(error: Exception) -> bool:
    if isinstance(error, errors.AuthorizationError | ssl.SSLCertVerificationError) or _refused_certificate(error):
        return True
    text = str(error).lower()
    return "authorization violation" in text or "authentication expired" in text


def _refused_setting(settings: Settings, error: Exception) -> str:
    """The setting to look at when a server refuses us (CONTRACT §9 names)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return "STEPOUT_NATS_TLS_CA"
    if _refused_certificate(error):
        return "STEPOUT_NATS_TLS_CERT/STEPOUT_NATS_TLS_KEY"
    if settings.nats_user:
        return "STEPOUT_NATS_USER/STEPOUT_NATS_PASSWORD"
    if settings.nats_token:
        return "STEPOUT_NATS_TOKEN"
    if settings.nats_creds:
        return "STEPOUT_NATS_CREDS"
    return "STEPOUT_NATS_USER"  # the server wants credentials and none are set


async def connect(settings: Settings, name: str, inbox_prefix: str) -> Client:
    """A plain nats-py connection with `connect_options` and `inbox_prefix` (the command line's, the
    console's and the tests'); waits and refuses as `connect_broker` does."""
    options = connect_options(settings, name)
    options["inbox_prefix"] = inbox_prefix
    client = Client()

    async def start(error_cb: ErrorCallback) -> Client:
        await client.connect(**{**options, "error_cb": error_cb})
        return client

    return await _connected(settings, start, client.close)


async def connect_broker(settings: Settings, name: str, inbox_prefix: str, **broker_kwargs: Any) -> NatsBroker:
    """A service's one connection to NATS: a FastStream broker, connected. Its nats-py client
    (`broker.connection`) also carries the service's JetStream traffic, so each service has one
    connection stack. Waits as long as it takes for a server that does not answer yet, but raises
    `NatsRefusedError` at once when one refuses the credentials or the certificate."""
    from faststream.nats import NatsBroker

    options = broker_options(settings, name, inbox_prefix)
    holder: list[NatsBroker] = []

    async def start(error_cb: ErrorCallback) -> NatsBroker:
        broker = NatsBroker(**{**options, "error_cb": error_cb}, **broker_kwargs)
        holder.append(broker)
        await broker.connect()
        return broker

    async def close() -> None:
        if holder:
            await holder[0].stop()

    return await _connected(settings, start, close)


async def _connected(
    settings: Settings, start: Callable[[ErrorCallback], Awaitable[T]], close: Callable[[], Awaitable[Any]]
) -> T:
    """What `start` connects, with errors reported; a refusal of the credentials or the certificate,
    which no retry would change, ends the wait at once."""
    refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
    connected = False

    async def on_error(error: Exception) -> None:
        await _on_error(error)
        if not connected and _is_refusal(error) and not refused.done():
            refused.set_result(error)

    connecting = asyncio.ensure_future(start(on_error))
    either: list[asyncio.Future[Any]] = [connecting, refused]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    raised = connecting.exception() if connecting.done() else None
    failed = raised if isinstance(raised, Exception) else None
    if not refused.done() and not (failed is not None and _is_refusal(failed)):
        refused.cancel()
        result = await connecting
        connected = True
        return result
    error = refused.result() if refused.done() else failed
    assert error is not None
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await connecting
    with contextlib.suppress(Exception):
        await close()
    setting = _refused_setting(settings, error)
    log.error("NATS refused the connection", extra={"setting": setting, "error": str(error)})
    raise NatsRefusedError(f"{setting}: connecting to NATS at {settings.nats_url} was refused: {error}")
