"""The welfare program's routes and their answers, before the one certificate.

:func:`solve_welfare_route` picks and runs a route (``method``: sparse arrays, cvxpy, Pyomo) with a solver
(``solver``: Clarabel or HiGHS; :func:`resolve_route`) and writes the solution; its certificate holds the
KKT residuals (36)–(38) at the *solver's* duals (:func:`_add_kkt_certificate`).
:func:`~datamarkets.formulations.welfare.solve_welfare` replaces that certificate by the one certificate
of an ``auction-optimum`` answer
(:func:`~datamarkets.formulations.auction_optimum_certificate.certify_auction_optimum`) and keeps the
solver's residuals in its details; the allocation certificate uses this module for its independent optimum
(no import cycle, no certificate of a certificate).
"""

from __future__ import annotations

import math
import warnings
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

__all__ = ["METHODS", "ROUTE_SOLVERS", "resolve_route", "solve_welfare_route"]

METHODS = ("auto", "arrays", "cvxpy", "pyomo")
"""How the program is built: ``"arrays"`` (sparse arrays passed to the solver directly), cvxpy,
Pyomo, or ``"auto"`` (arrays, or cvxpy for α-fair valuations)."""

ROUTE_SOLVERS: dict[str, tuple[str, ...]] = {
    "arrays": ("clarabel", "highs"),
    "cvxpy": ("clarabel",),
    "pyomo": ("highs",),
}
"""The numerical solvers each route takes (``solver=None`` = the route's default)."""

_DEPRECATED_METHODS = ("highs", "clarabel")  # the old method= spellings: solver names


def _choices() -> str:
    pairs = "; ".join(f"{m}: {', '.join(s)}" for m, s in ROUTE_SOLVERS.items())
    return f"method one of {', '.join(METHODS)}; solver None (the route's default) or, per method, {pairs}"


