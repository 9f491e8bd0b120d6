r"""The KKT system of welfare maximisation as a complementarity model, solved as a big-M MILP.

Allocations and prices straight from the optimality conditions (psp-data-share-market (36)–(38))
of the welfare program of :mod:`datamarkets.formulations.welfare`::

    0 ≤ f_e  ⟂  Σ_j R_je p_j + μ_i − ρ_i ≥ 0         column e of buyer i       (36)/(37)
    0 ≤ p_j  ⟂  D^j − Σ_e R_je f_e ≥ 0              seller supply / capacity   (38)
    0 ≤ μ_i  ⟂  D_i − x_i ≥ 0                       buyer demand cap (if any)
    ρ_i = a_i − b_i x_i                               quadratic buyers (linear stationarity)
    0 ≤ y_ik ⟂ ρ_i + η_ik − s_ik ≥ 0,  0 ≤ η_ik ⟂ L_ik − y_ik ≥ 0,  Σ_k y_ik = x_i
                                                      piecewise-linear buyers (segment columns)

Built as a Pyomo ``mpec`` model (:func:`build_kkt_model`), transformed by
``mpec.simple_disjunction`` then ``gdp.bigm`` with one M per complementarity pair, DERIVED FROM
THE DATA (:func:`derive_big_m`): prices ≤ the largest marginal value θ_i'(0) of any buyer on the
resource, μ_i ≤ θ_i'(0), flows ≤ min(supplies on the column, D_i, the quadratic peak a/b),
reduced costs ≤ the sum of those price bounds (+ the largest −ρ_i), each multiplied by a safety
factor (default 2) plus 1. These bounds hold at every KKT point, so:

- the MILP is never infeasible for a valid market (f = 0 is feasible for the convex program,
  which therefore has KKT points): an "infeasible" answer means the big-Ms cut them off, and is
  raised as :class:`~datamarkets.errors.SolverError`, never returned quietly;
- a solution that touches a big-M is raised as :class:`~datamarkets.errors.AlgorithmError`;
- an untransformed complementarity model handed to the solver raises
  :class:`~datamarkets.errors.SolverError` (HiGHS would quietly ignore or mis-read it).

By default the MILP has a constant objective (any KKT point; allocations x are unique for
strictly concave valuations, flows and prices need not be); ``objective="min_prices"`` picks the
smallest supporting prices instead, at a cost in time.

Cost: one binary per complementarity pair, so the time grows fast and is instance dependent.
SOLVERS.md measured (generic Pyomo mpec → gdp.bigm → HiGHS, one global M, an objective): 60 edges
0.6 s, 300 edges 11 s, 900 edges > 150 s. With the data-derived bounds also placed on the variables
and a constant objective (stop at the first KKT point) this module measured, on random quadratic
markets B × B/10 × 5 edges (shared 2-core machine, load ≈ 4, build + solve): 250 edges 1.6–2.9 s,
500 edges 2.0–2.6 s, 1,000 edges 5.3–5.8 s, 2,000 edges 9.8–10.9 s (build ≈ half of it); but a
60 × 6 × 3 (180 edges) quadratic instance of another generator took 19 s, and linear valuations
(two pairs per segment) took 26 s for 60 edges before the variable bounds were added. The welfare
QP (:mod:`~datamarkets.formulations.welfare`) solves 50,000 edges in ~2 s. Keep this route for
small instances, for non-convex variants and for cross-checking the QP/LP (agreement to 1e-6 in
welfare is tested); ``Result.method`` is ``"kkt-milp"``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import AlgorithmError, InvalidInputError, SolverError
from datamarkets.formulations.auction_optimum_certificate import certify_with_dual_bound
from datamarkets.formulations.welfare_allocation import WelfareResult, _allocation_rows
from datamarkets.formulations.welfare_kkt import _marginals, kkt_residuals, welfare_of
from datamarkets.formulations.welfare_solve import _add_kkt_certificate
from datamarkets.graphs.market_data import MarketArrays, market_arrays
from datamarkets.graphs.valuations import PiecewiseLinearValuation, QuadraticValuation
from datamarkets.result import Certificate, Timer, provenance
from datamarkets.solvers import (
    PYOMO_NAMES,
    Deadline,
    require_solver,
    reset_highs_scheduler,
    solve_pyomo,
    solver_time_options,
)
from datamarkets.status import Status
from datamarkets.validation import check_time_limit, check_tolerances

__all__ = [
    "BigM",
    "assert_transformed",
    "build_kkt_model",
    "derive_big_m",
    "solve_kkt",
    "transform_kkt_model",
]


@dataclass
class BigM:
    """Data-derived bounds of the KKT variables (valid at every KKT point) and the Ms used.

    Attributes
    ----------
    f_bar : ndarray (E,)   flow bounds
    p_bar : ndarray (J,)   price bounds (largest θ'(0) of a buyer using the resource)
    mu_bar : ndarray (I,)  demand-cap multiplier bounds θ_i'(0)
    rho_lo : ndarray (I,)  lower bound of ρ_i
    gap_bar : ndarray (E,) bound of each column's reduced cost
    safety : float         M = safety · bound + 1
    """

    f_bar: np.ndarray
    p_bar: np.ndarray
    mu_bar: np.ndarray
    x_bar: np.ndarray
    rho_lo: np.ndarray
    rho_hi: np.ndarray
    gap_bar: np.ndarray
    safety: float

    def m(self, bound: np.ndarray | float) -> np.ndarray:
        return self.safety * np.asarray(bound, dtype=float) + 1.0


def derive_big_m(M: MarketArrays, safety: float = 2.0) -> BigM:
    """Bounds of flows, prices and multipliers at any KKT point, from the data alone.

    A price p_j above every θ_i'(0) of the buyers on resource j would make every column through j
    unattractive (reduced cost > 0 ⇒ no flow ⇒ slack D^j > 0 ⇒ p_j = 0), so
    p_j ≤ max_{i on j} θ_i'(0) when D^j > 0; μ_i ≤ θ_i'(0) likewise. Flows are bounded by every
    capacity on their column, by D_i, and for quadratic buyers by the peak a/b (beyond it
    θ' < 0 ≤ price).

    Raises
    ------
    InvalidInputError
        α-fair valuations (nonlinear stationarity; use the QP/cone routes).
    """
    if "alpha_fair" in M.kinds():
        raise InvalidInputError("the KKT-MILP route needs linear stationarity (quadratic / piecewise-linear)")
    theta0 = M.max_marginal()
    R = M.R.tocsc()
    E = M.n_columns
    f_bar = np.empty(E)
    p_bar = np.zeros(M.n_sellers)
    for e in range(E):
        rows = R.indices[R.indptr[e] : R.indptr[e + 1]]
        i = M.col_buyer[e]
        caps = M.supply[rows]
        f_bar[e] = min(float(caps.min(initial=math.inf)), float(M.demand[i]))
        v = M.valuations[i]
        if isinstance(v, QuadraticValuation):
            f_bar[e] = min(f_bar[e], v.a / v.b)
        elif isinstance(v, PiecewiseLinearValuation):
            f_bar[e] = min(f_bar[e], float(sum(v.lengths)))
        np.maximum.at(p_bar, rows, theta0[i])
    x_bar = np.minimum(M.B @ f_bar, M.demand)
    mu_bar = np.where(np.isfinite(M.demand), theta0, 0.0)
    rho_lo = np.zeros(M.n_buyers)
    rho_hi = theta0.copy()
    for i, v in enumerate(M.valuations):
        if isinstance(v, QuadraticValuation):
            rho_lo[i] = v.a - v.b * x_bar[i]
    gap_bar = M.R.T @ p_bar + mu_bar[M.col_buyer] - np.minimum(rho_lo, 0.0)[M.col_buyer]
    return BigM(f_bar, p_bar, mu_bar, x_bar, rho_lo, rho_hi, gap_bar, float(safety))


def build_kkt_model(M: MarketArrays, bigm: BigM | None = None, objective: str = "feasibility") -> Any:
    """The KKT system as an (untransformed) Pyomo ``mpec`` model.

    Components: variables ``flow[e]``, ``price[j]``, ``mu[i]``, ``rho[i]`` (piecewise-linear
    buyers), ``seg[k]``, ``eta[k]``; complementarity blocks ``cc_flow[e]``, ``cc_supply[j]``,
    ``cc_demand[i]``, ``cc_seg[k]``, ``cc_segub[k]``; constraints ``rho_def[i]`` (quadratic) and
    ``seg_sum[i]``; objective ``"feasibility"`` (constant: the first KKT point found; fastest) or
    ``"min_prices"`` (min Σ price + Σ mu: the smallest supporting prices among KKT points).
    ``model._bigm`` holds the :class:`BigM`.
    """
    import pyomo.environ as pyo
    from pyomo.mpec import Complementarity, complements

    bigm = bigm or derive_big_m(M)
    E, I, J = M.n_columns, M.n_buyers, M.n_sellers
    owner, slope, length = M.segments()
    K = owner.size
    R = M.R.tocsr()
    Rc = M.R.tocsc()
    Bc = M.B.tocsr()
    m = pyo.ConcreteModel(name="welfare-kkt")
    m.E, m.I, m.J, m.K = range(E), range(I), range(J), range(K)
    # variable bounds are the data-derived bounds (valid at every KKT point; for a zero supply or
    # demand cap they select the KKT point with the bounded multiplier)
    m.flow = pyo.Var(m.E, domain=pyo.NonNegativeReals, bounds=lambda _m, e: (0.0, float(bigm.f_bar[e])))
    m.price = pyo.Var(m.J, domain=pyo.NonNegativeReals, bounds=lambda _m, j: (0.0, float(bigm.p_bar[j])))
    capped = [i for i in range(I) if math.isfinite(M.demand[i])]
    m.mu = pyo.Var(capped, domain=pyo.NonNegativeReals, bounds=lambda _m, i: (0.0, float(bigm.mu_bar[i])))
    pwl = sorted(set(owner.tolist()))
    m.rho = pyo.Var(pwl, domain=pyo.Reals, bounds=lambda _m, i: (0.0, float(bigm.rho_hi[i])))
    m.seg = pyo.Var(m.K, domain=pyo.NonNegativeReals, bounds=lambda _m, k: (0.0, float(length[k])))
    m.eta = pyo.Var(m.K, domain=pyo.NonNegativeReals, bounds=lambda _m, k: (0.0, float(slope[k])))

    def x(i: int) -> Any:
        return sum(m.flow[int(e)] for e in Bc.indices[Bc.indptr[i] : Bc.indptr[i + 1]])

    def rho(i: int) -> Any:
        v = M.valuations[i]
        if isinstance(v, QuadraticValuation):
            return v.a - v.b * x(i)
        return m.rho[i]

    def mu(i: int) -> Any:
        return m.mu[i] if i in m.mu else 0.0

    # (36)/(37): column stationarity
    m.cc_flow = Complementarity(
        m.E,
        rule=lambda _m, e: complements(
            _m.flow[e] >= 0,
            sum(_m.price[int(j)] for j in Rc.indices[Rc.indptr[e] : Rc.indptr[e + 1]])
            + mu(int(M.col_buyer[e]))
            - rho(int(M.col_buyer[e]))
            >= 0,
        ),
    )

    # (38): supply / capacity and its price
    def supply_rule(_m: Any, j: int) -> Any:
        cols = R.indices[R.indptr[j] : R.indptr[j + 1]]
        if cols.size == 0:  # nobody can buy here: slack = D^j, so p_j = 0
            _m.price[j].fix(0.0)
            return Complementarity.Skip
        return complements(_m.price[j] >= 0, float(M.supply[j]) - sum(_m.flow[int(e)] for e in cols) >= 0)

    m.cc_supply = Complementarity(m.J, rule=supply_rule)
    m.cc_demand = Complementarity(
        capped, rule=lambda _m, i: complements(_m.mu[i] >= 0, float(M.demand[i]) - x(i) >= 0)
    )
    m.cc_seg = Complementarity(
        m.K,
        rule=lambda _m, k: complements(
            _m.seg[k] >= 0, _m.rho[int(owner[k])] + _m.eta[k] - float(slope[k]) >= 0
        ),
    )
    m.cc_segub = Complementarity(
        m.K, rule=lambda _m, k: complements(_m.eta[k] >= 0, float(length[k]) - _m.seg[k] >= 0)
    )
    m.seg_sum = pyo.Constraint(
        pwl, rule=lambda _m, i: sum(_m.seg[int(k)] for k in np.flatnonzero(owner == i)) == x(i)
    )
    if objective == "min_prices":
        m.obj = pyo.Objective(
            expr=sum(m.price[j] for j in m.J) + sum(m.mu[i] for i in m.mu), sense=pyo.minimize
        )
    else:  # pure feasibility: HiGHS stops at the first KKT point
        m.obj = pyo.Objective(expr=0.0 * sum(m.price[j] for j in m.J))
    m._bigm = bigm
    m._arrays = M
    return m


def _pair_bounds(m: Any) -> dict[Any, tuple[float, float]]:
    """Data-derived bound of each side of every complementarity pair, keyed by the pyomo block."""
    M: MarketArrays = m._arrays
    bm: BigM = m._bigm
    owner, slope, length = M.segments()
    out: dict[Any, tuple[float, float]] = {}
    for e in m.E:
        out[m.cc_flow[e]] = (float(bm.f_bar[e]), float(bm.gap_bar[e]))
    for j in m.cc_supply:
        out[m.cc_supply[j]] = (float(bm.p_bar[j]), float(M.supply[j]))
    for i in m.mu:
        out[m.cc_demand[i]] = (float(bm.mu_bar[i]), float(M.demand[i]))
    for k in m.K:
        out[m.cc_seg[k]] = (float(length[k]), float(bm.rho_hi[owner[k]] + slope[k]))
        out[m.cc_segub[k]] = (float(slope[k]), float(length[k]))
    return out


def transform_kkt_model(m: Any, big_m: float | None = None) -> Any:
    """Reformulate every complementarity pair as a disjunction and then as big-M constraints.

    Parameters
    ----------
    m : pyomo model from :func:`build_kkt_model`
    big_m : float, optional
        Override: one M for every pair (for experiments and tests). By default each pair gets
        ``safety · max(bound of either side) + 1`` from :func:`derive_big_m`.

    Returns
    -------
    The same model, transformed in place.
    """
    import pyomo.environ as pyo

    bounds = _pair_bounds(m)
    bm: BigM = m._bigm
    cmap = pyo.ComponentMap()
    used: dict[Any, float] = {}
    for blk, (b1, b2) in bounds.items():
        M_val = float(big_m) if big_m is not None else float(bm.m(max(b1, b2)))
        cmap[blk] = M_val
        used[blk] = M_val
    pyo.TransformationFactory("mpec.simple_disjunction").apply_to(m)
    pyo.TransformationFactory("gdp.bigm").apply_to(m, bigM=cmap)
    m._big_m_used = used
    return m


def assert_transformed(m: Any) -> None:
    """Raise :class:`SolverError` if any complementarity condition or disjunction is still active
    (a MILP solver would otherwise drop it silently and answer "infeasible"/"optimal" wrongly)."""
    import pyomo.environ as pyo
    from pyomo.gdp import Disjunct, Disjunction
    from pyomo.mpec import Complementarity

    for kind in (Complementarity, Disjunction, Disjunct):
        active = [c.name for c in m.component_data_objects(kind, active=True, descend_into=True)]
        if active:
            raise SolverError(
                f"model has {len(active)} untransformed {kind.__name__} component(s), e.g. {active[0]!r}: "
                "apply transform_kkt_model() before solving"
            )
    _ = pyo  # the import is what we need for Pyomo's plugin registration


def _pair_values(m: Any) -> dict[Any, tuple[float, float]]:
    """Value of both sides of every complementarity pair at the loaded solution."""
    import pyomo.environ as pyo

    M: MarketArrays = m._arrays
    owner, slope, length = M.segments()
    f = np.array([m.flow[e].value or 0.0 for e in m.E], dtype=float)
    p = np.array([m.price[j].value or 0.0 for j in m.J], dtype=float)
    mu = np.zeros(M.n_buyers)
    for i in m.mu:
        mu[i] = m.mu[i].value or 0.0
    x = M.B @ f
    rho = np.zeros(M.n_buyers)
    for i, v in enumerate(M.valuations):
        rho[i] = (
            v.a - v.b * x[i]
            if isinstance(v, QuadraticValuation)
            else (pyo.value(m.rho[i]) if i in m.rho else 0.0)
        )
    gap = M.R.T @ p + mu[M.col_buyer] - rho[M.col_buyer]
    slack = M.supply - M.R @ f
    out: dict[Any, tuple[float, float]] = {}
    for e in m.E:
        out[m.cc_flow[e]] = (f[e], gap[e])
    for j in m.cc_supply:
        out[m.cc_supply[j]] = (p[j], slack[j])
    for i in m.mu:
        out[m.cc_demand[i]] = (mu[i], M.demand[i] - x[i])
    for k in m.K:
        y, eta = m.seg[k].value or 0.0, m.eta[k].value or 0.0
        out[m.cc_seg[k]] = (y, rho[owner[k]] + eta - slope[k])
        out[m.cc_segub[k]] = (eta, length[k] - y)
    return out


def _check_big_m(m: Any, tol: float) -> None:
    """Raise :class:`AlgorithmError` if either side of a complementarity pair reaches its M."""
    for blk, (v1, v2) in _pair_values(m).items():
        M_val = m._big_m_used[blk]
        val = max(abs(v1), abs(v2))
        if val >= M_val * (1.0 - tol):
            raise AlgorithmError(
                f"complementarity {blk.name!r} reaches its big-M {M_val:g} (value {val:g}): "
                "the derived bound does not hold — raise the safety factor or check the data"
            )


@contextlib.contextmanager
def _quiet_pyomo() -> Iterator[None]:
    """Silence Pyomo's "Constructing component ... failed" log when a build is interrupted."""
    log = logging.getLogger("pyomo")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def solve_kkt(
    G: nx.Graph | MarketArrays,
    *,
    safety: float = 2.0,
    big_m: float | None = None,
    time_limit: float | None = 120.0,
    mip_tol: float = 1e-9,
    certify_tol: float = 1e-6,
    transform: bool = True,
    objective: str = "feasibility",
    solver: str = "highs",
    **attrs: Any,
) -> WelfareResult:
    """Solve the KKT conditions (36)–(38) of welfare maximisation as a big-M MILP with HiGHS.

    Parameters
    ----------
    G : networkx.Graph or MarketArrays
        Market graph (quadratic and/or piecewise-linear valuations).
    safety : float
        M = safety · (data-derived bound) + 1.
    big_m : float, optional
        One M for every pair instead of the derived ones (experiments/tests).
    time_limit : float, optional
        Wall-clock seconds for the whole call: the Pyomo build and big-M transformation (the clock
        is checked between them) and the MILP (the solver gets what remains).
    mip_tol : float
        HiGHS primal/MIP feasibility tolerance.
    certify_tol : float
        Tolerance of the one ``auction-optimum`` certificate
        (:func:`~datamarkets.formulations.auction_optimum_certificate.certify_auction_optimum`).
    transform : bool
        Set False only to see the untransformed-model guard fire.
    objective : {"feasibility", "min_prices"}
        See :func:`build_kkt_model`.
    solver : {"highs", "cbc", "glpk"}
        MILP solver through Pyomo (``appsi_highs``; ``cbc`` and ``glpsol`` when installed).

    Returns
    -------
    WelfareResult
        kind ``"auction-optimum"``, method ``"kkt-milp"``; same solution keys as
        :func:`~datamarkets.formulations.welfare.solve_welfare`.

    Raises
    ------
    InvalidInputError
        α-fair valuations; unknown solver (the message lists the choices).
    SolverError
        Untransformed model; MILP "infeasible" (the big-Ms cut every KKT point off).
    AlgorithmError
        A big-M is touched by the solution.
    SolverLimitError
        Time limit without an optimal KKT point.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.Graph()
    >>> G.add_node("s", role="seller", supply=1.0)
    >>> G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
    >>> G.add_edge("b", "s")
    >>> r = solve_kkt(G)
    >>> round(r.solution["prices"]["s"], 9), round(r.solution["welfare"], 9)
    (3.0, 3.5)
    """

    check_tolerances(safety=safety, big_m=big_m, mip_tol=mip_tol, certify_tol=certify_tol)
    time_limit = check_time_limit(time_limit, "time_limit")
    if objective not in ("feasibility", "min_prices"):
        raise InvalidInputError(f"unknown objective {objective!r}; choose one of feasibility, min_prices")
    if solver not in ("highs", "cbc", "glpk"):
        raise InvalidInputError(f"unknown KKT MILP solver {solver!r}; choose highs, cbc or glpk")
    require_solver(solver)  # at the door: probing an executable once per process is not solve time
    deadline = Deadline(time_limit)  # the Pyomo build and transformation count too: interrupted
    timer = Timer()
    with timer("validate_seconds"), deadline.interrupting("the KKT validation"):
        M = G if isinstance(G, MarketArrays) else market_arrays(G, **attrs)
        bigm = derive_big_m(M, safety)
    with timer("build_seconds"):
        # the Pyomo build and transformation are pure Python: interrupted at the deadline
        with _quiet_pyomo(), deadline.interrupting("the KKT model build"):
            m = build_kkt_model(M, bigm, objective)
        if transform:
            with _quiet_pyomo(), deadline.interrupting("the KKT big-M transformation"):
                transform_kkt_model(m, big_m)
    assert_transformed(m)
    with timer("solve_seconds"):
        reset_highs_scheduler()
        if solver == "highs":
            info = solve_pyomo(
                m,
                "appsi_highs",
                time_limit=deadline.solver_limit(),
                options={
                    "mip_feasibility_tolerance": mip_tol,
                    "primal_feasibility_tolerance": mip_tol,
                    "mip_rel_gap": 0.0,
                },
            )
        else:  # executables through Pyomo, with their own option names
            # CBC 2.10's MILP preprocessing declares some of these (feasible) big-M systems
            # infeasible (4 in 100 small random markets, e.g. 11 buyers × 2 sellers, seed 30): off
            opts: dict[str, Any] = (
                {"ratioGap": 0.0, "primalT": mip_tol, "integerT": mip_tol, "preprocess": "off"}
                if solver == "cbc"
                else {"mipgap": 0.0}
            )
            opts.update(solver_time_options(solver, deadline.solver_limit()))
            info = solve_pyomo(m, PYOMO_NAMES[solver], options=opts)
    if info.status in (Status.INFEASIBLE, Status.INFEASIBLE_OR_UNBOUNDED):
        raise SolverError(
            "KKT MILP reported infeasible, but a feasible welfare program always has KKT points: "
            f"the big-Ms cut them off (big_m={big_m!r}, safety={safety})"
        )
    if info.status is Status.UNBOUNDED:
        raise SolverError("KKT MILP reported unbounded although every variable is bounded below")
    info.status.raise_for_status("kkt-milp")
    _check_big_m(m, 1e-9)
    f = np.array([m.flow[e].value or 0.0 for e in m.E], dtype=float)
    f = np.maximum(f, 0.0)
    p = np.array([m.price[j].value or 0.0 for j in m.J], dtype=float)
    mu = np.zeros(M.n_buyers)
    for i in m.mu:
        mu[i] = m.mu[i].value or 0.0
    x = M.B @ f
    cert = Certificate()
    with timer("certify_seconds"):
        res = kkt_residuals(M, f, p, mu)
        _add_kkt_certificate(cert, res, certify_tol)
        cert.details["big_m_max"] = max(m._big_m_used.values(), default=0.0)
        cert.details["n_complementarity_pairs"] = len(m._big_m_used)
    lo, _ = _marginals(M, x)
    solution = {
        "welfare": welfare_of(M, x),
        "allocation": _allocation_rows(M, f),
        "prices": {r: float(v) for r, v in zip(M.sellers, p, strict=True)},
        "buyers": [
            {"buyer": b, "total": float(x[i]), "marginal": float(lo[i]), "mu": float(mu[i])}
            for i, b in enumerate(M.buyers)
        ],
    }
    meta = provenance({f"pyomo+{PYOMO_NAMES[solver]}": info.solver_version})
    meta.update(
        market_kind=M.kind,
        n_buyers=M.n_buyers,
        n_resources=M.n_sellers,
        n_columns=M.n_columns,
        raw_status=info.raw_status,
        safety=safety,
        big_m=big_m,
    )
    r = WelfareResult(
        kind="auction-optimum",
        status=info.status,
        method="kkt-milp" if solver == "highs" else f"kkt-milp-{solver}",
        solution=solution,
        certificate=cert,
        timings=dict(timer.seconds),
        meta=meta,
    )
    with timer(
        "certify_seconds"
    ):  # the one auction-optimum certificate; the MILP's own KKT residuals in details
        certify_with_dual_bound(M, r, certify_tol)
    r.timings["certify_seconds"] = timer.seconds["certify_seconds"]
    return r
