r"""Market graphs for PSP auctions: single resource, bipartite data-share market, routes.

A market is an undirected :class:`networkx.Graph` whose nodes carry a ``role``:

- ``"seller"`` (a resource): ``supply`` D^j ≥ 0 (data for sale, or a link's capacity). In a route
  market a seller also has ``link`` = ``(u, v)``, the network edge it stands for.
- ``"buyer"`` (a user): ``valuation`` θ_i (a :class:`~datamarkets.graphs.valuations.Valuation` or
  its JSON dict), optional ``demand`` D_i > 0 (cap on the total quantity bought) and ``budget``
  b_i ≥ 0 (cap on the total payment; missing = unlimited). In a route market a buyer also has
  ``route``, the list of network nodes of its path.

An edge buyer–seller means that the buyer may bid at that seller. Graph attribute ``kind`` is
``"bipartite"`` (a buyer splits its quantity freely across its sellers: x_i = Σ_j x_ij) or
``"routes"`` (draft §1.1: a user needs the *same* quantity on every resource of its route). A single
resource is the bipartite market with one seller.

This module holds the builders; it re-exports the rest of the market data model, which lives in
three modules: :mod:`~datamarkets.graphs.market_validation` (:func:`validate_market`, run at the door
of every function here and of every solver), :mod:`~datamarkets.graphs.market_data` (the one array
view :class:`MarketArrays` and :func:`market_arrays`, edges sorted by buyer then seller) and
:mod:`~datamarkets.graphs.market_io` (node-link JSON and GraphML files).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.market_data import MarketArrays, market_arrays
from datamarkets.graphs.market_io import (
    market_from_dict,
    market_to_dict,
    read_market_graphml,
    read_market_json,
    write_market_graphml,
    write_market_json,
)
from datamarkets.graphs.market_validation import buyers, link_key, real_number, sellers, validate_market
from datamarkets.graphs.valuations import (
    AlphaFairValuation,
    LinearValuation,
    QuadraticValuation,
    Valuation,
    as_valuation,
)
from datamarkets.validation import check_seed

__all__ = [
    "MarketArrays",
    "buyers",
    "data_share_market",
    "example1_market",
    "market_arrays",
    "market_from_dict",
    "market_to_dict",
    "random_bipartite_market",
    "read_market_graphml",
    "read_market_json",
    "route_network",
    "sellers",
    "single_resource",
    "validate_market",
    "write_market_graphml",
    "write_market_json",
]


# ------------------------------------------------------------------------------ builders
def _buyer_attrs(name: Hashable, spec: Any) -> dict[str, Any]:
    if isinstance(spec, Valuation):
        return {"valuation": spec}
    if isinstance(spec, Mapping):
        if "kind" in spec:
            return {"valuation": as_valuation(spec)}
        attrs = dict(spec)
        if "valuation" not in attrs:
            raise GraphError(f"buyer {name!r} has no 'valuation'")
        attrs["valuation"] = as_valuation(attrs["valuation"])
        return attrs
    raise GraphError(f"buyer {name!r}: expected a valuation or an attribute dict, got {spec!r}")


def data_share_market(
    buyers: Mapping[Hashable, Any],
    sellers: Mapping[Hashable, float],
    edges: Iterable[tuple[Hashable, Hashable]] | None = None,
) -> nx.Graph:
    """Bipartite data-share market (complete bipartite unless ``edges`` is given).

    Parameters
    ----------
    buyers : mapping
        Buyer name → a valuation, a valuation dict (``{"kind": ...}``) or an attribute dict
        ``{"valuation": ..., "demand": ..., "budget": ...}``.
    sellers : mapping
        Seller name → supply D^j.
    edges : iterable of (buyer, seller), optional
        Who may bid where; default every buyer at every seller.

    Raises
    ------
    GraphError
        Name clashes, unknown endpoints, or anything :func:`validate_market` rejects.

    Examples
    --------
    >>> G = data_share_market({"x": {"kind": "quadratic", "a": 2, "b": 1}}, {"s": 1.0})
    >>> sorted(G.edges())
    [('x', 's')]
    """
    clash = set(buyers) & set(sellers)
    if clash:
        raise GraphError(f"names {sorted(map(str, clash))!r} are used for both a buyer and a seller")
    G = nx.Graph(kind="bipartite")
    for b, spec in buyers.items():
        G.add_node(b, role="buyer", **_buyer_attrs(b, spec))
    for s, supply in sellers.items():
        G.add_node(s, role="seller", supply=supply)
    if edges is None:
        G.add_edges_from((b, s) for b in buyers for s in sellers)
    else:
        for b, s in edges:
            if b not in buyers or s not in sellers:
                raise GraphError(f"edge {(b, s)!r} must join a known buyer and a known seller")
            G.add_edge(b, s)
    validate_market(G)
    return G


def single_resource(supply: float, valuations: Sequence[Any] | Mapping[Hashable, Any]) -> nx.Graph:
    """One seller ``"s0"`` with ``supply`` and buyers ``"b0", "b1", ...`` (or the mapping's keys).

    Examples
    --------
    >>> G = single_resource(1.0, [QuadraticValuation(2, 1), QuadraticValuation(3, 1)])
    >>> sorted(G.nodes())
    ['b0', 'b1', 's0']
    """
    if not isinstance(valuations, Mapping):
        valuations = {f"b{i}": v for i, v in enumerate(valuations)}
    return data_share_market(valuations, {"s0": supply})


def example1_market() -> nx.Graph:
    """Example 1 of the data-share paper (Table 1): five "demand @ unit price" buyers, two sellers.

    Buyers A–E bid 50 @ 1, 40 @ 1.2, 26 @ 1.5, 20 @ 2, 14 @ 2.2 (:class:`LinearValuation`);
    sellers ``"S1"`` and ``"S2"`` offer 65 and 85; complete bipartite.
    """
    table1 = {"A": (50, 1.0), "B": (40, 1.2), "C": (26, 1.5), "D": (20, 2.0), "E": (14, 2.2)}
    G = data_share_market(
        {name: LinearValuation(unit_price=p, demand=d) for name, (d, p) in table1.items()},
        {"S1": 65.0, "S2": 85.0},
    )
    G.graph["name"] = "example1"
    return G


def random_bipartite_market(
    n_buyers: int,
    n_sellers: int,
    edges_per_buyer: int = 5,
    seed: int | None = None,
    valuation: str = "quadratic",
    supply_scale: float = 1.0,
) -> nx.Graph:
    """Random bipartite market: each buyer bids at ``min(edges_per_buyer, n_sellers)`` distinct
    sellers drawn uniformly.

    Valuations (all parameters uniform): ``"quadratic"`` a ∈ [1, 3], b ∈ [0.5, 2];
    ``"alpha_fair"`` σ ∈ [1, 3], α ∈ [0.5, 2], offset 1; ``"linear"`` unit price ∈ [1, 3], demand ∈
    [1, 3]. Supplies are ``supply_scale · U[0.5, 1.5] · n_buyers/n_sellers``, so total supply is
    about ``supply_scale`` units per buyer (about half the quadratic peak demand: prices are positive).
    Buyers are ``"b0", ...``, sellers ``"s0", ...``; sellers may end up without bidders.

    Raises
    ------
    InvalidInputError
        Non-positive sizes or an unknown valuation family.
    """
    if n_buyers < 1 or n_sellers < 1 or edges_per_buyer < 1:
        raise InvalidInputError(
            f"need n_buyers, n_sellers, edges_per_buyer >= 1, got {(n_buyers, n_sellers, edges_per_buyer)!r}"
        )
    if valuation not in ("quadratic", "alpha_fair", "linear"):
        raise InvalidInputError(f"unknown valuation family {valuation!r}")
    rng = np.random.default_rng(check_seed(seed))
    k = min(edges_per_buyer, n_sellers)
    u1 = rng.uniform(1.0, 3.0, n_buyers)
    u2 = rng.uniform(0.5, 2.0, n_buyers) if valuation != "linear" else rng.uniform(1.0, 3.0, n_buyers)
    supply = supply_scale * rng.uniform(0.5, 1.5, n_sellers) * n_buyers / n_sellers
    G = nx.Graph(kind="bipartite")
    for i in range(n_buyers):
        if valuation == "quadratic":
            v: Valuation = QuadraticValuation(u1[i], u2[i])
        elif valuation == "alpha_fair":
            v = AlphaFairValuation(u1[i], u2[i])
        else:
            v = LinearValuation(u1[i], u2[i])
        G.add_node(f"b{i}", role="buyer", valuation=v)
    for j in range(n_sellers):
        G.add_node(f"s{j}", role="seller", supply=float(supply[j]))
    if k == n_sellers:
        G.add_edges_from((f"b{i}", f"s{j}") for i in range(n_buyers) for j in range(n_sellers))
    else:
        # k distinct sellers per buyer: the k smallest of n_sellers uniform keys (row-wise argpartition)
        for lo in range(0, n_buyers, 4096):
            hi = min(lo + 4096, n_buyers)
            keys = rng.random((hi - lo, n_sellers))
            pick = np.argpartition(keys, k - 1, axis=1)[:, :k]
            G.add_edges_from((f"b{lo + r}", f"s{j}") for r in range(hi - lo) for j in pick[r])
    return G


def route_network(
    G: nx.Graph,
    users: Mapping[Hashable, tuple[Sequence[Hashable], Any]],
    *,
    capacity: str = "capacity",
) -> nx.Graph:
    """Market of users with routes over a capacitated network (draft §1.1).

    Every edge (u, v) of ``G`` becomes a resource (role ``"seller"``) named ``f"{u}~{v}"`` with
    ``supply`` = its ``capacity`` attribute and ``link`` = (u, v); every user becomes a buyer joined to
    the resources of its route (it bids on each of them and needs the same quantity on all).

    Parameters
    ----------
    G : networkx.Graph or DiGraph
        The network; every edge needs a finite ``capacity`` ≥ 0.
    users : mapping
        User name → ``(path, valuation)``; ``path`` is a list of nodes of ``G`` (at least two).
    capacity : str, default "capacity"
        Edge attribute holding the capacity.

    Raises
    ------
    GraphError
        Missing/negative capacity, a path that is not a simple path of ``G``, a name clash.

    Examples
    --------
    >>> N = nx.path_graph(3); nx.set_edge_attributes(N, 1.0, "capacity")
    >>> M = route_network(N, {"u": ([0, 1, 2], {"kind": "quadratic", "a": 2, "b": 1})})
    >>> sorted(M.neighbors("u"))
    ['0~1', '1~2']
    """
    if not isinstance(G, nx.Graph) or G.is_multigraph():
        raise GraphError(f"route network must be a simple networkx graph, got {type(G).__name__!r}")
    if G.number_of_edges() == 0:
        raise GraphError("route network has no edges (no resources)")
    directed = G.is_directed()
    M = nx.Graph(kind="routes", directed=directed)
    names: dict[Any, str] = {}
    for u, v, attrs in G.edges(data=True):
        if capacity not in attrs:
            raise GraphError(f"edge {(u, v)!r} has no {capacity!r}")
        c = real_number(attrs[capacity])
        if c is None or not math.isfinite(c) or c < 0:
            raise GraphError(f"edge {(u, v)!r} has invalid {capacity} {attrs[capacity]!r} (need finite >= 0)")
        name = f"{u}~{v}"
        if name in M:
            raise GraphError(f"two edges of the network map to the resource name {name!r}")
        names[link_key(u, v, directed)] = name
        M.add_node(name, role="seller", supply=c, link=(u, v))
    for user, spec in users.items():
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise GraphError(f"user {user!r}: expected (path, valuation), got {spec!r}")
        path, val = spec
        if user in M:
            raise GraphError(f"user name {user!r} clashes with a resource name")
        path = list(path)
        if len(path) < 2 or len(set(path)) != len(path):
            raise GraphError(f"route {path!r} of user {user!r} is not a simple path of at least two nodes")
        links = []
        for a, b in itertools.pairwise(path):
            if not G.has_edge(a, b):
                raise GraphError(
                    f"route {path!r} of user {user!r} uses {(a, b)!r}, which is not an edge of the network"
                )
            links.append(names[link_key(a, b, directed)])
        M.add_node(user, role="buyer", route=path, **_buyer_attrs(user, val))
        M.add_edges_from((user, r) for r in links)
    validate_market(M)
    return M
