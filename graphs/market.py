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
resource is the bipartite market with one seller. :func:`validate_market` runs at the door of every
function here and of every solver; :func:`market_arrays` turns a validated market into the flat
arrays (CSR by buyer) that vectorised code wants.

Files: node-link JSON (:func:`write_market_json` / :func:`read_market_json`, valuations as dicts)
and GraphML (:func:`write_market_graphml` / :func:`read_market_graphml`, valuations, routes and
links as JSON strings; GraphML turns node names into strings).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.valuations import (
    AlphaFairValuation,
    LinearValuation,
    QuadraticValuation,
    Valuation,
    as_valuation,
    stack_quadratic,
)
from datamarkets.io import atomic_path, atomic_write_json, read_json, to_jsonable
from datamarkets.validation import check_node_link, is_real

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

KINDS = ("bipartite", "routes")
GRAPH_ATTRS = {"kind", "name", "directed"}
BUYER_ATTRS = {"role", "valuation", "demand", "budget", "route"}
SELLER_ATTRS = {"role", "supply", "link"}


# ------------------------------------------------------------------------------ validation
def _number(x: Any) -> float | None:
    # a real number only: "65" or true in a JSON market file is bad input, not silently coerced
    return float(x) if is_real(x) else None


def validate_market(G: nx.Graph) -> None:
    """Check a market graph; raise :class:`GraphError` naming the first offending node or edge.

    Checks: an undirected simple ``nx.Graph``, not empty; known ``kind`` and graph attributes;
    every node has a known ``role`` and only the attributes of that role; sellers have a finite
    ``supply`` ≥ 0; buyers have a valid ``valuation`` and, if present, ``demand`` > 0 and
    ``budget`` ≥ 0 (finite); every edge joins a buyer and a seller and carries no attributes; no
    buyer is isolated. In a route market every buyer's ``route`` must be a path whose consecutive
    node pairs are exactly the ``link`` s of the sellers it is joined to.

    Raises
    ------
    GraphError
        On any violation (an :class:`~datamarkets.errors.InvalidInputError`).

    Examples
    --------
    >>> validate_market(example1_market())
    """
    if not isinstance(G, nx.Graph) or G.is_directed() or G.is_multigraph():
        raise GraphError(f"a market must be an undirected simple networkx.Graph, got {type(G).__name__!r}")
    if G.number_of_nodes() == 0:
        raise GraphError("market graph is empty")
    unknown = sorted(set(G.graph) - GRAPH_ATTRS)
    if unknown:
        raise GraphError(f"market graph has unknown graph attributes {unknown!r}")
    kind = G.graph.get("kind", "bipartite")
    if kind not in KINDS:
        raise GraphError(f"market graph has unknown kind {kind!r}; known: {KINDS!r}")
    n_sellers = 0
    for node, attrs in G.nodes(data=True):
        role = attrs.get("role")
        if role == "seller":
            n_sellers += 1
            extra = sorted(set(attrs) - SELLER_ATTRS)
            if extra:
                raise GraphError(f"seller {node!r} has unknown attributes {extra!r}")
            if "supply" not in attrs:
                raise GraphError(f"seller {node!r} has no 'supply'")
            s = _number(attrs["supply"])
            if s is None or not math.isfinite(s):
                raise GraphError(f"seller {node!r} has non-numeric or non-finite supply {attrs['supply']!r}")
            if s < 0:
                raise GraphError(f"seller {node!r} has negative supply {s}")
            if kind == "routes":
                link = attrs.get("link")
                if not isinstance(link, (list, tuple)) or len(link) != 2:
                    raise GraphError(
                        f"resource {node!r} of a route market needs 'link' = (u, v), got {link!r}"
                    )
            elif "link" in attrs:
                raise GraphError(f"seller {node!r} has a 'link' but the market kind is {kind!r}")
        elif role == "buyer":
            extra = sorted(set(attrs) - BUYER_ATTRS)
            if extra:
                raise GraphError(f"buyer {node!r} has unknown attributes {extra!r}")
            if "valuation" not in attrs:
                raise GraphError(f"buyer {node!r} has no 'valuation'")
            try:
                as_valuation(attrs["valuation"])
            except InvalidInputError as exc:
                raise GraphError(f"buyer {node!r} has an invalid valuation: {exc}") from exc
            if "demand" in attrs:
                d = _number(attrs["demand"])
                if d is None or not math.isfinite(d) or d <= 0:
                    raise GraphError(
                        f"buyer {node!r} has invalid demand {attrs['demand']!r} (need finite > 0)"
                    )
            if "budget" in attrs:
                b = _number(attrs["budget"])
                if b is None or not math.isfinite(b) or b < 0:
                    raise GraphError(
                        f"buyer {node!r} has invalid budget {attrs['budget']!r} (need finite >= 0)"
                    )
            if kind == "bipartite" and "route" in attrs:
                raise GraphError(f"buyer {node!r} has a 'route' but the market kind is 'bipartite'")
            if G.degree(node) == 0:
                raise GraphError(f"buyer {node!r} is isolated: it is joined to no seller")
        else:
            raise GraphError(f"node {node!r} has unknown role {role!r} (need 'buyer' or 'seller')")
    if n_sellers == 0:
        raise GraphError("market graph has no seller")
    for u, v, eattrs in G.edges(data=True):
        ru, rv = G.nodes[u]["role"], G.nodes[v]["role"]
        if ru == rv:
            raise GraphError(f"edge {(u, v)!r} joins two {ru}s; edges must join a buyer and a seller")
        if eattrs:
            raise GraphError(f"edge {(u, v)!r} has unknown attributes {sorted(eattrs)!r}")
    if kind == "routes":
        _validate_routes(G)


