"""Times as the console reads and shows them: the audit page's `as_of`, and a warning's age."""

from __future__ import annotations

from datetime import UTC, datetime


def as_of_param(text: str | None) -> datetime | None:
    """The audit page's `as_of`: RFC 3339 with an offset, or a form's `YYYY-MM-DDTHH:MM[:SS]` read as
    UTC; None when empty. ValueError naming the expected form otherwise."""
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"as_of is not a time (YYYY-MM-DDTHH:MM, UTC, or RFC 3339): {text[:40]!r}") from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"as_of is out of range in UTC: {text[:40]!r}") from None


def age(since: str | None, now: datetime) -> str:
    """How long ago `since` (RFC 3339) was, in the two largest units: `2 d 3 h`, `5 min`."""
    if not since:
        return ""
    seconds = int((now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds())
    if seconds < 60:
        return "under a minute"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60} min"
    return f"{minutes} min"
