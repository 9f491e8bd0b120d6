r"""The one array view of an auction market: :class:`MarketArrays`, read off a market graph by
:func:`market_arrays` and used by every route (welfare program, KKT residuals, KKT-MILP, auction
certificates, the auction LQ game, PSP dynamics and their certificates).

Edge order (one for every route). Buyers and sellers are numbered in graph node order
(:func:`~datamarkets.graphs.market_validation.buyers`, :func:`~datamarkets.graphs.market_validation.sellers`).
Edge e joins buyer ``edge_buyer[e]`` and seller ``edge_seller[e]``; edges are sorted by buyer index,
then by seller index (CSR by buyer: the edges of buyer i are ``buyer_ptr[i]:buyer_ptr[i+1]``),
whatever the order of ``G.edges()``.

Flow columns (the variables of the welfare program). On a bipartite market column e is edge e
(``columns[e] = (buyer, seller)``); on a route market each user has one column (``columns[i]`` is
buyer i) that loads every resource of its route. ``B`` (buyer × column) and ``R`` (seller × column)
are the incidence matrices: ``x = B f`` and ``R f ≤ supply``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import GraphError
from datamarkets.graphs.market_validation import validate_market
from datamarkets.graphs.valuations import (
    PiecewiseLinearValuation,
    QuadraticValuation,
    Valuation,
    as_valuation,
    stack_quadratic,
)

__all__ = ["MarketArrays", "market_arrays"]


@dataclass
class MarketArrays:
    """A validated market as flat arrays; edges sorted by buyer (CSR), then by seller index.

    Attributes
    ----------
    kind : str
        ``"bipartite"`` or ``"routes"``.
    buyers, sellers : list
        Node names in graph order; positions are the indices used below.
    valuations : list of Valuation
        θ_i per buyer (dicts already parsed by :func:`~datamarkets.graphs.valuations.as_valuation`).
    supply : ndarray (S,)
        D^j (capacity for resources).
    demand, budget : ndarray (B,)
        D_i and b_i, ``inf`` where the attribute is missing.
    edge_buyer, edge_seller : ndarray (E,) of int
        Endpoints of edge e (buyer index, seller index), sorted by buyer then seller.
    buyer_ptr : ndarray (B+1,)
        Edges of buyer i are ``edge_buyer[buyer_ptr[i]:buyer_ptr[i+1]]``.
    buyer_index, seller_index : dict
        Node name → index.
    routes : list of list, optional
        Route of every user (route markets only).
    """

    kind: str
    buyers: list[Hashable]
    sellers: list[Hashable]
    valuations: list[Valuation]
    supply: np.ndarray
    demand: np.ndarray
    budget: np.ndarray
    edge_buyer: np.ndarray
    edge_seller: np.ndarray
    buyer_ptr: np.ndarray
    buyer_index: dict[Hashable, int] = field(default_factory=dict)
    seller_index: dict[Hashable, int] = field(default_factory=dict)
    routes: list[list[Any]] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_buyers(self) -> int:
        return len(self.buyers)

    @property
    def n_sellers(self) -> int:
        return len(self.sellers)

    @property
    def n_edges(self) -> int:
        return int(self.edge_buyer.size)

    def quadratic_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Arrays ``(a, b)`` when every buyer is quadratic, else :class:`InvalidInputError`."""
        return stack_quadratic(self.valuations)

    # ------------------------------------------------------------------ flow columns
    @property
    def n_columns(self) -> int:
        """Number of flow columns: edges (bipartite) or users (routes)."""
        return self.n_buyers if self.kind == "routes" else self.n_edges

    @property
    def columns(self) -> list[Any]:
        """Key of every flow column: ``(buyer, seller)`` (bipartite) or the user (routes)."""
        if "columns" not in self._cache:
            if self.kind == "routes":
                self._cache["columns"] = list(self.buyers)
            else:
                B, S = self.buyers, self.sellers
                eb, es = self.edge_buyer.tolist(), self.edge_seller.tolist()
                self._cache["columns"] = [(B[i], S[j]) for i, j in zip(eb, es, strict=True)]
        return self._cache["columns"]

    @property
    def col_buyer(self) -> np.ndarray:
        """Buyer index of every flow column."""
        return np.arange(self.n_buyers, dtype=np.int64) if self.kind == "routes" else self.edge_buyer

    @property
    def col_seller(self) -> np.ndarray | None:
        """Seller index of every flow column (bipartite), None on route markets."""
        return None if self.kind == "routes" else self.edge_seller

    @property
    def B(self) -> sp.csr_array:
        """Buyer × column incidence: ``x = B @ f``."""
        if "B" not in self._cache:
            E = self.n_columns
            if self.kind == "routes":
                self._cache["B"] = sp.csr_array(sp.identity(E, format="csr"))
            else:
                self._cache["B"] = sp.csr_array(
                    (np.ones(E), (self.edge_buyer, np.arange(E))), shape=(self.n_buyers, E)
                )
        return self._cache["B"]

    @property
    def R(self) -> sp.csr_array:
        """Seller (resource) × column incidence: ``R @ f ≤ supply``."""
        if "R" not in self._cache:
            E = self.n_columns
            cols = self.edge_buyer if self.kind == "routes" else np.arange(E)
            self._cache["R"] = sp.csr_array(
                (np.ones(self.n_edges), (self.edge_seller, cols)), shape=(self.n_sellers, E)
            )
        return self._cache["R"]

    # ------------------------------------------------------------------ valuation families
    def kinds(self) -> set[str]:
        """Program families of the buyers' valuations (``Valuation.family``)."""
        return {v.family for v in self.valuations}

    def quad_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Index, ``a`` and ``b`` arrays of the quadratic buyers."""
        if "quad" not in self._cache:
            quad = [(i, v) for i, v in enumerate(self.valuations) if isinstance(v, QuadraticValuation)]
            idx = np.array([i for i, _ in quad], dtype=np.int64)
            a = np.array([v.a for _, v in quad], dtype=float)
            b = np.array([v.b for _, v in quad], dtype=float)
            self._cache["quad"] = (idx, a, b)
        return self._cache["quad"]

    def segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Buyer index, slope and length of every piecewise-linear segment (buyer order)."""
        if "seg" not in self._cache:
            owner: list[int] = []
            slope: list[float] = []
            length: list[float] = []
            for i, v in enumerate(self.valuations):
                if isinstance(v, PiecewiseLinearValuation):
                    s, L = v.slopes, v.lengths
                    owner += [i] * len(s)
                    slope += list(s)
                    length += list(L)
            self._cache["seg"] = (
                np.asarray(owner, dtype=np.int64),
                np.asarray(slope, dtype=float),
                np.asarray(length, dtype=float),
            )
        return self._cache["seg"]

    def max_marginal(self) -> np.ndarray:
        """θ_i'(0) per buyer."""
        return np.array([v.marginal_at_zero for v in self.valuations], dtype=float)


