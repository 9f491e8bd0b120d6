"""Sweep specifications (part of :mod:`datamarkets.cli.sweep`): the TOML/dict spec, its validation, the
tasks it expands to and their stable keys."""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamarkets.errors import InvalidInputError
from datamarkets.io import instance_hash, to_jsonable

__all__ = [
    "RESERVED_COLUMNS",
    "SweepSpec",
    "SweepStoreWarning",
    "SweepTask",
    "load_spec",
    "parse_spec",
    "task_key",
]


RESERVED_COLUMNS = (
    "key",
    "sweep",
    "formulation",
    "solver",
    "rep",
    "time_limit",
    "status",
    "error_type",
    "error",
    "seconds",
    "worker",
    "finished_at",
)
"""Store columns written for every task; a parameter with one of these names is stored as
``param_NAME`` and a result field as ``result_NAME``."""

_SPEC_KEYS = ("name", "formulation", "solver", "grid", "fixed", "seeds", "repeat", "time_limit", "retries")
_PART_PREFIX = "part-"
_DASK_KEY_PREFIX = "datamarkets-sweep-"


class SweepStoreWarning(UserWarning):
    """A file in a sweep store could not be read and was skipped."""


# ---------------------------------------------------------------------------------------- specs
@dataclass
class SweepSpec:
    """One sweep: a formulation, a grid and the settings of its tasks.

    Attributes
    ----------
    formulation : str
        Registry name (``"chain-equilibrium"``) or ``"module:Class"`` of a
        :class:`~datamarkets.formulation.Formulation` importable on every worker.
    grid : dict of str to list
        Parameter → values; the tasks are the Cartesian product, in the order given.
    fixed : dict
        Parameters shared by every task.
    solvers : tuple of str or None
        Solvers to sweep; ``(None,)`` = the formulation's default solver.
    repeat : int
        Repetitions of every point (stored as column ``rep`` = 0 … repeat-1; part of the key).
    time_limit : float or None
        Seconds per solve, passed to :meth:`Formulation.solve`.
    retries : int
        How often a task whose worker died (or that raised an unexpected exception) is run again.
    name : str
        Label stored in column ``sweep``.
    """

    formulation: str
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    solvers: tuple[str | None, ...] = (None,)
    repeat: int = 1
    time_limit: float | None = None
    retries: int = 2
    name: str = ""

    @property
    def size(self) -> int:
        """Number of tasks (before de-duplication)."""
        return math.prod(len(v) for v in self.grid.values()) * len(self.solvers) * self.repeat


@dataclass
class SweepTask:
    """One grid point, shipped to a worker by :func:`run_sweep` and run by :func:`run_task`.

    Attributes
    ----------
    key : str
        :func:`task_key` of the task (the store's primary key).
    sweep : str
        Name of the sweep it came from.
    formulation, solver : str
        What to solve with (the solver is resolved to a concrete name).
    params : dict
        Parameters passed to :meth:`Formulation.instance` (grid point merged over ``fixed``).
    columns : dict
        The parameters as store columns (one type per grid axis; non-scalars JSON-encoded).
    rep : int
        Repetition index.
    time_limit : float or None
        Seconds per solve.
    retries : int
        Re-runs allowed after a worker death.
    """

    key: str
    sweep: str
    formulation: str
    solver: str
    params: dict[str, Any]
    columns: dict[str, Any]
    rep: int = 0
    time_limit: float | None = None
    retries: int = 2

    @property
    def label(self) -> str:
        """Short human-readable description, for messages."""
        ps = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.formulation}[{self.solver}]({ps})" + (f" rep {self.rep}" if self.rep else "")

    def base_row(self) -> dict[str, Any]:
        """The row's identifying columns (key, sweep, formulation, solver, rep, parameters)."""
        row: dict[str, Any] = {
            "key": self.key,
            "sweep": self.sweep,
            "formulation": self.formulation,
            "solver": self.solver,
            "rep": self.rep,
            "time_limit": None if self.time_limit is None else float(self.time_limit),
        }
        for k, v in self.columns.items():
            row[f"param_{k}" if k in RESERVED_COLUMNS else k] = v
        return row


def task_key(formulation: str, solver: str, params: Mapping[str, Any], rep: int = 0) -> str:
    """Stable key of a task: SHA-256 of the canonical JSON of its identity.

    The order of ``params`` does not matter, nor whether a parameter came from ``[grid]`` or
    ``[fixed]``; ``time_limit`` and the sweep name are not part of the key.

    Examples
    --------
    >>> task_key("gne", "highs", {"x1": 0.5, "market": "two-firm"}) == task_key(
    ...     "gne", "highs", {"market": "two-firm", "x1": 0.5})
    True
    """
    return instance_hash({"formulation": formulation, "solver": solver, "params": dict(params), "rep": rep})


