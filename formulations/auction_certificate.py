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
and the welfare gap W* − W(x) ≥ 0 to the optimum of :func:`solve_welfare`.

:func:`epsilon_nash_check` replays every buyer's ε-best reply (``datamarkets.models.psp``)
against a final bid profile and reports the largest utility gain.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, SolverError
from datamarkets.formulations.welfare import solve_welfare
from datamarkets.formulations.welfare_allocation import allocation_vector
from datamarkets.formulations.welfare_kkt import _marginals, kkt_residuals, welfare_of
from datamarkets.formulations.welfare_program import MarketArrays, market_arrays
from datamarkets.graphs.market import market_arrays as ma
from datamarkets.models.psp import allocate, best_reply, price_curve
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.status import Status

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
    E, I, J = M.n_columns, M.n_buyers, M.n_resources
    x = M.B @ f
    lo, hi = _marginals(M, x)
    qscale = max(1.0, float(np.max(M.cap, initial=0.0)))
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
    slack = np.maximum(M.cap - M.R @ f, 0.0) / qscale
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
    active_tol: float = 1e-6,
    complementarity_tol: float | None = None,
    **attrs: str,
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
        A welfare optimum already computed (else :func:`solve_welfare` is called).
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
        opt = optimum if optimum is not None else solve_welfare(M)
    x = M.B @ f
    W = welfare_of(M, x)
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
        optimum_method=opt.method,
    )
    solution = {
        "welfare": W,
        "welfare_optimum": W_star,
        "welfare_gap": gap,
        "dual_bound": res["dual_bound"],
        "dual_bound_gap": res["duality_gap"],
        "max_kkt_violation": t,
        "prices": {r: float(v) for r, v in zip(M.resources, p, strict=True)},
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
    for j, name in enumerate(M.resources):
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
    """ε-Nash check of a PSP bid profile: no buyer's ε-best reply gains more than ε_i.

    For every buyer i, the market price curves P_i^j(·, s_{-i}^j) of its sellers are rebuilt from
    the profile (:func:`datamarkets.models.psp.price_curve`), its budget-constrained ε-best reply
    t_i (:func:`datamarkets.models.psp.best_reply`, draft eqs. 3–4) is computed, and both the
    current bid and t_i are evaluated with the PSP allocation and exclusion-compensation rules
    (:func:`datamarkets.models.psp.allocate`). The profile is an ε-Nash point when
    u_i(t_i, s_{-i}) − u_i(s) ≤ ε_i + tol · max(1, |u_i|) for every i. The gain of the exact best
    reply (fee 0) is reported beside it.

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
        kind ``"auction-epsilon-nash"``, method ``"psp-best-reply"``; solution ``gains`` (per
        buyer), ``max_gain_over_eps`` and ``exact_best_reply_gains``; certificate
        ``gain_over_eps_max`` (max_i gain_i − ε_i − tol_i ≤ 0).

    Raises
    ------
    InvalidInputError
        Bad ε or a bid on a non-edge, negative price/quantity.
    """

    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon >= 0):
        raise InvalidInputError(f"epsilon must be a finite number ≥ 0, got {epsilon!r}")
    timer = Timer()
    m = ma(G)
    if hasattr(bids, "solution"):
        bids = bids.solution.get("bids")
    if isinstance(bids, dict):
        bids = bids.get("bids")
    if not isinstance(bids, list | tuple):
        raise InvalidInputError("bids must be a list of {buyer, seller, price, quantity} rows")
    key = {(m.buyers[m.edge_buyer[e]], m.sellers[m.edge_seller[e]]): e for e in range(m.n_edges)}
    skey = {(str(b), str(s)): e for (b, s), e in key.items()}
    price = np.zeros(m.n_edges)
    qty = np.zeros(m.n_edges)
    for row in bids:
        try:
            k = (row["buyer"], row["seller"])
            e = key.get(k, skey.get((str(k[0]), str(k[1]))))
            p_e, d_e = float(row["price"]), float(row["quantity"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(f"bid row {row!r} needs buyer, seller, price and quantity") from None
        if e is None:
            raise InvalidInputError(f"bid on {k!r}, which is not an edge of the market")
        if not (math.isfinite(p_e) and math.isfinite(d_e)) or p_e < 0 or d_e < 0:
            raise InvalidInputError(
                f"bid on {k!r} must have finite price and quantity ≥ 0, got ({p_e}, {d_e})"
            )
        price[e], qty[e] = p_e, d_e
    seller_edges = [np.flatnonzero(m.edge_seller == j) for j in range(m.n_sellers)]
    route = m.kind == "routes"
    # ε_i: absolute, or relative to θ_i(z̄_i), z̄_i = min(peak, D_i, Σ (route: min) supplies)
    eps = np.full(m.n_buyers, float(epsilon))
    if relative:
        for i, v in enumerate(m.valuations):
            sup = m.supply[m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]]
            cap = sup.min() if route else sup.sum()
            eps[i] = epsilon * float(v.value(min(v.peak, m.demand[i], float(cap))))

    def evaluate(i: int, new_p: np.ndarray | None, new_d: np.ndarray | None) -> tuple[list, float]:
        curves, alloc, cost = [], [], 0.0
        for t, e in enumerate(range(m.buyer_ptr[i], m.buyer_ptr[i + 1])):
            j = m.edge_seller[e]
            idx = seller_edges[j]
            k = int(np.flatnonzero(idx == e)[0])
            pj, dj = price[idx].copy(), qty[idx].copy()
            others = np.ones(idx.size, dtype=bool)
            others[k] = False
            curves.append(price_curve(m.supply[j], pj[others], dj[others]))
            d0 = dj.copy()
            d0[k] = 0.0
            a0 = allocate(m.supply[j], pj, d0)
            if new_p is not None:
                pj[k], dj[k] = new_p[t], new_d[t]
            a = allocate(m.supply[j], pj, dj)
            alloc.append(a[k])
            cost += float(pj[others] @ (a0[others] - a[others]))
        agg = min if route else sum
        u = float(m.valuations[i].value(agg(alloc))) - cost if alloc else 0.0
        return curves, u

    gains = np.zeros(m.n_buyers)
    exact = np.zeros(m.n_buyers)
    tols = np.zeros(m.n_buyers)
    with timer("check_seconds"):
        for i in range(m.n_buyers):
            curves, u_cur = evaluate(i, None, None)
            kw = {"budget": m.budget[i], "demand": m.demand[i], "route": route}
            r = best_reply(m.valuations[i], curves, float(eps[i]), **kw)
            _, u_new = evaluate(i, r.prices, r.quantities)
            r0 = best_reply(m.valuations[i], curves, 0.0, **kw)
            _, u_0 = evaluate(i, r0.prices, r0.quantities)
            gains[i] = u_new - u_cur
            exact[i] = u_0 - u_cur
            tols[i] = tol * max(1.0, abs(u_cur))
    over = gains - eps - tols
    cert = Certificate()
    cert.add("gain_over_eps_max", float(np.max(over, initial=-math.inf)), 0.0)
    worst = int(np.argmax(over)) if over.size else None
    cert.details.update(
        worst_buyer=m.buyers[worst] if worst is not None else None,
        numerical_tolerance=f"{tol} * max(1, |u_i|)",
        exact_best_reply_gain_max=float(np.max(exact, initial=0.0)),
    )
    B = m.buyers
    solution = {
        "epsilon": float(epsilon),
        "relative": relative,
        "gains": {B[i]: float(gains[i]) for i in range(m.n_buyers)},
        "epsilons": {B[i]: float(eps[i]) for i in range(m.n_buyers)},
        "exact_best_reply_gains": {B[i]: float(exact[i]) for i in range(m.n_buyers)},
        "max_gain_over_eps": float(np.max(over, initial=-math.inf)),
    }
    meta = provenance()
    meta.update(market_kind=m.kind, n_buyers=m.n_buyers)
    return Result(
        "auction-epsilon-nash", Status.OPTIMAL, "psp-best-reply", solution, cert, timer.seconds, meta
    )
