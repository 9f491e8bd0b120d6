r"""The one certificate of a PSP auction outcome: exact best replies, budgets, every reported number.

:func:`certify_psp` is what every entry point applies to a PSP bid profile —
:func:`~datamarkets.models.psp_dynamics.psp_dynamics`, the ``auction-psp`` plug-in,
``datamarkets auction solve --method psp`` and ``datamarkets verify`` — from the market and the bids
alone:

- ``best_reply_gain_over_eps_max``: max_i (sup_t u_i(t, s_{-i}) − u_i(s) − ε_i), judged at
  10⁻⁹·max(1, |u_i|). The supremum is *exact* (:func:`exact_best_replies`): against the others'
  bids, quantity z_j at seller j is obtained by a bid above every other price at j with quantity
  z_j, at the PSP charge ∫_0^{z_j} P_j (Lazar–Semret; no bid obtains z_j for less, since the
  exclusion-compensation cost of displacing units is at least that of the cheapest ones), so the
  best reply maximises θ_i(z) − ∫_0^z P̄_i over the merged (bipartite) or summed (route) price
  curve, a concave problem solved by the supremum of eq. (3) with ε = 0 — within the budget
  b_i on that charge (draft eq. 3). Replaying the ε-best reply instead (which leaves up to ε_i on
  the table) is not a certificate.
- ``budget_excess_max``: max_i (c_i(s) − b_i)/max(1, b_i): the *final* charges within the budgets
  (the dynamics only limit each reply's *predicted* charge).
- ``supply_excess_max``: allocations within supply.
- every reported number recomputed (allocation, payments, quantities, utilities, welfare, prices,
  ε_i; ``claimed_<field>_rel``), or listed under ``details["not_checked"]`` (the dynamics' trace).

Ties. Bid prices within :data:`~datamarkets.models.psp.TIE_RTOL` (relative) of each other are one
price level (:func:`~datamarkets.models.psp.allocate`), so mathematically equal prices that differ
in the last bits split the supply in proportion to quantities instead of ordering arbitrarily.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.claims import compare_claim, not_checked, unlisted_fields
from datamarkets.errors import InvalidInputError
from datamarkets.graphs.market import MarketArrays, market_arrays
from datamarkets.models.psp import allocate, best_reply, price_curve, tie_levels
from datamarkets.result import Certificate

__all__ = [
    "bid_arrays",
    "buyer_epsilons",
    "buyer_utility",
    "certify_psp",
    "exact_best_replies",
    "psp_outcome",
    "psp_prices",
]

_TRACE = {
    "rounds": "rounds of the dynamics: a trace of the algorithm, not a property of the bids",
    "stage_rounds": "rounds per ε-scaling stage: a trace of the algorithm, not a property of the bids",
    "messages": "messages sent by the dynamics: a trace of the algorithm, not a property of the bids",
    "evaluations": "best replies computed by the dynamics: a trace of the algorithm, not of the bids",
}


def bid_arrays(m: MarketArrays, bids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge bid prices and quantities (:class:`MarketArrays` edge order) from bid rows
    ``{"buyer", "seller", "price", "quantity"}`` (a result or a dict with ``"bids"`` also accepted);
    edges without a row bid (0, 0).

    Raises
    ------
    InvalidInputError
        A row that is not a bid, a bid on a non-edge, a negative or non-finite price/quantity, or
        two bids on one edge.
    """
    if hasattr(bids, "solution"):
        bids = bids.solution.get("bids")
    if isinstance(bids, Mapping):
        bids = bids.get("bids")
    if not isinstance(bids, list | tuple):
        raise InvalidInputError("bids must be a list of {buyer, seller, price, quantity} rows")
    key = {(m.buyers[m.edge_buyer[e]], m.sellers[m.edge_seller[e]]): e for e in range(m.n_edges)}
    skey = {(str(b), str(s)): e for (b, s), e in key.items()}
    price = np.zeros(m.n_edges)
    qty = np.zeros(m.n_edges)
    seen = np.zeros(m.n_edges, dtype=bool)
    for row in bids:
        try:
            k = (row["buyer"], row["seller"])
            e = key.get(k, skey.get((str(k[0]), str(k[1]))))
            p_e, d_e = row["price"], row["quantity"]
            if isinstance(p_e, bool | str) or isinstance(d_e, bool | str):
                raise TypeError
            p_e, d_e = float(p_e), float(d_e)
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(f"bid row {row!r} needs buyer, seller, price and quantity") from None
        if e is None:
            raise InvalidInputError(f"bid on {k!r}, which is not an edge of the market")
        if not (math.isfinite(p_e) and math.isfinite(d_e)) or p_e < 0 or d_e < 0:
            raise InvalidInputError(
                f"bid on {k!r} must have finite price and quantity ≥ 0, got ({p_e}, {d_e})"
            )
        if seen[e]:
            raise InvalidInputError(f"two bids on edge {k!r}")
        seen[e] = True
        price[e], qty[e] = p_e, d_e
    return price, qty


