"""Files of auction market graphs: node-link JSON (:func:`write_market_json` / :func:`read_market_json`,
valuations as dicts) and GraphML (:func:`write_market_graphml` / :func:`read_market_graphml`,
valuations, routes and links as JSON strings; GraphML turns node names into strings). Every reader
validates the market it returns (:func:`~datamarkets.graphs.market_validation.validate_market`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.market_validation import as_hashable, validate_market
from datamarkets.graphs.valuations import as_valuation
from datamarkets.io import atomic_path, atomic_write_json, read_json, to_jsonable
from datamarkets.validation import check_node_link

__all__ = [
    "market_from_dict",
    "market_to_dict",
    "read_market_graphml",
    "read_market_json",
    "write_market_graphml",
    "write_market_json",
]


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
            attrs["route"] = [as_hashable(x) for x in attrs["route"]]
        if isinstance(attrs.get("link"), list):
            attrs["link"] = tuple(as_hashable(x) for x in attrs["link"])
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
        out: dict[str, Any] = {}
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
                    attrs[k] = [as_hashable(x) for x in attrs[k]]
                else:
                    attrs[k] = tuple(as_hashable(x) for x in attrs[k])
        G.add_node(node, **attrs)
    G.add_edges_from(H.edges())
    validate_market(G)
    return G
