r"""Allocation IO of the welfare program (see :mod:`datamarkets.formulations.welfare`): an allocation given by
name → the column vector, and a solution → the allocation rows of a result."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.market_data import MarketArrays
from datamarkets.result import Result
from datamarkets.validation import real_number

__all__ = ["WelfareResult", "allocation_vector", "write_solution"]


class WelfareResult(Result):
    """:class:`~datamarkets.result.Result` of kind ``"auction-optimum"`` (tables: allocation, prices,
    buyers; see :mod:`datamarkets.models.auction_tables`)."""


def allocation_vector(M: MarketArrays, allocation: Any) -> np.ndarray:
    """Turn an allocation into column flows.

    Accepted: a list of ``{"buyer", "seller", "amount"}`` rows (missing edges mean 0), a
    ``{(buyer, seller): amount}`` dict, or a dict with an ``"allocation"`` key holding either. On a
    route market a user's rows are per resource of its route and its flow is the smallest of them
    (the quantity it holds on the whole route); ``{"buyer": user, "amount": x}`` rows also work.

    Raises
    ------
    InvalidInputError
        Unknown buyer/seller pair, a non-finite or negative amount, a duplicate row.
    """
    if isinstance(allocation, dict) and "allocation" in allocation:
        allocation = allocation["allocation"]
    if isinstance(allocation, dict):
        items = [
            ((k[0], k[1]) if isinstance(k, list | tuple) else (k, None), v) for k, v in allocation.items()
        ]
    elif isinstance(allocation, list | tuple):
        items = []
        for row in allocation:
            if not isinstance(row, dict) or "amount" not in row or "buyer" not in row:
                raise InvalidInputError(f"allocation row {row!r} needs 'buyer', 'seller' and 'amount'")
            items.append(((row["buyer"], row.get("seller")), row["amount"]))
    else:
        raise InvalidInputError(
            f"allocation must be a list of rows or a dict, got {type(allocation).__name__}"
        )
    bkey = {b: i for i, b in enumerate(M.buyers)} | {str(b): i for i, b in enumerate(M.buyers)}
    skey = {s: j for j, s in enumerate(M.sellers)} | {str(s): j for j, s in enumerate(M.sellers)}
    if M.kind == "bipartite":
        col_seller = M.col_seller
        assert col_seller is not None  # bipartite markets have a seller per column
        cidx = {(int(M.col_buyer[e]), int(col_seller[e])): e for e in range(M.n_columns)}
    f = np.zeros(M.n_columns)
    route_amounts: dict[int, list[float]] = {}
    seen: set[Any] = set()
    for (b, s), amount in items:
        msg = f"allocation amount for {(b, s)!r} is not a number: {amount!r}"
        val = real_number(amount, "allocation amount", finite=False, message=msg)  # "0.5" is bad input
        if not math.isfinite(val) or val < 0:
            raise InvalidInputError(f"allocation amount for {(b, s)!r} must be finite and ≥ 0, got {val}")
        i = bkey.get(b)
        if i is None:
            raise InvalidInputError(f"allocation names buyer {b!r}, which is not a buyer of the market")
        j = skey.get(s) if s is not None else None
        if s is not None and j is None:
            raise InvalidInputError(f"allocation names seller {s!r}, which is not a seller of the market")
        if (i, j) in seen:
            raise InvalidInputError(f"allocation lists {(b, s)!r} twice")
        seen.add((i, j))
        if M.kind == "bipartite":
            e = cidx.get((i, j)) if j is not None else None
            if e is None:
                raise InvalidInputError(f"allocation names {(b, s)!r}, which is not an edge of the market")
            f[e] = val
        else:
            if j is not None and M.R[j, i] == 0:
                raise InvalidInputError(f"allocation names {(b, s)!r}, but {s!r} is not on {b!r}'s route")
            route_amounts.setdefault(i, []).append(val)
    for i, vals in route_amounts.items():
        f[i] = min(vals)
    return f


def _allocation_rows(M: MarketArrays, f: np.ndarray, tol: float = 0.0) -> list[dict[str, Any]]:
    """Rows ``{buyer, seller, amount}``: one per bipartite edge with flow; on a route market one
    per (user, resource of its route), each with the user's route flow."""
    rows = []
    if M.kind == "bipartite":
        for k in np.flatnonzero(f > tol):
            b, s = M.columns[k]
            rows.append({"buyer": b, "seller": s, "amount": float(f[k])})
        return rows
    Rc = M.R.tocsc()
    for k in np.flatnonzero(f > tol):
        for j in Rc.indices[Rc.indptr[k] : Rc.indptr[k + 1]]:
            rows.append({"buyer": M.buyers[k], "seller": M.sellers[int(j)], "amount": float(f[k])})
    return rows


def write_solution(
    G: nx.Graph, result: Result, *, flow: str = "flow", price: str = "price", total: str = "allocation"
) -> None:
    """Write a welfare result back onto the graph (in place): ``flow`` on bipartite edges,
    ``price`` on sellers / resources, ``total`` on buyers (users of a route market)."""
    if not result.status.has_solution:
        return
    prices = result.solution["prices"]
    for n, pr in prices.items():
        G.nodes[n][price] = pr
    if result.meta.get("market_kind") != "routes":
        for u, v in G.edges():
            G.edges[u, v][flow] = 0.0
        for row in result.solution["allocation"]:
            G.edges[row["buyer"], row["seller"]][flow] = row["amount"]
    for row in result.solution.get("buyers", []):
        G.nodes[row["buyer"]][total] = row["total"]
