r"""Cournot sellers, part 1: the market data and the equilibrium's maths (vectorised numpy).

Data (:func:`validate_cournot_graph`, :class:`CournotArrays`): a bipartite graph of sellers
(``cost`` c_s, ``quad_cost`` d_s, ``capacity`` k_s) and markets (``intercept`` a_b, ``slope`` b_b),
validated at the door and turned into sparse incidences ``S`` (seller × edge) and ``B``
(market × edge), so that ``q_s = S q`` and ``Q_b = B q``. The maths of the module docstring of
:mod:`datamarkets.examples.cournot_sellers`, one vectorised line each::

    m_sb = a_b − b_b (Q_b + q_sb) − c_s − d_s q_s                      marginal profit
    π_s  = Σ_b P_b(Q_b) q_sb − c_s q_s − d_s q_s²/2                    profit
    Φ(q) = Σ_b [a_b Q_b − (b_b/2)(Q_b² + Σ_s q_sb²)] − Σ_s C_s(q_s)    potential

and the closed-form best response (water-filling). Generators of random and symmetric markets and
the symmetric closed form are the tests' oracles. Read with ``docs/writing-a-formulation.md`` §4.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.validation import check_seed

__all__ = [
    "BUYER_ATTRS",
    "SELLER_ATTRS",
    "CournotArrays",
    "best_response",
    "cournot_arrays",
    "marginal_profits",
    "potential",
    "random_cournot_graph",
    "seller_profits",
    "symmetric_cournot_equilibrium",
    "symmetric_cournot_graph",
    "validate_cournot_graph",
]

# ---------------------------------------------------------------------------------------- 1. data
SELLER_ATTRS: dict[str, float] = {"cost": 0.0, "quad_cost": 0.0, "capacity": math.inf}
"""Seller attributes with their defaults: c_s, d_s and k_s (absent or ``None`` capacity = inf)."""

BUYER_ATTRS: tuple[str, ...] = ("intercept", "slope")
"""Required market attributes: a_b > 0 and b_b > 0 of P_b(Q) = a_b − b_b Q."""


def _number(node: Any, attr: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise GraphError(f"node {node!r}: {attr} must be a number, got {value!r}")
    return float(value)


def validate_cournot_graph(G: Any) -> nx.Graph:
    """Check a Cournot market graph and return a normalised copy (every attribute a float).

    Parameters
    ----------
    G : networkx.Graph
        Undirected, bipartite between ``role="seller"`` nodes (optional ``cost``, ``quad_cost``
        ≥ 0, default 0, and ``capacity`` ≥ 0, default inf) and ``role="buyer"`` nodes (required
        ``intercept`` > 0 and ``slope`` > 0). Node names are ``str`` or ``int`` (they go to JSON).

    Returns
    -------
    networkx.Graph
        A copy with defaults filled in.

    Raises
    ------
    GraphError
        Not an undirected simple graph, no nodes or no edge, a node name that is not ``str``/``int``,
        a missing or unknown role, an unknown attribute, a non-finite or out-of-range number, an
        edge that does not join a seller and a buyer, or an edge attribute.

    Examples
    --------
    >>> G = nx.Graph()
    >>> G.add_node("s", role="seller", cost=1)
    >>> G.add_node("m", role="buyer", intercept=10, slope=1)
    >>> G.add_edge("s", "m")
    >>> validate_cournot_graph(G).nodes["s"]
    {'role': 'seller', 'cost': 1.0, 'quad_cost': 0.0, 'capacity': inf}
    """
    if not isinstance(G, nx.Graph) or G.is_directed() or G.is_multigraph():
        raise GraphError(f"a Cournot market is an undirected networkx.Graph, got {type(G).__name__}")
    if G.number_of_nodes() == 0:
        raise GraphError("the Cournot market graph is empty")
    H = nx.Graph()
    for node, data in G.nodes(data=True):
        if isinstance(node, bool) or not isinstance(node, str | int):
            raise GraphError(f"node {node!r}: names must be str or int, got {type(node).__name__}")
        role = data.get("role")
        if role == "seller":
            allowed: tuple[str, ...] = tuple(SELLER_ATTRS)
        elif role == "buyer":
            allowed = BUYER_ATTRS
        else:
            raise GraphError(f"node {node!r} has role {role!r}; expected 'seller' or 'buyer'")
        unknown = sorted(set(data) - {"role", *allowed})
        if unknown:
            raise GraphError(f"{role} {node!r} has unknown attribute(s) {', '.join(map(repr, unknown))}")
        attrs: dict[str, Any] = {"role": role}
        if role == "seller":
            for attr, default in SELLER_ATTRS.items():
                raw = data.get(attr)
                v = default if raw is None else _number(node, attr, raw)
                if math.isnan(v) or v < 0 or (math.isinf(v) and attr != "capacity"):
                    raise GraphError(f"seller {node!r} has invalid {attr} {raw!r} (need a finite number ≥ 0)")
                attrs[attr] = v
        else:
            for attr in BUYER_ATTRS:
                if data.get(attr) is None:
                    raise GraphError(f"buyer {node!r} has no {attr!r}")
                v = _number(node, attr, data[attr])
                if not (math.isfinite(v) and v > 0):
                    raise GraphError(f"buyer {node!r} has invalid {attr} {data[attr]!r} (need finite > 0)")
                attrs[attr] = v
        H.add_node(node, **attrs)
    for u, v, data in G.edges(data=True):
        roles = {H.nodes[u]["role"], H.nodes[v]["role"]}
        if roles != {"seller", "buyer"}:
            raise GraphError(
                f"edge {(u, v)!r} joins two {H.nodes[u]['role']}s; edges join a seller and a buyer"
            )
        if data:
            raise GraphError(f"edge {(u, v)!r} has attribute(s) {sorted(data)!r}; edges carry none")
        H.add_edge(u, v)
    if H.number_of_edges() == 0:
        raise GraphError("the Cournot market graph has no seller–buyer edge")
    return H


@dataclass(frozen=True)
class CournotArrays:
    """A validated Cournot market as arrays (edges grouped by seller, in graph order).

    Attributes
    ----------
    sellers, markets : list
        Node names; index ``s`` / ``b`` below refers to these lists.
    seller_of, market_of : ndarray of int, shape (E,)
        Endpoints of edge ``e``.
    seller_ptr : ndarray of int, shape (n_sellers + 1,)
        Edges of seller ``s`` are ``seller_ptr[s]:seller_ptr[s + 1]``.
    a, b : ndarray, shape (n_markets,)
        Demand intercepts and slopes.
    c, d, k : ndarray, shape (n_sellers,)
        Linear and quadratic cost coefficients, capacities (inf = none).
    S, B : scipy.sparse.csr_matrix
        Incidence: ``q_s = S @ q`` (n_sellers × E), ``Q_b = B @ q`` (n_markets × E).
    """

    sellers: list[Any]
    markets: list[Any]
    seller_of: np.ndarray
    market_of: np.ndarray
    seller_ptr: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    k: np.ndarray
    S: sp.csr_matrix
    B: sp.csr_matrix

    @property
    def n_edges(self) -> int:
        return int(self.seller_of.size)

    @property
    def price_scale(self) -> float:
        """P̄ = max a_b over markets with a seller: the unit of price residuals."""
        return float(np.max(self.a[self.market_of]))

    @property
    def quantity_scale(self) -> float:
        """q̄ = max a_b / b_b over markets with a seller: no market ever absorbs more."""
        return float(np.max(self.a[self.market_of] / self.b[self.market_of]))


def cournot_arrays(G: nx.Graph) -> CournotArrays:
    """Validate ``G`` (:func:`validate_cournot_graph`) and turn it into :class:`CournotArrays`.

    Examples
    --------
    >>> A = cournot_arrays(symmetric_cournot_graph(3, a=10, b=1, c=1))
    >>> A.n_edges, A.S.shape, A.B.shape
    (3, (3, 3), (1, 3))
    """
    H = validate_cournot_graph(G)
    sellers = [n for n, r in H.nodes(data="role") if r == "seller"]
    markets = [n for n, r in H.nodes(data="role") if r == "buyer"]
    m_index = {m: i for i, m in enumerate(markets)}
    seller_of, market_of, ptr = [], [], [0]
    for s_i, s in enumerate(sellers):
        for m in H.neighbors(s):
            seller_of.append(s_i)
            market_of.append(m_index[m])
        ptr.append(len(seller_of))
    E = len(seller_of)
    s_of, m_of = np.asarray(seller_of, dtype=np.int64), np.asarray(market_of, dtype=np.int64)
    ones = np.ones(E)
    return CournotArrays(
        sellers=sellers,
        markets=markets,
        seller_of=s_of,
        market_of=m_of,
        seller_ptr=np.asarray(ptr, dtype=np.int64),
        a=np.array([H.nodes[m]["intercept"] for m in markets], dtype=float),
        b=np.array([H.nodes[m]["slope"] for m in markets], dtype=float),
        c=np.array([H.nodes[s]["cost"] for s in sellers], dtype=float),
        d=np.array([H.nodes[s]["quad_cost"] for s in sellers], dtype=float),
        k=np.array([H.nodes[s]["capacity"] for s in sellers], dtype=float),
        S=sp.csr_matrix((ones, (s_of, np.arange(E))), shape=(len(sellers), E)),
        B=sp.csr_matrix((ones, (m_of, np.arange(E))), shape=(len(markets), E)),
    )


def random_cournot_graph(
    n_sellers: int,
    seed: int = 0,
    *,
    markets: int | None = None,
    links: int = 2,
    capacity_share: float = 0.3,
) -> nx.Graph:
    """A random Cournot market: ``n_sellers`` sellers ``"s0"…``, ``markets`` markets ``"m0"…``.

    Markets default to ``max(1, n_sellers // 5)``; seller ``i`` sells into market ``i mod markets``
    and ``links − 1`` more distinct random ones (so every market has a seller when
    ``n_sellers ≥ markets``). Data: ``a ~ U(10, 20)``, ``b ~ U(0.5, 2)``, ``c ~ U(0, 5)``,
    ``d ~ U(0, 0.5)``; with probability ``capacity_share`` a seller has capacity ``k ~ U(0.2, 2)``
    (equilibrium sales per edge are of order 1, so some capacities bind).

    Raises
    ------
    InvalidInputError
        ``n_sellers < 1``, ``markets < 1``, ``links < 1`` or ``capacity_share`` outside [0, 1].

    Examples
    --------
    >>> G = random_cournot_graph(10, seed=1)
    >>> sum(r == "buyer" for _, r in G.nodes(data="role")), G.number_of_edges()
    (2, 20)
    """
    n = int(n_sellers)
    m = max(1, n // 5) if markets is None else int(markets)
    if n < 1 or m < 1 or int(links) < 1:
        raise InvalidInputError(f"need sellers ≥ 1, markets ≥ 1, links ≥ 1; got {n}, {m}, {links}")
    if not 0.0 <= float(capacity_share) <= 1.0:
        raise InvalidInputError(f"capacity_share must be in [0, 1], got {capacity_share!r}")
    L = min(int(links), m)
    rng = np.random.default_rng(check_seed(seed))
    G = nx.Graph()
    for j in range(m):
        G.add_node(
            f"m{j}", role="buyer", intercept=float(rng.uniform(10, 20)), slope=float(rng.uniform(0.5, 2))
        )
    for i in range(n):
        attrs: dict[str, Any] = {"cost": float(rng.uniform(0, 5)), "quad_cost": float(rng.uniform(0, 0.5))}
        if rng.random() < capacity_share:
            attrs["capacity"] = float(rng.uniform(0.2, 2.0))
        G.add_node(f"s{i}", role="seller", **attrs)
        others = np.delete(np.arange(m), i % m)
        for j in [i % m, *rng.choice(others, size=L - 1, replace=False).tolist()]:
            G.add_edge(f"s{i}", f"m{j}")
    return G


def symmetric_cournot_graph(
    n_sellers: int, *, a: float, b: float, c: float, d: float = 0.0, capacity: float | None = None
) -> nx.Graph:
    """``n_sellers`` identical sellers ``"s0"…`` in one market ``"m0"`` (the textbook case).

    Examples
    --------
    >>> sorted(symmetric_cournot_graph(2, a=10, b=1, c=1).nodes)
    ['m0', 's0', 's1']
    """
    if int(n_sellers) < 1:
        raise InvalidInputError(f"need at least one seller, got {n_sellers!r}")
    G = nx.Graph()
    G.add_node("m0", role="buyer", intercept=a, slope=b)
    for i in range(int(n_sellers)):
        G.add_node(f"s{i}", role="seller", cost=c, quad_cost=d, capacity=capacity)
        G.add_edge(f"s{i}", "m0")
    return validate_cournot_graph(G)


def symmetric_cournot_equilibrium(
    n_sellers: int, *, a: float, b: float, c: float, d: float = 0.0, capacity: float | None = None
) -> dict[str, float]:
    """Closed form of the symmetric equilibrium: ``q* = min(k, max(0, a − c) / (b(n + 1) + d))``.

    With ``d = 0`` and no capacity this is the textbook ``q* = (a − c)/(b(n + 1))`` and price
    ``(a + n c)/(n + 1)``: the first-order condition ``a − b n q − b q − c − d q = 0`` of each seller.
    If ``k < q*`` every seller sells ``k`` (the best reply to rivals at ``k`` exceeds ``k``).

    Examples
    --------
    >>> symmetric_cournot_equilibrium(2, a=10, b=1, c=1)
    {'quantity': 3.0, 'price': 4.0, 'profit': 9.0}
    """
    n = int(n_sellers)
    q = max(0.0, a - c) / (b * (n + 1) + d)
    if capacity is not None:
        q = min(q, float(capacity))
    price = a - b * n * q
    return {"quantity": q, "price": price, "profit": price * q - c * q - d * q * q / 2}


# -------------------------------------------------------------------- 2. the equilibrium's maths
def marginal_profits(A: CournotArrays, q: np.ndarray) -> np.ndarray:
    """``m_sb = ∂π_s/∂q_sb = a_b − b_b (Q_b + q_sb) − c_s − d_s q_s`` for every edge."""
    Q, X = A.B @ q, A.S @ q
    return (
        A.a[A.market_of]
        - A.b[A.market_of] * (Q[A.market_of] + q)
        - A.c[A.seller_of]
        - A.d[A.seller_of] * X[A.seller_of]
    )


def seller_profits(A: CournotArrays, q: np.ndarray) -> np.ndarray:
    """``π_s = Σ_b P_b(Q_b) q_sb − c_s q_s − d_s q_s²/2`` for every seller."""
    P, X = A.a - A.b * (A.B @ q), A.S @ q
    return A.S @ (P[A.market_of] * q) - A.c * X - A.d * X * X / 2


def potential(A: CournotArrays, q: np.ndarray) -> float:
    """The potential ``Φ(q)`` maximised by the equilibrium (module docstring)."""
    Q, X = A.B @ q, A.S @ q
    return float(A.a @ Q - A.b @ (Q * Q) / 2 - A.b[A.market_of] @ (q * q) / 2 - A.c @ X - A.d @ (X * X) / 2)


def best_response(alpha: np.ndarray, slope: np.ndarray, d: float, k: float) -> np.ndarray:
    r"""One seller's profit-maximising quantities given its rivals, in closed form.

    The seller maximises ``Σ_j (α_j − b_j x_j) x_j − d X²/2`` over ``x ≥ 0``, ``X = Σ_j x_j ≤ k``,
    where ``α_j = a_j − b_j R_j − c`` (``R_j`` = rivals' sales in market ``j``). Stationarity gives
    ``x_j(μ) = max(0, α_j − μ) / (2 b_j)`` with ``μ = d X + λ``: water-filling. ``X(μ)`` is
    piecewise linear and decreasing, so with the ``r`` largest ``α`` active, ``X = P_r − μ H_r``
    (``P_r = Σ α_j/(2b_j)``, ``H_r = Σ 1/(2b_j)``) and ``μ_r = d P_r / (1 + d H_r)`` solves
    ``μ = d X(μ)``; if that exceeds the capacity, ``μ`` solves ``X(μ) = k`` instead.

    Parameters
    ----------
    alpha : ndarray
        Net marginal revenue at zero own sales, per market.
    slope : ndarray
        Demand slopes ``b_j > 0``.
    d : float
        Quadratic cost coefficient ≥ 0.
    k : float
        Capacity ≥ 0 (``inf`` = none).

    Returns
    -------
    ndarray
        The unique best response ``x``.

    Examples
    --------
    >>> best_response(np.array([9.0]), np.array([1.0]), 0.0, np.inf)  # monopoly: (a − c)/(2b)
    array([4.5])
    >>> best_response(np.array([9.0, 9.0]), np.array([1.0, 1.0]), 0.0, 3.0)
    array([1.5, 1.5])
    """
    x = np.zeros_like(alpha)
    pos = np.flatnonzero(alpha > 0)
    if pos.size == 0 or k <= 0:
        return x
    order = pos[np.argsort(-alpha[pos], kind="stable")]
    al, w = alpha[order], 1.0 / (2.0 * slope[order])
    P, H = np.cumsum(al * w), np.cumsum(w)
    nxt = np.append(al[1:], 0.0)  # α of the next market to enter (0: μ ≥ 0 keeps α ≤ 0 out)

    def _pick(mu: np.ndarray) -> float:
        ok = (al > mu) & (nxt <= mu)
        return float(mu[int(np.argmax(ok))] if ok.any() else mu[-1])

    mu = _pick(d * P / (1.0 + d * H))
    if float(np.sum(np.maximum(al - mu, 0.0) * w)) > k:
        mu = _pick((P - k) / H)
    x[order] = np.maximum(al - mu, 0.0) * w
    return x
