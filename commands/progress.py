"""A progress bar on stderr for long commands: shown when stderr is a terminal, nothing otherwise."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterator

#: What the library calls: (step name, done, total).
ProgressCallback = Callable[[str, int, int], None]


def _stderr_console() -> Any:
    """A rich console on stderr; ``NO_COLOR`` turns every style off."""
    from rich.console import Console

    return Console(stderr=True, color_system=None if os.environ.get("NO_COLOR") else "auto")


@contextlib.contextmanager
def progress_bar(title: str) -> Iterator[ProgressCallback | None]:
    """Yield a ``(step, done, total)`` callback drawing a rich bar on stderr, or None when stderr is not a terminal.

    One bar per step name; a step's bar is created at its first report.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_stderr_console(), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"{title}: {step}", total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield report


@contextlib.contextmanager
def working(title: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while work of unknown length runs; nothing when not a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=_stderr_console(), transient=True) as bar:
        bar.add_task(title, total=None)
        yield