def _link_key(u: Any, v: Any, directed: bool) -> Any:
    return (u, v) if directed else frozenset((u, v))


def _validate_routes(G: nx.Graph) -> None:
    directed = bool(G.graph.get("directed", False))
    by_link: dict[Any, Hashable] = {}
    for node, attrs in G.nodes(data=True):
        if attrs["role"] == "seller":
            u, v = attrs["link"]
            key = _link_key(u, v, directed)
            if key in by_link:
                raise GraphError(
                    f"resources {by_link[key]!r} and {node!r} stand for the same link {(u, v)!r}"
                )
            by_link[key] = node
    for node, attrs in G.nodes(data=True):
        if attrs["role"] != "buyer":
            continue
        route = attrs.get("route")
        if not isinstance(route, (list, tuple)) or len(route) < 2:
            raise GraphError(f"user {node!r} needs a 'route' of at least two network nodes, got {route!r}")
        if len(set(map(_hashable, route))) != len(route):
            raise GraphError(f"route {list(route)!r} of user {node!r} repeats a node: not a path")
        need = []
        for a, b in itertools.pairwise(route):
            key = _link_key(_hashable(a), _hashable(b), directed)
            if key not in by_link:
                raise GraphError(
                    f"route {list(route)!r} of user {node!r} uses {(a, b)!r}, which is no link of the network"
                )
            need.append(by_link[key])
        if set(need) != set(G.neighbors(node)):
            raise GraphError(
                f"user {node!r} is joined to resources {sorted(map(str, G.neighbors(node)))!r} but its route "
                f"uses {sorted(map(str, need))!r}"
            )


