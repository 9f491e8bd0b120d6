"""Parameter sweeps on Dask distributed, resumable, into a Parquet store keyed by parameters.

A sweep spec (TOML) names a formulation and a grid; the Cartesian product of the grid becomes one
task per point, run on a Dask cluster — a :class:`distributed.LocalCluster` of worker processes by
default, or any running scheduler (``tcp://HOST:PORT``)::

    formulation = "chain-equilibrium"      # a registry name, or "package.module:Class"
    solver = "direct"                      # optional: default = the formulation's first solver;
                                           #   a list sweeps solvers too
    time_limit = 60                        # optional, seconds per solve
    retries = 2                            # optional: re-runs of a task whose worker died
    repeat = 1                             # optional: repetitions of every point (column "rep")
    seeds = [0, 1, 2]                      # optional: shorthand for a grid axis "seed"

    [grid]                                 # lists (or {range = [a, b(, step)]}, {linspace = [a, b, num]})
    model = ["paper-1", "paper-2", "paper-4"]
    n = {range = [3, 6]}
    mechanism = ["raw", "ave", "opt"]

    [fixed]                                # optional: parameters shared by every point
    seed = 0

Several ``[[sweep]]`` tables may share one file; top-level keys are their defaults.

Each task's key is the SHA-256 of ``(formulation, solver, parameters, rep)`` (:func:`task_key`).
The driver — never a worker — writes every finished task as one Parquet file ``part-KEY.parquet``
in the store directory, atomically (temporary file + rename), so

- a re-run lists the finished keys and submits only the rest (resume after an interrupt);
- a worker that dies mid-task has the task rescheduled by Dask, and resubmitted by the driver
  (``retries`` times) if Dask gives up on it; nothing already written is touched;
- a half-written temporary file (``.part-…``) is never read.

A task that raises a :class:`~datamarkets.errors.DataMarketsError` (bad parameters for one point,
an infeasible program, a solver crash) is a *finished* task: its row has ``status = "error"``,
``error_type`` and ``error``, and a re-run skips it (``retry_failed=True`` runs it again). Any
other exception (a bug, or a task that keeps killing its workers) is reported as *lost* and not
stored, so a re-run retries it.

:func:`read_store` returns the store as one :class:`pandas.DataFrame` (one row per key, newest
wins); :func:`compact_store` merges the part files into one.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import logging
import math
import os
import socket
import time
import tomllib
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamarkets.errors import DataMarketsError, InvalidInputError
from datamarkets.formulation import Formulation
from datamarkets.io import atomic_path, instance_hash, to_jsonable

__all__ = [
    "RESERVED_COLUMNS",
    "SweepReport",
    "SweepSpec",
    "SweepStoreWarning",
    "SweepTask",
    "compact_store",
    "expand",
    "finished_keys",
    "load_spec",
    "parse_spec",
    "read_store",
    "resolve_formulation",
    "run_sweep",
    "run_task",
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


# ------------------------------------------------------------------------------------ expansion
_plugin_cache: dict[str, Formulation] = {}


def resolve_formulation(ref: str) -> Formulation:
    """The formulation a spec names: a registry name, or ``"module:Class"`` imported on the spot.

    Parameters
    ----------
    ref : str
        ``"chain-equilibrium"`` or e.g. ``"mypackage.cournot:CournotSellers"`` (a Formulation
        subclass, instantiated with no arguments, or an instance).

    Returns
    -------
    Formulation

    Raises
    ------
    InvalidInputError
        Unknown registry name, module that does not import, or an object that is not a formulation.

    Examples
    --------
    >>> resolve_formulation("chain-equilibrium").name
    'chain-equilibrium'
    """
    if ":" not in ref:
        from datamarkets.registry import get_formulation

        return get_formulation(ref)
    if ref in _plugin_cache:
        return _plugin_cache[ref]
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"cannot load formulation {ref!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, type) and issubclass(obj, Formulation):
        obj = obj()
    if not isinstance(obj, Formulation):
        raise InvalidInputError(f"{ref!r} is a {type(obj).__name__}, not a Formulation subclass or instance")
    _plugin_cache[ref] = obj
    return obj


def _as_specs(spec: Any) -> list[SweepSpec]:
    if isinstance(spec, SweepSpec):
        return [spec]
    if isinstance(spec, str | os.PathLike):
        return load_spec(spec)
    if isinstance(spec, Mapping):
        return parse_spec(spec)
    if isinstance(spec, Sequence) and spec and all(isinstance(s, SweepSpec) for s in spec):
        return list(spec)
    raise InvalidInputError(
        f"a sweep spec is a TOML path, a parsed dict or SweepSpec object(s), got {type(spec).__name__}"
    )


def expand(spec: Any) -> list[SweepTask]:
    """All tasks of a spec, validated against their formulations before anything runs.

    Parameters
    ----------
    spec : path, mapping, SweepSpec or list of SweepSpec
        What :func:`run_sweep` accepts.

    Returns
    -------
    list of SweepTask
        In grid order (sweeps in file order, then solvers, then the product of the axes, then
        repetitions); a point that occurs twice (e.g. in two ``[[sweep]]`` tables) is kept once.

    Raises
    ------
    InvalidInputError
        Unknown formulation, a parameter the formulation does not accept (checked against
        :attr:`Formulation.parameters` when it declares any), or a solver it cannot use. Values are
        checked by :meth:`Formulation.instance` when the task runs.

    Examples
    --------
    >>> tasks = expand({"formulation": "chain-equilibrium",
    ...                 "grid": {"model": ["paper-1", "paper-2"], "n": [3, 4, 5]}})
    >>> len(tasks), tasks[0].solver, tasks[0].params
    (6, 'direct', {'model': 'paper-1', 'n': 3})
    """
    tasks: dict[str, SweepTask] = {}
    for s in _as_specs(spec):
        f = resolve_formulation(s.formulation)
        names = [*s.grid, *s.fixed]
        if f.parameters:
            unknown = [k for k in names if k not in f.parameters]
            if unknown:
                raise InvalidInputError(
                    f"sweep {s.name!r}: formulation {f.name!r} has no parameter(s) "
                    f"{', '.join(map(repr, unknown))}; accepted: {', '.join(sorted(f.parameters))}"
                )
        solvers = []
        for solver in s.solvers:
            solver = solver or f.solvers[0]
            if solver not in f.solvers:
                raise InvalidInputError(
                    f"sweep {s.name!r}: formulation {f.name!r} cannot use solver {solver!r}; "
                    f"choose one of {', '.join(f.solvers)}"
                )
            solvers.append(solver)
        coders = {k: _column_coder(v) for k, v in s.grid.items()}
        fixed_cols = {
            k: v if v is None or isinstance(v, bool | int | float | str) else _as_text(v)
            for k, v in s.fixed.items()
        }
        axes = list(s.grid)
        for solver in solvers:
            for point in itertools.product(*(s.grid[a] for a in axes)):
                params = {**s.fixed, **dict(zip(axes, point, strict=True))}
                columns = {**{a: coders[a](v) for a, v in zip(axes, point, strict=True)}, **fixed_cols}
                for rep in range(s.repeat):
                    key = task_key(s.formulation, solver, params, rep)
                    if key not in tasks:
                        tasks[key] = SweepTask(
                            key, s.name, s.formulation, solver, params, columns, rep, s.time_limit, s.retries
                        )
    return list(tasks.values())


# ----------------------------------------------------------------------------------- the worker
def _cell(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    j = to_jsonable(v)
    return j if j is None or isinstance(j, bool | int | float | str) else json.dumps(j, sort_keys=True)


def run_task(task: SweepTask) -> dict[str, Any]:
    """Solve one grid point and return its store row (runs on a Dask worker).

    A :class:`~datamarkets.errors.DataMarketsError` — bad parameters for this point, an
    infeasible program, a solver failure — is caught and recorded in the row (``status =
    "error"``, ``error_type``, ``error``); any other exception propagates (and the task is lost,
    not stored).

    Parameters
    ----------
    task : SweepTask

    Returns
    -------
    dict
        :meth:`SweepTask.base_row` + :meth:`Formulation.summary_row` of the result (fields whose
        names clash with a parameter or reserved column get a ``result_`` prefix) + ``seconds``,
        ``worker`` and ``finished_at``.

    Examples
    --------
    >>> [t] = expand({"formulation": "chain-equilibrium", "grid": {"model": ["paper-1"], "n": [3]}})
    >>> row = run_task(t)
    >>> row["status"], row["certified"], row["n"]
    ('optimal', True, 3)
    """
    t0 = time.perf_counter()
    row = task.base_row()
    row.update({"status": None, "error_type": None, "error": None})
    try:
        f = resolve_formulation(task.formulation)
        instance = f.instance(task.params)
        result = f.solve(instance, task.solver, time_limit=task.time_limit)
        for k, v in f.summary_row(result).items():
            name = k if k == "status" or k not in row else f"result_{k}"
            row[name] = _cell(v)
    except DataMarketsError as exc:
        row.update({"status": "error", "error_type": type(exc).__name__, "error": str(exc)})
    row["seconds"] = time.perf_counter() - t0
    row["worker"] = _worker_name()
    row["finished_at"] = datetime.now(UTC).isoformat()
    return row


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------------------- store
def _store_dir(path: str | os.PathLike[str], create: bool) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"sweep store {str(p)!r} exists and is not a directory")
    if create:
        p.mkdir(parents=True, exist_ok=True)
    elif not p.is_dir():
        raise InvalidInputError(f"sweep store {str(p)!r} does not exist")
    return p


def _part_files(store: Path) -> list[Path]:
    """Visible ``*.parquet`` files (temporary files start with a dot and are never read)."""
    return sorted(p for p in store.glob("*.parquet") if not p.name.startswith(".") and p.is_file())


def _read_part(path: Path, columns: list[str] | None = None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if columns is not None:
            have = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in have]
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        warnings.warn(
            f"sweep store: skipping unreadable file {str(path)!r}: {exc}", SweepStoreWarning, stacklevel=3
        )
        return None
    if "key" not in table.column_names:
        warnings.warn(
            f"sweep store: skipping {str(path)!r}: no 'key' column", SweepStoreWarning, stacklevel=3
        )
        return None
    return table


def _concat(tables: list[Any]) -> Any:
    """Concatenate part tables; columns of conflicting types (e.g. int and text) become text."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    types: dict[str, set[Any]] = {}
    for t in tables:
        for fld in t.schema:
            if not pa.types.is_null(fld.type):
                types.setdefault(fld.name, set()).add(fld.type)
    numeric = {
        n for n, ts in types.items() if all(pa.types.is_integer(x) or pa.types.is_floating(x) for x in ts)
    }
    conflicted = {n for n, ts in types.items() if len(ts) > 1 and n not in numeric}
    fixed = []
    for t in tables:
        for n in conflicted & set(t.column_names):
            i = t.column_names.index(n)
            t = t.set_column(i, n, t.column(n).cast(pa.string()))
        fixed.append(t)
    return pa.concat_tables(fixed, promote_options="permissive")