def load_spec(path: str | os.PathLike[str]) -> list[SweepSpec]:
    """Read a sweep spec TOML file.

    Parameters
    ----------
    path : path-like
        The TOML file.

    Returns
    -------
    list of SweepSpec
        One per ``[[sweep]]`` table (one when the file has none).

    Raises
    ------
    InvalidInputError
        Missing file, bad TOML, or an invalid spec (see :func:`parse_spec`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.toml"
    >>> _ = p.write_text('formulation = "chain-equilibrium"\\n[grid]\\nn = [3, 4]\\n')
    >>> [s.size for s in load_spec(p)]
    [2]
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"sweep spec {str(p)!r} does not exist")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"sweep spec {str(p)!r} is not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"sweep spec {str(p)!r} is not valid TOML: {exc}") from exc
    except RecursionError:
        raise InvalidInputError(f"sweep spec {str(p)!r} is nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than int() converts
        raise InvalidInputError(f"sweep spec {str(p)!r} is not valid input: {exc}") from exc
    except OSError as exc:
        raise InvalidInputError(f"sweep spec {str(p)!r} cannot be read: {exc.strerror or exc}") from exc
    return parse_spec(doc, source=p.stem)


def parse_spec(doc: Mapping[str, Any], source: str = "sweep") -> list[SweepSpec]:
    """Validate a parsed spec document (see the module docstring for the format).

    Parameters
    ----------
    doc : mapping
        The TOML document as a dict.
    source : str
        Default sweep name (the file's stem).

    Returns
    -------
    list of SweepSpec

    Raises
    ------
    InvalidInputError
        Unknown key, missing ``formulation``, empty or missing ``[grid]``, a grid value that is not
        a non-empty list, a parameter both in ``[grid]`` and ``[fixed]``, non-finite numbers, a bad
        ``solver``/``repeat``/``retries``/``time_limit``.

    Examples
    --------
    >>> [s] = parse_spec({"formulation": "gne", "grid": {"x1": {"linspace": [0, 1, 3]}}})
    >>> s.grid
    {'x1': [0.0, 0.5, 1.0]}
    """
    if not isinstance(doc, Mapping):
        raise InvalidInputError(f"a sweep spec must be a table, got {type(doc).__name__}")
    if "sweep" not in doc:
        return [_parse_one(dict(doc), source)]
    tables = doc["sweep"]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, Mapping) for t in tables):
        raise InvalidInputError("'sweep' must be an array of tables ([[sweep]]) with at least one entry")
    defaults = {k: v for k, v in doc.items() if k != "sweep"}
    specs = []
    for i, t in enumerate(tables):
        if "sweep" in t:
            raise InvalidInputError(f"[[sweep]] #{i + 1}: nested 'sweep' is not allowed")
        specs.append(_parse_one({**defaults, **t}, f"{source}[{i}]", where=f"[[sweep]] #{i + 1}: "))
    return specs


def _parse_one(d: dict[str, Any], default_name: str, where: str = "") -> SweepSpec:
    unknown = sorted(set(d) - set(_SPEC_KEYS))
    if unknown:
        raise InvalidInputError(
            f"{where}unknown key(s) {', '.join(map(repr, unknown))} in sweep spec; "
            f"accepted: {', '.join(_SPEC_KEYS)}"
        )
    ref = d.get("formulation")
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInputError(f"{where}'formulation' must be a non-empty string, got {ref!r}")
    name = d.get("name", default_name)
    if not isinstance(name, str):
        raise InvalidInputError(f"{where}'name' must be a string, got {name!r}")

    grid_in = d.get("grid")
    if not isinstance(grid_in, Mapping):
        raise InvalidInputError(f"{where}a sweep needs a [grid] table of parameter lists")
    grid = {str(k): _axis(v, f"{where}grid value {k!r}") for k, v in grid_in.items()}
    if "seeds" in d:
        if "seed" in grid:
            raise InvalidInputError(f"{where}give 'seeds' or a grid axis 'seed', not both")
        seeds = _axis(d["seeds"], f"{where}'seeds'")
        if not all(_is_int(s) for s in seeds):
            raise InvalidInputError(f"{where}'seeds' must be integers, got {seeds!r}")
        grid["seed"] = seeds
    if not grid:
        raise InvalidInputError(
            f"{where}the [grid] is empty: give at least one parameter with a list of values"
        )

    fixed_in = d.get("fixed", {})
    if not isinstance(fixed_in, Mapping):
        raise InvalidInputError(f"{where}[fixed] must be a table, got {type(fixed_in).__name__}")
    fixed = {str(k): _check_value(v, f"{where}fixed value {k!r}") for k, v in fixed_in.items()}
    both = sorted(set(fixed) & set(grid))
    if both:
        raise InvalidInputError(
            f"{where}parameter(s) {', '.join(map(repr, both))} in both [grid] and [fixed]"
        )

    solver = d.get("solver")
    if solver is None:
        solvers: tuple[str | None, ...] = (None,)
    elif isinstance(solver, str):
        solvers = (solver.strip().lower(),)
    elif isinstance(solver, list) and solver and all(isinstance(s, str) for s in solver):
        solvers = tuple(dict.fromkeys(s.strip().lower() for s in solver))
    else:
        raise InvalidInputError(
            f"{where}'solver' must be a string or a non-empty list of strings, got {solver!r}"
        )

    repeat = d.get("repeat", 1)
    if not _is_int(repeat) or repeat < 1:
        raise InvalidInputError(f"{where}'repeat' must be an integer ≥ 1, got {repeat!r}")
    retries = d.get("retries", 2)
    if not _is_int(retries) or retries < 0:
        raise InvalidInputError(f"{where}'retries' must be an integer ≥ 0, got {retries!r}")
    time_limit = d.get("time_limit")
    if time_limit is not None and (
        not _is_number(time_limit) or not math.isfinite(time_limit) or time_limit <= 0
    ):
        raise InvalidInputError(
            f"{where}'time_limit' must be a positive number of seconds, got {time_limit!r}"
        )
    return SweepSpec(
        formulation=ref.strip(),
        grid=grid,
        fixed=fixed,
        solvers=solvers,
        repeat=int(repeat),
        time_limit=None if time_limit is None else float(time_limit),
        retries=int(retries),
        name=name,
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_value(v: Any, where: str) -> Any:
    """A parameter value must be JSON data with finite numbers (TOML also has dates, nan, inf)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidInputError(f"{where} is not finite: {v!r}")
    if isinstance(v, list):
        return [_check_value(x, where) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _check_value(x, where) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise InvalidInputError(
        f"{where} has type {type(v).__name__}; use numbers, strings, booleans, lists or tables"
    )


def _axis(v: Any, where: str) -> list[Any]:
    """The values of one grid axis: a list, ``{range = [a, b(, step)]}`` or ``{linspace = [a, b, num]}``."""
    if isinstance(v, Mapping) and len(v) == 1 and next(iter(v)) in ("range", "linspace"):
        kind, args = next(iter(v.items()))
        if not isinstance(args, list) or not all(_is_number(a) for a in args):
            raise InvalidInputError(f"{where}: {kind} needs a list of numbers, got {args!r}")
        if kind == "range":
            if (
                len(args) not in (2, 3)
                or not all(_is_int(a) for a in args)
                or (len(args) == 3 and args[2] == 0)
            ):
                raise InvalidInputError(
                    f"{where}: range = [start, stop(, step ≠ 0)] of integers, got {args!r}"
                )
            values: list[Any] = list(range(*args))
        else:
            if len(args) != 3 or not _is_int(args[2]) or args[2] < 1:
                raise InvalidInputError(f"{where}: linspace = [start, stop, num ≥ 1], got {args!r}")
            a, b, num = float(args[0]), float(args[1]), int(args[2])
            if not (math.isfinite(a) and math.isfinite(b)):
                raise InvalidInputError(f"{where}: linspace bounds must be finite, got {args!r}")
            step = (b - a) / (num - 1) if num > 1 else 0.0
            values = [round(a + i * step, 12) + 0.0 for i in range(num)]  # + 0.0: no -0.0
            if num > 1:
                values[-1] = b
    elif isinstance(v, list):
        values = [_check_value(x, where) for x in v]
    else:
        raise InvalidInputError(
            f"{where} must be a list (or {{range = [a, b]}} / {{linspace = [a, b, num]}}), "
            f"got {type(v).__name__} {v!r}"
        )
    if not values:
        raise InvalidInputError(f"{where} is empty: the grid would have no points")
    return values


def _scalar_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "json"


def _as_text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(to_jsonable(v), sort_keys=True)


def _column_coder(values: Sequence[Any]) -> Any:
    """How one axis is stored: as is (one scalar type), as float (ints and floats), else as text."""
    kinds = {_scalar_kind(v) for v in values if v is not None}
    if kinds == {"int", "float"}:
        return lambda v: None if v is None else float(v)
    if len(kinds) <= 1 and "json" not in kinds:
        return lambda v: v
    return _as_text
