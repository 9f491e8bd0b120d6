r"""The data-share market's own strategies: opt-out buyers and progressive sellers (Algorithms 2–3).

Buyers bid "demand D_i at unit price p_i": from a :class:`~datamarkets.graphs.valuations.LinearValuation`
D_i = demand and p_i = unit price; for any other valuation D_i = min(node ``demand``, peak) and
p_i = θ_i'_-(D_i), the marginal value of the last unit wanted (Lemma 3: p = θ'(σ(a))).

The auction runs in synchronous rounds t = 1, 2, ...

1. **Opt-out buyers** (Lemma 3, Algorithm 2, eq. 16). A buyer with unmet need N_i looks at the
   sellers it is joined to that are *eligible* (reserve price r^j ≤ p_i + ε: a bid may exceed the
   marginal value by at most the bid fee ε, the paper's ε-best reply p* = θ' + ε) and have data
   left R^j > 0; it sorts them by R^j, largest first, and takes the smallest n with n·R^{(n)} ≥ N_i
   (16), bidding the coordinated quantity N_i/n at each of the n sellers. If no n works it bids the
   largest coordinated amount, R^{(n)} at each of the top n maximising n·R^{(n)}. All its bids carry
   one price, max(p_i, max of the pool's reserve prices) ("the bid price must be as high as the
   highest reserve price", §5).
2. **Progressive sellers** (Lemma 4, Algorithm 3, eqs. 17, 20, 21). Seller j ranks the round's bids
   by price; the highest bids that fit in R^j win their full quantity and leave with it (21). The
   minimal covering set I^j(m) (17) ends with the marginal bid(s): a single marginal bidder is
   notified of a partial allocation and withdraws to re-bid (proof of Lemma 3); a marginal group of
   tied bidders shares the rest in proportion to quantities and keeps it (allocation rule (5)).
   Bidders outside I^j(m) lose; the reserve price becomes the highest losing bid + ε (20), i.e.
   i ∉ I^j ⟺ p_i ≤ p_{i*} (25).
3. Stop after a round in which nobody bids. Rule (20) is then read once more on the final state:
   a buyer whose need is still unmet lost at every sold-out seller it is joined to, so such a
   seller's reserve is at least its unit price + ε.

The result reports, per seller, the final ``reserve_prices`` (rule 20) and the clearing ``prices``
(lowest accepted bid price of a sold-out seller, 0 otherwise), the allocation per edge, unmet
needs, welfare Σ_i θ_i(x_i), rounds and messages (one per bid, one per seller reply).

Example 1 of the paper (:func:`solve_example1`): A–E bid 50 @ 1, 40 @ 1.2, 26 @ 1.5, 20 @ 2,
14 @ 2.2; sellers 65 and 85. Every buyer's demand is met, both sellers sell out, and the rounds are
those printed in the paper: everybody bids at the 85-seller; B (partial) and A (losing) move to
the 65-seller; A finally splits 25 + 25 at price 1 + ε; both clearing prices are 1 + ε.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TypeVar

import networkx as nx
import numpy as np

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.graphs.market import MarketArrays, example1_market, market_arrays
from datamarkets.graphs.valuations import LinearValuation
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.status import Status

__all__ = [
    "data_share_auction",
    "opt_out_pool",
    "progressive_allocation",
    "solve_example1",
]

_TOL = 1e-9


def opt_out_pool(need: float, available: Sequence[float]) -> tuple[list[int], float]:
    """Seller pool of an opt-out buyer (eq. 16) and its coordinated bid quantity.

    Parameters
    ----------
    need : float
        Unmet demand N_i > 0.
    available : sequence of float
        Data left R^j at each eligible seller (in a fixed order; ties keep it).

    Returns
    -------
    pool : list of int
        Positions into ``available`` of the chosen sellers, largest supply first.
    quantity : float
        Quantity bid at each seller of the pool (N_i/n, or R^{(n)} when no n covers N_i).

    Examples
    --------
    >>> opt_out_pool(50.0, [25.0, 25.0])
    ([0, 1], 25.0)
    >>> opt_out_pool(40.0, [65.0, 25.0])
    ([0], 40.0)
    """
    R = np.asarray(available, dtype=float)
    if need <= 0 or R.size == 0 or not np.any(R > _TOL):
        return [], 0.0
    order = np.argsort(-R, kind="stable")
    Rs = R[order]
    n = np.arange(1, R.size + 1)
    cover = n * Rs >= need * (1 - 1e-12)
    if np.any(cover):
        k = int(np.argmax(cover)) + 1  # smallest n with n·R^(n) ≥ N_i (16)
        return [int(x) for x in order[:k]], need / k
    k = int(np.argmax(n * Rs)) + 1  # largest coordinated amount
    return [int(x) for x in order[:k]], float(Rs[k - 1])


BuyerT = TypeVar("BuyerT", bound=Hashable)


def progressive_allocation(
    remaining: float, bids: Sequence[tuple[BuyerT, float, float]], epsilon: float
) -> tuple[dict[BuyerT, float], list[BuyerT], float | None]:
    """One round of a seller's progressive allocation (Algorithm 3, eqs. 17, 20, 5).

    Parameters
    ----------
    remaining : float
        R^j, data left.
    bids : sequence of (buyer, quantity, price)
    epsilon : float
        Bid fee ε.

    Returns
    -------
    allocated : dict
        Buyer → quantity kept (full winners and a tied marginal group).
    withdrawn : list
        A single marginal bidder offered a partial allocation (it withdraws and re-bids).
    reserve : float or None
        Highest losing bid + ε (20), or None when nobody lost (reserve unchanged).

    Examples
    --------
    >>> progressive_allocation(85, [("E", 14, 2.2), ("D", 20, 2), ("C", 26, 1.5), ("B", 40, 1.2),
    ...                              ("A", 50, 1.0)], 0.01)
    ({'E': 14.0, 'D': 20.0, 'C': 26.0}, ['B'], 1.01)
    """
    prices = sorted({float(p) for _, _, p in bids}, reverse=True)
    allocated: dict[BuyerT, float] = {}
    withdrawn: list[BuyerT] = []
    reserve = None
    used = 0.0
    covered = False
    for price in prices:
        group = [(b, float(q)) for b, q, p in bids if float(p) == price and q > 0]
        gsum = sum(q for _, q in group)
        if covered:  # outside the minimal covering set I^j(m): losers (25)
            reserve = price + epsilon if reserve is None else reserve
            continue
        if used + gsum <= remaining * (1 + 1e-12) + _TOL:
            for b, q in group:
                allocated[b] = allocated.get(b, 0.0) + q
            used += gsum
            if used >= remaining - _TOL:
                covered = True
            continue
        rest = max(remaining - used, 0.0)
        if len(group) == 1:
            withdrawn.append(group[0][0])
        else:  # tied marginal group: proportional split (5), kept
            for b, q in group:
                allocated[b] = allocated.get(b, 0.0) + q / gsum * rest
            used = remaining
        covered = True
    return allocated, withdrawn, reserve


def _buyer_bids(m: MarketArrays) -> tuple[np.ndarray, np.ndarray]:
    D = np.empty(m.n_buyers)
    P = np.empty(m.n_buyers)
    for i, v in enumerate(m.valuations):
        if isinstance(v, LinearValuation):
            D[i] = min(v.demand, m.demand[i])
        else:
            D[i] = min(v.peak, m.demand[i])
        if not math.isfinite(D[i]):
            raise InvalidInputError(
                f"buyer {m.buyers[i]!r} has no finite demand: give it a 'demand' attribute "
                f"(valuation {v!r} increases for ever)"
            )
        P[i] = float(v.marginal(D[i], side="left"))
    return D, P


def data_share_auction(G: nx.Graph, epsilon: float = 0.01, *, max_rounds: int = 10_000) -> Result:
    """Run the data-share market's opt-out buyers against progressive sellers (see module doc).

    Parameters
    ----------
    G : networkx.Graph
        A bipartite market (:func:`datamarkets.graphs.market.data_share_market`).
    epsilon : float, default 0.01
        Bid fee ε > 0 (reserve increment, and how far a bid may exceed the marginal value).
    max_rounds : int
        Round cap.

    Returns
    -------
    Result
        ``kind="auction-data-share"``, ``method="data-share"``; solution keys ``welfare``,
        ``allocation`` (per edge ``buyer``/``seller``/``amount``), ``prices``, ``reserve_prices``,
        ``bid_prices`` (last coordinated price per buyer), ``unmet`` (per buyer), ``rounds``,
        ``messages``, ``history`` (per round: the bids placed). Certificate: ``supply_excess_max``,
        ``overallocation_max`` (no buyer gets more than D_i).

    Raises
    ------
    InvalidInputError
        Bad ε, a route market, a buyer without finite demand.
    ConvergenceError
        If bids are still placed after ``max_rounds`` rounds.

    Examples
    --------
    >>> r = solve_example1(0.01)
    >>> r.solution["unmet"]
    {'A': 0.0, 'B': 0.0, 'C': 0.0, 'D': 0.0, 'E': 0.0}
    >>> r.solution["prices"]
    {'S1': 1.01, 'S2': 1.01}
    """
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    timer = Timer()
    with timer("build_seconds"):
        m = market_arrays(G)
        if m.kind != "bipartite":
            raise InvalidInputError(f"the data-share auction needs a bipartite market, got kind {m.kind!r}")
        D, P = _buyer_bids(m)
        need = D.copy()
        R = m.supply.astype(float).copy()
        reserve = np.full(m.n_sellers, float(epsilon))  # s^j(0) = (D^j, ε)
        x = np.zeros(m.n_edges)
        edge_of = {(int(m.edge_buyer[e]), int(m.edge_seller[e])): e for e in range(m.n_edges)}
        bid_price = np.zeros(m.n_buyers)
    rounds = messages = 0
    history = []
    with timer("solve_seconds"):
        while True:
            if rounds >= max_rounds:
                raise ConvergenceError("data-share auction still receiving bids", rounds)
            bids: dict[int, list[tuple[int, float, float]]] = {}
            for i in range(m.n_buyers):
                if need[i] <= _TOL * max(1.0, D[i]):
                    continue
                js = m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]
                elig = [int(j) for j in js if reserve[j] <= P[i] + epsilon + _TOL and R[j] > _TOL]
                pool, q = opt_out_pool(float(need[i]), [R[j] for j in elig])
                if not pool:
                    continue
                sel = [elig[k] for k in pool]
                price = max(P[i], max(reserve[j] for j in sel))  # coordinated equal-price bid
                bid_price[i] = price
                for j in sel:
                    bids.setdefault(j, []).append((i, q, price))
            if not bids:
                break
            rounds += 1
            history.append(
                [
                    {"buyer": m.buyers[i], "seller": m.sellers[j], "quantity": q, "price": p}
                    for j, bl in sorted(bids.items())
                    for i, q, p in bl
                ]
            )
            for j, bl in bids.items():
                messages += 2 * len(bl)
                allocated, _withdrawn, r = progressive_allocation(R[j], bl, float(epsilon))
                for i, q in allocated.items():
                    x[edge_of[(i, j)]] += q
                    need[i] -= q
                    R[j] -= q
                R[j] = max(R[j], 0.0)
                if r is not None:
                    reserve[j] = r
    # (20) read at the end: buyers left with unmet need lost; a sold-out seller's reserve is the
    # highest such bid at it + ε (a partial bidder that withdrew and found nothing more lost too).
    unmet_mask = need > _TOL * np.maximum(1.0, D)
    for j in range(m.n_sellers):
        if R[j] <= _TOL * max(1.0, m.supply[j]):
            losers = [P[i] for i in m.edge_buyer[m.edge_seller == j] if unmet_mask[i]]
            if losers:
                reserve[j] = max(reserve[j], max(losers) + epsilon)
    welfare = 0.0
    qty = np.bincount(m.edge_buyer, weights=x, minlength=m.n_buyers)
    for i, v in enumerate(m.valuations):
        welfare += float(v.value(qty[i]))
    sold = np.bincount(m.edge_seller, weights=x, minlength=m.n_sellers)
    prices = {}
    for j in range(m.n_sellers):
        won = [e for e in range(m.n_edges) if m.edge_seller[e] == j and x[e] > _TOL]
        full = sold[j] >= m.supply[j] - _TOL * max(1.0, m.supply[j])
        prices[m.sellers[j]] = float(min(bid_price[m.edge_buyer[e]] for e in won)) if won and full else 0.0
    cert = Certificate()
    cert.add("supply_excess_max", float(np.max(sold - m.supply, initial=0.0)), 1e-9 * (1 + m.supply.max()))
    cert.add("overallocation_max", float(np.max(qty - D, initial=0.0)), 1e-9 * (1 + D.max()))
    B, S = m.buyers, m.sellers
    sol = {
        "welfare": welfare,
        "allocation": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(x[e])}
            for e in range(m.n_edges)
        ],
        "prices": prices,
        "reserve_prices": {S[j]: float(reserve[j]) for j in range(m.n_sellers)},
        "bid_prices": {B[i]: float(bid_price[i]) for i in range(m.n_buyers)},
        "unmet": {
            B[i]: float(max(need[i], 0.0)) if need[i] > _TOL * max(1.0, D[i]) else 0.0
            for i in range(m.n_buyers)
        },
        "epsilon": float(epsilon),
        "rounds": rounds,
        "messages": messages,
        "history": history,
    }
    meta = provenance()
    meta.update({"n_buyers": m.n_buyers, "n_sellers": m.n_sellers, "n_edges": m.n_edges})
    return Result("auction-data-share", Status.OPTIMAL, "data-share", sol, cert, timer.seconds, meta)


def solve_example1(epsilon: float = 0.01) -> Result:
    """Example 1 of the data-share paper through :func:`data_share_auction`."""
    return data_share_auction(example1_market(), epsilon)
