"""Estimation markets: data sources and competing data buyers as one bipartite networkx graph.

Westenbroek, Dong, Ratliff, Sastry, *Statistical estimation with strategic data sources in competitive
settings*, §II. One undirected :class:`networkx.Graph` holds everything:

* node attribute ``role``: ``"source"`` or ``"buyer"``;
* a **source** has ``x`` (its feature position: a float, or a list of floats for a vector; every source
  has the same dimension) and ``alpha > 0`` (``σ_i(e) = exp(−α_i e)``, Assumption 2);
* a **buyer** has ``estimator`` (a spec dict, see :func:`~datamarkets.models.estimators.estimator_from_spec`),
  ``F`` (the distribution over the domain it cares about, see
  :func:`~datamarkets.models.estimators.distribution_from_spec`) and ``eta > 0`` (money ↔ utility);
* a **source–buyer edge** means the buyer uses (fits on, contracts with) that source; no attributes;
* a **buyer–buyer edge** carries ``delta`` ∈ [0, 1], the competition weight ``δ^k_j = δ^j_k`` (the graph is
  undirected, so δ is symmetric by construction). A missing buyer–buyer edge means ``δ = 0``.

Source–source edges, self-loops, directed graphs and multigraphs are rejected. Node order in the graph
is the index order of every array computed from it (:func:`source_nodes`, :func:`buyer_nodes`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.estimators import distribution_from_spec, estimator_from_spec
from datamarkets.io import atomic_write_json, read_json, to_jsonable
from datamarkets.validation import check_node_link, real_array, real_number

__all__ = [
    "BUYER_ATTRS",
    "SOURCE_ATTRS",
    "buyer_nodes",
    "delta_matrix",
    "estimation_market",
    "estimation_market_from_dict",
    "estimation_market_to_dict",
    "read_estimation_market",
    "source_nodes",
    "source_positions",
    "two_firm_example",
    "validate_estimation_market",
    "write_estimation_market",
]

#: Attributes a source node may carry (all required).
SOURCE_ATTRS = frozenset({"role", "x", "alpha"})
#: Attributes a buyer node may carry (all required).
BUYER_ATTRS = frozenset({"role", "estimator", "F", "eta"})

GRAPH_KIND = "estimation_market"


def source_nodes(G: nx.Graph) -> list[Any]:
    """Sources in graph order (the index ``i`` of every coefficient array)."""
    return [n for n, r in G.nodes(data="role") if r == "source"]


def buyer_nodes(G: nx.Graph) -> list[Any]:
    """Buyers in graph order (the index ``k`` of every coefficient array)."""
    return [n for n, r in G.nodes(data="role") if r == "buyer"]


def _position(node: Any, x: Any) -> NDArray[np.float64]:
    bad = f"source {node!r} has a non-numeric position x={x!r}"
    a = np.atleast_1d(real_array(x, "x", error=GraphError, message=bad))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise GraphError(f"source {node!r} needs a finite scalar or vector position, got x={x!r}")
    return a


def source_positions(G: nx.Graph, sources: Iterable[Any] | None = None) -> NDArray[np.float64]:
    """Positions of ``sources`` (default: all, graph order) as an array of shape ``(N, dim)``."""
    nodes = source_nodes(G) if sources is None else list(sources)
    return np.stack([_position(s, G.nodes[s]["x"]) for s in nodes])


def delta_matrix(
    G: nx.Graph, buyers: Iterable[Any] | None = None, delta: str = "delta"
) -> NDArray[np.float64]:
    """Competition weights as a symmetric ``(K, K)`` matrix ``D[k, j] = δ^k_j`` with zero diagonal."""
    bs = buyer_nodes(G) if buyers is None else list(buyers)
    pos = {b: k for k, b in enumerate(bs)}
    D = np.zeros((len(bs), len(bs)))
    for u, v, d in G.edges(data=delta):
        if u in pos and v in pos:
            D[pos[u], pos[v]] = D[pos[v], pos[u]] = float(d)
    return D


def _positive(node: Any, name: str, value: Any) -> float:
    needs = f"node {node!r} needs {name} > 0 (finite), got {value!r}"
    bad = (
        needs if isinstance(value, (bool, np.bool_)) else f"node {node!r} has a non-numeric {name}={value!r}"
    )
    v = real_number(value, name, finite=False, error=GraphError, message=bad)
    if not (math.isfinite(v) and v > 0):
        raise GraphError(f"node {node!r} needs {name} > 0 (finite), got {value!r}")
    return v


def validate_estimation_market(G: nx.Graph) -> None:
    """Check an estimation market at the door; raise on the first problem found.

    Checks: a simple undirected graph with at least one source and one buyer; every node has a known
    ``role`` and exactly its role's attributes; positions finite and of one dimension; ``alpha > 0``;
    ``eta > 0``; estimator and ``F`` specs well formed and of the sources' dimension; no source–source
    edges or self-loops; buyer–buyer edges carry ``delta`` ∈ [0, 1] and nothing else; source–buyer
    edges carry no attributes; every buyer uses at least one source and every source is used by at
    least one buyer; each buyer's design has full column rank unless its estimator says
    ``"underdetermined": "min_norm"`` (coincident sources make a polynomial design singular).

    Parameters
    ----------
    G : networkx.Graph

    Raises
    ------
    GraphError
        With the offending node or edge named (``!r``).
    """
    if not isinstance(G, nx.Graph):
        raise GraphError(f"an estimation market must be a networkx.Graph, got {type(G).__name__!r}")
    if G.is_directed() or G.is_multigraph():
        raise GraphError("an estimation market must be a simple undirected nx.Graph (δ is symmetric)")
    if G.number_of_nodes() == 0:
        raise GraphError("the estimation market is empty")
    dims: dict[int, Any] = {}
    for n, data in G.nodes(data=True):
        role = data.get("role")
        if role == "source":
            allowed = SOURCE_ATTRS
        elif role == "buyer":
            allowed = BUYER_ATTRS
        else:
            raise GraphError(f"node {n!r} has unknown role {role!r} (expected 'source' or 'buyer')")
        extra = set(data) - allowed
        if extra:
            raise GraphError(f"{role} {n!r} has unknown attributes {sorted(extra)!r}")
        missing = allowed - set(data)
        if missing:
            raise GraphError(f"{role} {n!r} misses attributes {sorted(missing)!r}")
        if role == "source":
            dims.setdefault(_position(n, data["x"]).size, n)
            _positive(n, "alpha", data["alpha"])
        else:
            _positive(n, "eta", data["eta"])
    sources, buyers = source_nodes(G), buyer_nodes(G)
    if not sources:
        raise GraphError("the estimation market has no source")
    if not buyers:
        raise GraphError("the estimation market has no buyer")
    if len(dims) > 1:
        (d0, n0), (d1, n1) = list(dims.items())[:2]
        raise GraphError(f"sources {n0!r} (dimension {d0}) and {n1!r} (dimension {d1}) differ in dimension")
    dim = next(iter(dims))
    for u, v, data in G.edges(data=True):
        ru, rv = G.nodes[u]["role"], G.nodes[v]["role"]
        if u == v:
            raise GraphError(f"self-loop at node {u!r}")
        if ru == rv == "source":
            raise GraphError(f"edge {(u, v)!r} joins two sources")
        if ru == rv == "buyer":
            if set(data) != {"delta"}:
                raise GraphError(
                    f"buyer–buyer edge {(u, v)!r} must carry exactly 'delta', has {sorted(data)!r}"
                )
            d = data["delta"]
            bad = f"buyer–buyer edge {(u, v)!r} has a non-numeric delta={d!r}"
            dv = real_number(d, "delta", finite=False, error=GraphError, message=bad)
            if not (0.0 <= dv <= 1.0):
                raise GraphError(f"buyer–buyer edge {(u, v)!r} has delta={d!r} outside [0, 1]")
        elif data:
            raise GraphError(f"source–buyer edge {(u, v)!r} carries unknown attributes {sorted(data)!r}")
    for s in sources:
        if not any(G.nodes[b]["role"] == "buyer" for b in G.neighbors(s)):
            raise GraphError(f"source {s!r} is used by no buyer")
    X = source_positions(G, sources)
    col = {s: i for i, s in enumerate(sources)}
    for b in buyers:
        est = estimator_from_spec(G.nodes[b]["estimator"], dim, node=b)
        distribution_from_spec(G.nodes[b]["F"], dim, node=b)
        used = [s for s in G.neighbors(b) if G.nodes[s]["role"] == "source"]
        if not used:
            raise GraphError(f"buyer {b!r} uses no source")
        if est.underdetermined == "raise":
            idx = sorted(col[s] for s in used)
            if est.n_features > len(idx):  # rank ≤ len(idx) < features: singular, without building Phi
                names = [sources[i] for i in idx]
                raise GraphError(_singular_message(b, names, X[idx], len(idx), est.n_features, at_most=True))
            Phi = est.features(X[idx])
            rank = int(np.linalg.matrix_rank(Phi))
            if rank < Phi.shape[1]:
                names = [sources[i] for i in idx]
                raise GraphError(_singular_message(b, names, X[idx], rank, Phi.shape[1]))


def _singular_message(
    b: Any, names: list[Any], X: NDArray[np.float64], rank: int, P: int, *, at_most: bool = False
) -> str:
    groups: dict[tuple[float, ...], list[Any]] = {}
    for name, x in zip(names, X, strict=True):
        groups.setdefault(tuple(x.tolist()), []).append(name)
    coincident = [g for g in groups.values() if len(g) > 1]
    detail = f"; coincident sources {coincident[0]!r}" if coincident else ""
    return (
        f"buyer {b!r}: design has rank {'at most ' if at_most else ''}{rank} < {P} features from "
        f"{len(names)} sources at "
        f"{len(groups)} distinct positions{detail}; the estimator is not identified "
        "(set 'underdetermined': 'min_norm' in its estimator spec to accept the minimum-norm fit)"
    )


def _delta_pairs(buyers: list[Any], delta: Any) -> dict[tuple[Any, Any], float]:
    """Normalise the ``delta`` argument of :func:`estimation_market` to ``{(k, j): δ}`` with k before j."""
    pos = {b: k for k, b in enumerate(buyers)}
    out: dict[tuple[Any, Any], float] = {}
    K = len(buyers)
    if isinstance(delta, Mapping):
        for key, val in delta.items():
            try:
                k, j = key
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"delta key {key!r} must be a pair of buyers") from exc
            for b in (k, j):
                if b not in pos:
                    raise InvalidInputError(f"delta names unknown buyer {b!r}")
            if k == j:
                raise InvalidInputError(f"delta of buyer {k!r} with itself is meaningless")
            pair = (k, j) if pos[k] < pos[j] else (j, k)
            v = real_number(
                val, "delta", finite=False, message=f"delta of buyers {pair!r} is not a number: {val!r}"
            )
            if pair in out and out[pair] != v:
                raise InvalidInputError(f"delta is asymmetric for buyers {pair!r}: {out[pair]} vs {v}")
            out[pair] = v
        return out
    D = real_array(delta, "delta", message=f"delta must be numeric, got {delta!r}")
    if D.ndim == 0:
        D = np.full((K, K), float(D))
        np.fill_diagonal(D, 0.0)
    if D.shape != (K, K):
        raise InvalidInputError(f"delta must be a scalar, a {K}×{K} matrix or a dict, got shape {D.shape!r}")
    if np.any(np.diag(D) != 0):
        k = int(np.flatnonzero(np.diag(D))[0])
        raise InvalidInputError(f"delta[{k}, {k}] (buyer {buyers[k]!r} with itself) must be 0")
    bad = np.argwhere(D != D.T)
    if bad.size:
        k, j = bad[0]
        raise InvalidInputError(
            f"delta is asymmetric: δ[{buyers[k]!r}, {buyers[j]!r}] = {D[k, j]} ≠ {D[j, k]}"
        )
    for k in range(K):
        for j in range(k + 1, K):
            out[(buyers[k], buyers[j])] = float(D[k, j])
    return out


def estimation_market(
    sources: Mapping[Any, Mapping[str, Any]],
    buyers: Mapping[Any, Mapping[str, Any]],
    delta: float | ArrayLike | Mapping[tuple[Any, Any], float] = 0.0,
    uses: Mapping[Any, Iterable[Any]] | None = None,
) -> nx.Graph:
    """Build and validate an estimation market.

    Parameters
    ----------
    sources : mapping name → {"x": position, "alpha": α}
    buyers : mapping name → {"estimator": spec, "F": spec, "eta": η (default 1.0)}
    delta : float, array_like (K, K) or mapping {(k, j): δ}
        Competition weights. A scalar applies to every pair; a matrix is in ``buyers`` order, must be
        symmetric with zero diagonal; a mapping may give each unordered pair once (or twice, equal).
        Pairs with ``δ = 0`` get no edge.
    uses : mapping buyer → iterable of sources, optional
        Which sources each buyer uses; every buyer uses every source when omitted (complete bipartite).

    Returns
    -------
    networkx.Graph

    Raises
    ------
    InvalidInputError
        Asymmetric δ, δ of a buyer with itself, wrong shape, unknown names in ``delta`` / ``uses``,
        a name used for both a source and a buyer.
    GraphError
        Anything :func:`validate_estimation_market` rejects (δ outside [0, 1], α ≤ 0, singular design, …).

    Examples
    --------
    >>> G = estimation_market(
    ...     {"s1": {"x": -0.5, "alpha": 1.0}, "s2": {"x": 0.5, "alpha": 1.0}},
    ...     {"b": {"estimator": {"kind": "polynomial", "degree": 1},
    ...            "F": {"kind": "uniform", "low": -1, "high": 1}}})
    >>> sorted(G.edges())
    [('s1', 'b'), ('s2', 'b')]
    """
    clash = set(sources) & set(buyers)
    if clash:
        raise InvalidInputError(f"names used for both a source and a buyer: {sorted(map(repr, clash))}")
    G = nx.Graph(kind=GRAPH_KIND)
    for s, d in sources.items():
        if "x" not in d or "alpha" not in d:
            raise GraphError(f"source {s!r} needs 'x' and 'alpha'")
        extra = set(d) - {"x", "alpha"}
        if extra:
            raise GraphError(f"source {s!r} has unknown attributes {sorted(extra)!r}")
        x = _position(s, d["x"])
        G.add_node(s, role="source", x=float(x[0]) if np.ndim(d["x"]) == 0 else x.tolist(), alpha=d["alpha"])
    for b, d in buyers.items():
        extra = set(d) - {"estimator", "F", "eta"}
        if extra:
            raise GraphError(f"buyer {b!r} has unknown attributes {sorted(extra)!r}")
        if "estimator" not in d or "F" not in d:
            raise GraphError(f"buyer {b!r} needs 'estimator' and 'F'")
        G.add_node(b, role="buyer", estimator=dict(d["estimator"]), F=dict(d["F"]), eta=d.get("eta", 1.0))
    for b in buyers:
        used = list(sources) if uses is None or b not in uses else list(uses[b])
        for s in used:
            if s not in sources:
                raise InvalidInputError(f"buyer {b!r} uses unknown source {s!r}")
            G.add_edge(s, b)
    if uses is not None:
        unknown = set(uses) - set(buyers)
        if unknown:
            raise InvalidInputError(f"uses names unknown buyers {sorted(map(repr, unknown))}")
    for (k, j), v in _delta_pairs(list(buyers), delta).items():
        if v != 0.0:
            G.add_edge(k, j, delta=v)
    validate_estimation_market(G)
    return G


def two_firm_example(x1: float, x2: float = 1.0, alpha: float = 1.0, delta: float = 0.0) -> nx.Graph:
    """The two-firm example of §IV.

    Two *sources* ``"s1"``, ``"s2"`` sample ``f: [−1, 1] → R`` at ``x1`` and ``x2`` with ``α_1 = α_2 =
    alpha``; two *buyers* (firms) ``"b1"``, ``"b2"`` both run linear regression (polynomial degree 1)
    with ``F`` uniform on ``[−1, 1]``, ``η = 1``, competition ``δ``. The paper fixes ``x2 = 1``,
    ``α = 1``, ``δ = 0`` and sweeps ``x1`` over ``[−1, 1)``.

    Each leave-one-out fit is a line through one point, hence minimum-norm (this gives the printed ξ);
    the full design is singular at ``x1 == x2``, which raises.

    Raises
    ------
    GraphError
        ``x1 == x2`` (singular design), ``alpha ≤ 0``, ``delta`` outside [0, 1].

    Examples
    --------
    >>> G = two_firm_example(x1=0.0)
    >>> [G.nodes[n]["role"] for n in G]
    ['source', 'source', 'buyer', 'buyer']
    """
    buyer = {
        "estimator": {"kind": "polynomial", "degree": 1},
        "F": {"kind": "uniform", "low": -1.0, "high": 1.0},
        "eta": 1.0,
    }
    return estimation_market(
        {"s1": {"x": x1, "alpha": alpha}, "s2": {"x": x2, "alpha": alpha}},  # "0.3" is refused, not coerced
        {"b1": dict(buyer), "b2": dict(buyer)},
        delta=delta,
    )


def write_estimation_market(G: nx.Graph, path: str | Path) -> Path:
    """Validate ``G`` and write it as node-link JSON (atomically)."""
    return atomic_write_json(path, estimation_market_to_dict(G))


def read_estimation_market(path: str | Path) -> nx.Graph:
    """Read node-link JSON written by :func:`write_estimation_market` (or by hand) and validate it.

    Raises
    ------
    InvalidInputError
        Missing file or bad JSON.
    GraphError
        Not a node-link document, a directed/multi graph, or anything the validator rejects.
    """
    return estimation_market_from_dict(read_json(path), str(path))


def estimation_market_to_dict(G: nx.Graph) -> dict[str, Any]:
    """Validate ``G`` and return its node-link JSON form (what :func:`write_estimation_market` writes)."""
    validate_estimation_market(G)
    data = nx.node_link_data(G, edges="edges")
    data["graph"] = {**data.get("graph", {}), "kind": GRAPH_KIND}
    return to_jsonable(data)


def estimation_market_from_dict(data: Any, source: str = "estimation market") -> nx.Graph:
    """Build and validate an estimation market from node-link JSON data (inverse of
    :func:`estimation_market_to_dict`).

    Raises
    ------
    GraphError
        Not a node-link document, a directed/multi graph, or anything the validator rejects.
    """
    if not isinstance(data, Mapping) or "nodes" not in data:
        raise GraphError(f"{source!r} is not a node-link JSON graph (no 'nodes')")
    data = check_node_link(data, source)
    if data.get("directed") or data.get("multigraph"):
        raise GraphError(f"{source!r}: an estimation market must be undirected and simple")
    key = "edges" if "edges" in data else "links"
    try:
        G = nx.node_link_graph(data, directed=False, multigraph=False, edges=key)
    except (KeyError, TypeError, nx.NetworkXError) as exc:
        raise GraphError(f"{source!r} is not a valid node-link graph: {exc}") from exc
    G.graph.pop("kind", None)
    G.graph["kind"] = GRAPH_KIND
    validate_estimation_market(G)
    return G
