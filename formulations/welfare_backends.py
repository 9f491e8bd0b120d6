r"""Solver backends of the welfare program (see :mod:`datamarkets.formulations.welfare`): Clarabel
and HiGHS on sparse arrays, cvxpy and Pyomo models; each returns the raw primal/dual solution."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, SolverError
from datamarkets.formulations.welfare_kkt import _marginals
from datamarkets.formulations.welfare_program import WelfareArrays
from datamarkets.graphs.market_data import MarketArrays
from datamarkets.graphs.valuations import AlphaFairValuation
from datamarkets.solvers import (
    PYOMO_NAMES,
    highs_model,
    highs_version,
    require_solver,
    reset_highs_scheduler,
    solve_pyomo,
    solver_time_options,
)
from datamarkets.status import Status, status_from_cvxpy, status_from_highs

__all__ = [
    "CVXPY_SOLVERS",
    "RawSolution",
    "build_welfare_cvxpy",
    "build_welfare_pyomo",
    "solve_arrays_clarabel",
    "solve_arrays_highs",
]


# ---------------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------------


@dataclass
class RawSolution:
    """A welfare program's solution as the backend returned it: status, solver's own status text,
    flows ``f``, allocations ``x``, prices ``p`` (duals of the supply rows) and other duals ``mu``."""

    status: Status
    raw: str
    f: np.ndarray | None = None
    x: np.ndarray | None = None
    p: np.ndarray | None = None
    mu: np.ndarray | None = None
    solver: str = ""
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def solve_arrays_clarabel(W: WelfareArrays, tol: float, time_limit: float | None = None) -> RawSolution:
    """Solve the welfare program's arrays with Clarabel (interior point, conic form).

    Parameters
    ----------
    W : WelfareArrays
        The program (:func:`~datamarkets.formulations.welfare_program.build_welfare_arrays`).
    tol : float
        Clarabel's feasibility and gap tolerances.
    time_limit : float, optional
        Seconds handed to Clarabel.

    Returns
    -------
    RawSolution
        Status mapped onto :class:`~datamarkets.status.Status` (infeasible and unbounded are
        results, not exceptions), primal and dual arrays when a solution exists.
    """
    import clarabel

    n = W.P_diag.size
    E, I = W.n_f, W.n_x
    fin_ub = np.flatnonzero(np.isfinite(W.ub))
    # lower-bound rows only for flows and segments: x ≥ 0 is implied by x = B f, f ≥ 0
    lb_cols = np.concatenate([np.arange(E), np.arange(E + I, n)])
    # rows: A_eq (zero cone) | A_ub ; −v ≤ −lb ; v ≤ ub (finite)   (nonnegative cone)
    A = sp.vstack(
        [
            W.A_eq,
            W.A_ub,
            sp.csr_array(
                (-np.ones(lb_cols.size), (np.arange(lb_cols.size), lb_cols)), shape=(lb_cols.size, n)
            ),
            sp.csr_array((np.ones(fin_ub.size), (np.arange(fin_ub.size), fin_ub)), shape=(fin_ub.size, n)),
        ],
        format="csc",
    )
    b = np.concatenate([np.zeros(W.A_eq.shape[0]), W.b_ub, -W.lb[lb_cols], W.ub[fin_ub]])
    P = sp.diags_array(W.P_diag, format="csc")
    cones = [clarabel.ZeroConeT(W.A_eq.shape[0]), clarabel.NonnegativeConeT(A.shape[0] - W.A_eq.shape[0])]
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = tol
    st.tol_gap_rel = tol
    st.tol_feas = tol
    st.max_threads = 1
    if time_limit is not None:
        st.time_limit = float(time_limit)
    try:
        solver = clarabel.DefaultSolver(sp.csc_matrix(P), W.c, sp.csc_matrix(A), b, cones, st)
        sol = solver.solve()
    except Exception as exc:  # pragma: no cover - crash
        raise SolverError(f"clarabel failed: {exc}") from exc
    name = str(sol.status).rsplit(".", 1)[-1]
    status = {
        "Solved": Status.OPTIMAL,
        "AlmostSolved": Status.OPTIMAL_INACCURATE,
        "PrimalInfeasible": Status.INFEASIBLE,
        "AlmostPrimalInfeasible": Status.INFEASIBLE,
        "DualInfeasible": Status.UNBOUNDED,
        "AlmostDualInfeasible": Status.UNBOUNDED,
        "MaxIterations": Status.ITERATION_LIMIT,
        "MaxTime": Status.TIME_LIMIT,
    }.get(name, Status.ERROR)
    out = RawSolution(status, name, solver="clarabel", version=clarabel.__version__)
    out.extra["iterations"] = int(sol.iterations)
    if status.has_solution:
        v = np.asarray(sol.x)
        z = np.asarray(sol.z)
        m_eq = W.A_eq.shape[0]
        out.f = np.maximum(v[:E], 0.0)
        out.x = v[E : E + I]
        out.p = np.maximum(z[m_eq : m_eq + W.A_ub.shape[0]], 0.0)
        # μ_i: dual of x_i ≤ D_i rows (finite demands only)
        mu = np.zeros(I)
        up = z[m_eq + W.A_ub.shape[0] + lb_cols.size :]
        is_x = (fin_ub >= E) & (fin_ub < E + I)
        mu[fin_ub[is_x] - E] = np.maximum(up[is_x], 0.0)
        out.mu = mu
    return out


def solve_arrays_highs(W: WelfareArrays, tol: float, time_limit: float | None) -> RawSolution:
    """Solve the welfare program's arrays with HiGHS (LP, or QP with the regularisation below).

    Parameters
    ----------
    W : WelfareArrays
        The program (:func:`~datamarkets.formulations.welfare_program.build_welfare_arrays`).
    tol : float
        Primal/dual feasibility tolerance.
    time_limit : float or None
        Seconds handed to HiGHS.

    Returns
    -------
    RawSolution
        As :func:`solve_arrays_clarabel`.
    """
    import highspy

    E, I = W.n_f, W.n_x
    A = sp.vstack([W.A_eq, W.A_ub], format="csc")
    m_eq = W.A_eq.shape[0]
    row_lo = np.concatenate([np.zeros(m_eq), np.full(W.A_ub.shape[0], -highspy.kHighsInf)])
    row_hi = np.concatenate([np.zeros(m_eq), W.b_ub])
    inf = highspy.kHighsInf
    ub = np.where(np.isfinite(W.ub), W.ub, inf)
    is_qp = bool(np.any(W.P_diag > 0))
    opts: dict[str, Any] = {"primal_feasibility_tolerance": tol, "dual_feasibility_tolerance": tol}
    if not is_qp:
        opts.update(solver="ipm", run_crossover="on")  # IPX ≈ 60× dual simplex here (SOLVERS.md)
    # a QP's Hessian is diagonal (P_diag); highs_model lowers HiGHS's QP regularisation to 1e-12
    H = sp.diags_array(W.P_diag, format="csc") if is_qp else None
    h = highs_model(
        W.c, W.lb, ub, A, row_lo, row_hi, H=H, what="welfare model", time_limit=time_limit, **opts
    )
    reset_highs_scheduler()
    h.run()
    ms = h.getModelStatus()
    status = status_from_highs(ms)
    out = RawSolution(status, str(ms), solver="highs", version=highs_version())
    if status.has_solution:
        sol = h.getSolution()
        v = np.asarray(sol.col_value)
        rd = np.asarray(sol.row_dual)
        cd = np.asarray(sol.col_dual)
        out.f = np.maximum(v[:E], 0.0)
        out.x = v[E : E + I]
        out.p = np.maximum(-rd[m_eq:], 0.0)  # minimisation: a binding ≤ row has dual ≤ 0
        mu = np.zeros(I)
        at_up = np.isfinite(W.ub[E : E + I])
        mu[at_up] = np.maximum(-cd[E : E + I][at_up], 0.0)
        out.mu = mu
    return out


def build_welfare_cvxpy(M: MarketArrays) -> tuple[Any, dict[str, Any]]:
    """The welfare program as a vectorised ``cvxpy.Problem`` (quadratic, piecewise-linear, α-fair).

    Returns
    -------
    problem : cvxpy.Problem
    handles : dict
        ``f``, ``x`` variables and the ``supply`` / ``demand`` constraints (for duals).
    """
    import cvxpy as cp

    E, I = M.n_columns, M.n_buyers
    f = cp.Variable(E, nonneg=True, name="flow")
    x = cp.Variable(I, nonneg=True, name="total")
    cons = [x == M.B @ f]
    supply = M.R @ f <= M.supply
    cons.append(supply)
    fin = np.flatnonzero(np.isfinite(M.demand))
    demand = None
    if fin.size:
        demand = x[fin] <= M.demand[fin]
        cons.append(demand)
    terms = []
    qi, a, b = M.quad_params()
    if qi.size:
        terms.append(a @ x[qi] - 0.5 * cp.sum(cp.multiply(b, cp.square(x[qi]))))
    owner, slope, length = M.segments()
    if owner.size:
        y = cp.Variable(owner.size, nonneg=True, name="segment")
        cons += [y <= length]
        pb = np.unique(owner)
        S = sp.csr_array((np.ones(owner.size), (np.searchsorted(pb, owner), np.arange(owner.size))))
        cons.append(S @ y == x[pb])
        terms.append(slope @ y)
    fair = [(i, v) for i, v in enumerate(M.valuations) if isinstance(v, AlphaFairValuation)]
    af = np.array([i for i, _ in fair], dtype=np.int64)
    if af.size:
        al = np.array([v.alpha for _, v in fair])
        sig = np.array([v.sigma for _, v in fair])
        off = np.array([v.offset for _, v in fair])
        d = x[af] + off
        lt, eq, gt = al < 1, al == 1, al > 1
        if lt.any():  # t ≤ d^{1−α}:  PowCone3D(d, 1, t; 1−α)  (power cone, exact)
            t = cp.Variable(int(lt.sum()))
            cons.append(cp.constraints.PowCone3D(d[lt], np.ones(int(lt.sum())), t, 1 - al[lt]))
            terms.append((sig[lt] / (1 - al[lt])) @ t)
        if eq.any():  # σ log(d)  (exponential cone)
            terms.append(sig[eq] @ cp.log(d[eq]))
        if gt.any():  # t ≥ d^{1−α}  ⇔  t^{1/α} d^{1−1/α} ≥ 1:  PowCone3D(t, d, 1; 1/α)
            t = cp.Variable(int(gt.sum()))
            cons.append(cp.constraints.PowCone3D(t, d[gt], np.ones(int(gt.sum())), 1 / al[gt]))
            terms.append((sig[gt] / (1 - al[gt])) @ t)
    obj = cp.Maximize(cp.sum(cp.hstack(terms)) if len(terms) > 1 else terms[0])
    prob = cp.Problem(obj, cons)
    return prob, {"f": f, "x": x, "supply": supply, "demand": demand, "demand_idx": fin}


CVXPY_SOLVERS = {"clarabel": "CLARABEL", "osqp": "OSQP", "scs": "SCS", "ecos": "ECOS", "highs": "HIGHS"}
"""Solvers reached through cvxpy, by datamarkets name."""


def _cvxpy_options(solver: str, tol: float, time_limit: float | None) -> dict[str, Any]:
    if solver == "clarabel":
        opts: dict[str, Any] = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol}
        if time_limit is not None:
            opts["time_limit"] = float(time_limit)
        return opts
    if solver == "osqp":  # first-order: polish the active set to reach vertex accuracy
        from importlib.metadata import version

        polish = "polishing" if int(version("osqp").split(".")[0]) >= 1 else "polish"
        return {"eps_abs": tol, "eps_rel": tol, polish: True, "max_iter": 200_000}
    if solver == "scs":
        return {"eps_abs": tol, "eps_rel": tol, "max_iters": 200_000}
    if solver == "ecos":
        return {"abstol": tol, "reltol": tol, "feastol": tol}
    return {}


def _solve_cvxpy(
    M: MarketArrays,
    tol: float,
    time_limit: float | None = None,
    solver: str = "clarabel",
    built: tuple[Any, dict[str, Any]] | None = None,
) -> RawSolution:
    import cvxpy as cp

    if solver not in CVXPY_SOLVERS:
        raise InvalidInputError(f"unknown cvxpy solver {solver!r}; choose one of {tuple(CVXPY_SOLVERS)}")
    version = require_solver(solver)
    prob, hd = built if built is not None else build_welfare_cvxpy(M)
    opts = {**_cvxpy_options(solver, tol, time_limit), **solver_time_options(solver, time_limit)}
    try:
        prob.solve(solver=CVXPY_SOLVERS[solver], **opts)
    except cp.error.SolverError as exc:
        raise SolverError(f"cvxpy/{solver} failed: {exc}") from exc
    status = status_from_cvxpy(prob.status)
    out = RawSolution(
        status, str(prob.status), solver=f"cvxpy+{solver}", version=f"{cp.__version__}/{version}"
    )
    if status.has_solution:
        out.f = np.maximum(np.asarray(hd["f"].value, float), 0.0)
        out.x = np.asarray(hd["x"].value, float)
        out.p = np.maximum(np.asarray(hd["supply"].dual_value, float), 0.0)
        mu = np.zeros(M.n_buyers)
        if hd["demand"] is not None:
            mu[hd["demand_idx"]] = np.maximum(np.asarray(hd["demand"].dual_value, float), 0.0)
        out.mu = mu
    return out


def build_welfare_pyomo(M: MarketArrays) -> Any:
    """The welfare program as a Pyomo ``ConcreteModel`` (small instances; ~40× the array build).

    Variables ``flow[e]``, ``total[i]``, ``segment[k]``; constraints ``supply[j]`` (dual = price),
    ``link[i]``, ``segsum[i]``; a ``dual`` Suffix is attached.
    """
    import pyomo.environ as pyo

    if "alpha_fair" in M.kinds():
        raise InvalidInputError("α-fair valuations need a cone program: choose method cvxpy or auto")
    E, I, J = M.n_columns, M.n_buyers, M.n_sellers
    m = pyo.ConcreteModel(name="welfare")
    m.E = pyo.RangeSet(0, E - 1)
    m.I = pyo.RangeSet(0, I - 1)
    m.J = pyo.RangeSet(0, J - 1)
    owner, slope, length = M.segments()
    m.K = pyo.RangeSet(0, owner.size - 1) if owner.size else pyo.Set(initialize=[])
    m.flow = pyo.Var(m.E, domain=pyo.NonNegativeReals)
    m.total = pyo.Var(m.I, domain=pyo.NonNegativeReals)
    for i in range(I):
        if math.isfinite(M.demand[i]):
            m.total[i].setub(float(M.demand[i]))
    m.segment = pyo.Var(m.K, domain=pyo.NonNegativeReals, bounds=lambda _m, k: (0.0, float(length[k])))
    Bc = M.B.tocsr()
    Rc = M.R.tocsr()
    m.link = pyo.Constraint(
        m.I,
        rule=lambda _m, i: (
            _m.total[i] == sum(_m.flow[int(e)] for e in Bc.indices[Bc.indptr[i] : Bc.indptr[i + 1]])
        ),
    )
    m.supply = pyo.Constraint(
        m.J,
        rule=lambda _m, j: (
            sum(_m.flow[int(e)] for e in Rc.indices[Rc.indptr[j] : Rc.indptr[j + 1]]) <= float(M.supply[j])
            if Rc.indptr[j + 1] > Rc.indptr[j]
            else pyo.Constraint.Skip
        ),
    )
    pb = np.unique(owner)
    m.segsum = pyo.Constraint(
        list(map(int, pb)),
        rule=lambda _m, i: sum(_m.segment[int(k)] for k in np.flatnonzero(owner == i)) == _m.total[i],
    )
    qi, a, b = M.quad_params()
    m.welfare = pyo.Objective(
        expr=sum(
            float(a[k]) * m.total[int(i)] - 0.5 * float(b[k]) * m.total[int(i)] ** 2 for k, i in enumerate(qi)
        )
        + sum(float(slope[k]) * m.segment[k] for k in range(owner.size)),
        sense=pyo.maximize,
    )
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    return m


def _solve_pyomo(
    M: MarketArrays, time_limit: float | None, solver: str = "highs", model: Any = None
) -> RawSolution:
    require_solver(solver)
    m = model if model is not None else build_welfare_pyomo(M)
    reset_highs_scheduler()
    if solver == "highs":  # contrib highs: LP and QP; see solve_arrays_highs for the regularisation
        info = solve_pyomo(m, "highs", time_limit=time_limit, options={"qp_regularization_value": 1e-12})
    else:  # glpk/cbc (LP valuations) or ipopt (QP); their own time-limit option names
        # GLPK: no LP presolve, final basis checked exactly (its presolver can stop suboptimal)
        defaults: dict[str, dict[str, Any]] = {
            "ipopt": {"tol": 1e-10, "print_level": 0},
            "glpk": {"nopresol": None, "xcheck": None},
        }
        opts: dict[str, Any] = dict(defaults.get(solver, {}))
        if time_limit is not None:
            opts[{"glpk": "tmlim", "cbc": "sec", "ipopt": "max_cpu_time"}[solver]] = (
                int(time_limit) if solver == "glpk" else float(time_limit)
            )
        info = solve_pyomo(m, PYOMO_NAMES[solver], options=opts)
    out = RawSolution(info.status, info.raw_status, solver=f"pyomo+{solver}", version=info.solver_version)
    if info.status.has_solution:
        out.f = np.maximum(np.array([m.flow[e].value or 0.0 for e in range(M.n_columns)]), 0.0)
        out.x = np.array([m.total[i].value or 0.0 for i in range(M.n_buyers)])
        # maximisation: a binding ≤ row has dual ≥ 0 in Pyomo's convention for HiGHS
        p = np.zeros(M.n_sellers)
        for j in m.supply:
            p[j] = abs(m.dual.get(m.supply[j], 0.0))
        out.p = p
        out.mu = _mu_from_prices(M, out.x, out.p, out.f)
    return out


def _mu_from_prices(M: MarketArrays, x: np.ndarray, p: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Demand-cap multipliers μ_i = max(0, ρ_i − min over i's active columns of the column price)."""
    mu = np.zeros(M.n_buyers)
    fin = np.isfinite(M.demand)
    capped = np.zeros(M.n_buyers, dtype=bool)
    capped[fin] = x[fin] >= M.demand[fin] - 1e-7 * np.maximum(1.0, M.demand[fin])
    if not capped.any():
        return mu
    colprice = M.R.T @ p
    lo, _hi = _marginals(M, x)
    best = np.full(M.n_buyers, np.inf)
    np.minimum.at(best, M.col_buyer, colprice)
    mu[capped] = np.maximum(lo[capped] - best[capped], 0.0)
    return mu
