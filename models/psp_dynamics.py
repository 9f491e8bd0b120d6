r"""PSP auction dynamics: rounds of ε-best replies until no bid moves.

Every buyer i holds a bid s_i^j = (p_i^j, d_i^j) at each seller j it is joined to (initially
(0, 0)). In a round, buyers are visited in a fixed order (``"asynchronous"``: each reply is
applied at once, Gauss–Seidel; ``"synchronous"``: all replies are computed against the profile
at the start of the round and applied together, Jacobi). A visited buyer computes its ε-best reply
t_i (:func:`datamarkets.models.psp.best_reply`, draft eqs. 3–4) and moves to it only when that
raises its utility u_i = θ_i(a_i(s)) − c_i(s), evaluated with the PSP allocation and
exclusion-compensation rules, by more than its bid fee ε_i (Lazar–Semret's ε-best reply dynamics).
The auction stops after the first round in which no bid moved: every buyer is then within ε_i
of its (ε-)best reply, an ε-Nash equilibrium of the PSP game.

``epsilon`` is absolute (``relative=False``) or relative (default): ε_i = ε · θ_i(z̄_i) with
z̄_i = min(peak_i, D_i, Σ_{j∈N(i)} Q^j) (min over the route's links for a route user), the largest
value buyer i can ever obtain; "ε = 10⁻³ relative" means no buyer can gain more than 0.1 % of that.

Messages: each accepted move sends one bid to each seller of the buyer and each of those sellers
notifies its other bidders of the new profile; ``messages`` counts both kinds.

Speed. Truthful ε-best replies raise a contested price by about b·ε/θ'(0) per move (a bidder
takes nearly all units priced below its marginal value, displacing the others, who answer
slightly higher), so the number of rounds grows like 1/ε: 50 buyers × 10 sellers at ε = 10⁻³
took 1602 rounds. ``scaling`` (ε-scaling, as in Bertsekas' auction algorithm) runs coarse stages
first and cuts that to ~100 rounds; 1000 × 100 at ε = 10⁻³ took 324 rounds, 136 s on a loaded
2-core machine (welfare within 2·10⁻⁵ of the optimum). A buyer whose sellers' bids did not change
since it last declined to move is skipped, and allocation/charge are read off the price curve
(c_i = ∫_0^{a_i} P_i, exact without ties; ties fall back to the rules) — the same dynamics, faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.graphs.market import MarketArrays, market_arrays
from datamarkets.models.psp import _allocate as allocate
from datamarkets.models.psp import _price_curve_sorted, best_reply
from datamarkets.progress import make_progress
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.status import Status

__all__ = ["PSPState", "buyer_utilities", "psp_dynamics"]


@dataclass
class PSPState:
    """Bid profile of a PSP auction on a market (edges in :class:`MarketArrays` order)."""

    market: MarketArrays
    price: np.ndarray  # p_e, bid unit price on edge e = (buyer, seller)
    quantity: np.ndarray  # d_e, bid quantity on edge e
    seller_edges: list[np.ndarray]
    edge_pos: np.ndarray  # position of edge e in seller_edges[seller(e)]
    version: np.ndarray | None = None  # bumped whenever a bid at the seller changes
    sorted_cache: dict | None = None  # seller → (version, sorted bids)

    @classmethod
    def empty(cls, m: MarketArrays) -> PSPState:
        order = np.argsort(m.edge_seller, kind="stable")
        sptr = np.searchsorted(m.edge_seller[order], np.arange(m.n_sellers + 1))
        seller_edges = [order[sptr[j] : sptr[j + 1]] for j in range(m.n_sellers)]
        pos = np.empty(m.n_edges, dtype=np.int64)
        for idx in seller_edges:
            pos[idx] = np.arange(idx.size)
        return cls(
            m,
            np.zeros(m.n_edges),
            np.zeros(m.n_edges),
            seller_edges,
            pos,
            np.zeros(m.n_sellers, dtype=np.int64),
            {},
        )


def _alloc_cost(curve, Q, p_o, d_o, p_i: float, d_i: float) -> tuple[float, float]:
    """Allocation and charge of a bid (p_i, d_i) against the others' bids at one resource.

    Without a tie (no other bid at exactly p_i) the PSP rules reduce to a_i = min(d_i, D̄_i(p_i))
    and c_i = ∫_0^{a_i} P_i (Lazar–Semret; tested against the rules in ``tests/test_psp.py``), read
    off the price curve; with a tie the allocation and exclusion-compensation rules are applied.
    """
    if d_i <= 0:
        return 0.0, 0.0
    if np.any(p_o == p_i):
        p = np.append(p_o, p_i)
        d = np.append(d_o, d_i)
        d0 = np.append(d_o, 0.0)
        a = allocate(Q, p, d)
        a0 = allocate(Q, p, d0)
        return float(a[-1]), float(p_o @ (a0[:-1] - a[:-1]))
    lv, w = curve.levels, curve.widths
    k = int(np.searchsorted(lv, p_i, side="right"))  # levels ≤ p_i
    avail = float(w[:k].sum())  # D̄_i(p_i)
    a = min(d_i, avail)
    ends = np.cumsum(w[:k])
    m = int(np.searchsorted(ends, a, side="left"))
    if m >= k:
        m = k - 1
    before = float(ends[m - 1]) if m > 0 else 0.0
    cost = float(lv[:m] @ w[:m]) + float(lv[m]) * (a - before) if k > 0 and a > 0 else 0.0
    return a, cost


def _sorted_bids(st: PSPState, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bids at seller j sorted by price (cached until a bid there changes): (ps, ds, rank)."""
    cache = st.sorted_cache.get(j)
    if cache is not None and cache[0] == st.version[j]:
        return cache[1]
    idx = st.seller_edges[j]
    p = st.price[idx]
    order = np.argsort(p, kind="stable")
    rank = np.empty(idx.size, dtype=np.int64)
    rank[order] = np.arange(idx.size)
    out = (p[order], st.quantity[idx][order], rank)
    st.sorted_cache[j] = (st.version[j], out)
    return out


