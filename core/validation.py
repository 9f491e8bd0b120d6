"""Checks shared by every loader: numbers that are really numbers, node-link documents, CLI options.

Every file-format loader (auction markets, estimation markets, chain games, saved results) goes
through these, so that the same bad value is rejected the same way everywhere: ``"0.5"`` or
``true`` where a number is expected is bad input, never silently coerced.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from datamarkets.errors import GraphError, InvalidInputError

__all__ = [
    "check_integer",
    "check_node_link",
    "check_seed",
    "check_time_limit",
    "check_tolerance",
    "check_tolerances",
    "is_real",
    "real_array",
    "real_number",
]


def is_real(x: Any) -> bool:
    """A real number: not a bool, not a string, not ``None``.

    Examples
    --------
    >>> is_real(0.5), is_real(2), is_real("0.5"), is_real(True), is_real(None)
    (True, True, False, False, False)
    """
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def real_number(
    x: Any,
    name: str,
    *,
    finite: bool = True,
    positive: bool = False,
    nonneg: bool = False,
    error: type[InvalidInputError] = InvalidInputError,
    message: str | None = None,
) -> float:
    """``x`` as a float, or ``error`` naming ``name`` when it is not a (finite, positive, …) number.

    ``message`` replaces the text of the error raised for a value that is not a number at all.

    Examples
    --------
    >>> real_number(2, "supply")
    2.0
    >>> real_number("0.5", "supply")
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: supply must be a number, got '0.5'
    """
    if not is_real(x):
        raise error(message or f"{name} must be a number, got {x!r}")
    try:
        v = float(x)
    except OverflowError:  # an integer beyond the float range (JSON reads 1000…0 as an int)
        v = math.inf if x > 0 else -math.inf
    if finite and not math.isfinite(v):
        raise error(f"{name} must be a finite number, got {x!r}")
    if positive and not v > 0:
        raise error(f"{name} must be > 0, got {x!r}")
    if nonneg and not v >= 0:
        raise error(f"{name} must be >= 0, got {x!r}")
    return v


def real_array(
    x: Any, name: str, *, error: type[InvalidInputError] = InvalidInputError, message: str | None = None
) -> np.ndarray:
    """A rectangular float array from (nested lists of) real numbers; strings and bools rejected.

    Non-finite entries are kept (callers that forbid them say so with their own message).
    ``message`` replaces the text of the error raised for a non-numeric entry.

    Examples
    --------
    >>> real_array([[0, 0.5], [1, 1]], "transitions").tolist()
    [[0.0, 0.5], [1.0, 1.0]]
    >>> real_array([["0.5", 0.5]], "transitions")
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: transitions must be numeric, got '0.5'
    """
    if isinstance(x, np.ndarray) and x.dtype.kind in "iuf":
        return np.asarray(x, dtype=float)
    if isinstance(x, (str, bytes)) or (not is_real(x) and not isinstance(x, (list, tuple, np.ndarray))):
        raise error(message or f"{name} must be numeric (a number or an array of numbers), got {x!r}")
    try:
        obj = np.array(x, dtype=object)
    except ValueError as exc:  # ragged nesting numpy cannot even hold as objects
        raise error(message or f"{name} must be a numeric rectangular array: {exc}") from exc
    for v in obj.flat:
        if not is_real(v):
            kind = "a numeric rectangular array" if isinstance(v, (list, tuple)) else "numeric"
            raise error(message or f"{name} must be {kind}, got {v!r}")
    try:
        return obj.astype(float)
    except OverflowError:  # an integer beyond the float range: ±inf, for the caller's finiteness check
        flat = [v if abs(v) < 2**1024 else (math.inf if v > 0 else -math.inf) for v in obj.flat]
        return np.array(flat, dtype=float).reshape(obj.shape)


def _node_id_ok(node: Any) -> bool:
    if isinstance(node, str) or (isinstance(node, int) and not isinstance(node, bool)):
        return True
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, list):  # networkx reads a list id as a tuple
        return len(node) > 0 and all(_node_id_ok(v) for v in node)
    return False


def check_node_link(data: Any, source: str, *, edges: str | None = None) -> dict[str, Any]:
    """Check the shape of a node-link JSON document before networkx reads it.

    ``nodes`` must be a list of objects, each with an ``id`` that is a string, an integer, a finite
    float or a list of those. Ids must be unique, also as text: ``1`` and ``"1"`` would collide in
    every per-node table written to JSON, so both together are rejected. ``edges`` (or ``links``)
    must be a list of objects whose ``source`` and ``target`` are ids of listed nodes, each pair
    listed once (in either order unless ``directed``; ``multigraph`` documents may repeat pairs).

    Returns
    -------
    dict
        A shallow copy of ``data`` (safe to modify).

    Raises
    ------
    GraphError
        On the first problem, naming ``source``.

    Examples
    --------
    >>> check_node_link({"nodes": [{"id": 1}, {"id": "1"}], "edges": []}, "m.json")
    Traceback (most recent call last):
    ...
    datamarkets.errors.GraphError: 'm.json' is not a valid node-link graph: node ids 1 and '1' collide ...
    """
    if not isinstance(data, Mapping) or "nodes" not in data:
        raise GraphError(f"{source!r} is not a node-link JSON graph (no 'nodes')")
    bad = f"{source!r} is not a valid node-link graph:"
    nodes = data["nodes"]
    if not isinstance(nodes, list):
        raise GraphError(f"{bad} 'nodes' must be a list of objects, got {type(nodes).__name__!r}")
    seen: dict[str, Any] = {}
    for k, nd in enumerate(nodes):
        if not isinstance(nd, Mapping):
            raise GraphError(f"{bad} nodes[{k}] must be an object, got {nd!r}")
        if "id" not in nd:
            raise GraphError(f"{bad} nodes[{k}] has no 'id'")
        node = nd["id"]
        if not _node_id_ok(node):
            raise GraphError(
                f"{bad} nodes[{k}] has id {node!r}; an id must be a string, an integer, a finite "
                "number or a list of those"
            )
        key = str(tuple(node)) if isinstance(node, list) else str(node)
        if key in seen:
            other = seen[key]
            if other == node and type(other) is type(node):
                raise GraphError(f"{bad} duplicate node id {node!r}")
            raise GraphError(f"{bad} node ids {other!r} and {node!r} collide (ids must differ as text)")
        seen[key] = node
    key_edges = edges or ("edges" if "edges" in data else "links")
    links = data.get(key_edges, [])
    if not isinstance(links, list):
        raise GraphError(f"{bad} {key_edges!r} must be a list of objects, got {type(links).__name__!r}")
    ids = {(tuple(v) if isinstance(v, list) else v, type(v)) for v in seen.values()}
    directed, multigraph = bool(data.get("directed")), bool(data.get("multigraph"))
    pairs: set[Any] = set()
    for k, e in enumerate(links):
        if not isinstance(e, Mapping) or "source" not in e or "target" not in e:
            raise GraphError(f"{bad} {key_edges}[{k}] must be an object with 'source' and 'target'")
        ends = []
        for end in ("source", "target"):
            v = e[end]
            hv = tuple(v) if isinstance(v, list) else v
            try:
                known = (hv, type(v)) in ids
            except TypeError:  # unhashable
                known = False
            if not known:
                raise GraphError(f"{bad} {key_edges}[{k}] {end} {v!r} is not the id of a listed node")
            ends.append(hv)
        # a second copy of an edge would silently replace the first one's attributes
        pair = tuple(ends) if directed else frozenset(ends)
        if not multigraph:
            if pair in pairs:
                raise GraphError(f"{bad} duplicate edge {e['source']!r} – {e['target']!r} ({key_edges}[{k}])")
            pairs.add(pair)
    return dict(data)


def check_tolerance(tol: Any, name: str = "--tol") -> float:
    """A certificate tolerance: a finite number > 0.

    Examples
    --------
    >>> check_tolerance(1e-6)
    1e-06
    >>> check_tolerance(float("nan"))
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: --tol must be a finite number > 0, got nan
    """
    if not is_real(tol) or not (math.isfinite(float(tol)) and float(tol) > 0):
        raise InvalidInputError(f"{name} must be a finite number > 0, got {tol!r}")
    return float(tol)


def check_integer(value: Any, name: str, least: int = 0) -> int:
    """An integer (not a bool, not a float) ``>= least``, e.g. a count of rounds or iterations.

    Examples
    --------
    >>> check_integer(3, "max_iter", 1)
    3
    >>> check_integer(1.5, "max_iter", 1)
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: max_iter must be an integer >= 1, got 1.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
        raise InvalidInputError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def check_tolerances(**tolerances: Any) -> None:
    """Check every given (not ``None``) tolerance with :func:`check_tolerance`, named by its keyword.

    Examples
    --------
    >>> check_tolerances(tol=1e-6, certify_tol=None)
    >>> check_tolerances(rtol=-1)
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: rtol must be a finite number > 0, got -1
    """
    for name, value in tolerances.items():
        if value is not None:
            check_tolerance(value, name)


def check_time_limit(seconds: Any, name: str = "--time-limit") -> float | None:
    """A time limit: ``None`` (none) or a number of seconds > 0 (``inf`` means none).

    Examples
    --------
    >>> check_time_limit(None) is None, check_time_limit(2), check_time_limit(float("inf"))
    (True, 2.0, None)
    >>> check_time_limit(-1)
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: --time-limit must be a number of seconds > 0, got -1
    """
    if seconds is None:
        return None
    if not is_real(seconds) or math.isnan(float(seconds)) or not float(seconds) > 0:
        raise InvalidInputError(f"{name} must be a number of seconds > 0, got {seconds!r}")
    return None if math.isinf(float(seconds)) else float(seconds)


def check_seed(seed: Any, name: str = "seed") -> Any:
    """A random seed: ``None`` (fresh entropy), an integer ≥ 0, or a ``numpy.random.SeedSequence``
    (an independent stream spawned by the caller) — what ``numpy.random.default_rng`` takes.

    Examples
    --------
    >>> check_seed(3), check_seed(None)
    (3, None)
    >>> check_seed("x")
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: seed must be None or an integer >= 0, got 'x'
    """
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"{name} must be None or an integer >= 0, got {seed!r}")
    return int(seed)
