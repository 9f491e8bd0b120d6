"""Thin, status-checked wrappers around the solvers every formulation shares.

HiGHS is the default. Pyomo programs go through ``appsi_highs``; large programs should be
assembled as sparse arrays and passed to ``highspy`` directly (see ``shared/SOLVERS.md``: a
Pyomo build costs ~40× a sparse-array build).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from datamarkets.errors import SolverError
from datamarkets.status import Status, status_from_highs, status_from_pyomo

__all__ = [
    "SolveInfo",
    "highs_version",
    "new_highs",
    "reset_highs_scheduler",
    "solve_highs",
    "solve_pyomo",
]


@dataclass
class SolveInfo:
    """What a solver call reports: status, native status text, solver name/version, seconds."""

    status: Status
    raw_status: str
    solver: str
    solver_version: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def highs_version() -> str:
    """HiGHS version string, e.g. ``"1.16.0"``."""
    import highspy

    return str(highspy.Highs().version())


def reset_highs_scheduler() -> None:
    """Drop HiGHS's global thread scheduler so the next run may choose its own thread count.

    Pyomo's ``appsi_highs`` initialises the scheduler with every core; a later ``highspy.Highs``
    with ``threads=1`` then fails with ``kNotset`` ("scheduler has already been initialized").
    """
    import highspy

    reset = getattr(highspy.Highs, "resetGlobalScheduler", None)
    if reset is not None:
        reset(True)


def new_highs(time_limit: float | None = None, threads: int = 1, **options: Any) -> Any:
    """A silent ``highspy.Highs`` instance with options set (``solver="ipm"`` etc.)."""
    import highspy

    reset_highs_scheduler()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    for k, v in options.items():
        h.setOptionValue(k, v)
    return h


def solve_highs(h: Any) -> SolveInfo:
    """Run an assembled ``highspy.Highs`` model and map its status."""
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    ms = h.getModelStatus()
    return SolveInfo(status_from_highs(ms), str(ms), "highs", highs_version(), seconds)


def solve_pyomo(
    model: Any,
    solver: str = "appsi_highs",
    time_limit: float | None = None,
    options: dict[str, Any] | None = None,
) -> SolveInfo:
    """Solve a Pyomo model, loading primal values (and duals if a ``dual`` Suffix exists) only
    when the status says a solution is present.

    Parameters
    ----------
    model : pyomo.environ.ConcreteModel
        The program.
    solver : str, default "appsi_highs"
        Pyomo solver name.
    time_limit : float, optional
        Seconds.
    options : dict, optional
        Solver options.

    Returns
    -------
    SolveInfo

    Raises
    ------
    SolverError
        The solver is not available or crashed.
    """
    import pyomo.environ as pyo

    opt = pyo.SolverFactory(solver)
    if not opt.available(exception_flag=False):
        raise SolverError(f"Pyomo solver {solver!r} is not available")
    for k, v in (options or {}).items():
        opt.options[k] = v
    if time_limit is not None:
        opt.options["time_limit"] = float(time_limit)
    if hasattr(opt, "config") and hasattr(opt.config, "stream_solver"):
        opt.config.stream_solver = False
    t0 = time.perf_counter()
    try:
        res = opt.solve(model, load_solutions=False)
    except Exception as exc:  # pragma: no cover - solver crash
        raise SolverError(f"{solver} failed: {exc}") from exc
    seconds = time.perf_counter() - t0
    status = status_from_pyomo(res)
    if status.has_solution:
        model.solutions.load_from(res)
    version = ".".join(map(str, opt.version())) if opt.version() else "unknown"
    return SolveInfo(status, str(res.solver.termination_condition), solver, version, seconds)
