"""The deciders' states as values: a copy with some fields changed, built in one constructor call.

`TrackerState` and `PlanState` are dataclasses that no code changes once built: each decision
builds new ones. They are not frozen because a frozen dataclass's constructor sets each field
through `object.__setattr__`, and `dataclasses.replace` reads the fields one by one: for states
of 20-30 fields the two made up a third of a decision's cost (py-spy, docs/LATE-DATA.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def changer(cls: type[T]) -> Callable[..., T]:
    """`changed(value, **changes)`: `dataclasses.replace(value, **changes)` for instances of `cls`,
    with every field passed to one constructor call."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    source = (
        f"def changed(value, *, {', '.join(f'{n}=_KEEP' for n in names)}):\n"
        f"    return cls({', '.join(f'value.{n} if {n} is _KEEP else {n}' for n in names)})\n"
    )
    scope: dict[str, Any] = {"cls": cls, "_KEEP": object()}
    exec(source, scope)
    return scope["changed"]  # type: ignore[no-any-return]
