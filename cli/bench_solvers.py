r"""Solver benchmarks: every installed solver on the same generated instances of one formulation.

For a formulation family (``auction-welfare``, ``chain-equilibrium``, a plug-in, or ``"all"``),
:func:`run_solver_bench` generates one instance per (size, seed) with
:meth:`Formulation.generate <datamarkets.formulation.Formulation.generate>` and runs every solver the
formulation declares on that same instance through :meth:`Formulation.solve
<datamarkets.formulation.Formulation.solve>`, which times the build, solve and certify phases
separately. The result is a tidy table — one row per family × size × seed × solver — with the
status, the timings, the objective, its relative gap to the best certified objective on the same
instance, and the largest certificate residual/tolerance ratio. Solvers that are not installed or
do not apply to the instance are rows with status ``"skipped: not installed"`` /
``"skipped: not applicable"``, never failures; a solver that crashes is a row with status
``"error"`` and the message, never the end of the benchmark.

:func:`write_bench` writes the table as CSV and Parquet, a JSON summary (medians over seeds per
solver × size with the ratio to HiGHS, or to the fastest solver where HiGHS did not run) and a
log–log plot of time against size per solver; :func:`read_bench` reads the table back with the
same dtypes.

Objective gap
-------------
For each instance the *reference* objective is taken over the runs that returned a solution whose
certificate passed (all runs with a solution when none passed): the largest objective when the
formulation declares ``objective_sense = "max"``, the smallest when ``"min"``, and otherwise — for
equilibria, where every correct route must give the same number — the objective of the run with
the smallest certificate residual ratio. Then

.. math:: \mathrm{gap} = |o - o_{\mathrm{ref}}| / \max(1, |o_{\mathrm{ref}}|).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress, TaskID

from datamarkets import __version__
from datamarkets import solvers as _solvers
from datamarkets.cli.bench_report import (
    COLUMNS,
    SKIPPED_NOT_APPLICABLE,
    SKIPPED_NOT_INSTALLED,
    _has_solution,
    _typed,
    bench_summary,
    plot_bench,
    print_bench_summary,
    read_bench,
    write_bench,
)
from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.formulation import DIRECT, Formulation
from datamarkets.io import instance_hash, to_jsonable
from datamarkets.progress import make_progress
from datamarkets.registry import get_formulation, list_formulations
from datamarkets.status import InaccurateSolutionWarning, Status

__all__ = [
    "COLUMNS",
    "SKIPPED_NOT_APPLICABLE",
    "SKIPPED_NOT_INSTALLED",
    "bench_summary",
    "fill_gaps",
    "parse_sizes",
    "plot_bench",
    "print_bench_summary",
    "read_bench",
    "run_solver_bench",
    "write_bench",
]


# --------------------------------------------------------------------------- input checks
def parse_sizes(text: str | Iterable[int]) -> list[int]:
    """Sizes from ``"100,1000,10000"`` (or an iterable of ints): positive, unique, ascending.

    Raises
    ------
    InvalidInputError
        A non-integer, a size ≤ 0, or no size at all.

    Examples
    --------
    >>> parse_sizes("1000, 100")
    [100, 1000]
    """
    items: list[Any] = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    if not items or items == [""]:
        raise InvalidInputError("no sizes given; pass e.g. --sizes 100,1000")
    out = []
    for item in items:
        try:
            if isinstance(item, bool) or (isinstance(item, float) and not item.is_integer()):
                raise ValueError
            v = int(item)
        except (TypeError, ValueError):
            raise InvalidInputError(f"size {item!r} is not an integer (sizes are e.g. 100,1000)") from None
        if v <= 0:
            raise InvalidInputError(f"size {v!r} must be positive")
        out.append(v)
    return sorted(set(out))


def _seed_list(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise InvalidInputError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise InvalidInputError(f"seeds must be at least 1, got {int(seeds)!r}")
        return list(range(int(seeds)))
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
            raise InvalidInputError(f"seed {s!r} is not a non-negative integer")
        out.append(int(s))
    if not out:
        raise InvalidInputError("no seeds given")
    return list(dict.fromkeys(out))


def _families(family: str) -> list[Formulation]:
    if family == "all":
        return list(list_formulations().values())
    return [get_formulation(family)]


def _solver_list(f: Formulation, solvers: Sequence[str] | None) -> list[str]:
    known = (*_solvers.SOLVER_NAMES, DIRECT)
    if solvers is None:
        return list(dict.fromkeys(f.solvers))
    wanted = [s.strip().lower() for s in solvers if s.strip()]
    if not wanted:
        raise InvalidInputError("no solvers given")
    for s in wanted:
        if s not in known:
            raise InvalidInputError(f"unknown solver {s!r}; known: {', '.join(known)}")
    return list(dict.fromkeys(wanted))


# --------------------------------------------------------------------------- running
def _installed_version(solver: str) -> str | None:
    if solver == DIRECT:
        return f"datamarkets {__version__}"
    return _solvers.available_solvers().get(solver)


def _finite(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _run_one(
    f: Formulation, inst: Any, solver: str, version: str, time_limit: float | None
) -> dict[str, Any]:
    """Solve ``inst`` with ``solver``; a crash or limit is a row, not an exception."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"solver_version": version}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InaccurateSolutionWarning)
            res = f.solve(inst, solver, time_limit=time_limit)
    except SolverLimitError as exc:
        row.update(status=Status.TIME_LIMIT.value, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # any failure of one route is recorded and the bench goes on
        row.update(status=Status.ERROR.value, error=f"{type(exc).__name__}: {exc}")
    else:
        row["status"] = res.status.value
        for k in ("build_seconds", "solve_seconds", "certify_seconds"):
            row[k] = _finite(res.timings.get(k))
        v = (res.meta.get("solvers") or {}).get(solver)
        if v:
            row["solver_version"] = str(v)
        if res.status.has_solution:
            row["objective"] = _finite(f.objective(res))
            row["certificate_passed"] = bool(res.certificate.passed)
            row["max_residual_ratio"] = _finite(res.certificate.max_residual)
            if math.isnan(row["max_residual_ratio"]) and res.certificate.residuals:
                row["max_residual_ratio"] = math.inf  # a NaN residual fails its certificate
    row["wall_seconds"] = time.perf_counter() - t0
    return row


def fill_gaps(rows: list[dict[str, Any]], sense: str | None) -> None:
    """Set ``objective_gap_rel`` and ``reference_solver`` on the rows of one instance (in place).

    The reference row is, among the rows with a solution (certified ones first), the best objective
    for ``sense`` ``"max"``/``"min"``, or the smallest ``max_residual_ratio`` when ``sense`` is
    ``None``; every row with a solution gets ``|objective − best| / max(1, |best|)``.

    Parameters
    ----------
    rows : list of dict
        One instance's rows (keys ``solver``, ``status``, ``objective``, ``certificate_passed``,
        ``max_residual_ratio``); modified in place.
    sense : {"max", "min"} or None
        The objective's sense, ``None`` when the formulation has none.

    Examples
    --------
    >>> rows = [{"solver": "a", "status": "optimal", "objective": 2.0, "certificate_passed": True}]
    >>> fill_gaps(rows, "max")
    >>> rows[0]["objective_gap_rel"], rows[0]["reference_solver"]
    (0.0, 'a')
    """
    solved = [r for r in rows if _has_solution(r["status"]) and not math.isnan(r.get("objective", math.nan))]
    if not solved:
        return
    pool = [r for r in solved if r.get("certificate_passed")] or solved
    if sense == "max":
        ref = max(pool, key=lambda r: r["objective"])
    elif sense == "min":
        ref = min(pool, key=lambda r: r["objective"])
    else:
        ref = min(pool, key=lambda r: r.get("max_residual_ratio", math.inf))
    best = ref["objective"]
    for r in solved:
        r["objective_gap_rel"] = abs(r["objective"] - best) / max(1.0, abs(best))
        r["reference_solver"] = ref["solver"]


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return _typed(df)


def run_solver_bench(
    family: str,
    sizes: str | Iterable[int],
    seeds: int | Iterable[int],
    solvers: Sequence[str] | None = None,
    time_limit: float | None = None,
    progress: bool = True,
    warmup: bool = True,
) -> pd.DataFrame:
    """Run every declared solver of ``family`` on generated instances and tabulate the runs.

    Parameters
    ----------
    family : str
        Registered formulation name (see ``datamarkets formulations``) or ``"all"``.
    sizes : str or iterable of int
        Instance sizes (``"100,1000"`` or ``[100, 1000]``); the meaning is the formulation's
        :attr:`~datamarkets.formulation.Formulation.size_meaning`.
    seeds : int or iterable of int
        A count (seeds ``0 .. seeds-1``) or explicit seeds.
    solvers : sequence of str, optional
        Restrict to these solvers (default: every solver the formulation declares). A named solver
        the formulation cannot use is listed as ``"skipped: not applicable"``.
    time_limit : float, optional
        Seconds per solve, passed to the solver; a run that hits it has status ``"time_limit"``.
    progress : bool, default True
        Show a progress bar on stderr (also off with ``DATAMARKETS_NO_PROGRESS=1``).
    warmup : bool, default True
        Before timing, solve the first instance of each family once with every runnable solver and
        discard the result, so that one-off costs (imports, JIT, solver start-up) do not land on
        the smallest size.

    Returns
    -------
    pandas.DataFrame
        One row per family × size × seed × solver with the columns of :data:`COLUMNS`. Each
        instance is generated once and every solver runs on that same instance (same
        ``instance_hash``). Timings, objective and certificate columns are missing (NaN/NA) for
        skipped and failed runs.

    Raises
    ------
    InvalidInputError
        Unknown family or solver, sizes ≤ 0, no seeds, negative time limit, or sizes the family
        rejects.

    Examples
    --------
    >>> df = run_solver_bench("chain-equilibrium", [8], 1, solvers=["direct", "highs"], progress=False)
    >>> df[["solver", "status"]].to_dict("records")
    [{'solver': 'direct', 'status': 'optimal'}, {'solver': 'highs', 'status': 'optimal'}]
    >>> bool((df["objective_gap_rel"] <= 1e-9).all())
    True
    """

    size_list = parse_sizes(sizes)
    seed_list = _seed_list(seeds)
    if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
        raise InvalidInputError(f"time limit must be a positive number of seconds, got {time_limit!r}")
    plan = [(f, _solver_list(f, solvers)) for f in _families(family)]
    total = sum(len(sl) for _, sl in plan) * len(size_list) * len(seed_list)
    rows: list[dict[str, Any]] = []
    with make_progress() if progress else _NullBar() as bar:
        task: Any = bar.add_task(f"bench {family}", total=total)  # a rich TaskID or _NullBar's int
        for f, solver_list in plan:
            sense = getattr(f, "objective_sense", None)
            warm = warmup
            for size in size_list:
                for seed in seed_list:
                    bar.update(task, description=f"bench {f.name} size={size} seed={seed}")
                    rows.extend(
                        _bench_instance(f, size, seed, solver_list, sense, time_limit, bar, task, warm)
                    )
                    warm = False
    return _frame(rows)


class _NullBar:
    """Stands in for a rich Progress when progress is off."""

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> TaskID:
        return TaskID(0)

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None

    def advance(self, *args: Any, **kwargs: Any) -> None:
        return None


def _bench_instance(
    f: Formulation,
    size: int,
    seed: int,
    solver_list: list[str],
    sense: str | None,
    time_limit: float | None,
    bar: Progress | _NullBar,
    task: TaskID,
    warm: bool = False,
) -> list[dict[str, Any]]:
    base = {"family": f.name, "size": size, "seed": seed}
    t0 = time.perf_counter()
    try:
        inst = f.generate(size, seed)
        inst_hash = instance_hash(to_jsonable(f.instance_to_dict(inst)))
        applicable = set(f.applicable_solvers(inst))
    except InvalidInputError:
        raise
    except Exception as exc:  # generation itself broke: every solver row says so
        msg = f"generate: {type(exc).__name__}: {exc}"
        bar.advance(task, len(solver_list))
        return [
            {**base, "solver": s, "status": Status.ERROR.value, "error": msg, "wall_seconds": 0.0}
            for s in solver_list
        ]
    gen = time.perf_counter() - t0
    if warm:
        for solver in solver_list:
            if solver in f.solvers and solver in applicable and _installed_version(solver) is not None:
                _run_one(f, inst, solver, "", time_limit)
    rows = []
    for solver in solver_list:
        row: dict[str, Any] = {**base, "solver": solver, "instance_hash": inst_hash, "generate_seconds": gen}
        version = _installed_version(solver)
        if solver not in f.solvers or solver not in applicable:
            row["status"] = SKIPPED_NOT_APPLICABLE
            row["solver_version"] = version
        elif version is None:
            row["status"] = SKIPPED_NOT_INSTALLED
        else:
            row.update(_run_one(f, inst, solver, version, time_limit))
        rows.append(row)
        bar.advance(task)
    fill_gaps(rows, sense)
    return rows