def _check_pair(method: str, solver: str | None, *, stacklevel: int = 3) -> tuple[str, str | None]:
    """Validate ``(method, solver)`` before any work; map the deprecated ``method="highs"`` /
    ``"clarabel"`` to ``method="arrays", solver=...`` with a DeprecationWarning."""
    if method in _DEPRECATED_METHODS:
        if solver is not None and solver != method:
            raise InvalidInputError(
                f"method={method!r} (deprecated, a solver name) contradicts solver={solver!r}; "
                f"use method='arrays', solver=...; {_choices()}"
            )
        warnings.warn(
            f"method={method!r} is deprecated; use method='arrays', solver={method!r}",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        method, solver = "arrays", method
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; {_choices()}")
    allowed = ROUTE_SOLVERS["arrays"] if method == "auto" else ROUTE_SOLVERS[method]
    if solver is not None and solver not in allowed:
        raise InvalidInputError(f"solver {solver!r} does not apply to method {method!r}; {_choices()}")
    return method, solver


def resolve_route(method: str, solver: str | None, kinds: set[str] | frozenset[str]) -> tuple[str, str]:
    """The route and solver that run for ``(method, solver)`` and the valuation kinds present.

    Parameters
    ----------
    method : {"auto", "arrays", "cvxpy", "pyomo"}
        How the program is built; ``"auto"`` = arrays, or cvxpy for α-fair valuations.
    solver : str or None
        The numerical solver (see :data:`ROUTE_SOLVERS`); None = the route's default (arrays:
        Clarabel for quadratic and mixed valuations, HiGHS IPX for LP; cvxpy: Clarabel; Pyomo:
        HiGHS).
    kinds : set of str
        The valuation families present (``MarketArrays.kinds()``).

    Returns
    -------
    tuple of str
        ``(route, solver)``, e.g. ``("arrays", "clarabel")``.

    Raises
    ------
    InvalidInputError
        Unknown or inapplicable method/solver (the message lists the choices); α-fair valuations
        with a route other than cvxpy/auto.

    Examples
    --------
    >>> resolve_route("auto", None, {"linear"})
    ('arrays', 'highs')
    >>> resolve_route("auto", None, {"quadratic", "linear"})
    ('arrays', 'clarabel')
    """
    method, solver = _check_pair(method, solver)
    route = method
    if method == "auto":
        route = "cvxpy" if "alpha_fair" in kinds else "arrays"
    if "alpha_fair" in kinds and route != "cvxpy":
        raise InvalidInputError(
            f"α-fair valuations need a cone program; method {method!r} cannot take them: choose cvxpy or auto"
        )
    if solver is not None and solver not in ROUTE_SOLVERS[route]:
        raise InvalidInputError(f"solver {solver!r} does not apply to route {route!r}; {_choices()}")
    if solver is None:
        lp = "quadratic" not in kinds and "alpha_fair" not in kinds
        solver = "highs" if route == "pyomo" or (route == "arrays" and lp) else "clarabel"
    return route, solver


def solve_welfare_route(
    G: nx.Graph | MarketArrays,
    method: str = "auto",
    *,
    solver: str | None = None,
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
        Unknown or inapplicable method/solver; α-fair valuations with a route other than
        cvxpy/auto.

    Warns
    -----
    DeprecationWarning
        ``method="highs"`` or ``"clarabel"`` (use ``method="arrays", solver=...``).

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
    method, solver = _check_pair(method, solver)
    return _solve_route(
        G, method, solver=solver, tol=tol, time_limit=time_limit, certify_tol=certify_tol, **attrs
    )[1]


def _solve_route(
    G: nx.Graph | MarketArrays,
    method: str = "auto",
    *,
    solver: str | None = None,
    tol: float = 1e-10,
    time_limit: float | None = None,
    certify_tol: float | None = None,
    **attrs: Any,
) -> tuple[MarketArrays, WelfareResult]:
    """:func:`solve_welfare_route`, and the market arrays it validated."""
    method, solver = _check_pair(method, solver)  # before validation (public callers warned already)
    deadline = Deadline(time_limit)
    timer = Timer()
    with timer("validate_seconds"):
        M = G if isinstance(G, MarketArrays) else market_arrays(G, **attrs)
    kinds = M.kinds()
    route, solver = resolve_route(method, solver, kinds)
    # the limit covers validation and build too; the solver gets what remains (Deadline.solver_limit)
    with timer("build_seconds"):
        W = build_welfare_arrays(M) if route == "arrays" and not deadline.expired else None
    with timer("solve_seconds"):
        limit = deadline.solver_limit()
        if deadline.expired:
            raw = RawSolution(Status.TIME_LIMIT, f"time limit of {time_limit:g} s reached before the solve")
        elif route == "arrays" and solver == "clarabel":
            assert W is not None
            raw = solve_arrays_clarabel(W, tol, limit)
        elif route == "arrays":
            assert W is not None
            raw = solve_arrays_highs(W, tol, limit)
        elif route == "cvxpy":
            raw = _solve_cvxpy(M, tol, limit, solver=solver)
        else:
            raw = _solve_pyomo(M, limit, solver=solver)
    if raw.status.has_solution and deadline.overran(TIME_LIMIT_SLACK):
        # never "optimal" after overrunning: the answer is kept, the status says what happened
        raw.extra["status_before_time_limit"] = raw.status.value
        raw.status = Status.TIME_LIMIT
    lp = "quadratic" not in kinds and "alpha_fair" not in kinds
    # the labels of saved results (verify and the tables read them): unchanged by the method/solver split
    label = {
        ("arrays", "clarabel"): "qp-clarabel",
        ("arrays", "highs"): "lp-highs-ipx" if lp else "qp-highs",
        ("cvxpy", "clarabel"): "cvxpy-clarabel",
        ("pyomo", "highs"): "pyomo-highs",
    }
    method_label = label[route, solver]
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
