r"""Certificates for any allocation of a market: KKT residuals (36)–(38) and the ε-Nash check.

:func:`certify_allocation` takes an allocation from anywhere (the auction dynamics, a file,
another solver) and solves an LP (HiGHS, via ``scipy.optimize.linprog``) for the prices that
make it as close to a KKT point of welfare maximisation as possible::

    min t   over p ≥ 0, μ ≥ 0, ρ_i ∈ ∂θ_i(x_i), t ≥ 0
    s.t.  |Σ_j R_je p_j + μ_i − ρ_i| ≤ t          columns with flow          (36)
          ρ_i − Σ_j R_je p_j − μ_i ≤ t            every column                (37)
          p_j · slack_j / qscale ≤ t              complementarity of supply   (38)
          μ_i · (D_i − x_i) / qscale ≤ t          complementarity of demand caps

(all in price units; x = B f is fixed, so the LP is linear). It then reports, at those prices,
the stationarity, dual feasibility, natural complementarity and primal feasibility residuals
(:func:`datamarkets.formulations.welfare.kkt_residuals`), the Lagrangian dual bound g(p, μ) ≥ W*,
and the welfare gap W* − W(x) ≥ 0 to the optimum of
:func:`~datamarkets.formulations.welfare_solve.solve_welfare_route` (or to a given upper bound on W*).

:func:`epsilon_nash_check` computes every buyer's exact best reply (``datamarkets.models.psp_certificate``)
against a final bid profile and reports the largest utility gain.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, SolverError
from datamarkets.formulations.welfare_allocation import allocation_vector
from datamarkets.formulations.welfare_kkt import _marginals, kkt_residuals, welfare_of
from datamarkets.formulations.welfare_solve import solve_welfare_route
from datamarkets.graphs.market_data import MarketArrays, market_arrays
from datamarkets.models.psp import best_reply, price_curve
from datamarkets.models.psp_certificate import (
    bid_arrays,
    buyer_epsilons,
    buyer_utility,
    exact_best_replies,
    psp_outcome,
)
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.status import Status
from datamarkets.validation import check_tolerances, real_number

__all__ = ["best_kkt_prices", "certify_allocation", "epsilon_nash_check", "price_intervals"]


def best_kkt_prices(
    M: MarketArrays, f: np.ndarray, *, active_tol: float = 1e-6, _lp_out: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, float, Status]:
    """Prices p ≥ 0 and demand-cap multipliers μ ≥ 0 minimising the largest KKT violation of the
    fixed flows ``f`` (the LP in the module docstring).

    Returns
    -------
    p : ndarray (J,)
    mu : ndarray (I,)
    t : float
        The minimal largest violation (price units).
    status : Status
    """
    from scipy.optimize import linprog

    f = np.asarray(f, dtype=float)
    E, I, J = M.n_columns, M.n_buyers, M.n_sellers
    x = M.B @ f
    lo, hi = _marginals(M, x)
    qscale = max(1.0, float(np.max(M.supply, initial=0.0)))
    capped = np.flatnonzero(np.isfinite(M.demand))
    C = capped.size
    n = J + C + I + 1  # [p | μ_capped | ρ | t]
    it = n - 1
    # column price operator: Rᵀ p + μ_i − ρ_i
    mu_map = np.full(I, -1)
    mu_map[capped] = np.arange(C)
    RT = sp.csr_array(M.R.T)
    col_mu = mu_map[M.col_buyer]
    has_mu = col_mu >= 0
    Mu = sp.csr_array((np.ones(int(has_mu.sum())), (np.flatnonzero(has_mu), col_mu[has_mu])), shape=(E, C))
    Rho = sp.csr_array((np.ones(E), (np.arange(E), M.col_buyer)), shape=(E, I))
    Gop = sp.hstack([RT, Mu, -Rho, sp.csr_array((E, 1))], format="csr")  # g_e(v)
    T = sp.csr_array((np.ones(E), (np.arange(E), np.full(E, it))), shape=(E, n))
    rows = [-Gop - T]  # −g_e − t ≤ 0    (dual feasibility, all columns)
    active = f > active_tol * qscale
    if active.any():
        rows.append(Gop[active] - T[active])  # g_e − t ≤ 0 (stationarity, active columns)
    slack = np.maximum(M.supply - M.R @ f, 0.0) / qscale
    sj = np.flatnonzero(slack > 0)
    if sj.size:
        rows.append(
            sp.csr_array(
                (
                    np.concatenate([slack[sj], -np.ones(sj.size)]),
                    (np.concatenate([np.arange(sj.size)] * 2), np.concatenate([sj, np.full(sj.size, it)])),
                ),
                shape=(sj.size, n),
            )
        )
    if C:
        dslack = np.maximum(M.demand[capped] - x[capped], 0.0) / qscale
        ci = np.flatnonzero(dslack > 0)
        if ci.size:
            rows.append(
                sp.csr_array(
                    (
                        np.concatenate([dslack[ci], -np.ones(ci.size)]),
                        (
                            np.concatenate([np.arange(ci.size)] * 2),
                            np.concatenate([J + ci, np.full(ci.size, it)]),
                        ),
                    ),
                    shape=(ci.size, n),
                )
            )
    A = sp.vstack(rows, format="csr")
    c = np.zeros(n)
    c[it] = 1.0
    bounds = [(0.0, None)] * (J + C) + [(float(lo[i]), float(hi[i])) for i in range(I)] + [(0.0, None)]
    if _lp_out is not None:
        _lp_out.update(A=A, bounds=bounds, n=n, it=it)
    res = linprog(c, A_ub=A, b_ub=np.zeros(A.shape[0]), bounds=bounds, method="highs")
    status = {0: Status.OPTIMAL, 1: Status.ITERATION_LIMIT, 2: Status.INFEASIBLE, 3: Status.UNBOUNDED}.get(
        res.status, Status.ERROR
    )
    if not status.has_solution:
        raise SolverError(f"certificate LP failed: {res.message}")
    v = res.x
    mu = np.zeros(I)
    mu[capped] = v[J : J + C]
    return np.maximum(v[:J], 0.0), np.maximum(mu, 0.0), float(v[it]), status


def certify_allocation(
    G: nx.Graph | MarketArrays,
    allocation: Any,
    *,
    tol: float = 1e-6,
    optimum: Result | None = None,
    welfare_bound: float | None = None,
    active_tol: float = 1e-6,
    complementarity_tol: float | None = None,
    **attrs: Any,
) -> Result:
    """Certify an allocation against the KKT conditions of welfare maximisation.

    Parameters
    ----------
    G : networkx.Graph or MarketArrays
        The market.
    allocation : list of dict, dict, or ndarray
        Rows ``{"buyer", "seller", "amount"}`` (route networks: ``{"user", "amount"}``), a
        ``{(buyer, seller): amount}`` dict, a result dict with an ``allocation`` key, or the
        column flow vector.
    tol : float
        Relative tolerance: residuals in price units are judged against ``tol · pscale``,
        quantities against ``tol · qscale``, the welfare gap against ``tol · max(1, W*)``, the
        dimensionless natural complementarity residual against ``tol`` itself (no loosening).
    optimum : Result, optional
        A welfare optimum already computed (else the default route of
        :func:`~datamarkets.formulations.welfare.solve_welfare` is run).
    welfare_bound : float, optional
        An upper bound on the optimal welfare W* used instead of an optimum (the producer's
        Lagrangian dual bound g(p, μ) ≥ W* at its own duals): the welfare gap is then judged
        against it, g − W ≥ W* − W, and no second program is solved.
    active_tol : float
        Relative flow above which a column counts as carrying flow.
    complementarity_tol : float, optional
        Tolerance of the natural complementarity residual (default ``tol``). An interior-point
        allocation leaves flows of ~1e-6 (relative) on columns whose reduced cost is ~1e-5: its
        complementarity is only as good as the square root of the solver's gap, while its welfare
        gap is at solver precision; verifiers that accept such producers loosen this one residual.

    Returns
    -------
    Result
        kind ``"auction-certificate"``, method ``"kkt-lp-highs"``; solution: ``welfare``,
        ``welfare_optimum``, ``welfare_gap`` (≥ 0 up to solver tolerance), ``dual_bound``,
        ``max_kkt_violation`` (LP value t), ``prices``, ``residuals``; certificate passed iff the
        allocation is a KKT point (hence welfare-optimal) within ``tol``.

    Raises
    ------
    InvalidInputError
        The allocation names an unknown edge, or has the wrong length.
    SolverError
        The certificate LP fails.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.Graph()
    >>> G.add_node("s", role="seller", supply=1.0)
    >>> G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
    >>> G.add_edge("b", "s")
    >>> r = certify_allocation(G, [{"buyer": "b", "seller": "s", "amount": 1.0}])
    >>> r.certificate.passed, round(r.solution["prices"]["s"], 6)
    (True, 3.0)
    """
    check_tolerances(tol=tol, active_tol=active_tol, complementarity_tol=complementarity_tol)
    if welfare_bound is not None:
        real_number(welfare_bound, "welfare_bound")
    if optimum is not None and not isinstance(optimum, Result):
        raise InvalidInputError(f"optimum must be a Result, got {type(optimum).__name__!r}")
    timer = Timer()
    with timer("validate_seconds"):
        M = G if isinstance(G, MarketArrays) else market_arrays(G, **attrs)
        if isinstance(allocation, np.ndarray):
            if allocation.shape != (M.n_columns,):
                raise InvalidInputError(
                    f"allocation vector has shape {allocation.shape}, expected ({M.n_columns},)"
                )
            f = allocation.astype(float)
        else:
            f = allocation_vector(M, allocation)
    with timer("lp_seconds"):
        p, mu, t, status = best_kkt_prices(M, f, active_tol=active_tol)
    res = kkt_residuals(M, f, p, mu, active_tol=active_tol)
    with timer("optimum_seconds"):
        opt = optimum if optimum is not None or welfare_bound is not None else solve_welfare_route(M)
        if welfare_bound is not None:
            opt = None
    x = M.B @ f
    W = welfare_of(M, x)
    if opt is None:
        W_star = float(welfare_bound) if welfare_bound is not None else math.nan
    else:
        W_star = float(opt.solution["welfare"]) if opt.status.has_solution else math.nan
    gap = W_star - W
    pscale, qscale = res["pscale"], res["qscale"]
    wscale = max(1.0, abs(W_star)) if math.isfinite(W_star) else 1.0
    cert = Certificate()
    cert.add("max_kkt_violation", t, tol * pscale)
    cert.add("stationarity_max", res["stationarity"], tol * pscale)
    cert.add("dual_feasibility_max", res["dual_feasibility"], tol * pscale)
    cert.add(
        "complementarity_natural_max",
        res["complementarity"],
        tol if complementarity_tol is None else complementarity_tol,
    )
    cert.add("primal_feasibility_max", res["primal_feasibility"], tol * qscale)
    cert.add("welfare_gap_rel", gap / wscale, tol)
    cert.add("negative_welfare_gap_rel", max(0.0, -gap) / wscale, tol)
    cert.details.update(
        argmax_stationarity=res["argmax_stationarity"],
        argmax_dual_feasibility=res["argmax_dual_feasibility"],
        pscale=pscale,
        qscale=qscale,
        optimum_method="dual bound (producer's duals)" if opt is None else opt.method,
    )
    solution = {
        "welfare": W,
        "welfare_optimum": W_star,
        "welfare_gap": gap,
        "dual_bound": res["dual_bound"],
        "dual_bound_gap": res["duality_gap"],
        "max_kkt_violation": t,
        "prices": {r: float(v) for r, v in zip(M.sellers, p, strict=True)},
        "residuals": {
            "stationarity": res["stationarity"],
            "dual_feasibility": res["dual_feasibility"],
            "complementarity_natural": res["complementarity"],
            "primal_feasibility": res["primal_feasibility"],
        },
    }
    meta = provenance({"scipy-highs": _scipy_version()})
    meta.update(market_kind=M.kind, n_columns=M.n_columns, tol=tol)
    return Result(
        kind="auction-certificate",
        status=status,
        method="kkt-lp-highs",
        solution=solution,
        certificate=cert,
        timings=dict(timer.seconds),
        meta=meta,
    )


def price_intervals(
    G: nx.Graph | MarketArrays, allocation: Any, *, slack: float = 1e-9, active_tol: float = 1e-6
) -> dict[Any, tuple[float, float]]:
    """For each resource, the smallest and largest price among the prices that support the
    allocation best (KKT violation within ``slack`` of the minimum of :func:`best_kkt_prices`).

    At an optimum the KKT prices form a polytope; when supply meets demand exactly (Example 1)
    each clearing price is an interval, and any point of it (the LP's vertex, the interior point's
    centre, the MILP's choice) is right. Two LPs per resource; ``inf`` if unbounded above.
    """
    from scipy.optimize import linprog

    M = G if isinstance(G, MarketArrays) else market_arrays(G)
    f = allocation if isinstance(allocation, np.ndarray) else allocation_vector(M, allocation)
    lp: dict[str, Any] = {}
    _p, _mu, t, _st = best_kkt_prices(M, f, active_tol=active_tol, _lp_out=lp)
    bounds = list(lp["bounds"])
    bounds[lp["it"]] = (0.0, t + slack)
    out: dict[Any, tuple[float, float]] = {}
    for j, name in enumerate(M.sellers):
        c = np.zeros(lp["n"])
        ends = []
        for sign in (1.0, -1.0):
            c[j] = sign
            r = linprog(c, A_ub=lp["A"], b_ub=np.zeros(lp["A"].shape[0]), bounds=bounds, method="highs")
            if r.status == 3:
                ends.append(math.inf)
            elif r.status != 0:
                raise SolverError(f"price-interval LP for {name!r} failed: {r.message}")
            else:
                ends.append(float(sign * r.fun))
        out[name] = (max(ends[0], 0.0), ends[1])
    return out


def _scipy_version() -> str:
    import scipy

    return str(scipy.__version__)


def epsilon_nash_check(
    G: nx.Graph,
    bids: Any,
    epsilon: float,
    *,
    relative: bool = True,
    tol: float = 1e-9,
) -> Result:
    """ε-Nash check of a PSP bid profile: no buyer's *exact* best reply gains more than ε_i.

    For every buyer i the supremum of u_i(t, s_{-i}) over all its bids t is computed exactly
    (:func:`datamarkets.models.psp_certificate.exact_best_replies`: θ_i(z) − ∫_0^z P̄_i maximised
    over z within the budget on that charge, draft eq. 3 with ε = 0; attained by bids above every
    other price) and compared with u_i(s) by the PSP allocation and exclusion-compensation rules.
    The profile is an ε-Nash point when sup − u_i(s) ≤ ε_i + tol · max(1, |u_i|) for every i. The
    gain of replaying the ε-best reply (eqs. 3–4), which may leave up to ε_i on the table, is
    reported beside it (``epsilon_reply_gains``) but does not decide.

    Parameters
    ----------
    G : networkx.Graph
        The market (:mod:`datamarkets.graphs.market`).
    bids : list of dict, or a PSP result / dict with a ``"bids"`` key
        Rows ``{"buyer", "seller", "price", "quantity"}``; missing edges bid (0, 0).
    epsilon : float
        ε; relative to each buyer's largest attainable value θ_i(z̄_i) unless ``relative=False``
        (the convention of :func:`datamarkets.models.psp_dynamics.psp_dynamics`).
    relative : bool
    tol : float
        Numerical tolerance, relative to max(1, |u_i|).

    Returns
    -------
    Result
        kind ``"auction-epsilon-nash"``, method ``"psp-exact-best-reply"``; solution ``gains`` (per
        buyer, exact), ``exact_best_reply_gains`` (the same), ``epsilon_reply_gains``, ``epsilons``,
        ``max_gain_over_eps``; certificate ``best_reply_gain_over_eps_max`` (max_i gain_i − ε_i − tol_i ≤ 0).

    Raises
    ------
    InvalidInputError
        Bad ε or a bid on a non-edge, negative price/quantity.
    """

    if isinstance(epsilon, bool) or not (
        isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon >= 0
    ):
        raise InvalidInputError(f"epsilon must be a finite number ≥ 0, got {epsilon!r}")
    timer = Timer()
    m = market_arrays(G)
    price, qty = bid_arrays(m, bids)
    eps = buyer_epsilons(m, float(epsilon), relative)
    route = m.kind == "routes"
    with timer("check_seconds"):
        _, _, _, U = psp_outcome(m, price, qty)
        best, _ = exact_best_replies(m, price, qty)
        gains = best - U
        # the ε-best reply replayed (informational): its utility by the rules
        reply_gains = np.zeros(m.n_buyers)
        order = np.argsort(m.edge_seller, kind="stable")
        ptr = np.searchsorted(m.edge_seller[order], np.arange(m.n_sellers + 1))
        seller_edges = [order[ptr[j] : ptr[j + 1]] for j in range(m.n_sellers)]
        for i in range(m.n_buyers):
            own = np.arange(m.buyer_ptr[i], m.buyer_ptr[i + 1])
            if own.size == 0:
                continue
            curves = []
            for e in own:
                idx = seller_edges[m.edge_seller[e]]
                others = idx[idx != e]
                curves.append(price_curve(m.supply[m.edge_seller[e]], price[others], qty[others]))
            r = best_reply(
                m.valuations[i], curves, float(eps[i]), budget=m.budget[i], demand=m.demand[i], route=route
            )
            p2, q2 = price.copy(), qty.copy()
            p2[own], q2[own] = r.prices, r.quantities
            reply_gains[i] = buyer_utility(m, p2, q2, i) - U[i]
    over = gains - eps - tol * np.maximum(1.0, np.abs(U))
    cert = Certificate()
    cert.add("best_reply_gain_over_eps_max", float(np.max(over, initial=-math.inf)), 0.0)
    worst = int(np.argmax(over)) if over.size else None
    cert.details.update(
        worst_buyer=m.buyers[worst] if worst is not None else None,
        numerical_tolerance=f"{tol} * max(1, |u_i|)",
        epsilon_reply_gain_max=float(np.max(reply_gains, initial=0.0)),
    )
    B = m.buyers
    solution = {
        "epsilon": float(epsilon),
        "relative": relative,
        "gains": {B[i]: float(gains[i]) for i in range(m.n_buyers)},
        "epsilons": {B[i]: float(eps[i]) for i in range(m.n_buyers)},
        "exact_best_reply_gains": {B[i]: float(gains[i]) for i in range(m.n_buyers)},
        "epsilon_reply_gains": {B[i]: float(reply_gains[i]) for i in range(m.n_buyers)},
        "max_gain_over_eps": float(np.max(over, initial=-math.inf)),
    }
    meta = provenance()
    meta.update(market_kind=m.kind, n_buyers=m.n_buyers)
    return Result(
        "auction-epsilon-nash", Status.OPTIMAL, "psp-exact-best-reply", solution, cert, timer.seconds, meta
    )
