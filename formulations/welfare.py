r"""Welfare maximisation (network utility maximisation) on market graphs, with clearing prices.

The program, for buyers :math:`i`, resources :math:`j` (sellers of a data-share market, or the
capacitated links of a route network) and *columns* :math:`e` (a buyer–seller edge, or a user's
route flow)::

    max   Σ_i θ_i(x_i)                                   (welfare)
    s.t.  x_i = Σ_e B_ie f_e                             buyer i's total allocation
          Σ_e R_je f_e ≤ D^j           [price p_j ≥ 0]   seller supply / link capacity
          0 ≤ x_i ≤ D_i                [μ_i ≥ 0]         optional buyer demand cap
          f_e ≥ 0

On a bipartite market ``B`` is the buyer–edge and ``R`` the seller–edge incidence; on a route
network each column is a user (``B = I``) and ``R`` is the link–route incidence. The duals
:math:`p_j` are the clearing prices; at an optimum the KKT conditions of the data-share paper
(36)–(38) hold: :math:`ρ_i = θ_i'(x_i)` equals :math:`p_j + μ_i` on every edge with flow and is
at most :math:`p_j + μ_i` on every edge without (summed along the route on route networks).

Valuations (``datamarkets.graphs.valuations`` objects or their JSON dicts, parsed once by
:func:`~datamarkets.graphs.valuations.as_valuation` into the market's one array view
:class:`~datamarkets.graphs.market_data.MarketArrays`, whose edge order the flow columns follow):

- quadratic θ(z) = a z − b z²/2 → QP (Hessian ``b`` on ``x``, zero curvature on flows);
- linear ("demand D at unit price p") and piecewise-linear concave → LP with segment columns;
- α-fair θ(d) = σ (d + o)^{1−α}/(1−α) (up to a constant) → power cone, cvxpy + Clarabel only.

Routes (``method=``: how the program is built, ``"arrays"``, ``"cvxpy"`` or ``"pyomo"``; ``solver=``: the
numerical solver, see :data:`~datamarkets.formulations.welfare_solve.ROUTE_SOLVERS`). Measured with
``benchmarks/bench_auction.py`` on this shared 2-core machine (load average 2–5 from other jobs, so
pessimistic), quadratic valuations, B buyers × B/10 sellers × 5 random edges per buyer, build + solve
seconds, medians of 3, two runs (ranges):

==================  ===========  ===========  ===========  ==================================
route               B = 100      B = 1,000    B = 10,000   notes
==================  ===========  ===========  ===========  ==================================
arrays → Clarabel   0.004–0.015  0.032–0.14   1.97–3.90    ``solver="clarabel"``, QP default
arrays → HiGHS QP   0.012–0.073  1.56–2.72    not run      active set; SOLVERS.md: fails at 10k
cvxpy → Clarabel    0.013–0.049  0.052–0.092  2.86–4.98    compile 0.07–0.11 s at 10k
Pyomo → HiGHS       0.24–0.87    1.90–4.48    not run      small instances only
==================  ===========  ===========  ===========  ==================================

End to end from the graph (``solve_welfare(G)``: validation + build + Clarabel + certificate) at
10,000 × 1,000 × 5 (50,000 flows): 2.2–2.4 s (load 2.2–3.3); 5.3 s was seen once at load 5.

Choice (``method="auto"``): Clarabel on sparse arrays for quadratic and mixed instances — an
interior point method, unaffected by the zero curvature on edge flows that stalls HiGHS's
active-set QP (20–50× slower at B = 1,000, "nullspace limit" at 10,000 per SOLVERS.md); HiGHS IPX
(crossover on, so a vertex and exact duals) for pure LP instances (linear / piecewise-linear
valuations); cvxpy power/exponential cones + Clarabel for α-fair. ``Result.method`` names the route
(``"qp-clarabel"``, ``"qp-highs"``, ``"lp-highs-ipx"``, ``"cvxpy-clarabel"``, ``"pyomo-highs"``).

Exactness. Clarabel runs to gap/feasibility tolerance 1e-10 and every result carries a
certificate: primal and dual feasibility, the natural complementarity residual and — decisive for
welfare — the Lagrangian duality gap g(p, μ) − W(x) (:func:`dual_bound`), 2.5e-12 relative at
10,000 × 1,000. Interior points leave flows of order 1e-5…1e-3 on columns whose reduced cost is
of order 1e-5, and on degenerate instances (a buyer whose θ'(0) equals its price) buyer totals
are accurate to ~1e-5 only (complementarity converges like √μ); HiGHS (vertex) is exact there,
so ``method="auto"`` re-solves by HiGHS when Clarabel's answer fails the certificate on up to
:data:`AUTO_VERTEX_FALLBACK_MAX_FLOWS` flows (``meta["vertex_fallback"]`` says so).
HiGHS's QP regularisation is lowered from 1e-7 to 1e-12 (otherwise x is off by ~1e-5 at a peak).

References
----------
psp-data-share-market, KKT conditions (36)–(38); distributed-psp-draft §1.1 (routes).
"""

