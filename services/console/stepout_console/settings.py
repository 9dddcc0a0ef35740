"""The console's own settings beside the shared ones (read once, at start), and what follows from
both: whether its cookies are `Secure` and its answers carry HSTS."""

from __future__ import annotations

import ipaddress

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from stepout_contract.settings import Settings, SettingsError


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPOUT_CONSOLE_", extra="ignore", frozen=True)

    # A session not used for this long is ended (beside the 8 hours from sign-in that end any session).
    # What the escalations page asks by itself (its live view and rows) is not use.
    idle_minutes: float = Field(30.0, gt=0, le=8 * 60)


def load_console_settings() -> ConsoleSettings:
    """Read the environment once; a bad value raises SettingsError naming the variable."""
    try:
        return ConsoleSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "STEPOUT_CONSOLE_" + str(first["loc"][0]).upper() if first["loc"] else "STEPOUT_CONSOLE_*"
        raise SettingsError(f"{name}: {first['msg']}") from None


def loopback_only(host: str) -> bool:
    """Whether a server listening on `host` can be reached from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def secure_cookies(settings: Settings) -> bool:
    """STEPOUT_CONSOLE_SECURE_COOKIES when it is set; otherwise on wherever the console listens beyond
    loopback (compose's 0.0.0.0, say), where it is reached over HTTPS through a proxy, and off on
    loopback (`make run`), where plain http must keep working."""
    if "console_secure_cookies" in settings.model_fields_set:
        return settings.console_secure_cookies
    return not loopback_only(settings.http_host)
