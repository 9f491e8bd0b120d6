"""Time limits are real (issue 11): every route stops near its limit and says ``time_limit``.

For every registered formulation and every solver it can use on this machine, an instance is
built that an unlimited solve takes clearly longer than :data:`LIMIT` on (sizes measured on the
2-core development machine: the unlimited wall time is noted beside each case), and solved with
``time_limit=LIMIT``. The oracle is the wall clock:

* the status is ``time_limit`` — or a solution status, and then build + solve took ≤ the limit;
* ``Formulation.solve`` returned within ``LIMIT + SLACK`` seconds (certification excluded: it is
  not counted by the limit), where :data:`SLACK` covers what cannot be interrupted — a solver's
  own clock granularity and its setup/teardown (a subprocess writing and reading files), a
  numpy/C call in flight when the clock runs out, and embedding the instance in the result. GLPK
  counts whole seconds (``tmlim``), so its routes get :data:`GLPK_EXTRA` more.

The direct library calls (``solve_equilibrium``, ``psp_dynamics``, ``solve_kkt``, ``solve_gne``,
``solve_game``) are held to the same bound. Which solvers are installed is probed once per
process before any clock starts (probing an executable is not solve time).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest

from datamarkets.registry import list_formulations
from datamarkets.solvers import available_solvers
from datamarkets.status import Status

LIMIT = 0.25
"""Seconds given to every route."""

SLACK = max(1.0, 3 * LIMIT)
"""Seconds a route may return after its limit (uninterruptible solver calls, instance embedding)."""

GLPK_EXTRA = 1.0
"""GLPK's ``tmlim`` is whole seconds: a limit of 0.25 s becomes 1 s."""

# (formulation, size) per solver; comment: measured unlimited wall time on the dev machine
CASES: list[tuple[str, str, int | dict[str, Any]]] = [
    ("auction-kkt", "highs", 200),  # > 10 s (Pyomo build + transformation alone ≈ 6 s)
    ("auction-kkt", "cbc", 200),  # > 10 s
    ("auction-kkt", "glpk", 200),  # > 10 s
    ("auction-psp", "direct", 1000),  # ≈ 5 s of PSP rounds
    ("auction-welfare", "clarabel", 1000),  # ≈ 2 s (build ≈ 0.8 s)
    ("auction-welfare", "highs", 1000),  # HiGHS QP active set: > 10 s
    ("auction-welfare", "osqp", 1000),  # cvxpy build ≈ 2 s
    ("auction-welfare", "scs", 1000),  # cvxpy build ≈ 2 s
    ("auction-welfare", "ecos", 1000),  # cvxpy build ≈ 2 s
    # many players and a moderate grid: the DP checks the clock between players, and the embedded
    # instance (n L×L matrices) stays small
    ("chain-equilibrium", "direct", {"n": 60, "size": 600, "seed": 0}),  # ≈ 2 s of DP
    ("chain-equilibrium", "highs", 200),  # ≈ 2 s of per-player LPs
    ("chain-equilibrium", "glpk", 200),  # ≈ 7 s
    ("chain-equilibrium", "cbc", 200),  # ≈ 5 s
    ("cournot-sellers", "clarabel", 2000),  # cvxpy build ≈ 1.5 s
    ("cournot-sellers", "highs", 2000),
    ("cournot-sellers", "osqp", 2000),
    ("cournot-sellers", "scs", 2000),
    ("cournot-sellers", "direct", 2000),  # ≈ 1.5 s of best-response sweeps
    ("cournot-sellers-kkt", "highs", 60),  # Pyomo build ≈ 3 s
    ("cournot-sellers-kkt", "cbc", 60),
    ("cournot-sellers-kkt", "glpk", 60),
    ("gne", "direct", 400),
    ("gne", "clarabel", 400),
    ("gne", "scs", 400),
    ("gne", "ecos", 400),
    ("lq-game", "clarabel", 2000),  # ≈ 2 s
    ("lq-game", "highs", 2000),
]


def _installed(solver: str) -> bool:
    return solver == "direct" or available_solvers().get(solver) is not None


def test_every_registered_route_has_a_case() -> None:
    """A new formulation or solver must come with a time-limit case here."""
    covered = {(f, s) for f, s, _ in CASES}
    missing = [
        (name, s)
        for name, f in list_formulations().items()
        for s in f.solvers
        if _installed(s) and (name, s) not in covered and s != "ipopt"
    ]
    # welfare routes through GLPK/CBC apply only to linear valuations (applicable_solvers)
    missing = [m for m in missing if m not in {("auction-welfare", "glpk"), ("auction-welfare", "cbc")}]
    assert not missing, f"routes without a time-limit test: {missing}"


def _check(status: Status, build_solve: float, wall: float, slack: float, what: str) -> None:
    if status.has_solution:  # finished: then within the limit, or it would say time_limit
        assert build_solve <= LIMIT + 0.05, f"{what}: {status.value} after {build_solve:.2f} s > {LIMIT} s"
    else:
        assert status is Status.TIME_LIMIT, f"{what}: status {status.value}, expected time_limit"
    assert wall <= LIMIT + slack, f"{what}: returned after {wall:.2f} s, limit {LIMIT} s + slack {slack} s"


@pytest.mark.parametrize(("name", "solver", "size"), CASES, ids=[f"{f}-{s}" for f, s, _ in CASES])
def test_formulation_route_honours_time_limit(name: str, solver: str, size: int | dict[str, Any]) -> None:
    f = list_formulations()[name]
    if not _installed(solver):
        pytest.skip(f"{solver} not installed")
    instance = f.generate(size, 0) if isinstance(size, int) else f.instance(size)
    if solver not in f.applicable_solvers(instance):
        pytest.skip(f"{solver} does not apply")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = f.solve(instance, solver, time_limit=LIMIT)
        wall = time.perf_counter() - t0 - res.timings.get("certify_seconds", 0.0)
    build_solve = res.timings.get("build_seconds", 0.0) + res.timings.get("solve_seconds", 0.0)
    print(f"\nLIMITROW {name} {solver} size={size} limit={LIMIT} wall={wall:.2f} status={res.status.value}")
    slack = SLACK + (GLPK_EXTRA if solver == "glpk" else 0.0)
    _check(res.status, build_solve, wall, slack, f"{name}/{solver}")
    if res.status is Status.TIME_LIMIT:
        assert not res.certified, "a time_limit result without a solution never passes its certificate"


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        return out, time.perf_counter() - t0
