"""Helpers shared by the command-line sub-apps: JSON/table output and error exits."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from datamarkets.io import to_jsonable

__all__ = [
    "EXIT_ALGORITHM",
    "EXIT_INPUT",
    "EXIT_UNCERTIFIED",
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
stderr = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print ``obj`` (a Result, dict, …) as JSON on stdout, nothing else."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a rich table on stdout."""
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right" if c != columns[0] else "left")
    for r in rows:
        table.add_row(*[_fmt(v) for v in r])
    stdout.print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


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
