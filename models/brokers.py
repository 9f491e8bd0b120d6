r"""Brokers joining two market subsets (Theorem 1 of the data-share paper).

Two separate markets Δ^j and Δ^k clear at different prices. A broker buys a quantity T at seller
``seller_a`` of the cheap market and resells it at seller ``seller_b`` of the dear one: the supplies
become D^a − T and D^b + T. It keeps trading while the two sellers' prices differ by more than ε
(the broker's profit margin), p^b(T) − p^a(T) > ε. The gap is non-increasing in T (less supply in
Δ^j cannot lower its price, more supply in Δ^k cannot raise its price), so the broker's final
trade is the smallest T with gap ≤ ε, found here by bisection on T ∈ [0, D^a] to a quantity
tolerance; every evaluation re-runs the market's own auction on both subsets. With the gap closed
to ε the joined market Δ* = Δ^j ∪ Δ^k has (up to ε) one price, so its welfare approaches the
optimum of the joined market (the paper's "squeeze" of reserve prices).

Auctions: ``"data-share"`` (:func:`~datamarkets.models.data_share.data_share_auction`, price =
reserve price (20)) or ``"psp"`` (:func:`~datamarkets.models.psp_dynamics.psp_dynamics`, price =
lowest winning bid of a sold-out seller).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import networkx as nx

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.market import validate_market
from datamarkets.models.data_share import data_share_auction
from datamarkets.models.psp_dynamics import psp_dynamics
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.status import Status

__all__ = ["broker_experiment", "market_price_of"]


def market_price_of(G: nx.Graph, seller: Hashable, auction: str, epsilon: float) -> tuple[float, float]:
    """Run ``auction`` on ``G``; return (price at ``seller``, welfare)."""
    if auction == "data-share":
        r = data_share_auction(G, epsilon)
        return float(r.solution["reserve_prices"][seller]), float(r.solution["welfare"])
    if auction == "psp":
        r = psp_dynamics(G, epsilon, relative=False)
        return float(r.solution["prices"][seller]), float(r.solution["welfare"])
    raise InvalidInputError(f"unknown auction {auction!r}; use 'data-share' or 'psp'")


def _with_supply(G: nx.Graph, seller: Hashable, supply: float) -> nx.Graph:
    H = G.copy()
    H.nodes[seller]["supply"] = max(float(supply), 0.0)
    return H


def broker_experiment(
    market_a: nx.Graph,
    market_b: nx.Graph,
    seller_a: Hashable,
    seller_b: Hashable,
    epsilon: float = 0.01,
    *,
    auction: str = "data-share",
    auction_epsilon: float | None = None,
    quantity_tol: float = 1e-6,
    max_evaluations: int = 200,
) -> Result:
    """Let a broker move data from ``seller_a`` (market A) to ``seller_b`` (market B) until the
    two sellers' prices differ by at most ε.

    Parameters
    ----------
    market_a, market_b : networkx.Graph
        Two separate markets (node names must not overlap).
    seller_a, seller_b : hashable
        The broker's seller in each market; price at ``seller_a`` must be the lower one (else no
        trade: the broker would buy dear and sell cheap).
    epsilon : float
        The broker's margin ε: it trades while p^b − p^a > ε.
    auction : {"data-share", "psp"}
        Mechanism clearing each market.
    auction_epsilon : float, optional
        Bid fee of the auctions (default ε/4, so that auction prices are finer than the margin).
    quantity_tol : float
        Bisection tolerance on the traded quantity T, relative to D^a.
    max_evaluations : int
        Cap on auction pairs run.

    Returns
    -------
    Result
        ``kind="broker-experiment"``, ``method=f"broker-{auction}"``; solution: ``traded`` T,
        ``price_gap_before``, ``price_gap_after``, ``prices_before``/``prices_after`` (seller →
        price), ``welfare_before`` (sum of the separate markets), ``welfare_after``,
        ``broker_profit`` (≈ T · gap), ``evaluations``, ``history`` (T, p^a, p^b per evaluation).
        Certificate: ``price_gap_over_eps`` = max(gap − ε, 0) ≤ 0.

    Raises
    ------
    GraphError
        Overlapping node names or unknown sellers.
    InvalidInputError
        Bad ε or auction.
    """
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    validate_market(market_a)
    validate_market(market_b)
    clash = set(market_a) & set(market_b)
    if clash:
        raise GraphError(f"markets share node names {sorted(map(str, clash))!r}; they must be separate")
    for G, s, name in ((market_a, seller_a, "A"), (market_b, seller_b, "B")):
        if s not in G or G.nodes[s].get("role") != "seller":
            raise GraphError(f"{s!r} is not a seller of market {name}")
    aeps = float(auction_epsilon) if auction_epsilon is not None else epsilon / 4
    Da = float(market_a.nodes[seller_a]["supply"])
    Db = float(market_b.nodes[seller_b]["supply"])
    timer = Timer()
    history = []

    def evaluate(T: float) -> tuple[float, float, float, float]:
        pa, wa = market_price_of(_with_supply(market_a, seller_a, Da - T), seller_a, auction, aeps)
        pb, wb = market_price_of(_with_supply(market_b, seller_b, Db + T), seller_b, auction, aeps)
        history.append({"traded": T, "price_a": pa, "price_b": pb, "welfare": wa + wb})
        return pa, pb, wa, wb

    with timer("solve_seconds"):
        pa0, pb0, wa0, wb0 = evaluate(0.0)
        lo, hi = 0.0, Da
        if pb0 - pa0 <= epsilon:
            T = 0.0
        else:
            pa1, pb1, *_ = evaluate(Da)
            if pb1 - pa1 > epsilon:
                T = Da  # the broker buys all of seller a's data and the gap is still open
            else:  # smallest T with gap(T) ≤ ε: invariant gap(lo) > ε ≥ gap(hi)
                while hi - lo > quantity_tol * max(Da, 1.0) and len(history) < max_evaluations:
                    mid = 0.5 * (lo + hi)
                    pa, pb, *_ = evaluate(mid)
                    if pb - pa > epsilon:
                        lo = mid
                    else:
                        hi = mid
                T = hi
        paT, pbT, waT, wbT = evaluate(T)
    gap = pbT - paT
    cert = Certificate()
    cert.add("price_gap_over_eps", max(gap - epsilon, 0.0), 1e-12)
    sol = {
        "traded": T,
        "price_gap_before": pb0 - pa0,
        "price_gap_after": gap,
        "prices_before": {seller_a: pa0, seller_b: pb0},
        "prices_after": {seller_a: paT, seller_b: pbT},
        "welfare_before": wa0 + wb0,
        "welfare_after": waT + wbT,
        "broker_profit": T * gap,
        "epsilon": float(epsilon),
        "auction": auction,
        "evaluations": len(history),
        "history": history,
    }
    return Result(
        "broker-experiment", Status.OPTIMAL, f"broker-{auction}", sol, cert, timer.seconds, provenance()
    )
