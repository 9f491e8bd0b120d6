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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.graphs.market import MarketArrays, market_arrays
from datamarkets.models.psp import allocate, best_reply, price_curve
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

    @classmethod
    def empty(cls, m: MarketArrays) -> PSPState:
        order = np.argsort(m.edge_seller, kind="stable")
        sptr = np.searchsorted(m.edge_seller[order], np.arange(m.n_sellers + 1))
        seller_edges = [order[sptr[j] : sptr[j + 1]] for j in range(m.n_sellers)]
        pos = np.empty(m.n_edges, dtype=np.int64)
        for idx in seller_edges:
            pos[idx] = np.arange(idx.size)
        return cls(m, np.zeros(m.n_edges), np.zeros(m.n_edges), seller_edges, pos)


def _buyer_eval(st: PSPState, i: int, new_p: np.ndarray | None = None, new_d: np.ndarray | None = None):
    """Curves P_i^j, current utility and (optionally) the utility of a candidate bid of buyer i."""
    m = st.market
    lo, hi = m.buyer_ptr[i], m.buyer_ptr[i + 1]
    route = m.kind == "routes"
    curves = []
    a_cur, c_cur, a_new, c_new = [], 0.0, [], 0.0
    for t, e in enumerate(range(lo, hi)):
        j = m.edge_seller[e]
        idx = st.seller_edges[j]
        k = st.edge_pos[e]
        Q = m.supply[j]
        pj = st.price[idx]
        dj = st.quantity[idx]
        others = np.ones(idx.size, dtype=bool)
        others[k] = False
        curves.append(price_curve(Q, pj[others], dj[others]))
        d0 = dj.copy()
        d0[k] = 0.0
        a0 = allocate(Q, pj, d0)  # a_k(0; s_{-i})
        a = allocate(Q, pj, dj)
        a_cur.append(a[k])
        c_cur += float(pj[others] @ (a0[others] - a[others]))
        if new_p is not None:
            p2 = pj.copy()
            d2 = dj.copy()
            p2[k], d2[k] = new_p[t], new_d[t]
            a2 = allocate(Q, p2, d2)
            a_new.append(a2[k])
            c_new += float(p2[others] @ (a0[others] - a2[others]))
    v = m.valuations[i]
    agg = min if route else sum
    u_cur = float(v.value(agg(a_cur))) - c_cur if a_cur else 0.0
    u_new = (float(v.value(agg(a_new))) - c_new) if new_p is not None and a_new else None
    return curves, u_cur, u_new


def _reply(st: PSPState, i: int, eps_i: float):
    m = st.market
    curves, u_cur, _ = _buyer_eval(st, i)
    r = best_reply(
        m.valuations[i], curves, eps_i, budget=m.budget[i], demand=m.demand[i], route=m.kind == "routes"
    )
    _, _, u_new = _buyer_eval(st, i, r.prices, r.quantities)
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
    progress : bool
        Show a progress bar over rounds on stderr.

    Returns
    -------
    Result
        ``kind="auction-psp"``, ``method="psp"``; solution keys ``welfare``, ``allocation`` (list of
        ``{"buyer", "seller", "amount"}``), ``prices`` (seller → lowest bid price with a positive
        allocation if the seller sold out, else 0), ``bids`` (per edge ``price``/``quantity``),
        ``payments`` (per edge), ``buyer_quantity``, ``utilities``, ``epsilons``, ``rounds``,
        ``messages``, ``order``. Certificate: ``supply_excess_max`` (allocations within supply),
        ``reply_gain_over_eps_max`` (max over buyers of (u(t_i) − u(s_i))/ε_i − 1, ≤ 0 at an ε-Nash point).

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
    >>> r = psp_dynamics(G, 1e-4)
    >>> round(r.solution["welfare"], 3)  # optimum: 1 unit each, welfare 2·(3 − 1/2) = 5
    5.0
    """
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if order not in ("asynchronous", "synchronous"):
        raise InvalidInputError(f"order must be 'asynchronous' or 'synchronous', got {order!r}")
    if int(max_rounds) < 1:
        raise InvalidInputError(f"max_rounds must be >= 1, got {max_rounds!r}")
    timer = Timer()
    with timer("build_seconds"):
        m = market_arrays(G)
        st = PSPState.empty(m)
        eps = _epsilons(m, float(epsilon), relative)
        seller_deg = np.array([idx.size for idx in st.seller_edges])
    rng = np.random.default_rng(seed) if seed is not None else None
    messages = 0
    rounds = 0
    converged = False
    with timer("solve_seconds"), make_progress() as bar:
        task = bar.add_task("PSP rounds", total=max_rounds, visible=progress)
        while rounds < max_rounds:
            rounds += 1
            visit = rng.permutation(m.n_buyers) if rng is not None else range(m.n_buyers)
            moves = []
            for i in visit:
                r, u_cur, u_new = _reply(st, int(i), eps[i])
                if u_new is not None and u_new > u_cur + eps[i]:
                    sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
                    if order == "asynchronous":
                        st.price[sl], st.quantity[sl] = r.prices, r.quantities
                    else:
                        moves.append((sl, r.prices, r.quantities))
                    js = m.edge_seller[sl]
                    messages += int(js.size + np.sum(seller_deg[js] - 1))
                    if order == "asynchronous":
                        moves.append(None)
            for mv in moves:
                if mv is not None:
                    st.price[mv[0]], st.quantity[mv[0]] = mv[1], mv[2]
            bar.update(task, advance=1)
            if not moves:
                converged = True
                break
    if not converged:
        raise ConvergenceError(f"PSP dynamics ({order}) still moving bids", rounds)
    with timer("certificate_seconds"):
        a_e, c_e, A, U = buyer_utilities(st)
        gains = np.zeros(m.n_buyers)
        for i in range(m.n_buyers):
            _, u_cur, u_new = _reply(st, i, eps[i])
            gains[i] = (u_new if u_new is not None else u_cur) - u_cur
    welfare = float(sum(float(v.value(x)) for v, x in zip(m.valuations, A, strict=True)))
    prices = {}
    for j, idx in enumerate(st.seller_edges):
        won = idx[a_e[idx] > 0]
        sold = a_e[idx].sum() if m.kind != "routes" else _route_load(m, A, j)
        prices[m.sellers[j]] = (
            float(st.price[won].min()) if won.size and sold >= m.supply[j] * (1 - 1e-9) - 1e-12 else 0.0
        )
    cert = Certificate()
    load = (
        np.array([_route_load(m, A, j) for j in range(m.n_sellers)])
        if m.kind == "routes"
        else np.bincount(m.edge_seller, weights=a_e, minlength=m.n_sellers)
    )
    cert.add("supply_excess_max", float(np.max(load - m.supply, initial=0.0)), 1e-9 * (1 + m.supply.max()))
    cert.add("reply_gain_over_eps_max", float(np.max(gains / eps - 1.0, initial=-1.0)), 0.0)
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
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "price": float(st.price[e]),
             "quantity": float(st.quantity[e])}
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
        "messages": messages,
        "order": order,
    }
    meta = provenance()
    meta.update({"market_kind": m.kind, "n_buyers": m.n_buyers, "n_sellers": m.n_sellers, "n_edges": m.n_edges})
    return Result("auction-psp", Status.OPTIMAL, "psp", sol, cert, timer.seconds, meta)


def _route_load(m: MarketArrays, A: np.ndarray, j: int) -> float:
    users = m.edge_buyer[m.edge_seller == j]
    return float(A[users].sum())