def _reply(st: PSPState, i: int, eps_i: float):
    """ε-best reply t_i of buyer i, its current utility u_i(s) and its utility u_i(t_i; s_{-i}),
    both by the PSP allocation and charge rules (see :func:`_alloc_cost`)."""
    m = st.market
    lo, hi = m.buyer_ptr[i], m.buyer_ptr[i + 1]
    route = m.kind == "routes"
    curves, cache = [], []
    a_cur, c_cur = [], 0.0
    for e in range(lo, hi):
        j = m.edge_seller[e]
        Q = m.supply[j]
        ps, ds, rank = _sorted_bids(st, j)
        k = rank[st.edge_pos[e]]
        p_o = np.delete(ps, k)
        d_o = np.delete(ds, k)
        curve = _price_curve_sorted(Q, p_o, d_o)
        curves.append(curve)
        a, c = _alloc_cost(curve, Q, p_o, d_o, float(st.price[e]), float(st.quantity[e]))
        a_cur.append(a)
        c_cur += c
        cache.append((curve, Q, p_o, d_o))
    v = m.valuations[i]
    agg = min if route else sum
    u_cur = float(v.value(agg(a_cur))) - c_cur
    r = best_reply(v, curves, eps_i, budget=m.budget[i], demand=m.demand[i], route=route)
    a_new, c_new = [], 0.0
    for t, (curve, Q, p_o, d_o) in enumerate(cache):
        a, c = _alloc_cost(curve, Q, p_o, d_o, float(r.prices[t]), float(r.quantities[t]))
        a_new.append(a)
        c_new += c
    u_new = float(v.value(agg(a_new))) - c_new
    return r, u_cur, u_new


