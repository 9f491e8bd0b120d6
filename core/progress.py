"""Rich progress bars for long work, written to stderr so ``--json`` output stays clean."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["make_progress", "status", "track"]

T = TypeVar("T")


def _disabled() -> bool:
    return os.environ.get("DATAMARKETS_NO_PROGRESS", "") not in ("", "0")


def make_progress(transient: bool = True) -> Progress:
    """A :class:`rich.progress.Progress` on stderr with count, elapsed and remaining time.

    Off (draws and writes nothing) with ``DATAMARKETS_NO_PROGRESS=1`` and when stderr is neither a
    terminal nor a notebook: a live display stopped on a plain file or pipe writes a blank line,
    one per call, into a log or a Dask worker's stderr.
    """
    console = Console(file=sys.stderr)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=_disabled() or not (console.is_terminal or console.is_jupyter),
    )


def track(
    items: Iterable[T], description: str, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on stderr (off when ``enabled`` is False or
    ``DATAMARKETS_NO_PROGRESS=1``)."""
    if not enabled or _disabled():
        yield from items
        return
    if total is None and isinstance(items, Sized):
        total = len(items)
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


@contextlib.contextmanager
def status(description: str, enabled: bool = True) -> Iterator[None]:
    """Show a spinner with the elapsed time on stderr while a step of unknown length runs.

    For work without countable steps (building and solving one large program); off when
    ``enabled`` is False or ``DATAMARKETS_NO_PROGRESS=1``, and nothing is drawn when stderr is
    not a terminal. Do not nest it inside another progress display.

    Examples
    --------
    >>> with status("solving", enabled=False):
    ...     x = 1 + 1
    >>> x
    2
    """
    if not enabled or _disabled():
        yield
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as progress:
        progress.add_task(description, total=None)
        yield