def _attr_number(data: dict[str, Any], key: str, what: str, node: Any, *, required: bool = True) -> float:
    # the checks for markets with non-default attribute names (validate_market does the rest)
    if key not in data or data[key] is None:
        if required:
            raise GraphError(f"{what} {node!r} has no {key!r}")
        return math.inf
    try:
        x = float(data[key])
    except (TypeError, ValueError):
        raise GraphError(f"{what} {node!r} has non-numeric {key!r}: {data[key]!r}") from None
    if not math.isfinite(x) or x < 0:
        raise GraphError(f"{what} {node!r} has invalid {key!r} {x} (must be finite and ≥ 0)")
    return x


def market_arrays(
    G: nx.Graph,
    *,
    validate: bool = True,
    role: str = "role",
    supply: str = "supply",
    valuation: str = "valuation",
    demand: str = "demand",
) -> MarketArrays:
    """Flatten a market graph into :class:`MarketArrays` (validating it first by default).

    Parameters
    ----------
    G : networkx.Graph
        The market (:mod:`datamarkets.graphs.market`).
    validate : bool, default True
        Run :func:`~datamarkets.graphs.market_validation.validate_market` first (default attribute
        names only; with other names the roles, supplies, demands and edges are checked here).
    role, supply, valuation, demand : str
        Node attribute names.

    Returns
    -------
    MarketArrays

    Raises
    ------
    GraphError
        Unknown roles, missing/negative supplies, buyer–buyer edges, bad routes, empty market.
    InvalidInputError
        A malformed valuation (parsed by :func:`~datamarkets.graphs.valuations.as_valuation`).

    Examples
    --------
    >>> from datamarkets.graphs.market import example1_market
    >>> m = market_arrays(example1_market())
    >>> m.n_buyers, m.n_sellers, m.n_edges, m.supply.tolist()
    (5, 2, 10, [65.0, 85.0])
    """
    if not isinstance(G, nx.Graph):
        raise GraphError(f"expected a networkx graph, got {type(G).__name__}")
    if G.number_of_nodes() == 0:
        raise GraphError("market graph is empty")
    default_names = (role, supply, valuation, demand) == ("role", "supply", "valuation", "demand")
    if validate and default_names:
        validate_market(G)
    kind = G.graph.get("kind", "bipartite")
    if kind not in ("bipartite", "routes"):
        raise GraphError(f"unknown market kind {kind!r} (expected 'bipartite' or 'routes')")
    B: list[Hashable] = []
    S: list[Hashable] = []
    for n, r in G.nodes(data=role):
        if r == "buyer":
            B.append(n)
        elif r == "seller":
            S.append(n)
        else:
            raise GraphError(f"node {n!r} has unknown role {r!r} (expected 'buyer' or 'seller')")
    if not B or not S:
        raise GraphError(f"market needs at least one buyer and one seller, got {len(B)} and {len(S)}")
    bi = {b: i for i, b in enumerate(B)}
    si = {s: j for j, s in enumerate(S)}
    eb, es = [], []
    for u, v in G.edges():
        if u in si and v in bi:
            u, v = v, u
        elif not (u in bi and v in si):
            raise GraphError(f"edge {(u, v)!r} does not join a buyer and a seller")
        eb.append(bi[u])
        es.append(si[v])
    eb_a = np.asarray(eb, dtype=np.int64)
    es_a = np.asarray(es, dtype=np.int64)
    order = np.lexsort((es_a, eb_a))
    eb_a, es_a = eb_a[order], es_a[order]
    ptr = np.zeros(len(B) + 1, dtype=np.int64)
    np.add.at(ptr, eb_a + 1, 1)
    ptr = np.cumsum(ptr)
    nodes = G.nodes
    vals = []
    for b in B:
        if nodes[b].get(valuation) is None:
            raise GraphError(f"buyer {b!r} has no {valuation!r}")
        vals.append(as_valuation(nodes[b][valuation]))
    return MarketArrays(
        kind=kind,
        buyers=B,
        sellers=S,
        valuations=vals,
        supply=np.array([_attr_number(nodes[s], supply, "seller", s) for s in S], dtype=float),
        demand=np.array([_attr_number(nodes[b], demand, "buyer", b, required=False) for b in B], dtype=float),
        budget=np.array(
            [_attr_number(nodes[b], "budget", "buyer", b, required=False) for b in B], dtype=float
        ),
        edge_buyer=eb_a,
        edge_seller=es_a,
        buyer_ptr=ptr,
        buyer_index=bi,
        seller_index=si,
        routes=[list(nodes[b].get("route", [])) for b in B] if kind == "routes" else None,
    )