from __future__ import annotations

import time
from typing import Any

import networkx as nx

from datamarkets.formulations.auction_optimum_certificate import certify_with_dual_bound
from datamarkets.formulations.welfare_allocation import (
    WelfareResult,
    allocation_vector,
    write_solution,
)
from datamarkets.formulations.welfare_backends import (
    build_welfare_cvxpy,
    build_welfare_pyomo,
)
from datamarkets.formulations.welfare_kkt import dual_bound, kkt_residuals, welfare_of
from datamarkets.formulations.welfare_program import build_welfare_arrays
from datamarkets.formulations.welfare_solve import (
    METHODS,
    ROUTE_SOLVERS,
    _check_pair,
    _solve_route,
    resolve_route,
)
from datamarkets.graphs.market_data import MarketArrays, market_arrays
from datamarkets.result import Timer
from datamarkets.solvers import reset_highs_scheduler
from datamarkets.validation import check_time_limit, check_tolerances

__all__ = [
    "AUTO_VERTEX_FALLBACK_MAX_FLOWS",
    "METHODS",
    "ROUTE_SOLVERS",
    "MarketArrays",
    "WelfareResult",
    "allocation_vector",
    "build_welfare_arrays",
    "build_welfare_cvxpy",
    "build_welfare_pyomo",
    "dual_bound",
    "kkt_residuals",
    "market_arrays",
    "reset_highs_scheduler",
    "resolve_route",
    "solve_welfare",
    "welfare_of",
    "write_solution",
]


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def solve_welfare(
    G: nx.Graph | MarketArrays,
    method: str = "auto",
    *,
    solver: str | None = None,
    tol: float = 1e-10,
    time_limit: float | None = None,
    certify_tol: float | None = None,
    **attrs: Any,
) -> WelfareResult:
    """Maximise welfare Σ θ_i(x_i) on a market graph; the duals are the clearing prices.

    Parameters
    ----------
    G : networkx.Graph or MarketArrays
        A bipartite data-share market, a single resource, or a route network (see
        :func:`market_arrays`).
    method : {"auto", "arrays", "cvxpy", "pyomo"}
        How the program is built: sparse arrays passed to the solver directly, cvxpy, or Pyomo;
        ``"auto"`` = arrays, or cvxpy for α-fair valuations. The old spellings ``"highs"`` and
        ``"clarabel"`` still work for one release (= ``method="arrays", solver=...``, with a
        DeprecationWarning).
    solver : {None, "clarabel", "highs"}
        The numerical solver; None = the route's default (arrays: Clarabel for quadratic and
        mixed valuations, HiGHS IPX for LP; cvxpy: Clarabel; Pyomo: HiGHS). Allowed pairs:
        :data:`~datamarkets.formulations.welfare_solve.ROUTE_SOLVERS`.
    tol : float
        Solver feasibility/gap tolerance.
    time_limit : float, optional
        Seconds for validation, build and solve together (the solver gets what remains), honoured
        by every route (HiGHS, Clarabel, cvxpy/Clarabel, Pyomo); when hit the result has
        ``Status.TIME_LIMIT`` and is not certified.
    certify_tol : float, optional
        Relative tolerance of the KKT certificate (price residuals × max(1, max θ'(0)), quantity
        residuals × max(1, max supply), duality gap × max(1, |W|)). Default 1e-6, and 1e-5 when
        α-fair valuations are present (Clarabel's power/exponential cones through cvxpy reach
        marginals to ~5e-6 here).
    **attrs
        Attribute names passed on to :func:`market_arrays`.

    Returns
    -------
    WelfareResult
        kind ``"auction-optimum"``; solution ``welfare``, ``allocation`` (rows buyer, seller,
        amount), ``prices`` (per seller or link), ``buyers`` (total, marginal, mu), ``objective``
        (= welfare); the one ``auction-optimum`` certificate
        (:func:`~datamarkets.formulations.auction_optimum_certificate.certify_auction_optimum`, the
        welfare gap judged against the solver's dual bound), with the solver's KKT residuals
        (36)–(38) in ``details["solver_kkt_residuals"]``; ``method`` names the route, e.g.
        ``"qp-clarabel"``.

    Raises
    ------
    InvalidInputError
        Unknown method or solver, or a solver the method does not take (the message lists the
        choices); α-fair valuations with a route other than cvxpy/auto; invalid market
        (:class:`~datamarkets.errors.GraphError`).

    Warns
    -----
    DeprecationWarning
        ``method="highs"`` or ``"clarabel"``: use ``method="arrays", solver="highs"`` (or
        ``"clarabel"``).

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.Graph()
    >>> G.add_node("s", role="seller", supply=10.0)
    >>> G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
    >>> G.add_edge("b", "s")
    >>> r = solve_welfare(G)
    >>> round(r.solution["welfare"], 6), round(r.solution["prices"]["s"], 6)
    (8.0, 0.0)
    >>> solve_welfare(G, method="arrays", solver="highs").method
    'qp-highs'
    """
    check_tolerances(tol=tol, certify_tol=certify_tol)
    time_limit = check_time_limit(time_limit, "time_limit")
    method, solver = _check_pair(method, solver)
    requested = method
    t0 = time.perf_counter()
    timer = Timer()
    M, r = _solve_route(
        G, method, solver=solver, tol=tol, time_limit=time_limit, certify_tol=certify_tol, **attrs
    )
    if certify_tol is None:
        certify_tol = 1e-5 if "alpha_fair" in M.kinds() else 1e-6
    with timer("certify_seconds"):
        certify_with_dual_bound(M, r, certify_tol)
    r.timings["certify_seconds"] = r.timings.get("certify_seconds", 0.0) + timer.seconds["certify_seconds"]
    if (
        requested == "auto"
        and r.method == "qp-clarabel"
        and r.status.has_solution
        and not r.certificate.passed
        and M.n_edges <= AUTO_VERTEX_FALLBACK_MAX_FLOWS
    ):
        r = _vertex_fallback(M, r, tol, time_limit, t0, certify_tol)
    return r