def buyer_utilities(st: PSPState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-edge allocation a_e and charge c_e, per-buyer quantity A_i and utility u_i of a profile."""
    m = st.market
    a_e = np.zeros(m.n_edges)
    c_e = np.zeros(m.n_edges)
    for j, idx in enumerate(st.seller_edges):
        if idx.size == 0:
            continue
        pj, dj = st.price[idx], st.quantity[idx]
        a = allocate(m.supply[j], pj, dj)
        a_e[idx] = a
        for k in np.flatnonzero(dj > 0):
            d0 = dj.copy()
            d0[k] = 0.0
            a0 = allocate(m.supply[j], pj, d0)
            mask = np.ones(idx.size, dtype=bool)
            mask[k] = False
            c_e[idx[k]] = float(pj[mask] @ (a0[mask] - a[mask]))
    A = np.zeros(m.n_buyers)
    C = np.zeros(m.n_buyers)
    for i in range(m.n_buyers):
        sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
        A[i] = a_e[sl].min() if m.kind == "routes" else a_e[sl].sum()
        C[i] = c_e[sl].sum()
    U = np.array([float(v.value(x)) for v, x in zip(m.valuations, A, strict=True)]) - C
    return a_e, c_e, A, U


def _epsilons(m: MarketArrays, epsilon: float, relative: bool) -> np.ndarray:
    if not relative:
        return np.full(m.n_buyers, float(epsilon))
    eps = np.empty(m.n_buyers)
    for i, v in enumerate(m.valuations):
        sup = m.supply[m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]]
        cap = sup.min() if m.kind == "routes" else sup.sum()
        zbar = min(v.peak, m.demand[i], float(cap))
        eps[i] = epsilon * float(v.value(zbar))
    return eps


def psp_dynamics(
    G: nx.Graph,
    epsilon: float = 1e-3,
    *,
    relative: bool = True,
    order: str = "asynchronous",
    max_rounds: int = 1000,
    seed: int | None = None,
    scaling: float | None = None,
    start_epsilon: float = 0.1,
    progress: bool = False,
) -> Result:
    """Run PSP ε-best-reply dynamics on a market graph until no bid moves.

    Parameters
    ----------
    G : networkx.Graph
        A market (:mod:`datamarkets.graphs.market`), bipartite or routes.
    epsilon : float, default 1e-3
        Bid fee ε > 0, relative to each buyer's largest attainable value unless ``relative=False``.
    relative : bool, default True
        See the module docstring.
    order : {"asynchronous", "synchronous"}
        Visit order of a round.
    max_rounds : int, default 1000
        Round cap.
    seed : int, optional
        If given, buyers are visited in a random order, reshuffled each round (else index order).
    scaling : float, optional
        ε-scaling factor (> 1). If given, the auction first runs with bid fees ε·scaling^K (the
        largest not above ``start_epsilon``), then ε·scaling^{K−1}, ..., ε, each stage starting from
        the previous stage's bids. Only the last stage's stopping rule matters for the result (an
        ε-equilibrium at ε); ``rounds``/``messages`` count all stages. Default: one stage.
    start_epsilon : float, default 0.1
        Upper bound of the first stage's (relative or absolute) ε when ``scaling`` is set.
    progress : bool
        Show a progress bar over rounds on stderr.

    Returns
    -------
    Result
        ``kind="auction-psp"``, ``method="psp"``; solution keys ``welfare``, ``allocation`` (list of
        ``{"buyer", "seller", "amount"}``), ``prices`` (seller → lowest bid price with a positive
        allocation if the seller sold out up to the winners' ε_i/θ_i'(0) step-backs, else 0;
        with supply 0, max θ_i'(x_i) over its buyers), ``bids`` (per edge ``price``/``quantity``),
        ``payments`` (per edge), ``buyer_quantity``, ``utilities``, ``epsilons``, ``rounds``,
        ``messages``, ``order``. Certificate: ``supply_excess_max`` (allocations within supply),
        ``reply_gain_over_eps_max`` (max over buyers of u(t_i) − u(s_i) − ε_i, ≤ 0 at an ε-Nash
        point, tolerance 10⁻⁹·max(1, |u|)).

    Raises
    ------
    InvalidInputError
        Bad ``epsilon``/``order``/``max_rounds``; :class:`~datamarkets.errors.GraphError` for a bad market.
    ConvergenceError
        If ``max_rounds`` rounds pass with bids still moving (carries ``iterations``).

    Examples
    --------
    >>> from datamarkets.graphs.market import single_resource
    >>> from datamarkets.models.valuations import QuadraticValuation
    >>> G = single_resource(2.0, [QuadraticValuation(3, 1), QuadraticValuation(3, 1)])
    >>> r = psp_dynamics(G, 1e-3)
    >>> abs(r.solution["welfare"] - 5.0) < 0.01  # optimum: 1 unit each, welfare 2·(3 − 1/2) = 5
    True
    """
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if order not in ("asynchronous", "synchronous"):
        raise InvalidInputError(f"order must be 'asynchronous' or 'synchronous', got {order!r}")
    if int(max_rounds) < 1:
        raise InvalidInputError(f"max_rounds must be >= 1, got {max_rounds!r}")
    if scaling is not None and not (math.isfinite(scaling) and scaling > 1):
        raise InvalidInputError(f"scaling must be a finite number > 1, got {scaling!r}")
    timer = Timer()
    with timer("build_seconds"):
        m = market_arrays(G)
        st = PSPState.empty(m)
        eps = _epsilons(m, float(epsilon), relative)
        seller_deg = np.array([idx.size for idx in st.seller_edges])
    rng = np.random.default_rng(seed) if seed is not None else None
    messages = 0
    rounds = 0
    stage_rounds: list[int] = []
    # ε-scaling (Bertsekas' remedy for the same creep in auction algorithms): optional coarse
    # stages ε·scaling^K, ..., ε·scaling, each warm-started from the previous profile; the
    # stopping rule of the last stage (ε itself) is unchanged, so the result is an ε-equilibrium.
    factors = [1.0]
    if scaling is not None:
        while (
            factors[-1] * float(epsilon) * float(scaling) <= max(float(start_epsilon), float(epsilon)) + 1e-15
        ):
            factors.append(factors[-1] * float(scaling))
    with timer("solve_seconds"), make_progress() as bar:
        task = bar.add_task("PSP rounds", total=max_rounds, visible=progress)
        for f in reversed(factors):
            eps_stage = eps * f
            # a buyer whose sellers' bids did not change since it last declined to move would
            # compute the same reply and decline again: skip it (exactly the same dynamics)
            version = st.version
            seen = np.full(m.n_buyers, -1, dtype=np.int64)
            converged = False
            r0 = rounds
            while rounds < max_rounds:
                rounds += 1
                visit = rng.permutation(m.n_buyers) if rng is not None else range(m.n_buyers)
                moves = []
                for i in visit:
                    sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
                    js = m.edge_seller[sl]
                    stamp = int(version[js].sum())
                    if seen[i] == stamp:  # nothing changed at its sellers since it last stayed put
                        continue
                    r, u_cur, u_new = _reply(st, int(i), eps_stage[i])
                    if u_new > u_cur + eps_stage[i]:
                        if order == "asynchronous":
                            st.price[sl], st.quantity[sl] = r.prices, r.quantities
                            version[js] += 1
                            moves.append(None)
                        else:
                            moves.append((sl, r.prices, r.quantities, js))
                        messages += int(js.size + np.sum(seller_deg[js] - 1))
                    else:
                        seen[i] = stamp
                for mv in moves:
                    if mv is not None:
                        st.price[mv[0]], st.quantity[mv[0]] = mv[1], mv[2]
                        version[mv[3]] += 1
                bar.update(task, advance=1)
                if not moves:
                    converged = True
                    break
            stage_rounds.append(rounds - r0)
            if not converged:
                raise ConvergenceError(f"PSP dynamics ({order}) still moving bids", rounds)
    with timer("certificate_seconds"):
        a_e, c_e, A, U = buyer_utilities(st)
        gains = np.zeros(m.n_buyers)
        for i in range(m.n_buyers):
            _, u_cur, u_new = _reply(st, i, eps[i])
            gains[i] = u_new - u_cur
    welfare = float(sum(float(v.value(x)) for v, x in zip(m.valuations, A, strict=True)))
    prices = {}

    def slack(won: np.ndarray) -> float:
        b = m.edge_buyer[won]
        return float(sum(eps[i] / m.valuations[i].marginal_at_zero for i in b)) + 1e-9 * m.supply.max()

    for j, idx in enumerate(st.seller_edges):
        won = idx[a_e[idx] > 0]
        sold = a_e[idx].sum() if m.kind != "routes" else _route_load(m, A, j)
        if m.supply[j] <= 1e-12:  # nothing to sell: the highest marginal value of a first unit
            nb = m.edge_buyer[idx]
            prices[m.sellers[j]] = max((float(m.valuations[i].marginal(A[i])) for i in nb), default=0.0)
        elif won.size and sold >= m.supply[j] - slack(won) - 1e-12:
            # sold out up to the winners' ε/θ'(0) step-backs (eq. 3): the lowest winning bid
            prices[m.sellers[j]] = float(st.price[won].min())
        else:
            prices[m.sellers[j]] = 0.0
    cert = Certificate()
    load = (
        np.array([_route_load(m, A, j) for j in range(m.n_sellers)])
        if m.kind == "routes"
        else np.bincount(m.edge_seller, weights=a_e, minlength=m.n_sellers)
    )
    cert.add("supply_excess_max", float(np.max(load - m.supply, initial=0.0)), 1e-9 * (1 + m.supply.max()))
    cert.add(
        "reply_gain_over_eps_max",
        float(np.max(gains - eps, initial=0.0)),
        1e-9 * max(1.0, float(np.max(np.abs(U), initial=0.0))),
    )
    cert.details["max_reply_gain"] = float(gains.max(initial=0.0))
    B, S = m.buyers, m.sellers
    sol = {
        "welfare": welfare,
        "allocation": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(a_e[e])}
            for e in range(m.n_edges)
        ],
        "prices": prices,
        "bids": [
            {
                "buyer": B[m.edge_buyer[e]],
                "seller": S[m.edge_seller[e]],
                "price": float(st.price[e]),
                "quantity": float(st.quantity[e]),
            }
            for e in range(m.n_edges)
        ],
        "payments": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(c_e[e])}
            for e in range(m.n_edges)
        ],
        "buyer_quantity": {B[i]: float(A[i]) for i in range(m.n_buyers)},
        "utilities": {B[i]: float(U[i]) for i in range(m.n_buyers)},
        "epsilons": {B[i]: float(eps[i]) for i in range(m.n_buyers)},
        "epsilon": float(epsilon),
        "relative": bool(relative),
        "rounds": rounds,
        "stage_rounds": stage_rounds,
        "messages": messages,
        "order": order,
    }
    meta = provenance()
    meta.update(
        {"market_kind": m.kind, "n_buyers": m.n_buyers, "n_sellers": m.n_sellers, "n_edges": m.n_edges}
    )
    return Result("auction-psp", Status.OPTIMAL, "psp", sol, cert, timer.seconds, meta)


def _route_load(m: MarketArrays, A: np.ndarray, j: int) -> float:
    users = m.edge_buyer[m.edge_seller == j]
    return float(A[users].sum())