def _read_tables(files: list[Path], columns: list[str] | None = None) -> Any:
    import pyarrow as pa

    tables = [t for t in (_read_part(p, columns) for p in files) if t is not None]
    if not tables:
        return pa.table({"key": pa.array([], pa.string())})
    return _concat(tables)


def _latest_per_key(df: Any) -> Any:
    """One row per key: the latest ``finished_at`` wins (ties: the first read)."""
    if "finished_at" in df.columns:
        df = df.sort_values("finished_at", kind="stable", na_position="first")
        df = df.drop_duplicates("key", keep="last")
    else:
        df = df.drop_duplicates("key", keep="first")
    return df.reset_index(drop=True)


def read_store(path: str | os.PathLike[str], *, dedupe: bool = True) -> Any:
    """The sweep store as one table.

    Parameters
    ----------
    path : path-like
        The store directory given to :func:`run_sweep`.
    dedupe : bool
        One row per key (the newest; a key occurs twice only after :func:`compact_store` was
        interrupted or after ``retry_failed``). ``False`` returns every stored row.

    Returns
    -------
    pandas.DataFrame
        Rows in the order they finished; columns are the union over the parts (missing = null).

    Raises
    ------
    InvalidInputError
        The store does not exist.

    Warns
    -----
    SweepStoreWarning
        A ``*.parquet`` file that cannot be read (it is skipped).

    Examples
    --------
    >>> import tempfile
    >>> read_store(tempfile.mkdtemp()).shape
    (0, 1)
    """
    store = _store_dir(path, create=False)
    df = _read_tables(_part_files(store)).to_pandas()
    return _latest_per_key(df) if dedupe else df


