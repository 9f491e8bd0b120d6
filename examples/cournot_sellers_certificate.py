r"""Cournot sellers, part 3: the solution writer and the certificate.

:func:`cournot_solution` writes a quantity vector as plain JSON rows (quantities per edge,
sellers with their capacity price ``λ_s``, markets with their price) and the scalars (the
potential Φ as ``objective``, welfare, consumer surplus, profits). :func:`certify_cournot`
trusts nothing but the instance and the claimed quantities: with ``λ_s = max(0, max_b m_sb)``
(:func:`capacity_prices`) it measures feasibility, the complementarity conditions
``0 ≤ q_sb ⟂ λ_s − m_sb ≥ 0``, ``0 ≤ λ_s ⟂ k_s − q_s ≥ 0`` and every seller's best-response gap,
relative to the data's price and quantity scales. Read with ``docs/writing-a-formulation.md``
§4.4–4.5; the model is in :mod:`datamarkets.examples.cournot_sellers`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.examples.cournot_sellers_model import (
    CournotArrays,
    best_response,
    cournot_arrays,
    marginal_profits,
    potential,
    seller_profits,
)
from datamarkets.result import Certificate, Result

__all__ = [
    "CERTIFY_TOL",
    "CournotResult",
    "best_response_gaps",
    "capacity_prices",
    "certify_cournot",
    "cournot_solution",
    "quantity_vector",
]


# ------------------------------------------------------------------------- 4. solution writer
def _seller_max(A: CournotArrays, v: np.ndarray) -> np.ndarray:
    out = np.full(len(A.sellers), -np.inf)
    np.maximum.at(out, A.seller_of, v)
    return out


def capacity_prices(A: CournotArrays, q: np.ndarray) -> np.ndarray:
    """λ_s recovered from quantities: ``max(0, max_b m_sb)`` for a finite capacity, else 0.

    This is the smallest multiplier that makes every edge dual feasible (``λ_s ≥ m_sb``); at the
    equilibrium it is the shadow price of the seller's capacity.
    """
    return np.where(np.isfinite(A.k), np.maximum(_seller_max(A, marginal_profits(A, q)), 0.0), 0.0)


def cournot_solution(A: CournotArrays, q: np.ndarray) -> dict[str, Any]:
    """Write quantities per edge as the solution dict of a ``"cournot-equilibrium"`` result.

    Returns
    -------
    dict
        ``quantities`` (rows seller, buyer, quantity), ``sellers`` (seller, output, capacity,
        capacity_price, profit), ``markets`` (buyer, quantity, price), and the scalars
        ``objective`` (the potential Φ), ``welfare`` (consumer surplus + profits),
        ``consumer_surplus`` and ``total_profit``.
    """
    Q, X = A.B @ q, A.S @ q
    price, profit, lam = A.a - A.b * Q, seller_profits(A, q), capacity_prices(A, q)
    consumer_surplus = float(A.b @ (Q * Q) / 2)
    return {
        "quantities": [
            {"seller": A.sellers[int(s)], "buyer": A.markets[int(j)], "quantity": float(x)}
            for s, j, x in zip(A.seller_of, A.market_of, q, strict=True)
        ],
        "sellers": [
            {
                "seller": name,
                "output": float(X[i]),
                "capacity": float(A.k[i]) if math.isfinite(A.k[i]) else None,
                "capacity_price": float(lam[i]),
                "profit": float(profit[i]),
            }
            for i, name in enumerate(A.sellers)
        ],
        "markets": [
            {"buyer": name, "quantity": float(Q[j]), "price": float(price[j])}
            for j, name in enumerate(A.markets)
        ],
        "objective": potential(A, q),
        "welfare": consumer_surplus + float(profit.sum()),
        "consumer_surplus": consumer_surplus,
        "total_profit": float(profit.sum()),
    }


class CournotResult(Result):
    """A ``"cournot-equilibrium"`` :class:`~datamarkets.result.Result`.

    Its row lists become tidy tables through the framework's generic converter:
    ``to_frame("quantities" | "sellers" | "markets")``, plus ``"summary"`` and ``"certificate"``
    like every result (also after :meth:`Result.from_dict`).
    """


# ----------------------------------------------------------------------------- 5. certificate
CERTIFY_TOL = 1e-6
"""Tolerance of every relative residual of :func:`certify_cournot` (claimed values: 1e-9)."""


def quantity_vector(A: CournotArrays, solution: Mapping[str, Any]) -> np.ndarray:
    """Quantities per edge from a solution's ``quantities`` rows (a missing edge means 0).

    Raises
    ------
    InvalidInputError
        No ``quantities`` list, a row naming a pair that is not an edge, a duplicate row, or a
        quantity that is not a finite number.
    """
    rows = solution.get("quantities")
    if not isinstance(rows, list):
        raise InvalidInputError("a cournot-equilibrium solution needs a 'quantities' list")
    index = {
        (A.sellers[int(s)], A.markets[int(j)]): e
        for e, (s, j) in enumerate(zip(A.seller_of, A.market_of, strict=True))
    }
    q, seen = np.zeros(A.n_edges), set()
    for row in rows:
        if not isinstance(row, Mapping) or not {"seller", "buyer", "quantity"} <= set(row):
            raise InvalidInputError(f"quantity row {row!r} needs 'seller', 'buyer' and 'quantity'")
        key = (row["seller"], row["buyer"])
        if key not in index:
            raise InvalidInputError(f"quantity row names {key!r}, which is not a seller–buyer edge")
        if key in seen:
            raise InvalidInputError(f"duplicate quantity row for edge {key!r}")
        seen.add(key)
        v = row["quantity"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InvalidInputError(f"quantity of edge {key!r} must be a finite number, got {v!r}")
        q[index[key]] = float(v)
    return q


def best_response_gaps(A: CournotArrays, q: np.ndarray) -> np.ndarray:
    """``π_s(best response to q_{-s}) − π_s(q)`` per seller (≥ 0 at a feasible equilibrium)."""
    Q = A.B @ q
    gaps = np.zeros(len(A.sellers))
    for s in range(len(A.sellers)):
        lo, hi = int(A.seller_ptr[s]), int(A.seller_ptr[s + 1])
        if hi == lo:
            continue
        mk, own = A.market_of[lo:hi], q[lo:hi]
        a_net, slope = A.a[mk] - A.b[mk] * (Q[mk] - own) - A.c[s], A.b[mk]

        def profit(x: np.ndarray, s: int = s, a_net: np.ndarray = a_net, slope: np.ndarray = slope) -> float:
            X = float(x.sum())
            return float((a_net - slope * x) @ x) - A.d[s] * X * X / 2

        gaps[s] = profit(best_response(a_net, slope, float(A.d[s]), float(A.k[s]))) - profit(own)
    return gaps


def certify_cournot(
    G: nx.Graph | CournotArrays, solution: Mapping[str, Any], tol: float = CERTIFY_TOL
) -> Certificate:
    """Certify a Cournot equilibrium from the instance and the solution's quantities alone.

    With ``P̄`` the price scale and ``q̄`` the quantity scale of :class:`CournotArrays`, marginal
    profits ``m_sb`` and ``λ_s`` = :func:`capacity_prices`, the residuals (each ≤ ``tol``) are:

    ``nonnegativity``            max(−q_sb, 0) / q̄
    ``capacity``                 max(q_s − k_s, 0) / q̄
    ``dual_feasibility``         max(m_sb − λ_s, 0) / P̄           (no profitable expansion)
    ``complementarity_quantity`` max q_sb |λ_s − m_sb| / (P̄ q̄)    (sold edges are marginal)
    ``complementarity_capacity`` max λ_s (k_s − q_s)⁺ / (P̄ q̄)     (priced capacity is full)
    ``best_response_gap``        max (π_s(BR_s) − π_s(q)) / (P̄ q̄) (no profitable deviation)

    and, where the solution claims them, ``claimed_prices``, ``claimed_profits``,
    ``claimed_objective``, ``claimed_sellers`` (outputs, capacities, capacity prices),
    ``claimed_market_quantities``, ``claimed_welfare``, ``claimed_consumer_surplus`` and
    ``claimed_total_profit`` against values recomputed from the quantities (tolerance 1e-9).

    Raises
    ------
    InvalidInputError
        Malformed quantities (:func:`quantity_vector`).

    Examples
    --------
    >>> from datamarkets.examples.cournot_sellers_model import symmetric_cournot_graph
    >>> G = symmetric_cournot_graph(2, a=10, b=1, c=1)
    >>> rows = [{"seller": s, "buyer": "m0", "quantity": 3.0} for s in ("s0", "s1")]
    >>> certify_cournot(G, {"quantities": rows}).passed
    True
    >>> rows[0]["quantity"] = 3.1
    >>> sorted(certify_cournot(G, {"quantities": rows}).failures)
    ['best_response_gap', 'complementarity_quantity']
    """
    A = G if isinstance(G, CournotArrays) else cournot_arrays(G)
    q = quantity_vector(A, solution)
    P_bar, q_bar = A.price_scale, A.quantity_scale
    m, X, lam = marginal_profits(A, q), A.S @ q, capacity_prices(A, q)
    fin = np.isfinite(A.k)
    slack = np.where(fin, A.k - X, np.inf)
    comp_q = np.maximum(q, 0.0) * np.abs(lam[A.seller_of] - m)
    gaps = best_response_gaps(A, q)
    cert = Certificate()
    cert.add("nonnegativity", float(np.max(-q, initial=0.0)) / q_bar, tol)
    cert.add("capacity", float(np.max(-slack[fin], initial=0.0)) / q_bar, tol)
    cert.add("dual_feasibility", float(np.max(m - lam[A.seller_of], initial=0.0)) / P_bar, tol)
    cert.add("complementarity_quantity", float(np.max(comp_q, initial=0.0)) / (P_bar * q_bar), tol)
    comp_k = lam[fin] * np.maximum(slack[fin], 0.0)
    cert.add("complementarity_capacity", float(np.max(comp_k, initial=0.0)) / (P_bar * q_bar), tol)
    cert.add("best_response_gap", float(np.max(gaps, initial=0.0)) / (P_bar * q_bar), tol)
    _check_claims(A, q, solution, cert)
    worst, e_max = int(np.argmax(gaps)), int(np.argmax(comp_q))
    cert.details.update(
        price_scale=P_bar,
        quantity_scale=q_bar,
        binding_capacities=int(np.sum(fin & (slack <= tol * q_bar))),
        worst_best_response_seller=A.sellers[worst],
        worst_complementarity_edge=[A.sellers[int(A.seller_of[e_max])], A.markets[int(A.market_of[e_max])]],
    )
    return cert


def _check_claims(A: CournotArrays, q: np.ndarray, solution: Mapping[str, Any], cert: Certificate) -> None:
    """Compare claimed prices, profits and objective with values recomputed from ``q``."""
    scale = A.price_scale * A.quantity_scale
    price = dict(zip(A.markets, A.a - A.b * (A.B @ q), strict=True))
    profit = dict(zip(A.sellers, seller_profits(A, q), strict=True))
    try:
        if isinstance(solution.get("markets"), list):
            err = [abs(float(r["price"]) - price[r["buyer"]]) for r in solution["markets"]]
            cert.add("claimed_prices", max(err, default=0.0) / A.price_scale, 1e-9)
        if isinstance(solution.get("sellers"), list):
            err = [abs(float(r["profit"]) - profit[r["seller"]]) for r in solution["sellers"]]
            cert.add("claimed_profits", max(err, default=0.0) / scale, 1e-9)
        if solution.get("objective") is not None:
            phi = potential(A, q)
            cert.add(
                "claimed_objective", abs(float(solution["objective"]) - phi) / max(scale, abs(phi)), 1e-9
            )
        _check_other_claims(A, q, solution, cert)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"malformed claimed markets/sellers/objective in the solution: {exc!r}"
        ) from exc


def _check_other_claims(
    A: CournotArrays, q: np.ndarray, solution: Mapping[str, Any], cert: Certificate
) -> None:
    """The solution writer's other numbers, recomputed from ``q`` by :func:`cournot_solution`:
    sellers' outputs, capacities and capacity prices (``claimed_sellers``, relative to the
    quantity and price scales), markets' total quantities (``claimed_market_quantities``), welfare,
    consumer surplus and total profit (relative to ``P̄ q̄``); tolerance 1e-9, rows matched by name."""
    ref = cournot_solution(A, q)
    q_bar, scale = A.quantity_scale, A.price_scale * A.quantity_scale
    if isinstance(solution.get("sellers"), list):
        by = {r["seller"]: r for r in ref["sellers"]}
        err = [0.0]
        for r in solution["sellers"]:
            t = by[r["seller"]]
            cap, cap_true = r.get("capacity"), t["capacity"]  # None: no capacity
            if (cap is None) != (cap_true is None):
                err.append(math.inf)
            elif cap_true is not None:
                err.append(abs(float(cap) - cap_true) / q_bar)
            err.append(abs(float(r["output"]) - t["output"]) / q_bar)
            err.append(abs(float(r["capacity_price"]) - t["capacity_price"]) / A.price_scale)
        cert.add("claimed_sellers", max(err), 1e-9)
    if isinstance(solution.get("markets"), list):
        byq = {r["buyer"]: r["quantity"] for r in ref["markets"]}
        err = [abs(float(r["quantity"]) - byq[r["buyer"]]) / q_bar for r in solution["markets"]]
        cert.add("claimed_market_quantities", max(err, default=0.0), 1e-9)
    for key in ("welfare", "consumer_surplus", "total_profit"):
        if solution.get(key) is not None:
            v = float(ref[key])
            cert.add(f"claimed_{key}", abs(float(solution[key]) - v) / max(scale, abs(v)), 1e-9)
