"""A progress bar on stderr for long commands: shown when stderr is a terminal, nothing otherwise."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

#: What the library calls: (step name, done, total).
ProgressCallback = Callable[[str, int, int], None]


@contextlib.contextmanager
def progress_bar(title: str) -> Iterator[ProgressCallback | None]:
    """Yield a ``(step, done, total)`` callback drawing a rich bar on stderr, or None when stderr is not a terminal.

    One bar per step name; a step's bar is created at its first report.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"{title}: {step}", total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield report
