"""Helpers shared by the command-line sub-apps: JSON/table output and error exits."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from datamarkets.io import to_jsonable

__all__ = ["EXIT_ALGORITHM", "EXIT_INPUT", "emit_json", "fail", "print_table", "stderr", "stdout"]

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