def finished_keys(path: str | os.PathLike[str], *, include_failed: bool = True) -> set[str]:
    """Keys already in the store (an absent store has none).

    Parameters
    ----------
    path : path-like
        Store directory.
    include_failed : bool
        Count tasks whose newest row is an error row as finished (the default).

    Returns
    -------
    set of str

    Examples
    --------
    >>> finished_keys("/nonexistent/store")
    set()
    """
    store = Path(path)
    if not store.is_dir():
        return set()
    df = _read_tables(_part_files(store), ["key", "error_type", "finished_at"]).to_pandas()
    df = _latest_per_key(df)
    if not include_failed and "error_type" in df.columns:
        df = df[df["error_type"].isna()]
    return set(df["key"])


def compact_store(path: str | os.PathLike[str]) -> Path | None:
    """Merge the store's part files into one ``compact-*.parquet`` (one row per key).

    Safe while nothing else writes to the store, and safe to interrupt: the merged file is
    written atomically before any part is removed, and readers de-duplicate keys.

    Parameters
    ----------
    path : path-like
        Store directory.

    Returns
    -------
    Path or None
        The merged file (``None`` for an empty store).

    Examples
    --------
    >>> import tempfile
    >>> compact_store(tempfile.mkdtemp()) is None
    True
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = _store_dir(path, create=False)
    files = _part_files(store)
    tables = [t for t in (_read_part(p) for p in files) if t is not None]
    if not tables:
        return None
    df = _latest_per_key(_concat(tables).to_pandas())
    table = pa.Table.from_pandas(df, preserve_index=False)
    target = store / f"compact-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    for p in files:
        if p != target:
            p.unlink(missing_ok=True)
    return target


def _write_row(store: Path, row: Mapping[str, Any]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = store / f"{_PART_PREFIX}{row['key']}.parquet"
    table = pa.Table.from_pylist([{k: _cell(v) for k, v in row.items()}])
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return target


# ---------------------------------------------------------------------------------------- driver
@dataclass
class SweepReport:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    store : Path
        The store directory.
    total : int
        Tasks in the spec (after de-duplication).
    skipped : int
        Already in the store before this run.
    done : int
        Finished with a result and stored in this run.
    failed : int
        Finished with a recorded error (``status = "error"``) and stored in this run.
    lost : int
        Crashed with an unexpected exception or lost their worker more than ``retries`` times; not
        stored, so a re-run tries them again.
    remaining : int
        Not submitted because of ``max_tasks``.
    resubmitted : int
        Resubmissions by the driver after Dask gave up on a task whose workers died.
    seconds : float
        Wall-clock time of the run.
    errors : list of str
        Messages of the lost tasks (and of the first recorded failures).
    """

    store: Path
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    remaining: int = 0
    resubmitted: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every task of the spec is in the store."""
        return self.lost == 0 and self.remaining == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "total": self.total,
            "skipped": self.skipped,
            "done": self.done,
            "failed": self.failed,
            "lost": self.lost,
            "remaining": self.remaining,
            "resubmitted": self.resubmitted,
            "complete": self.complete,
            "seconds": self.seconds,
            "errors": list(self.errors),
        }


def _progress_disabled() -> bool:
    return os.environ.get("DATAMARKETS_NO_PROGRESS", "") not in ("", "0")


@contextlib.contextmanager
def _sweep_progress(total: int, enabled: bool) -> Iterator[Any]:
    """Yield ``update(done, running, failed)`` drawing a rich bar on stderr (no-op when disabled)."""
    if not enabled or _progress_disabled():
        yield lambda done, running, failed: None
        return
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "[green]{task.fields[done]} done[/] · [cyan]{task.fields[running]} running[/] · "
            "[red]{task.fields[failed]} failed[/]"
        ),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    ) as progress:
        bar = progress.add_task("sweep", total=total, done=0, running=0, failed=0)

        def update(done: int, running: int, failed: int) -> None:
            progress.update(bar, completed=done + failed, done=done, running=running, failed=failed)

        yield update


@contextlib.contextmanager
def _connect(scheduler: Any, n_workers: int | None, connect_timeout: float) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise InvalidInputError(
            f"scheduler must be 'local' or an address like tcp://HOST:PORT, got {scheduler!r}"
        )
    scheduler = scheduler.strip()
    if scheduler == "local":
        n = n_workers if n_workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise InvalidInputError(f"the number of workers must be ≥ 1, got {n}")
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # a free port: never collide on :8787
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    if "://" not in scheduler:
        raise InvalidInputError(
            f"scheduler must be 'local' or an address like tcp://HOST:PORT, got {scheduler!r}"
        )
    if n_workers is not None:
        raise InvalidInputError("the number of workers applies to the local scheduler only")
    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InvalidInputError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def _is_worker_loss(exc: BaseException | None) -> bool:
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker | CommClosedError)


def run_sweep(
    spec: Any,
    out: str | os.PathLike[str],
    scheduler: Any = "local",
    *,
    n_workers: int | None = None,
    progress: bool = True,
    max_tasks: int | None = None,
    retry_failed: bool = False,
    connect_timeout: float = 20.0,
) -> SweepReport:
    """Run a sweep on Dask, appending each finished task to the store; skip what is there.

    Parameters
    ----------
    spec : path, mapping, SweepSpec or list of SweepSpec
        A TOML spec file (see the module docstring), its parsed dict, or specs.
    out : path-like
        Store directory (created if absent).
    scheduler : str or distributed.Client
        ``"local"`` (a :class:`~distributed.LocalCluster` of ``n_workers`` single-threaded
        processes, closed at the end), a scheduler address (``"tcp://HOST:PORT"``; every worker
        needs ``datamarkets`` and any ``module:Class`` formulation importable), or a connected
        client (left open).
    n_workers : int, optional
        Workers of the local cluster (default: the number of CPUs).
    progress : bool
        Show a rich progress bar (done / running / failed) on stderr; ``DATAMARKETS_NO_PROGRESS=1``
        disables it too.
    max_tasks : int, optional
        Submit at most this many unfinished tasks (the rest count as ``remaining``).
    retry_failed : bool
        Run again the tasks whose stored row is an error row.
    connect_timeout : float
        Seconds to wait for a remote scheduler.

    Returns
    -------
    SweepReport

    Raises
    ------
    InvalidInputError
        Bad spec (before any task is submitted), a store path that is a file, a bad scheduler
        address or an unreachable scheduler.

    Examples
    --------
    >>> import tempfile
    >>> spec = {"formulation": "chain-equilibrium", "grid": {"model": ["paper-1"], "n": [2, 3]}}
    >>> out = tempfile.mkdtemp()
    >>> r = run_sweep(spec, out, n_workers=1, progress=False)   # doctest: +SKIP
    >>> (r.done, r.skipped), len(read_store(out))               # doctest: +SKIP
    ((2, 0), 2)
    """
    t0 = time.perf_counter()
    tasks = expand(spec)
    if max_tasks is not None and (not _is_int(max_tasks) or max_tasks < 0):
        raise InvalidInputError(f"max_tasks must be an integer ≥ 0, got {max_tasks!r}")
    store = _store_dir(out, create=True)
    finished = finished_keys(store, include_failed=not retry_failed)
    todo = [t for t in tasks if t.key not in finished]
    report = SweepReport(store=store, total=len(tasks), skipped=len(tasks) - len(todo))
    if max_tasks is not None and len(todo) > max_tasks:
        report.remaining = len(todo) - max_tasks
        todo = todo[:max_tasks]
    if todo:
        with _connect(scheduler, n_workers, connect_timeout) as client:
            _drive(client, todo, store, report, progress)
    report.seconds = time.perf_counter() - t0
    return report


def _drive(client: Any, todo: list[SweepTask], store: Path, report: SweepReport, progress: bool) -> None:
    """Submit ``todo``, write each finished row as it arrives, resubmit tasks whose workers died."""
    from distributed import as_completed

    pending: dict[str, tuple[SweepTask, int, Any]] = {}

    def submit(task: SweepTask, attempt: int) -> Any:
        fut = client.submit(
            run_task, task, key=f"{_DASK_KEY_PREFIX}{task.key}-{attempt}", retries=task.retries, pure=False
        )
        pending[fut.key] = (task, attempt, fut)
        return fut

    futures = [submit(t, 0) for t in todo]
    ac = as_completed(futures)
    last_poll = 0.0
    running = 0
    with _sweep_progress(len(todo), progress) as update:
        try:
            while not ac.is_empty():
                batch = ac.next_batch(block=False)
                if not batch:
                    now = time.monotonic()
                    if now - last_poll > 0.5 and progress and not _progress_disabled():
                        last_poll = now
                        running = _running(client, pending)
                        update(report.done, running, report.failed + report.lost)
                    time.sleep(0.02)
                    continue
                for fut in batch:
                    task, attempt, _ = pending.pop(fut.key)
                    _collect(client, fut, task, attempt, store, report, submit, ac)
                    fut.release()
                update(report.done, min(running, len(pending)), report.failed + report.lost)
        except BaseException:
            # interrupted (Ctrl-C) or the store failed: stop the cluster's work; what is written stays
            client.cancel([f for _, _, f in pending.values()])
            raise


def _collect(
    client: Any,
    fut: Any,
    task: SweepTask,
    attempt: int,
    store: Path,
    report: SweepReport,
    submit: Any,
    ac: Any,
) -> None:
    if fut.status == "finished":
        row = fut.result()
        _write_row(store, row)
        if row.get("error_type"):
            report.failed += 1
            if len(report.errors) < 20:
                report.errors.append(f"{task.label}: {row['error_type']}: {row['error']}")
        else:
            report.done += 1
        return
    exc: BaseException | None
    if fut.status == "cancelled":
        exc = None
    else:
        try:
            exc = fut.exception()
        except BaseException as err:  # the exception itself could not be retrieved
            exc = err
    if (exc is None or _is_worker_loss(exc)) and attempt < task.retries:
        report.resubmitted += 1
        ac.add(submit(task, attempt + 1))
        return
    report.lost += 1
    what = "cancelled" if exc is None else f"{type(exc).__name__}: {exc}"
    report.errors.insert(report.lost - 1, f"{task.label}: {what}")


def _running(client: Any, pending: Mapping[str, Any]) -> int:
    """Our tasks executing now: per worker, those assigned to it, capped by its threads (the
    scheduler also counts tasks queued on a worker as processing)."""
    try:
        processing = client.processing()
        nthreads = client.nthreads()
    except Exception:  # progress only: never let a status query break the sweep
        return 0
    return sum(
        min(sum(1 for k in keys if k in pending), int(nthreads.get(w, 1))) for w, keys in processing.items()
    )
