"""Thin sparse-array front ends to HiGHS (LP/QP/MILP) and Clarabel (QP) used by the games layer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import SolverError
from datamarkets.solvers import HIGHS_INF, highs_model
from datamarkets.sparse_blocks import block_matrix
from datamarkets.status import Status, status_from_highs

__all__ = ["QPOut", "clarabel_qp", "highs_qp", "run_highs"]

INF = HIGHS_INF  # HiGHS treats |v| ≥ 1e20 as infinite


@dataclass
class QPOut:
    """What a solve returns: status, primal x, duals (sign: ``∇f + Aᵀy = 0`` convention per route)."""

    status: Status
    x: np.ndarray | None = None
    row_dual: np.ndarray | None = None
    col_dual: np.ndarray | None = None
    objective: float = float("nan")
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_highs(h: Any) -> QPOut:
    """Run a HiGHS model; duals in the convention ``∇f − Aᵀ row_dual − col_dual = 0`` (HiGHS's)."""
    t0 = time.perf_counter()
    h.run()
    sec = time.perf_counter() - t0
    status = status_from_highs(h.getModelStatus())
    out = QPOut(status, seconds=sec, extra={"raw_status": str(h.getModelStatus())})
    sol = h.getSolution()
    if status.has_solution or (status.group.value == "limit" and sol.value_valid):
        out.x = np.asarray(sol.col_value, dtype=float)
        if sol.dual_valid:
            out.row_dual = np.asarray(sol.row_dual, dtype=float)
            out.col_dual = np.asarray(sol.col_dual, dtype=float)
        out.objective = float(h.getInfo().objective_function_value)
    return out


def highs_qp(
    H: sp.sparray | None,
    cost: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    A: sp.sparray,
    rl: np.ndarray,
    ru: np.ndarray,
    *,
    time_limit: float | None = None,
    **options: Any,
) -> QPOut:
    """Build and solve one LP/QP on HiGHS."""
    return run_highs(highs_model(cost, lb, ub, A, rl, ru, H=H, time_limit=time_limit, **options))


_CLARABEL = {
    "Solved": Status.OPTIMAL,
    "AlmostSolved": Status.OPTIMAL_INACCURATE,
    "PrimalInfeasible": Status.INFEASIBLE,
    "AlmostPrimalInfeasible": Status.INFEASIBLE,
    "DualInfeasible": Status.UNBOUNDED,
    "AlmostDualInfeasible": Status.UNBOUNDED,
    "MaxIterations": Status.ITERATION_LIMIT,
    "MaxTime": Status.TIME_LIMIT,
}


def clarabel_qp(
    P: sp.sparray,
    q: np.ndarray,
    Aeq: sp.sparray,
    beq: np.ndarray,
    Ale: sp.sparray,
    ble: np.ndarray,
    *,
    time_limit: float | None = None,
    tol: float = 1e-9,
) -> QPOut:
    """``min ½vᵀPv + qᵀv s.t. Aeq v = beq, Ale v ≤ ble`` on Clarabel (P full symmetric; its upper
    triangle is passed). ``row_dual`` = (y_eq, z_le) with ``P v + q + Aeqᵀ y + Aleᵀ z = 0``, z ≥ 0."""
    import clarabel

    n = int(np.size(q))
    Aall = sp.csc_matrix(block_matrix([[Aeq if Aeq.shape[0] else (0, n)], [Ale]], format="csc"))
    ball = np.concatenate([beq, ble]).astype(float)
    Pu = sp.csc_matrix(sp.triu(sp.csc_array(P, dtype=float)))
    cones = []
    if Aeq.shape[0]:
        cones.append(clarabel.ZeroConeT(int(Aeq.shape[0])))
    if Ale.shape[0]:
        cones.append(clarabel.NonnegativeConeT(int(Ale.shape[0])))
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = tol
    st.tol_gap_rel = tol
    st.tol_feas = tol
    st.max_threads = 1
    if time_limit is not None:
        st.time_limit = max(float(time_limit), 1e-3)
    t0 = time.perf_counter()
    try:
        solver = clarabel.DefaultSolver(Pu, np.asarray(q, dtype=float), Aall, ball, cones, st)
        sol = solver.solve()
    except Exception as exc:  # pragma: no cover - crash
        raise SolverError(f"clarabel failed: {exc}") from exc
    name = str(sol.status).rsplit(".", 1)[-1]
    status = _CLARABEL.get(name, Status.ERROR)
    out = QPOut(
        status, seconds=time.perf_counter() - t0, extra={"raw_status": name, "iterations": sol.iterations}
    )
    if status.has_solution:
        out.x = np.asarray(sol.x, dtype=float)
        out.row_dual = np.asarray(sol.z, dtype=float)
        out.objective = float(sol.obj_val)
    return out
