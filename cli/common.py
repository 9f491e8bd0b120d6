"""Helpers shared by the command-line sub-apps: JSON/table output and error exits."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from datamarkets.io import check_writable, to_jsonable
from datamarkets.validation import check_time_limit, check_tolerance

__all__ = [
    "EXIT_ALGORITHM",
    "EXIT_INPUT",
    "EXIT_UNCERTIFIED",
    "check_options",
    "check_out",
    "emit_json",
    "fail",
    "fail_no_solution",
    "print_table",
    "solver_output_to_stderr",
    "stderr",
    "stdout",
]

EXIT_INPUT = 2  # bad input: malformed file, invalid graph or mechanism
EXIT_ALGORITHM = 3  # a solver or algorithm could not deliver (infeasible, limit, crash)
EXIT_UNCERTIFIED = 4  # a result was produced but its certificate failed

stdout = Console()


def _flags_take_no_value() -> None:
    """Show on/off options (``--json``, ``--help``) as flags in ``--help``, not as ``<bool>``.

    Typer's rich help prints every option's type, including flags, which reads as if ``--json``
    needed a value. This hides the type of options that take none (a display fix only: parsing
    is click's and unchanged). Kept working if a typer release changes the method it patches.
    """
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - a typer without the class
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_datamarkets_flag_fix", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    # a marker attribute on our function, and a method patched on typer's class: both on purpose
    display_type_rich._datamarkets_flag_fix = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()
stderr = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print ``obj`` (a Result, dict, …) as JSON on stdout, nothing else."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def print_table(
    title: str,
    columns: list[str],
    rows: list[list[Any]],
    *,
    total: int | None = None,
    more: str = "--all prints every row, --json the full result",
    compact: bool = False,
) -> None:
    """Print a rich table on stdout; never cut a row, a column or a cell silently.

    ``rows`` may be the first rows of a longer table of ``total`` rows: a line after the table then
    says how many are hidden and how to get them (``more``). Columns that do not fit the console width are
    printed as several tables (each repeating the first column, titled "columns a–b of n"), and
    long cells wrap instead of ending in "…". ``compact`` uses the borderless style of the bench
    tables.
    """
    from rich import box
    from rich.measure import Measurement
    from rich.text import Text

    cells = [[Text(_fmt(v)) for v in r] for r in rows]  # Text: a "[...]" in a value is not markup
    width = max(stdout.width, 40)
    hidden = (total - len(rows)) if total is not None and total > len(rows) else 0
    style: dict[str, Any] = (
        {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True, "title_justify": "left"}
        if compact
        else {}
    )

    def build(idx: list[int]) -> Table:
        table = Table(title=title, **style)
        for i in idx:
            table.add_column(columns[i], justify="left" if i == 0 else "right", overflow="fold")
        for r in cells:
            table.add_row(*[r[i] if i < len(r) else Text("") for i in idx])
        return table

    def natural_width(idx: list[int]) -> int:  # the width at which no cell wraps
        return Measurement.get(stdout, stdout.options, build(idx)).maximum

    # columns after the first go into groups that fit the console; the first is repeated in each
    groups: list[list[int]] = [[]]
    for i in range(1, len(columns)):
        if groups[-1] and natural_width([0, *groups[-1], i]) >= width:
            groups.append([])
        groups[-1].append(i)
    for group in groups:
        if len(groups) == 1:
            stdout.print(build([0, *group]))
            continue
        # a split table's title on its own line: as a table title it wrapped to the width of the
        # part (a one-column part of the bench table put its title on five lines)
        span = f"column {group[0] + 1}" if len(group) == 1 else f"columns {group[0] + 1}–{group[-1] + 1}"
        stdout.print(f"{title} ({span} of {len(columns)})", soft_wrap=True, markup=False, highlight=False)
        table = build([0, *group])
        table.title = None
        stdout.print(table)
    if hidden:
        stdout.print(
            f"{title}: {len(rows)} of {total} rows shown, {hidden} hidden ({more})",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def check_out(path: Path | None, *, directory: bool = False, option: str = "--out") -> Path | None:
    """Check an output destination before any work is done (every command with ``--out`` calls this).

    A file destination must not be a directory and its directory must be writable; a directory
    destination must be a directory or not exist yet. ``None`` (no output asked for) passes.

    Raises
    ------
    InvalidInputError
        One line naming the option, the path and the reason (the CLI exits 2).
    """
    if path is None:
        return None
    return check_writable(path, directory=directory, what=option)


def check_options(
    *, tol: float | None = None, time_limit: float | None = None, tol_option: str = "--tol"
) -> float | None:
    """Validate the numeric options every command shares, in one place: ``--tol`` must be a finite
    number > 0 and ``--time-limit`` a number of seconds > 0 (``inf`` = none). Returns the time
    limit to use (``None`` = none).

    Raises
    ------
    InvalidInputError
        For NaN, negative or zero values (the CLI exits 2).
    """
    if tol is not None:
        check_tolerance(tol, tol_option)
    return check_time_limit(time_limit, "--time-limit")


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    sys.stderr.write(f"datamarkets: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def fail_no_solution(res: Any, context: str) -> NoReturn:
    """One line on stderr saying why a route returned no solution (status, solver's own words), exit 3."""
    meta = getattr(res, "meta", {}) or {}
    why = meta.get("message") or meta.get("raw_status") or meta.get("reason") or res.solution.get("reason")
    detail = f" ({why})" if why else ""
    fail(f"{context}: status {res.status.value}{detail}: no solution, nothing certified", EXIT_ALGORITHM)


@contextlib.contextmanager
def solver_output_to_stderr() -> Iterator[None]:
    """Route C-level stdout (file descriptor 1) to stderr while solvers run.

    HiGHS prints its banner on stdout from C++; this keeps ``--json`` output pure JSON.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # pragma: no cover - no real file descriptor (captured output)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