def _hashable(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def buyers(G: nx.Graph) -> list[Hashable]:
    """Buyer nodes in graph order."""
    return [n for n, r in G.nodes(data="role") if r == "buyer"]


def sellers(G: nx.Graph) -> list[Hashable]:
    """Seller (resource) nodes in graph order."""
    return [n for n, r in G.nodes(data="role") if r == "seller"]


# ------------------------------------------------------------------------------ arrays view
@dataclass
class MarketArrays:
    """A validated market as flat arrays; edges sorted by buyer (CSR), then by seller index.

    Attributes
    ----------
    kind : str
        ``"bipartite"`` or ``"routes"``.
    buyers, sellers : list
        Node names; positions are the indices used below.
    valuations : list of Valuation
        θ_i per buyer (dicts already parsed).
    supply : ndarray (S,)
        D^j (capacity for resources).
    demand, budget : ndarray (B,)
        D_i and b_i, ``inf`` where the attribute is missing.
    edge_buyer, edge_seller : ndarray (E,) of int
        Endpoints of edge e (buyer index, seller index).
    buyer_ptr : ndarray (B+1,)
        Edges of buyer i are ``edge_buyer[buyer_ptr[i]:buyer_ptr[i+1]]``.
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


def market_arrays(G: nx.Graph, *, validate: bool = True) -> MarketArrays:
    """Flatten a market graph into :class:`MarketArrays` (validating it first by default).

    Examples
    --------
    >>> m = market_arrays(example1_market())
    >>> m.n_buyers, m.n_sellers, m.n_edges, m.supply.tolist()
    (5, 2, 10, [65.0, 85.0])
    """
    if validate:
        validate_market(G)
    B = buyers(G)
    S = sellers(G)
    bi = {b: i for i, b in enumerate(B)}
    si = {s: j for j, s in enumerate(S)}
    eb, es = [], []
    for u, v in G.edges():
        if G.nodes[u]["role"] == "seller":
            u, v = v, u
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
    return MarketArrays(
        kind=G.graph.get("kind", "bipartite"),
        buyers=B,
        sellers=S,
        valuations=[as_valuation(nodes[b]["valuation"]) for b in B],
        supply=np.array([float(nodes[s]["supply"]) for s in S]),
        demand=np.array([float(nodes[b].get("demand", math.inf)) for b in B]),
        budget=np.array([float(nodes[b].get("budget", math.inf)) for b in B]),
        edge_buyer=eb_a,
        edge_seller=es_a,
        buyer_ptr=ptr,
        buyer_index=bi,
        seller_index=si,
    )


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
    rng = np.random.default_rng(seed)
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
        c = _number(attrs[capacity])
        if c is None or not math.isfinite(c) or c < 0:
            raise GraphError(f"edge {(u, v)!r} has invalid {capacity} {attrs[capacity]!r} (need finite >= 0)")
        name = f"{u}~{v}"
        if name in M:
            raise GraphError(f"two edges of the network map to the resource name {name!r}")
        names[_link_key(u, v, directed)] = name
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
            links.append(names[_link_key(a, b, directed)])
        M.add_node(user, role="buyer", route=path, **_buyer_attrs(user, val))
        M.add_edges_from((user, r) for r in links)
    validate_market(M)
    return M


# ------------------------------------------------------------------------------ files
def _to_node_link(G: nx.Graph) -> dict[str, Any]:
    H = G.copy()
    for _, attrs in H.nodes(data=True):
        if "valuation" in attrs:
            attrs["valuation"] = as_valuation(attrs["valuation"]).to_dict()
    return to_jsonable(nx.node_link_data(H, edges="edges"))


def _from_node_link(data: Any, source: str) -> nx.Graph:
    if not isinstance(data, Mapping) or "nodes" not in data:
        raise GraphError(f"{source!r} is not node-link JSON (no 'nodes')")
    data = check_node_link(data, source)
    if "edges" not in data and "links" in data:
        data["edges"] = data.pop("links")
    # networkx reads a missing "multigraph" key as True: a hand-written market file without it
    # would be rejected as a multigraph. Absent keys mean the market's own default (simple, undirected).
    data.setdefault("directed", False)
    data.setdefault("multigraph", False)
    try:
        G = nx.node_link_graph(data, edges="edges")
    except (KeyError, TypeError, nx.NetworkXError) as exc:
        raise GraphError(f"{source!r} is not valid node-link JSON: {exc!r}") from exc
    if G.is_directed() or G.is_multigraph():
        raise GraphError(
            f"{source!r}: a market graph must be undirected and simple, got directed={data['directed']!r}, "
            f"multigraph={data['multigraph']!r}"
        )
    for node, attrs in G.nodes(data=True):
        if isinstance(attrs.get("route"), list):
            attrs["route"] = [_hashable(x) for x in attrs["route"]]
        if isinstance(attrs.get("link"), list):
            attrs["link"] = tuple(_hashable(x) for x in attrs["link"])
        if "valuation" in attrs:
            try:
                attrs["valuation"] = as_valuation(attrs["valuation"])
            except InvalidInputError as exc:
                raise GraphError(f"buyer {node!r} has an invalid valuation: {exc}") from exc
    validate_market(G)
    return G


def market_to_dict(G: nx.Graph) -> dict[str, Any]:
    """Validate ``G`` and return its node-link JSON form (valuations as dicts)."""
    validate_market(G)
    return _to_node_link(G)


def market_from_dict(data: Any, source: str = "market") -> nx.Graph:
    """Build and validate a market from node-link JSON data (inverse of :func:`market_to_dict`).

    Raises
    ------
    GraphError
        Not node-link JSON, directed/multi graph, or an invalid market.
    """
    return _from_node_link(data, source)


def write_market_json(G: nx.Graph, path: str | Path) -> Path:
    """Validate and write ``G`` as node-link JSON (valuations as dicts), atomically."""
    validate_market(G)
    return atomic_write_json(path, _to_node_link(G))


def read_market_json(path: str | Path) -> nx.Graph:
    """Read node-link JSON written by :func:`write_market_json` (or by hand) and validate it.

    Raises
    ------
    InvalidInputError
        Missing file or bad JSON; :class:`GraphError` for an invalid market.
    """
    return _from_node_link(read_json(path), str(path))


_GRAPHML_JSON_KEYS = ("valuation", "route", "link")


def write_market_graphml(G: nx.Graph, path: str | Path) -> Path:
    """Validate and write ``G`` as GraphML; valuations, routes and links become JSON strings."""
    validate_market(G)
    H = nx.Graph()
    H.graph.update({k: v for k, v in G.graph.items() if v is not None})
    for node, attrs in G.nodes(data=True):
        out = {}
        for k, v in attrs.items():
            if k == "valuation":
                out[k] = json.dumps(as_valuation(v).to_dict())
            elif k in ("route", "link"):
                out[k] = json.dumps(to_jsonable(list(v)))
            else:
                out[k] = float(v) if k in ("supply", "demand", "budget") else v
        H.add_node(node, **out)
    H.add_edges_from(G.edges())
    with atomic_path(path, suffix=".graphml") as tmp:
        nx.write_graphml(H, tmp)
    return Path(path)


def read_market_graphml(path: str | Path) -> nx.Graph:
    """Read a GraphML market written by :func:`write_market_graphml` and validate it.

    Node names come back as strings (GraphML has no other node id type).
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"file {str(p)!r} does not exist")
    try:
        H = nx.read_graphml(p)
    except Exception as exc:  # any parser failure is bad input
        raise GraphError(f"{str(p)!r} is not valid GraphML: {exc}") from exc
    G = nx.Graph()
    G.graph.update({k: v for k, v in H.graph.items() if k not in ("node_default", "edge_default")})
    for node, attrs in H.nodes(data=True):
        attrs = dict(attrs)
        for k in _GRAPHML_JSON_KEYS:
            if k in attrs:
                try:
                    attrs[k] = json.loads(attrs[k])
                except (TypeError, json.JSONDecodeError) as exc:
                    raise GraphError(f"node {node!r}: attribute {k!r} is not JSON: {exc}") from exc
                if k == "valuation":
                    try:
                        attrs[k] = as_valuation(attrs[k])
                    except InvalidInputError as exc:
                        raise GraphError(f"buyer {node!r} has an invalid valuation: {exc}") from exc
                elif k == "route":
                    attrs[k] = [_hashable(x) for x in attrs[k]]
                else:
                    attrs[k] = tuple(_hashable(x) for x in attrs[k])
        G.add_node(node, **attrs)
    G.add_edges_from(H.edges())
    validate_market(G)
    return G
