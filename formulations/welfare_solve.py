"""The welfare program's routes and their answers, before the one certificate.

:func:`solve_welfare_route` picks and runs a route (Clarabel or HiGHS on sparse arrays, cvxpy,
Pyomo) and writes the solution; its certificate holds the KKT residuals (36)–(38) at the
*solver's* duals (:func:`_add_kkt_certificate`). :func:`~datamarkets.formulations.welfare.solve_welfare`
replaces that certificate by the one certificate of an ``auction-optimum`` answer
(:func:`~datamarkets.formulations.auction_optimum_certificate.certify_auction_optimum`) and keeps
the solver's residuals in its details; the allocation certificate uses this module for its
independent optimum (no import cycle, no certificate of a certificate).
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from datamarkets.errors import InvalidInputError
from datamarkets.formulation import TIME_LIMIT_SLACK
from datamarkets.formulations.welfare_allocation import WelfareResult, _allocation_rows
from datamarkets.formulations.welfare_backends import (
    RawSolution,
    _solve_cvxpy,
    _solve_pyomo,
    solve_arrays_clarabel,
    solve_arrays_highs,
)
from datamarkets.formulations.welfare_kkt import _marginals, kkt_residuals, welfare_of
from datamarkets.formulations.welfare_program import build_welfare_arrays
from datamarkets.graphs.market_data import MarketArrays, market_arrays
from datamarkets.result import Certificate, Timer, provenance
from datamarkets.solvers import Deadline
from datamarkets.status import Status

__all__ = ["METHODS", "solve_welfare_route"]

METHODS = ("auto", "highs", "clarabel", "cvxpy", "pyomo")


def solve_welfare_route(
    G: nx.Graph | MarketArrays,
    method: str = "auto",
    *,
    tol: float = 1e-10,
    time_limit: float | None = None,
    certify_tol: float | None = None,
    **attrs: Any,
) -> WelfareResult:
    """The welfare optimum by one route, certified by the solver's own KKT residuals only.

    Same parameters and solution as :func:`~datamarkets.formulations.welfare.solve_welfare`, whose
    certificate (the one of every ``auction-optimum`` answer) it does not compute: this is the
    independent optimum of :func:`~datamarkets.formulations.auction_certificate.certify_allocation`.

    Raises
    ------
    InvalidInputError
        Unknown method; α-fair valuations with a route other than cvxpy/auto.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.Graph()
    >>> G.add_node("s", role="seller", supply=10.0)
    >>> G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
    >>> G.add_edge("b", "s")
    >>> r = solve_welfare_route(G)
    >>> round(r.solution["welfare"], 6), r.certificate.passed
    (8.0, True)
    """
    return _solve_route(G, method, tol=tol, time_limit=time_limit, certify_tol=certify_tol, **attrs)[1]


def _solve_route(
    G: nx.Graph | MarketArrays,
    method: str = "auto",
    *,
    tol: float = 1e-10,
    time_limit: float | None = None,
    certify_tol: float | None = None,
    **attrs: Any,
) -> tuple[MarketArrays, WelfareResult]:
    """:func:`solve_welfare_route`, and the market arrays it validated."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    deadline = Deadline(time_limit)
    timer = Timer()
    with timer("validate_seconds"):
        M = G if isinstance(G, MarketArrays) else market_arrays(G, **attrs)
    kinds = M.kinds()
    route = method
    if method == "auto":
        if "alpha_fair" in kinds:
            route = "cvxpy"
        elif "quadratic" in kinds:
            route = "clarabel"
        else:
            route = "highs"
    if "alpha_fair" in kinds and route not in ("cvxpy",):
        raise InvalidInputError(
            f"α-fair valuations need a cone program; method {method!r} cannot take them: choose cvxpy or auto"
        )
    # the limit covers validation and build too; the solver gets what remains (Deadline.solver_limit)
    with timer("build_seconds"):
        W = build_welfare_arrays(M) if route in ("highs", "clarabel") and not deadline.expired else None
    with timer("solve_seconds"):
        limit = deadline.solver_limit()
        if deadline.expired:
            raw = RawSolution(Status.TIME_LIMIT, f"time limit of {time_limit:g} s reached before the solve")
        elif route == "clarabel":
            assert W is not None
            raw = solve_arrays_clarabel(W, tol, limit)
        elif route == "highs":
            assert W is not None
            raw = solve_arrays_highs(W, tol, limit)
        elif route == "cvxpy":
            raw = _solve_cvxpy(M, tol, limit)
        else:
            raw = _solve_pyomo(M, limit)
    if raw.status.has_solution and deadline.overran(TIME_LIMIT_SLACK):
        # never "optimal" after overrunning: the answer is kept, the status says what happened
        raw.extra["status_before_time_limit"] = raw.status.value
        raw.status = Status.TIME_LIMIT
    lp = "quadratic" not in kinds and "alpha_fair" not in kinds
    label = {
        "clarabel": "qp-clarabel",
        "highs": "lp-highs-ipx" if lp else "qp-highs",
        "cvxpy": "cvxpy-clarabel",
    }
    method_label = label.get(route, "pyomo-highs")
    if certify_tol is None:
        certify_tol = 1e-5 if "alpha_fair" in kinds else 1e-6
    return M, _package(M, raw, method_label, timer, certify_tol)


