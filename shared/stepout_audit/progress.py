"""How a long read reports how far it got: told (step, done, total), e.g. ("tracker", 40, 120)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
