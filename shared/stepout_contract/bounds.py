"""Bounds every input is held to at the edge (docs/CONTRACT.md "Bounds"), so that nothing a
platform sends can overflow a calendar computation or name a file to open."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# Times a platform may send (CloudEvent `time`, `occurred_at`, pause `until`): years 2000 to 2099 in UTC.
# Far enough from years 1 and 9999 that adding days, weeks or a local offset never overflows.
TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TIME_RANGE_TEXT = "2000-01-01T00:00:00Z and 2099-12-31T23:59:59Z"

# The tz database's own list of zone names, read once: a name is looked up, never opened as a path.
KNOWN_TIMEZONES: frozenset[str] = frozenset(zoneinfo.available_timezones())
ZONE_NAME_MAX_CHARS = 64


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def rfc3339_text(value: object) -> object:
    """Times arrive as RFC 3339 text with an offset (`2026-11-26T20:15:00Z`), nothing else:
    no epoch numbers, no local times, no other date formats."""
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 time with an offset, such as 2026-11-26T20:15:00Z")
    return value


def within_time_range(value: datetime) -> datetime:
    """`value` when it lies between TIME_MIN and TIME_MAX; else a plain-words ValueError."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not TIME_MIN <= utc <= TIME_MAX:
        raise ValueError(f"must be a time between {TIME_RANGE_TEXT}")
    return value


BoundedTime = Annotated[AwareDatetime, BeforeValidator(rfc3339_text), AfterValidator(within_time_range)]