def _add_kkt_certificate(
    cert: Certificate, res: dict[str, Any], tol: float, *, interior_point: bool = False
) -> None:
    """Judge KKT residuals: feasibility in quantity units (× qscale), dual feasibility in price
    units (× pscale), the dimensionless natural complementarity residual, and the duality gap
    relative to max(1, |W|). Stationarity on flow-carrying columns is kept as a detail: an
    interior-point flow of 1e-5 on a column whose reduced cost is 1e-3 is a complementarity
    (not a welfare) matter and is judged by the natural residual and the duality gap."""
    cert.add("primal_feasibility_max", res["primal_feasibility"], tol * res["qscale"])
    cert.add("dual_feasibility_max", res["dual_feasibility"], tol * res["pscale"])
    # interior points (Clarabel) converge like sqrt(μ) in complementarity on degenerate (not
    # strictly complementary) instances, e.g. a user whose θ'(0) equals its route price: for those
    # routes only it is judged at max(tol, 1e-5) (recorded in details); welfare optimality is
    # judged by the duality gap at ``tol``. Vertex (HiGHS) and MILP solutions are held to ``tol``.
    comp_tol = max(tol, 1e-5) if interior_point else tol
    cert.add("complementarity_natural_max", res["complementarity"], comp_tol)
    if comp_tol != tol:
        cert.details["complementarity_tolerance_note"] = "interior point: max(tol, 1e-5)"
    cert.add("negative_price_max", res["negative_price"], 0.0)
    rel = res["duality_gap"] / max(1.0, abs(res["welfare"]))
    cert.add("duality_gap_rel", rel if math.isfinite(rel) else math.inf, tol)
    cert.details["stationarity_max"] = res["stationarity"]
    cert.details["welfare"] = res["welfare"]
    cert.details["dual_bound"] = res["dual_bound"]
    cert.details["argmax_stationarity"] = res["argmax_stationarity"]
    cert.details["argmax_dual_feasibility"] = res["argmax_dual_feasibility"]


def _package(
    M: MarketArrays, raw: RawSolution, method_label: str, timer: Timer, certify_tol: float
) -> WelfareResult:
    cert = Certificate()
    solution: dict[str, Any] = {"market_kind": M.kind}
    with timer("certify_seconds"):
        if raw.status.has_solution:
            f, p, mu = raw.f, raw.p, raw.mu
            assert f is not None and p is not None and mu is not None  # every route sets them with a solution
            x = M.B @ f
            res = kkt_residuals(M, f, p, mu)
            _add_kkt_certificate(
                cert, res, certify_tol, interior_point=method_label in ("qp-clarabel", "cvxpy-clarabel")
            )
            lo, _ = _marginals(M, x)
            solution.update(
                welfare=welfare_of(M, x),
                allocation=_allocation_rows(M, f),
                prices={r: float(v) for r, v in zip(M.sellers, p, strict=True)},
                buyers=[
                    {"buyer": b, "total": float(x[i]), "marginal": float(lo[i]), "mu": float(mu[i])}
                    for i, b in enumerate(M.buyers)
                ],
            )
        else:
            solution.update(welfare=None, allocation=[], prices={}, buyers=[])
    meta = provenance({raw.solver: raw.version})
    meta.update(
        market_kind=M.kind,
        n_buyers=M.n_buyers,
        n_resources=M.n_sellers,
        n_columns=M.n_columns,
        raw_status=raw.raw,
        **raw.extra,
    )
    solution.pop("market_kind")
    return WelfareResult(
        kind="auction-optimum",
        status=raw.status,
        method=method_label,
        solution=solution,
        certificate=cert,
        timings=dict(timer.seconds),
        meta=meta,
    )