def buyer_epsilons(m: MarketArrays, epsilon: float, relative: bool = True) -> np.ndarray:
    """ε_i: ε itself, or ε·θ_i(z̄_i) with z̄_i = min(peak_i, D_i, Σ_j Q^j) (route: min over links)."""
    if not relative:
        return np.full(m.n_buyers, float(epsilon))
    eps = np.empty(m.n_buyers)
    for i, v in enumerate(m.valuations):
        sup = m.supply[m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]]
        cap = sup.min() if m.kind == "routes" else sup.sum()
        eps[i] = float(epsilon) * float(v.value(min(v.peak, m.demand[i], float(cap))))
    return eps


def _seller_edges(m: MarketArrays) -> list[np.ndarray]:
    order = np.argsort(m.edge_seller, kind="stable")
    ptr = np.searchsorted(m.edge_seller[order], np.arange(m.n_sellers + 1))
    return [order[ptr[j] : ptr[j + 1]] for j in range(m.n_sellers)]


def psp_outcome(
    m: MarketArrays, price: np.ndarray, qty: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PSP allocation a_e and exclusion-compensation charge c_e per edge, quantity A_i and utility
    u_i = θ_i(A_i) − Σ_e c_e per buyer, by the rules themselves (draft §1.1, Tuffin's ties)."""
    a_e = np.zeros(m.n_edges)
    c_e = np.zeros(m.n_edges)
    for j, idx in enumerate(_seller_edges(m)):
        if idx.size == 0:
            continue
        a_e[idx], c_e[idx] = _allocation_and_exclusion_costs(float(m.supply[j]), price[idx], qty[idx])
    C = np.bincount(m.edge_buyer, weights=c_e, minlength=m.n_buyers).astype(float)
    A: np.ndarray
    if m.kind == "routes":
        A = np.zeros(m.n_buyers)
        for i in range(m.n_buyers):
            sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
            A[i] = a_e[sl].min() if sl.stop > sl.start else 0.0
    else:
        A = np.bincount(m.edge_buyer, weights=a_e, minlength=m.n_buyers).astype(float)
    U = np.array([float(v.value(x)) for v, x in zip(m.valuations, A, strict=True)]) - C
    return a_e, c_e, A, U


_EXCLUSION_BLOCK = 1_000_000  # entries of one block of the exclusion-cost matrix (8 MB)


def _allocation_and_exclusion_costs(Q: float, p: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSP allocation a and exclusion-compensation charges c at one seller, all bidders at once.

    c_k = Σ_{l≠k} p_l (a_l(s without k) − a_l(s)) (:func:`~datamarkets.models.psp.exclusion_cost`,
    one allocation per bidder) in matrix form: removing bid k keeps every price level and lowers
    only the level sum of k's level by d_k, so for l ≠ k the quantity above l's level drops by d_k
    when k's level is higher, and l's tie sum drops by d_k when they share a level. Rows are done in
    blocks of :data:`_EXCLUSION_BLOCK` entries (memory O(block), time O(n²) per seller).
    """
    a = allocate(Q, p, d)
    c = np.zeros(p.size)
    lv, inv = tie_levels(p)
    gsum = np.bincount(inv, weights=d, minlength=lv.size)
    above = (gsum.sum() - np.cumsum(gsum))[inv]  # Σ_{p_k above l's level} d_k, per bid l
    tie = gsum[inv]
    rows = np.flatnonzero(d > 0)
    step = max(1, _EXCLUSION_BLOCK // max(p.size, 1))
    for s0 in range(0, rows.size, step):
        k = rows[s0 : s0 + step]
        dk = d[k][:, None]
        higher = inv[k][:, None] > inv[None, :]
        same = inv[k][:, None] == inv[None, :]
        avail = np.maximum(Q - (above[None, :] - np.where(higher, dk, 0.0)), 0.0)
        tie_k = tie[None, :] - np.where(same, dk, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(d > 0, d / np.where(tie_k > 0, tie_k, 1.0) * avail, 0.0)
        a0 = np.minimum(d[None, :], share)
        a0[np.arange(k.size), k] = a[k]  # l = k is not part of k's charge
        c[k] = (a0 - a[None, :]) @ p
    return a, c


def buyer_utility(m: MarketArrays, price: np.ndarray, qty: np.ndarray, i: int) -> float:
    """u_i(s) = θ_i(a_i) − c_i of buyer ``i`` alone, by the PSP rules at its own sellers only."""
    alloc, cost = [], 0.0
    for e in range(m.buyer_ptr[i], m.buyer_ptr[i + 1]):
        j = m.edge_seller[e]
        idx = np.flatnonzero(m.edge_seller == j)
        k = int(np.flatnonzero(idx == e)[0])
        pj, dj = price[idx], qty[idx]
        a = allocate(m.supply[j], pj, dj)
        alloc.append(float(a[k]))
        if dj[k] > 0:
            d0 = dj.copy()
            d0[k] = 0.0
            a0 = allocate(m.supply[j], pj, d0)
            mask = np.ones(idx.size, dtype=bool)
            mask[k] = False
            cost += float(pj[mask] @ (a0[mask] - a[mask]))
    if not alloc:
        return 0.0
    A = min(alloc) if m.kind == "routes" else sum(alloc)
    return float(m.valuations[i].value(A)) - cost


def exact_best_replies(m: MarketArrays, price: np.ndarray, qty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every buyer's exact (ε = 0) budget-constrained best-reply utility and quantity against the
    others' bids (module docstring): sup_z θ_i(z) − ∫_0^z P̄_i with ∫_0^z P̄_i ≤ b_i, z ≤ D_i.

    Returns
    -------
    value : ndarray (I,)
        sup over i's bids of u_i(t, s_{-i}) (attained by bids above every other price).
    quantity : ndarray (I,)
        The maximising total (route: per-link) quantity.
    """
    seller_edges = _seller_edges(m)
    value = np.zeros(m.n_buyers)
    quantity = np.zeros(m.n_buyers)
    route = m.kind == "routes"
    for i in range(m.n_buyers):
        curves = []
        for e in range(m.buyer_ptr[i], m.buyer_ptr[i + 1]):
            idx = seller_edges[m.edge_seller[e]]
            others = idx[idx != e]
            curves.append(price_curve(m.supply[m.edge_seller[e]], price[others], qty[others]))
        if not curves:
            continue
        r = best_reply(m.valuations[i], curves, 0.0, budget=m.budget[i], demand=m.demand[i], route=route)
        value[i], quantity[i] = r.predicted_utility, r.quantity
    return value, quantity


def psp_prices(
    m: MarketArrays, price: np.ndarray, a_e: np.ndarray, A: np.ndarray, eps: np.ndarray
) -> dict[Any, float]:
    """The reported clearing price of each seller: the lowest winning bid if the seller sold out
    up to the winners' ε_i/θ_i'(0) step-backs (eq. 3), else 0; with supply 0, max θ_i'(A_i) over
    its buyers."""
    out: dict[Any, float] = {}
    for j, idx in enumerate(_seller_edges(m)):
        won = idx[a_e[idx] > 0]
        if m.kind == "routes":
            sold = float(A[m.edge_buyer[idx]].sum())
        else:
            sold = float(a_e[idx].sum())
        if m.supply[j] <= 1e-12:  # nothing to sell: the highest marginal value of a first unit
            out[m.sellers[j]] = max(
                (float(m.valuations[i].marginal(A[i])) for i in m.edge_buyer[idx]), default=0.0
            )
            continue
        b = m.edge_buyer[won]
        slack = float(sum(eps[i] / m.valuations[i].marginal_at_zero for i in b)) + 1e-9 * m.supply.max()
        if won.size and sold >= m.supply[j] - slack - 1e-12:
            out[m.sellers[j]] = float(price[won].min())
        else:
            out[m.sellers[j]] = 0.0
    return out


def certify_psp(
    G: nx.Graph | MarketArrays,
    solution: Mapping[str, Any],
    epsilon: float,
    *,
    relative: bool = True,
    tol: float = 1e-9,
) -> Certificate:
    """Certificate of a PSP bid profile (module docstring) from the market and ``solution["bids"]``.

    Parameters
    ----------
    G : networkx.Graph or MarketArrays
        The market.
    solution : mapping
        Needs ``bids``; every other field present is recomputed and compared.
    epsilon : float
        The bid fee ε ≥ 0 (relative to each buyer's largest attainable value unless ``relative=False``).
    relative : bool
    tol : float
        Numerical tolerance: of the gains relative to max(1, |u_i|), of the budgets relative to
        max(1, b_i), of the recomputed fields relative to their size.

    Returns
    -------
    Certificate
        Details: per-buyer ``best_reply_gains``, ``epsilons``, ``budget_excess``, the ``worst_buyer``.

    Raises
    ------
    InvalidInputError
        Bad ε or bids.

    Examples
    --------
    One seller with 2 units; the other buyer bids (1, 2) for all of it, so buyer ``x``, bidding
    nothing, can get z at price 1 per unit: with θ(z) = 3z − z²/2 its best reply is z = 2, a gain
    of 6 − 2 − 2 = 2 > ε = 0.5.

    >>> from datamarkets.graphs.market import single_resource
    >>> from datamarkets.models.valuations import QuadraticValuation
    >>> G = single_resource(2.0, {"x": QuadraticValuation(3, 1), "y": QuadraticValuation(3, 1)})
    >>> bids = [{"buyer": "x", "seller": "s0", "price": 0.0, "quantity": 0.0},
    ...         {"buyer": "y", "seller": "s0", "price": 1.0, "quantity": 2.0}]
    >>> c = certify_psp(G, {"bids": bids}, 0.5, relative=False)
    >>> c.details["best_reply_gains"]["x"], c.passed
    (2.0, False)
    """
    if isinstance(epsilon, bool) or not (
        isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon >= 0
    ):
        raise InvalidInputError(f"epsilon must be a finite number ≥ 0, got {epsilon!r}")
    m = G if isinstance(G, MarketArrays) else market_arrays(G)
    if "bids" not in solution:
        raise InvalidInputError("a PSP solution needs 'bids'")
    price, qty = bid_arrays(m, solution["bids"])
    eps = buyer_epsilons(m, float(epsilon), relative)
    a_e, c_e, A, U = psp_outcome(m, price, qty)
    best, _ = exact_best_replies(m, price, qty)
    gains = best - U
    over = gains - eps - tol * np.maximum(1.0, np.abs(U))
    cert = Certificate()
    cert.add("best_reply_gain_over_eps_max", float(np.max(over, initial=-math.inf)), 0.0)
    C = np.array([c_e[m.buyer_ptr[i] : m.buyer_ptr[i + 1]].sum() for i in range(m.n_buyers)])
    fin = np.isfinite(m.budget)
    excess = np.full(m.n_buyers, -np.inf)
    excess[fin] = (C[fin] - m.budget[fin]) / np.maximum(1.0, m.budget[fin])
    cert.add("budget_excess_max", float(max(np.max(excess, initial=-math.inf), 0.0)), tol)
    if m.kind == "routes":
        load = np.array([float(A[m.edge_buyer[m.edge_seller == j]].sum()) for j in range(m.n_sellers)])
    else:
        load = np.bincount(m.edge_seller, weights=a_e, minlength=m.n_sellers)
    cert.add(
        "supply_excess_max",
        float(np.max(load - m.supply, initial=0.0)),
        tol * (1 + m.supply.max(initial=0.0)),
    )
    B, S = m.buyers, m.sellers
    worst = int(np.argmax(over)) if over.size else None
    cert.details.update(
        worst_buyer=B[worst] if worst is not None else None,
        best_reply_gains={B[i]: float(gains[i]) for i in range(m.n_buyers)},
        epsilons={B[i]: float(eps[i]) for i in range(m.n_buyers)},
        budget_violations={B[i]: float(C[i] - m.budget[i]) for i in range(m.n_buyers) if excess[i] > tol},
        numerical_tolerance=f"{tol} * max(1, |u_i|)",
    )
    # every reported number, recomputed from the bids
    rows = [(B[m.edge_buyer[e]], S[m.edge_seller[e]]) for e in range(m.n_edges)]
    claims: dict[str, Any] = {
        "welfare": float(sum(float(v.value(x)) for v, x in zip(m.valuations, A, strict=True))),
        "allocation": [{"buyer": b, "seller": s, "amount": float(a_e[e])} for e, (b, s) in enumerate(rows)],
        "payments": [{"buyer": b, "seller": s, "amount": float(c_e[e])} for e, (b, s) in enumerate(rows)],
        "buyer_quantity": {B[i]: float(A[i]) for i in range(m.n_buyers)},
        "utilities": {B[i]: float(U[i]) for i in range(m.n_buyers)},
        "epsilons": {B[i]: float(eps[i]) for i in range(m.n_buyers)},
        "prices": psp_prices(m, price, a_e, A, eps),
        "epsilon": float(epsilon),
        "relative": bool(relative),
    }
    claims["objective"] = claims["welfare"]
    sol = {k: _keyed(v) for k, v in solution.items()}
    for key, value in claims.items():
        compare_claim(cert, sol, key, _keyed(value), tol)
    for key, why in _TRACE.items():
        if key in solution:
            not_checked(cert, key, why)
    unlisted_fields(cert, solution, {"bids", *claims})
    return cert


def _keyed(v: Any) -> Any:
    """Rows of (buyer, seller, amount) as a {"buyer|seller": amount} dict and dict keys as strings,
    so claimed and recomputed fields compare whatever their order and JSON key types."""
    if (
        isinstance(v, list)
        and v
        and all(isinstance(r, Mapping) and {"buyer", "seller", "amount"} <= set(r) for r in v)
    ):
        return {f"{r['buyer']}|{r['seller']}": r["amount"] for r in v}
    if isinstance(v, Mapping):
        return {str(k): x for k, x in v.items()}
    return v