AUTO_VERTEX_FALLBACK_MAX_FLOWS = 20_000
"""``method="auto"``: when Clarabel's answer fails the certificate on a market with at most this
many flows, the QP is solved again by HiGHS's active-set QP, whose vertex is exact (measured on
generated 1,000 × 1,000 markets, 5,000 flows: Clarabel's answer failed with stationarity 1.6e-5
against 3e-6 on seeds 0 and 1; HiGHS certified both in 2.8 s). Above it the active-set QP stalls
(SOLVERS.md) and the uncertified answer is returned as it is."""


def _vertex_fallback(
    M: MarketArrays,
    r: WelfareResult,
    tol: float,
    time_limit: float | None,
    t0: float,
    certify_tol: float,
) -> WelfareResult:
    """HiGHS's QP on the same market after an uncertified Clarabel answer; its answer is returned
    when it passes the certificate, else Clarabel's (either way ``meta["vertex_fallback"]`` says
    what happened)."""
    left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
    failed = sorted(k for k, v in r.certificate.residuals.items() if v > r.certificate.tolerances.get(k, 0.0))
    note = f"clarabel's answer failed the certificate ({', '.join(failed)}); re-solved by HiGHS's QP"
    if left is not None and left <= 0:
        r.meta["vertex_fallback"] = note.replace("re-solved by", "no time left for")
        return r
    timer = Timer()
    _, h = _solve_route(M, "arrays", solver="highs", tol=tol, time_limit=left, certify_tol=certify_tol)
    with timer("certify_seconds"):
        certify_with_dual_bound(M, h, certify_tol)
    if h.status.has_solution and h.certificate.passed:
        h.timings = {f"clarabel_{k}": v for k, v in r.timings.items()} | h.timings
        h.timings["certify_seconds"] = (
            h.timings.get("certify_seconds", 0.0) + timer.seconds["certify_seconds"]
        )
        h.meta["vertex_fallback"] = note
        return h
    r.meta["vertex_fallback"] = f"{note}: {h.status.value}, certified {h.certificate.passed}; kept clarabel's"
    return r
