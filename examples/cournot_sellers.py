r"""Cournot competition among data sellers on a bipartite graph — a complete formulation plug-in.

This module is the end product of ``docs/writing-a-formulation.md``; read the two side by side.
It is the advanced, hand-derived version: the short version of the same game on the generic games
layer (players' costs → ``lq_game``, one line to make the plug-in ``cournot-game``) is
``examples/cournot_games.py``.

Model
-----
Sellers ``s`` (nodes with ``role="seller"``) sell into markets ``b`` (nodes with ``role="buyer"``)
along the edges of an undirected bipartite :class:`networkx.Graph`. Seller ``s`` chooses a quantity
``q_sb ≥ 0`` on each of its edges; market ``b`` clears at the linear inverse demand price::

    P_b(Q_b) = a_b − b_b Q_b,        Q_b = Σ_s q_sb            (a_b > 0, b_b > 0)

and seller ``s``, with total sales ``q_s = Σ_b q_sb``, cost ``C_s(q) = c_s q + d_s q²/2``
(``c_s, d_s ≥ 0``) and capacity ``k_s ≥ 0`` (``inf`` when absent), maximises its profit::

    π_s(q) = Σ_b P_b(Q_b) q_sb − C_s(q_s)    subject to  q_sb ≥ 0,  q_s ≤ k_s.

The game is an exact *potential game* (Monderer & Shapley 1996): with ::

    Φ(q) = Σ_b [a_b Q_b − (b_b/2)(Q_b² + Σ_s q_sb²)] − Σ_s C_s(q_s)

``∂Φ/∂q_sb = ∂π_s/∂q_sb = a_b − b_b(Q_b + q_sb) − c_s − d_s q_s`` and each seller's constraints
involve only its own quantities, so the Nash equilibria are exactly the maximisers of ``Φ`` over
the product of the sellers' feasible sets. ``Φ`` is strictly concave, hence the equilibrium is
unique. It is computed three ways:

``build_qp`` (solvers ``clarabel``, ``highs``, ``osqp``, ``scs``)
    The concave QP ``max Φ`` in cvxpy, vectorised with sparse incidence matrices. (ECOS is left
    out: through cvxpy's cone reformulation of the squares it reached only ~1e-5 relative
    accuracy here, short of the certificate's 1e-6.)
``build_kkt_model`` (formulation ``cournot-sellers-kkt``; solvers ``highs``, ``cbc``, ``glpk``)
    The KKT conditions of every seller as a mixed-integer *feasibility* program in Pyomo: with
    marginal profit ``m_sb`` and capacity multiplier ``λ_s``, ::

        0 ≤ q_sb ⟂ λ_s − m_sb ≥ 0,        0 ≤ λ_s ⟂ k_s − q_s ≥ 0,

    each complementarity pair switched by a binary with big-M bounds derived from the data.
``best_response_iteration`` (solver ``direct``)
    Gauss–Seidel best responses, each in closed form (:func:`best_response`). A best response
    maximises ``Φ`` over one seller's block, so this is block-coordinate ascent on a strictly
    concave quadratic and converges.

:func:`certify_cournot` checks a solution from the instance and the quantities alone: feasibility,
the KKT residuals above (``λ_s`` recovered from the quantities) and every seller's best-response
gap, all relative to the data's price and quantity scales.

Isolated nodes are allowed (a seller without markets sells nothing; a market without sellers has
price ``a_b``); a graph needs at least one seller–buyer edge.

References
----------
Monderer, D. and Shapley, L. S. (1996). Potential games. *Games and Economic Behavior* 14, 124–143.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import GraphError, InvalidInputError, SolverError
from datamarkets.formulation import DIRECT, Formulation, check_params
from datamarkets.result import Certificate, Result
from datamarkets.status import Status, StatusGroup, status_from_cvxpy

__all__ = [
    "BUYER_ATTRS",
    "CERTIFY_TOL",
    "SELLER_ATTRS",
    "CournotArrays",
    "CournotProgram",
    "CournotResult",
    "CournotSellers",
    "CournotSellersKKT",
    "best_response",
    "best_response_gaps",
    "best_response_iteration",
    "build_kkt_model",
    "build_qp",
    "capacity_prices",
    "certify_cournot",
    "cournot_arrays",
    "cournot_solution",
    "kkt_bounds",
    "marginal_profits",
    "polish_active_set",
    "potential",
    "quantity_vector",
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
    rng = np.random.default_rng(int(seed))
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


# --------------------------------------------------------------------------------- 3. programs
@dataclass
class CournotProgram:
    """What :meth:`CournotSellers.build` returns: the arrays and the declared model.

    ``route`` is ``"qp"`` (``model`` = ``(cvxpy.Problem, variable q)``), ``"kkt"`` (``model`` = a
    Pyomo ``ConcreteModel`` from :func:`build_kkt_model`) or ``"direct"`` (``model`` = ``None``).
    """

    arrays: CournotArrays
    route: str
    model: Any = None


def build_qp(A: CournotArrays) -> tuple[Any, Any]:
    """The potential maximisation ``max Φ(q)`` s.t. ``q ≥ 0``, ``S q ≤ k`` as a cvxpy problem.

    Returns
    -------
    (cvxpy.Problem, cvxpy.Variable)
        The problem and ``q`` (one entry per edge of ``A``). Sellers with a finite capacity have
        one row each in the problem's only constraint, whose dual values are their λ_s.

    Examples
    --------
    >>> prob, q = build_qp(cournot_arrays(symmetric_cournot_graph(2, a=10, b=1, c=1)))
    >>> prob.is_dcp(), q.shape
    (True, (2,))
    """
    import cvxpy as cp

    q = cp.Variable(A.n_edges, nonneg=True, name="quantity")
    Q, X = A.B @ q, A.S @ q
    phi = (
        A.a @ Q
        - cp.sum(cp.multiply(A.b / 2, cp.square(Q)))
        - cp.sum(cp.multiply(A.b[A.market_of] / 2, cp.square(q)))
        - A.c @ X
        - cp.sum(cp.multiply(A.d / 2, cp.square(X)))
    )
    finite = np.flatnonzero(np.isfinite(A.k))
    capacity = [A.S[finite] @ q <= A.k[finite]] if finite.size else []
    return cp.Problem(cp.Maximize(phi), capacity), q


def kkt_bounds(A: CournotArrays) -> dict[str, np.ndarray]:
    """Bounds that hold at the equilibrium, used as the big-Ms of :func:`build_kkt_model`.

    At a KKT point an active edge has ``b_b (Q_b + q_sb) = a_b − c_s − d_s q_s − λ_s ≤ a_b``, so
    ``q_sb ≤ min(a_b / (2 b_b), k_s)`` and ``Q_b ≤ a_b / b_b``; a positive ``λ_s`` equals some
    ``m_sb ≤ a_b − c_s``; hence ``λ_s − m_sb ≤ λ̄_s − a_b + c_s + b_b (Q̄_b + q̄_sb) + d_s q̄_s``.

    Returns
    -------
    dict
        ``"q"`` and ``"gap"`` per edge, ``"lam"`` and ``"slack"`` per seller.
    """
    a_e, b_e = A.a[A.market_of], A.b[A.market_of]
    q_ub = np.minimum(a_e / (2 * b_e), A.k[A.seller_of])
    Q_ub = np.minimum(A.a / A.b, A.B @ q_ub)
    X_ub = np.minimum(A.k, A.S @ q_ub)
    lam_ub = np.zeros(len(A.sellers))
    np.maximum.at(lam_ub, A.seller_of, a_e - A.c[A.seller_of])
    c_e, d_e = A.c[A.seller_of], A.d[A.seller_of]
    gap_ub = lam_ub[A.seller_of] - a_e + c_e + b_e * (Q_ub[A.market_of] + q_ub) + d_e * X_ub[A.seller_of]
    return {
        "q": q_ub,
        "gap": np.maximum(gap_ub, 0.0),
        "lam": lam_ub,
        "slack": np.where(np.isfinite(A.k), A.k, 0.0),
    }


def build_kkt_model(G: nx.Graph | CournotArrays, safety: float = 1.1) -> Any:
    r"""The sellers' KKT conditions as a mixed-integer feasibility program (Pyomo).

    For every edge ``e = (s, b)`` and every seller with finite capacity::

        gap_e = λ_s − m_e ≥ 0,   q_e ≤ Mq_e · on_e,       gap_e ≤ Mg_e · (1 − on_e)
        q_s ≤ k_s,               λ_s ≤ Mλ_s · bind_s,     k_s − q_s ≤ k_s · (1 − bind_s)

    with binaries ``on``, ``bind`` and the Ms of :func:`kkt_bounds` times ``safety``; the objective
    is constant (the equilibrium is unique, any feasible point is it). Components: ``q[e]``,
    ``lam[s]``, ``on[e]``, ``bind[s]``, constraints ``dual_feas``, ``q_on``, ``gap_off``,
    ``capacity``, ``lam_on``, ``slack_off``; ``edge_names`` holds ``(seller, buyer)`` per ``e``.

    Examples
    --------
    >>> m = build_kkt_model(symmetric_cournot_graph(2, a=10, b=1, c=1))
    >>> len(m.q), len(m.on)
    (2, 2)
    """
    import pyomo.environ as pyo

    A = G if isinstance(G, CournotArrays) else cournot_arrays(G)
    U = {key: safety * v for key, v in kkt_bounds(A).items()}
    cap = [int(s) for s in np.flatnonzero(np.isfinite(A.k))]
    Bc = A.B.tocsr()
    in_market = [Bc.indices[Bc.indptr[j] : Bc.indptr[j + 1]].tolist() for j in range(len(A.markets))]
    of_seller = [list(range(A.seller_ptr[s], A.seller_ptr[s + 1])) for s in range(len(A.sellers))]

    m = pyo.ConcreteModel(name="cournot-kkt")
    m.E = pyo.RangeSet(0, A.n_edges - 1)
    m.C = pyo.Set(initialize=cap)
    m.q = pyo.Var(m.E, bounds=lambda _m, e: (0.0, float(U["q"][e])))
    m.lam = pyo.Var(m.C, bounds=lambda _m, s: (0.0, float(U["lam"][s])))
    m.on = pyo.Var(m.E, within=pyo.Binary)
    m.bind = pyo.Var(m.C, within=pyo.Binary)

    def gap(_m: Any, e: int) -> Any:  # λ_s − m_e, m_e = a_b − b_b (Q_b + q_e) − c_s − d_s q_s
        s, j = int(A.seller_of[e]), int(A.market_of[e])
        lam = _m.lam[s] if s in cap else 0.0
        Q = sum(_m.q[f] for f in in_market[j])
        X = sum(_m.q[f] for f in of_seller[s])
        return lam - A.a[j] + A.b[j] * (Q + _m.q[e]) + A.c[s] + A.d[s] * X

    m.gap = pyo.Expression(m.E, rule=gap)
    m.dual_feas = pyo.Constraint(m.E, rule=lambda _m, e: _m.gap[e] >= 0)
    m.q_on = pyo.Constraint(m.E, rule=lambda _m, e: _m.q[e] <= float(U["q"][e]) * _m.on[e])
    m.gap_off = pyo.Constraint(m.E, rule=lambda _m, e: _m.gap[e] <= float(U["gap"][e]) * (1 - _m.on[e]))
    m.capacity = pyo.Constraint(m.C, rule=lambda _m, s: sum(_m.q[f] for f in of_seller[s]) <= float(A.k[s]))
    m.lam_on = pyo.Constraint(m.C, rule=lambda _m, s: _m.lam[s] <= float(U["lam"][s]) * _m.bind[s])
    m.slack_off = pyo.Constraint(
        m.C,
        rule=lambda _m, s: (
            float(A.k[s]) - sum(_m.q[f] for f in of_seller[s]) <= float(U["slack"][s]) * (1 - _m.bind[s])
        ),
    )
    m.feasibility = pyo.Objective(expr=0.0)
    m.edge_names = [
        (A.sellers[int(s)], A.markets[int(j)]) for s, j in zip(A.seller_of, A.market_of, strict=True)
    ]
    return m


def polish_active_set(A: CournotArrays, active: np.ndarray, binding: np.ndarray) -> np.ndarray | None:
    """Solve the KKT *equations* exactly on an active set (from the MILP's binaries).

    Unknowns ``q_e`` (active edges) and ``λ_s`` (binding sellers with an active edge)::

        b_b (Q_b + q_e) + d_s q_s + λ_s = a_b − c_s     for active e = (s, b)
        q_s = k_s                                       for binding s

    Returns ``None`` when the system is singular or its solution has the wrong signs, in which
    case the caller keeps the MILP's values.
    """
    from scipy.sparse.linalg import spsolve

    act = np.flatnonzero(active)
    pos = {int(e): i for i, e in enumerate(act)}
    has_active = np.zeros(len(A.sellers), dtype=bool)
    has_active[A.seller_of[act]] = True
    bind = np.flatnonzero(binding & has_active & np.isfinite(A.k))
    lrow = {int(s): len(act) + i for i, s in enumerate(bind)}
    n = len(act) + len(bind)
    if len(act) == 0:
        return np.zeros(A.n_edges)
    entries: list[tuple[int, int, float]] = []  # (row, column, value)
    rhs = np.zeros(n)
    for i, e in enumerate(act):
        s, j = int(A.seller_of[e]), int(A.market_of[e])
        rhs[i] = A.a[j] - A.c[s]
        for f in A.B.indices[A.B.indptr[j] : A.B.indptr[j + 1]]:
            if int(f) in pos:
                entries.append((i, pos[int(f)], A.b[j] * (2.0 if f == e else 1.0)))
        if A.d[s] > 0:
            entries += [(i, pos[f], A.d[s]) for f in range(A.seller_ptr[s], A.seller_ptr[s + 1]) if f in pos]
        if s in lrow:
            entries.append((i, lrow[s], 1.0))
    for s, r in lrow.items():
        rhs[r] = A.k[s]
        entries += [(r, pos[f], 1.0) for f in range(A.seller_ptr[s], A.seller_ptr[s + 1]) if f in pos]
    rows, cols, vals = zip(*entries, strict=True)
    M = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular system warns before returning NaN
        try:
            z = np.atleast_1d(spsolve(M, rhs))
        except Exception:
            return None
    if not np.all(np.isfinite(z)) or np.min(z, initial=0.0) < -1e-9 * A.quantity_scale:
        return None
    q = np.zeros(A.n_edges)
    q[act] = np.maximum(z[: len(act)], 0.0)
    return q


def best_response_iteration(
    A: CournotArrays, *, tol: float = 1e-12, max_sweeps: int = 100_000, time_limit: float | None = None
) -> tuple[np.ndarray, int, Status]:
    """Gauss–Seidel best responses from ``q = 0`` until a sweep moves no quantity by more than
    ``tol · q̄`` (:attr:`CournotArrays.quantity_scale`).

    Each step replaces one seller's quantities by :func:`best_response` to the current rivals:
    block-coordinate ascent on the strictly concave potential, which converges to its maximiser.

    Returns
    -------
    (ndarray, int, Status)
        Quantities per edge, sweeps run, and ``OPTIMAL``, ``ITERATION_LIMIT`` or ``TIME_LIMIT``.

    Examples
    --------
    >>> A = cournot_arrays(symmetric_cournot_graph(3, a=10, b=1, c=2))
    >>> q, sweeps, status = best_response_iteration(A)
    >>> np.round(q, 9).tolist(), status.value
    ([2.0, 2.0, 2.0], 'optimal')
    """
    t0 = time.perf_counter()
    q, Q = np.zeros(A.n_edges), np.zeros(len(A.markets))
    blocks = []
    for s in range(len(A.sellers)):
        lo, hi = int(A.seller_ptr[s]), int(A.seller_ptr[s + 1])
        if hi > lo:
            mk = A.market_of[lo:hi]
            blocks.append((lo, hi, mk, A.a[mk] - A.c[s], A.b[mk], float(A.d[s]), float(A.k[s])))
    step = tol * A.quantity_scale
    for sweep in range(1, max_sweeps + 1):
        moved = 0.0
        for lo, hi, mk, a_net, slope, d, k in blocks:
            old = q[lo:hi]
            x = best_response(a_net - slope * (Q[mk] - old), slope, d, k)
            Q[mk] += x - old
            moved = max(moved, float(np.max(np.abs(x - old))))
            q[lo:hi] = x
        if moved <= step:
            return q, sweep, Status.OPTIMAL
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            return q, sweep, Status.TIME_LIMIT
    return q, max_sweeps, Status.ITERATION_LIMIT


# ------------------------------------------------------------------------- 4. solution writer
def _seller_max(A: CournotArrays, v: np.ndarray) -> np.ndarray:
    out = np.full(len(A.sellers), -np.inf)
    np.maximum.at(out, A.seller_of, v)
    return out


def capacity_prices(A: CournotArrays, q: np.ndarray) -> np.ndarray:
    """λ_s recovered from quantities: ``max(0, max_b m_sb)`` for a finite capacity, else 0.

    This is the smallest multiplier that makes every edge dual feasible (``λ_s ≥ m_sb``); at the
    equilibrium it is the shadow price of the seller's capacity.
    """
    return np.where(np.isfinite(A.k), np.maximum(_seller_max(A, marginal_profits(A, q)), 0.0), 0.0)


def cournot_solution(A: CournotArrays, q: np.ndarray) -> dict[str, Any]:
    """Write quantities per edge as the solution dict of a ``"cournot-equilibrium"`` result.

    Returns
    -------
    dict
        ``quantities`` (rows seller, buyer, quantity), ``sellers`` (seller, output, capacity,
        capacity_price, profit), ``markets`` (buyer, quantity, price), and the scalars
        ``objective`` (the potential Φ), ``welfare`` (consumer surplus + profits),
        ``consumer_surplus`` and ``total_profit``.
    """
    Q, X = A.B @ q, A.S @ q
    price, profit, lam = A.a - A.b * Q, seller_profits(A, q), capacity_prices(A, q)
    consumer_surplus = float(A.b @ (Q * Q) / 2)
    return {
        "quantities": [
            {"seller": A.sellers[int(s)], "buyer": A.markets[int(j)], "quantity": float(x)}
            for s, j, x in zip(A.seller_of, A.market_of, q, strict=True)
        ],
        "sellers": [
            {
                "seller": name,
                "output": float(X[i]),
                "capacity": float(A.k[i]) if math.isfinite(A.k[i]) else None,
                "capacity_price": float(lam[i]),
                "profit": float(profit[i]),
            }
            for i, name in enumerate(A.sellers)
        ],
        "markets": [
            {"buyer": name, "quantity": float(Q[j]), "price": float(price[j])}
            for j, name in enumerate(A.markets)
        ],
        "objective": potential(A, q),
        "welfare": consumer_surplus + float(profit.sum()),
        "consumer_surplus": consumer_surplus,
        "total_profit": float(profit.sum()),
    }


class CournotResult(Result):
    """A ``"cournot-equilibrium"`` :class:`~datamarkets.result.Result`.

    Its row lists become tidy tables through the framework's generic converter:
    ``to_frame("quantities" | "sellers" | "markets")``, plus ``"summary"`` and ``"certificate"``
    like every result (also after :meth:`Result.from_dict`).
    """


# ----------------------------------------------------------------------------- 5. certificate
CERTIFY_TOL = 1e-6
"""Tolerance of every relative residual of :func:`certify_cournot` (claimed values: 1e-9)."""


def quantity_vector(A: CournotArrays, solution: Mapping[str, Any]) -> np.ndarray:
    """Quantities per edge from a solution's ``quantities`` rows (a missing edge means 0).

    Raises
    ------
    InvalidInputError
        No ``quantities`` list, a row naming a pair that is not an edge, a duplicate row, or a
        quantity that is not a finite number.
    """
    rows = solution.get("quantities")
    if not isinstance(rows, list):
        raise InvalidInputError("a cournot-equilibrium solution needs a 'quantities' list")
    index = {
        (A.sellers[int(s)], A.markets[int(j)]): e
        for e, (s, j) in enumerate(zip(A.seller_of, A.market_of, strict=True))
    }
    q, seen = np.zeros(A.n_edges), set()
    for row in rows:
        if not isinstance(row, Mapping) or not {"seller", "buyer", "quantity"} <= set(row):
            raise InvalidInputError(f"quantity row {row!r} needs 'seller', 'buyer' and 'quantity'")
        key = (row["seller"], row["buyer"])
        if key not in index:
            raise InvalidInputError(f"quantity row names {key!r}, which is not a seller–buyer edge")
        if key in seen:
            raise InvalidInputError(f"duplicate quantity row for edge {key!r}")
        seen.add(key)
        v = row["quantity"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InvalidInputError(f"quantity of edge {key!r} must be a finite number, got {v!r}")
        q[index[key]] = float(v)
    return q


def best_response_gaps(A: CournotArrays, q: np.ndarray) -> np.ndarray:
    """``π_s(best response to q_{-s}) − π_s(q)`` per seller (≥ 0 at a feasible equilibrium)."""
    Q = A.B @ q
    gaps = np.zeros(len(A.sellers))
    for s in range(len(A.sellers)):
        lo, hi = int(A.seller_ptr[s]), int(A.seller_ptr[s + 1])
        if hi == lo:
            continue
        mk, own = A.market_of[lo:hi], q[lo:hi]
        a_net, slope = A.a[mk] - A.b[mk] * (Q[mk] - own) - A.c[s], A.b[mk]

        def profit(x: np.ndarray, s: int = s, a_net: np.ndarray = a_net, slope: np.ndarray = slope) -> float:
            X = float(x.sum())
            return float((a_net - slope * x) @ x) - A.d[s] * X * X / 2

        gaps[s] = profit(best_response(a_net, slope, float(A.d[s]), float(A.k[s]))) - profit(own)
    return gaps


def certify_cournot(
    G: nx.Graph | CournotArrays, solution: Mapping[str, Any], tol: float = CERTIFY_TOL
) -> Certificate:
    """Certify a Cournot equilibrium from the instance and the solution's quantities alone.

    With ``P̄`` the price scale and ``q̄`` the quantity scale of :class:`CournotArrays`, marginal
    profits ``m_sb`` and ``λ_s`` = :func:`capacity_prices`, the residuals (each ≤ ``tol``) are:

    ``nonnegativity``            max(−q_sb, 0) / q̄
    ``capacity``                 max(q_s − k_s, 0) / q̄
    ``dual_feasibility``         max(m_sb − λ_s, 0) / P̄           (no profitable expansion)
    ``complementarity_quantity`` max q_sb |λ_s − m_sb| / (P̄ q̄)    (sold edges are marginal)
    ``complementarity_capacity`` max λ_s (k_s − q_s)⁺ / (P̄ q̄)     (priced capacity is full)
    ``best_response_gap``        max (π_s(BR_s) − π_s(q)) / (P̄ q̄) (no profitable deviation)

    and, where the solution claims them, ``claimed_prices``, ``claimed_profits`` and
    ``claimed_objective`` against values recomputed from the quantities (tolerance 1e-9).

    Raises
    ------
    InvalidInputError
        Malformed quantities (:func:`quantity_vector`).

    Examples
    --------
    >>> G = symmetric_cournot_graph(2, a=10, b=1, c=1)
    >>> rows = [{"seller": s, "buyer": "m0", "quantity": 3.0} for s in ("s0", "s1")]
    >>> certify_cournot(G, {"quantities": rows}).passed
    True
    >>> rows[0]["quantity"] = 3.1
    >>> sorted(certify_cournot(G, {"quantities": rows}).failures)
    ['best_response_gap', 'complementarity_quantity']
    """
    A = G if isinstance(G, CournotArrays) else cournot_arrays(G)
    q = quantity_vector(A, solution)
    P_bar, q_bar = A.price_scale, A.quantity_scale
    m, X, lam = marginal_profits(A, q), A.S @ q, capacity_prices(A, q)
    fin = np.isfinite(A.k)
    slack = np.where(fin, A.k - X, np.inf)
    comp_q = np.maximum(q, 0.0) * np.abs(lam[A.seller_of] - m)
    gaps = best_response_gaps(A, q)
    cert = Certificate()
    cert.add("nonnegativity", float(np.max(-q, initial=0.0)) / q_bar, tol)
    cert.add("capacity", float(np.max(-slack[fin], initial=0.0)) / q_bar, tol)
    cert.add("dual_feasibility", float(np.max(m - lam[A.seller_of], initial=0.0)) / P_bar, tol)
    cert.add("complementarity_quantity", float(np.max(comp_q, initial=0.0)) / (P_bar * q_bar), tol)
    comp_k = lam[fin] * np.maximum(slack[fin], 0.0)
    cert.add("complementarity_capacity", float(np.max(comp_k, initial=0.0)) / (P_bar * q_bar), tol)
    cert.add("best_response_gap", float(np.max(gaps, initial=0.0)) / (P_bar * q_bar), tol)
    _check_claims(A, q, solution, cert)
    worst, e_max = int(np.argmax(gaps)), int(np.argmax(comp_q))
    cert.details.update(
        price_scale=P_bar,
        quantity_scale=q_bar,
        binding_capacities=int(np.sum(fin & (slack <= tol * q_bar))),
        worst_best_response_seller=A.sellers[worst],
        worst_complementarity_edge=[A.sellers[int(A.seller_of[e_max])], A.markets[int(A.market_of[e_max])]],
    )
    return cert


def _check_claims(A: CournotArrays, q: np.ndarray, solution: Mapping[str, Any], cert: Certificate) -> None:
    """Compare claimed prices, profits and objective with values recomputed from ``q``."""
    scale = A.price_scale * A.quantity_scale
    price = dict(zip(A.markets, A.a - A.b * (A.B @ q), strict=True))
    profit = dict(zip(A.sellers, seller_profits(A, q), strict=True))
    try:
        if isinstance(solution.get("markets"), list):
            err = [abs(float(r["price"]) - price[r["buyer"]]) for r in solution["markets"]]
            cert.add("claimed_prices", max(err, default=0.0) / A.price_scale, 1e-9)
        if isinstance(solution.get("sellers"), list):
            err = [abs(float(r["profit"]) - profit[r["seller"]]) for r in solution["sellers"]]
            cert.add("claimed_profits", max(err, default=0.0) / scale, 1e-9)
        if solution.get("objective") is not None:
            phi = potential(A, q)
            cert.add(
                "claimed_objective", abs(float(solution["objective"]) - phi) / max(scale, abs(phi)), 1e-9
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"malformed claimed markets/sellers/objective in the solution: {exc!r}"
        ) from exc


# ----------------------------------------------------------------------------- 6. formulation
_MODEL_KEYS = {
    "random": ("size", "seed", "markets", "links", "capacity_share"),
    "symmetric": ("sellers", "a", "b", "c", "d", "capacity"),
    "graph": ("graph",),
}

_CVXPY = {"clarabel": "CLARABEL", "highs": "HIGHS", "osqp": "OSQP", "scs": "SCS"}


def _osqp_polish() -> str:
    """OSQP ≥ 1.0 renamed its ``polish`` setting to ``polishing``."""
    import osqp

    major = int(str(getattr(osqp, "__version__", "0")).split(".")[0] or 0)
    return "polishing" if major >= 1 else "polish"


def _cvxpy_options(solver: str, time_limit: float | None) -> dict[str, Any]:
    """Tight tolerances: the certificate asks for 1e-6 relative residuals."""
    opts: dict[str, Any] = {
        "clarabel": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
        "highs": {"qp_regularization_value": 0.0},  # the Hessian is positive definite
        "osqp": {"eps_abs": 1e-10, "eps_rel": 1e-10, _osqp_polish(): True, "max_iter": 200_000},
        "scs": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 200_000},
    }[solver]
    if time_limit is not None and solver in ("clarabel", "highs", "scs"):
        opts["time_limit" if solver != "scs" else "time_limit_secs"] = float(time_limit)
    return opts


def _as_number(name: str, value: Any, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"parameter {name!r} must be a number, got {value!r}") from exc


class CournotSellers(Formulation):
    """Cournot equilibrium of data sellers on a bipartite graph, as the potential-game QP.

    Parameters accepted by :meth:`instance`: ``model="random"`` (``size`` sellers, ``seed``,
    ``markets`` = size/5, ``links`` = 2 markets per seller, ``capacity_share`` = 0.3; see
    :func:`random_cournot_graph`), ``model="symmetric"`` (``sellers``, ``a``, ``b``, ``c``, ``d``,
    ``capacity``; :func:`symmetric_cournot_graph`) or ``model="graph"`` (``graph``: a
    :class:`networkx.Graph` or its node-link dict). Solvers: the QP by Clarabel, HiGHS, OSQP or
    SCS (through cvxpy), or ``"direct"`` best-response iteration.

    Examples
    --------
    >>> f = CournotSellers()
    >>> r = f.solve(f.instance({"model": "symmetric", "sellers": 2, "a": 10, "b": 1, "c": 1}))
    >>> r.certified, round(r.solution["markets"][0]["price"], 6)
    (True, 4.0)
    """

    name = "cournot-sellers"
    summary = "Cournot competition among data sellers on a bipartite graph (potential-game QP)"
    kinds = ("cournot-equilibrium",)
    solvers = ("clarabel", "highs", "osqp", "scs", DIRECT)
    size_meaning = "sellers (markets = sellers/5, 2 markets per seller, 30% of sellers capacitated)"
    objective_sense = "max"  # the potential Φ is maximised: benchmarks measure gaps to the largest
    parameters: ClassVar[dict[str, Any]] = {
        "model": "random",
        "size": 20,
        "seed": 0,
        "markets": None,
        "links": 2,
        "capacity_share": 0.3,
        "sellers": 3,
        "a": 10.0,
        "b": 1.0,
        "c": 1.0,
        "d": 0.0,
        "capacity": None,
        "graph": None,
    }

    # ------------------------------------------------------------------ data
    def instance(self, params: Mapping[str, Any]) -> nx.Graph:
        """A validated market graph from parameters (see the class docstring).

        Raises
        ------
        InvalidInputError
            Unknown model, a parameter of another model, a bad number; :class:`GraphError` for a
            bad graph.
        """
        model = str(params.get("model", "graph" if "graph" in params else "random")).lower()
        if model not in _MODEL_KEYS:
            raise InvalidInputError(f"unknown model {params.get('model')!r}; choose {', '.join(_MODEL_KEYS)}")
        foreign = sorted(set(params) - {"model", *_MODEL_KEYS[model]} & set(self.parameters))
        if foreign:
            raise InvalidInputError(
                f"parameter(s) {', '.join(map(repr, foreign))} do not apply to model {model!r}"
            )
        p = check_params(self.name, params, self.parameters)
        if model == "graph":
            g = p["graph"]
            if g is None:
                raise InvalidInputError("model 'graph' needs a 'graph' parameter")
            return self.instance_from_dict(g) if isinstance(g, Mapping) else validate_cournot_graph(g)
        if model == "symmetric":
            cap = None if p["capacity"] is None else _as_number("capacity", p["capacity"])
            abcd = {key: _as_number(key, p[key]) for key in ("a", "b", "c", "d")}
            return symmetric_cournot_graph(_as_number("sellers", p["sellers"], int), capacity=cap, **abcd)
        G = random_cournot_graph(
            _as_number("size", p["size"], int),
            _as_number("seed", p["seed"], int),
            markets=None if p["markets"] is None else _as_number("markets", p["markets"], int),
            links=_as_number("links", p["links"], int),
            capacity_share=_as_number("capacity_share", p["capacity_share"]),
        )
        return validate_cournot_graph(G)

    def instance_to_dict(self, instance: nx.Graph) -> dict[str, Any]:
        """Node-link JSON (``nodes`` with ``id`` and attributes, ``edges`` with ``source``/``target``);
        an infinite capacity is written by leaving ``capacity`` out."""
        G = validate_cournot_graph(instance)
        nodes = [
            {"id": n, **{k: v for k, v in data.items() if not (k == "capacity" and math.isinf(v))}}
            for n, data in G.nodes(data=True)
        ]
        edges = [{"source": u, "target": v} for u, v in G.edges()]
        return {"directed": False, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}

    def instance_from_dict(self, d: Mapping[str, Any]) -> nx.Graph:
        """Inverse of :meth:`instance_to_dict` (``links`` is accepted for ``edges``, as older
        networkx wrote it).

        Raises
        ------
        InvalidInputError
            Not a node-link dict; :class:`GraphError` for a bad graph.
        """
        edges = d.get("edges", d.get("links")) if isinstance(d, Mapping) else None
        if not isinstance(d, Mapping) or not isinstance(d.get("nodes"), list) or not isinstance(edges, list):
            raise InvalidInputError("a cournot-sellers instance is a node-link dict with 'nodes' and 'edges'")
        if d.get("directed") or d.get("multigraph"):
            raise GraphError("a Cournot market is an undirected simple graph (directed/multigraph given)")
        G = nx.Graph()
        for node in d["nodes"]:
            if not isinstance(node, Mapping) or "id" not in node:
                raise InvalidInputError(f"node entry {node!r} has no 'id'")
            G.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
        for edge in edges:
            if not isinstance(edge, Mapping) or not {"source", "target"} <= set(edge):
                raise InvalidInputError(f"edge entry {edge!r} needs 'source' and 'target'")
            u, v = edge["source"], edge["target"]
            for end in (u, v):
                if end not in G:
                    raise GraphError(f"edge {(u, v)!r} names unknown node {end!r}")
            G.add_edge(u, v, **{k: x for k, x in edge.items() if k not in ("source", "target")})
        return validate_cournot_graph(G)

    # --------------------------------------------------------------- program
    def build(self, instance: nx.Graph, solver: str) -> CournotProgram:
        """The QP of :func:`build_qp`, or only the arrays for the direct algorithm."""
        A = cournot_arrays(instance)
        if solver == DIRECT:
            return CournotProgram(A, "direct")
        return CournotProgram(A, "qp", build_qp(A))

    def solve_program(
        self, program: CournotProgram, solver: str, *, time_limit: float | None = None
    ) -> CournotResult:
        """Solve the QP (cvxpy) or run best-response iteration; write the solution."""
        from datamarkets import __version__
        from datamarkets.solvers import require_solver

        A = program.arrays
        if program.route == "direct":
            q, sweeps, status = best_response_iteration(A, time_limit=time_limit)
            res = CournotResult("cournot-equilibrium", status, "best-response", cournot_solution(A, q))
            res.solution["iterations"] = sweeps
            res.meta["solvers"] = {"datamarkets-best-response": __version__}
            return res
        import cvxpy as cp

        version = require_solver(solver)
        prob, q_var = program.model
        try:
            prob.solve(solver=_CVXPY[solver], **_cvxpy_options(solver, time_limit))
        except cp.error.SolverError as exc:
            raise SolverError(f"cvxpy/{solver} failed on the Cournot QP: {exc}") from exc
        status = status_from_cvxpy(prob.status)
        solution = cournot_solution(A, np.maximum(q_var.value, 0.0)) if status.has_solution else {}
        res = CournotResult("cournot-equilibrium", status, f"qp-{solver}", solution)
        res.meta["solvers"] = {solver: version, "cvxpy": cp.__version__}
        return res

    def certify(self, instance: nx.Graph, solution: Mapping[str, Any]) -> Certificate:
        """:func:`certify_cournot`: KKT residuals and best-response gaps from the quantities."""
        return certify_cournot(instance, solution)


class CournotSellersKKT(CournotSellers):
    """The same equilibrium from its KKT conditions, as a mixed-integer program (small instances).

    Examples
    --------
    >>> f = CournotSellersKKT()
    >>> r = f.solve(f.instance({"model": "symmetric", "sellers": 2, "a": 10, "b": 1, "c": 1}))
    >>> r.certified, r.method, round(r.solution["quantities"][0]["quantity"], 6)
    (True, 'kkt-milp', 3.0)
    """

    name = "cournot-sellers-kkt"
    summary = "Cournot competition among data sellers: KKT conditions as a big-M MILP"
    solvers = ("highs", "cbc", "glpk")
    size_meaning = "sellers (markets = sellers/5, 2 markets per seller; a MILP: keep ≲ 40)"

    def build(self, instance: nx.Graph, solver: str) -> CournotProgram:
        """The Pyomo model of :func:`build_kkt_model`."""
        A = cournot_arrays(instance)
        return CournotProgram(A, "kkt", build_kkt_model(A))

    def solve_program(
        self, program: CournotProgram, solver: str, *, time_limit: float | None = None
    ) -> CournotResult:
        """Solve the MILP, then solve the KKT equations exactly on its active set."""
        import pyomo.environ as pyo

        from datamarkets.solvers import PYOMO_NAMES, solve_pyomo

        A, m = program.arrays, program.model
        limit = {"highs": "time_limit", "cbc": "sec", "glpk": "tmlim"}[solver]
        # CBC 2.10's preprocessing can call a feasible big-M system infeasible (seen on the auction
        # KKT MILP): switch it off
        options: dict[str, Any] = {
            "highs": {"mip_feasibility_tolerance": 1e-9},
            "cbc": {"preprocess": "off"},
        }.get(solver, {})
        time_limit = 120.0 if time_limit is None else time_limit  # MILPs grow fast: a limit is a result
        options[limit] = float(time_limit) if solver != "glpk" else max(1, math.ceil(time_limit))
        info = solve_pyomo(m, PYOMO_NAMES[solver], options=options)
        if info.status.group is StatusGroup.INFEASIBLE_OR_UNBOUNDED:  # a valid market has a KKT point
            raise SolverError(
                f"{solver} calls the Cournot KKT MILP {info.status.value}: the big-Ms cut it off"
            )
        res = CournotResult("cournot-equilibrium", info.status, "kkt-milp")
        res.meta["solvers"] = {solver: info.solver_version}
        if not info.status.has_solution:
            return res
        q = np.array([pyo.value(m.q[e]) for e in range(A.n_edges)], dtype=float)
        on = np.array([pyo.value(m.on[e]) > 0.5 for e in range(A.n_edges)])
        bind = np.zeros(len(A.sellers), dtype=bool)
        for s in m.C:
            bind[s] = pyo.value(m.bind[s]) > 0.5
        polished = polish_active_set(A, on, bind)
        res.certificate.details["polished"] = polished is not None
        if polished is not None:
            res.certificate.details["milp_polish_max_change"] = float(
                np.max(np.abs(polished - q), initial=0.0)
            )
            q = polished
        res.solution = cournot_solution(A, np.maximum(q, 0.0))
        return res
