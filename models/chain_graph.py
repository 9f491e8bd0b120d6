"""The trading chain as a networkx ``DiGraph`` and back.

Players are nodes ``0..n``; trade *i* is the edge ``(i-1, i)``. Attributes (names configurable,
networkx style):

========  =====  ==================================================================================
where     name   content
========  =====  ==================================================================================
node      values value grid W of the node's valuation (the chain needs one grid shared by all nodes)
node 0    start  distribution of v_0 over the grid (root only)
node      shares dict ``{(u, v): share}``: share of the price of the trade on edge (u, v) this node
                 receives (the reallocation matrix keyed by (edge, receiving node))
edge      trans  row-stochastic ``L×L`` matrix ``P(v_child = w_l | v_parent = w_k)``
edge      trade  trade index i (1-based; edge (i-1, i) on a chain)
========  =====  ==================================================================================

Transitions are keyed per edge and reallocation per (edge, receiver), so a tree or DAG needs no
new data model, only a new solver; :func:`game_from_graph` accepts chains only for now.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import GraphError
from datamarkets.models.chain_game import ChainGame

__all__ = ["chain_graph", "game_from_graph"]

_NODE_KEYS = ("values", "start", "shares")
_EDGE_KEYS = ("trans", "trade")


def chain_graph(
    game: ChainGame,
    values: str = "values",
    start: str = "start",
    shares: str = "shares",
    trans: str = "trans",
    trade: str = "trade",
) -> nx.DiGraph:
    """Build the chain ``DiGraph`` of a game.

    Parameters
    ----------
    game : ChainGame
    values, start, shares, trans, trade : str
        Attribute names to write.

    Returns
    -------
    networkx.DiGraph
        Nodes ``0..n``, edges ``(i-1, i)``; ``G.graph["label"]`` holds the game label.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> G = chain_graph(paper_model("paper-1", 2, "ave"))
    >>> list(G.edges), G.nodes[0]["shares"]
    ([(0, 1), (1, 2)], {(0, 1): 1.0, (1, 2): 0.5})
    """
    n = game.n
    G = nx.DiGraph(label=game.label)
    for j in range(n + 1):
        attrs: dict[str, Any] = {
            values: game.values.copy(),
            shares: {(i - 1, i): float(game.t[i - 1, j]) for i in range(1, n + 1) if game.t[i - 1, j] != 0},
        }
        if j == 0:
            attrs[start] = game.start.copy()
        G.add_node(j, **attrs)
    for i in range(1, n + 1):
        G.add_edge(i - 1, i, **{trans: np.array(game.Q[i - 1]), trade: i})
    return G


def game_from_graph(
    G: nx.DiGraph,
    values: str = "values",
    start: str = "start",
    shares: str = "shares",
    trans: str = "trans",
    trade: str = "trade",
) -> ChainGame:
    """Validate a chain ``DiGraph`` and build its :class:`ChainGame`.

    Parameters
    ----------
    G : networkx.DiGraph
        Nodes ``0..n`` with edges ``(i-1, i)`` carrying the attributes described in the module
        docstring. ``shares`` may be missing on a node (it then receives nothing); every other
        attribute is required. ``trade`` is optional but must equal the child index when present.
    values, start, shares, trans, trade : str
        Attribute names to read.

    Returns
    -------
    ChainGame

    Raises
    ------
    GraphError
        Not a DiGraph, empty, disconnected, not the path ``0 → 1 → … → n``, unknown or missing
        attributes, differing value grids, ``start`` on a non-root node, shares keyed by an edge not
        in ``G`` or a wrong trade index.
    InvalidInputError
        Invalid numbers (non-stochastic rows, NaN, …), from :class:`ChainGame`.
    MechanismError
        Shares break Def. 2.5 / 2.6.


    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> g = paper_model("paper-2", 3, {"tbds": 0.5})
    >>> g2 = game_from_graph(chain_graph(g))
    >>> g2.t.tolist() == g.t.tolist(), g2.Q.tolist() == g.Q.tolist()
    (True, True)
    """
    if not isinstance(G, nx.DiGraph) or G.is_multigraph():
        raise GraphError(f"expected a networkx DiGraph, got {type(G).__name__!r}")
    if G.number_of_nodes() == 0:
        raise GraphError("the chain graph is empty")
    if not nx.is_weakly_connected(G):
        comps = sorted(sorted(c) for c in nx.weakly_connected_components(G))
        raise GraphError(f"the chain graph is disconnected: components {comps!r}")
    nodes = sorted(G.nodes, key=repr)
    n = G.number_of_nodes() - 1
    if set(G.nodes) != set(range(n + 1)) or any(isinstance(v, bool) for v in G.nodes):
        raise GraphError(f"chain nodes must be the players 0..{n!r}, got {nodes!r}")
    if n < 1:
        raise GraphError("a chain needs at least one trade (two nodes)")
    expected = {(i - 1, i) for i in range(1, n + 1)}
    if set(G.edges) != expected:
        extra = sorted(set(G.edges) - expected)
        missing = sorted(expected - set(G.edges))
        raise GraphError(
            f"not a chain 0→1→…→{n!r}: unexpected edges {extra!r}, missing edges {missing!r} "
            "(trees and DAGs are not supported yet)"
        )
    node_keys = {values, start, shares}
    edge_keys = {trans, trade}
    for v, d in G.nodes(data=True):
        unknown = sorted(set(d) - node_keys)
        if unknown:
            raise GraphError(f"node {v!r} has unknown attributes {unknown!r}; allowed {sorted(node_keys)!r}")
        if values not in d:
            raise GraphError(f"node {v!r} is missing the attribute {values!r}")
        if v != 0 and start in d:
            raise GraphError(f"node {v!r} has {start!r}, but only the root 0 may have a start distribution")
    if start not in G.nodes[0]:
        raise GraphError(f"root node 0 is missing the attribute {start!r}")
    for u, v, d in G.edges(data=True):
        unknown = sorted(set(d) - edge_keys)
        if unknown:
            raise GraphError(
                f"edge {(u, v)!r} has unknown attributes {unknown!r}; allowed {sorted(edge_keys)!r}"
            )
        if trans not in d:
            raise GraphError(f"edge {(u, v)!r} is missing the attribute {trans!r}")
        if trade in d and d[trade] != v:
            raise GraphError(f"edge {(u, v)!r} has trade index {d[trade]!r}, expected {v!r}")
    try:
        W = np.asarray(G.nodes[0][values], dtype=float)
        for v in range(1, n + 1):
            Wv = np.asarray(G.nodes[v][values], dtype=float)
            if Wv.shape != W.shape or not np.array_equal(Wv, W):
                raise GraphError(
                    f"node {v!r} has a value grid different from node 0's; a chain needs one grid"
                )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, GraphError):
            raise
        raise GraphError(f"value grids must be numeric arrays: {exc}") from exc
    t = np.zeros((n, n + 1))
    for j in range(n + 1):
        sh = G.nodes[j].get(shares, {}) or {}
        if not isinstance(sh, dict):
            raise GraphError(
                f"node {j!r} attribute {shares!r} must be a dict {{edge: share}}, got {type(sh).__name__!r}"
            )
        for e, s in sh.items():
            if not (isinstance(e, tuple) and e in expected):
                raise GraphError(f"node {j!r} has a share for {e!r}, which is not an edge of the chain")
            try:
                t[e[1] - 1, j] = float(s)
            except (TypeError, ValueError) as exc:
                raise GraphError(f"node {j!r} has a non-numeric share {s!r} for edge {e!r}") from exc
    Q = [G.edges[i - 1, i][trans] for i in range(1, n + 1)]
    return ChainGame(W, G.nodes[0][start], np.array(Q, dtype=float), t, label=str(G.graph.get("label", "")))
