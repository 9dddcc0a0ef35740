"""Progress bars of long commands: on stderr, and only when it is a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from stepout_audit.progress import Progress as Report


def progress_bars(console: Console) -> Progress:
    """A rich `Progress` that draws nothing when `console` is not a terminal and vanishes when done."""
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def drawn_on(bars: Progress) -> Report:
    """A progress report of `stepout_audit` drawn on `bars`: one bar per step it names."""
    tasks: dict[str, TaskID] = {}

    def report(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bars.add_task(step, total=total)
        bars.update(tasks[step], completed=done, total=total)

    return report


def stderr_console() -> Console:
    return Console(stderr=True)
