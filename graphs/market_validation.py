r"""Validation of auction market graphs (see :mod:`datamarkets.graphs.market` for the data model).

:func:`validate_market` runs at the door of every market function and of every solver: it names the
first offending node or edge in a :class:`~datamarkets.errors.GraphError`. :func:`buyers` and
:func:`sellers` list the two roles in graph order (the row order of
:class:`~datamarkets.graphs.market_data.MarketArrays`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable
from typing import Any

import networkx as nx

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.valuations import as_valuation
from datamarkets.validation import is_real

__all__ = ["as_hashable", "buyers", "link_key", "real_number", "sellers", "validate_market"]

KINDS = ("bipartite", "routes")
GRAPH_ATTRS = {"kind", "name", "directed"}
BUYER_ATTRS = {"role", "valuation", "demand", "budget", "route"}
SELLER_ATTRS = {"role", "supply", "link"}


def real_number(x: Any) -> float | None:
    """``float(x)`` for a real number, else None ("65" or true in a JSON market file is bad input)."""
    if not is_real(x):
        return None
    try:
        return float(x)
    except OverflowError:  # an integer beyond the float range: infinite, rejected as not finite
        return math.inf if x > 0 else -math.inf


def link_key(u: Any, v: Any, directed: bool) -> Any:
    """Key of the network link (u, v): ordered when ``directed``, else unordered."""
    return (u, v) if directed else frozenset((u, v))


def as_hashable(x: Any) -> Any:
    """A JSON list read back as a node name becomes a tuple (lists are not hashable)."""
    return tuple(x) if isinstance(x, list) else x


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
    >>> from datamarkets.graphs.market import example1_market
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
            s = real_number(attrs["supply"])
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
                d = real_number(attrs["demand"])
                if d is None or not math.isfinite(d) or d <= 0:
                    raise GraphError(
                        f"buyer {node!r} has invalid demand {attrs['demand']!r} (need finite > 0)"
                    )
            if "budget" in attrs:
                b = real_number(attrs["budget"])
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


def _validate_routes(G: nx.Graph) -> None:
    directed = bool(G.graph.get("directed", False))
    by_link: dict[Any, Hashable] = {}
    for node, attrs in G.nodes(data=True):
        if attrs["role"] == "seller":
            u, v = attrs["link"]
            key = link_key(u, v, directed)
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
        if len(set(map(as_hashable, route))) != len(route):
            raise GraphError(f"route {list(route)!r} of user {node!r} repeats a node: not a path")
        need = []
        for a, b in itertools.pairwise(route):
            key = link_key(as_hashable(a), as_hashable(b), directed)
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


def buyers(G: nx.Graph) -> list[Hashable]:
    """Buyer nodes in graph order."""
    return [n for n, r in G.nodes(data="role") if r == "buyer"]


def sellers(G: nx.Graph) -> list[Hashable]:
    """Seller (resource) nodes in graph order."""
    return [n for n, r in G.nodes(data="role") if r == "seller"]
