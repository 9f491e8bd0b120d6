r"""The welfare program (see :mod:`datamarkets.formulations.welfare`) as data: valuation specs, the market's
arrays (graph → columns) and the standard-form arrays ``min ½ vᵀ P v + cᵀ v`` the backends solve."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.market import validate_market

__all__ = [
    "KINK_TOL",
    "MarketArrays",
    "ValuationSpec",
    "WelfareArrays",
    "build_welfare_arrays",
    "market_arrays",
    "valuation_spec",
]

KINK_TOL = 1e-7  # relative distance at which a quantity counts as sitting on a valuation's kink

# ---------------------------------------------------------------------------------------------
# Valuations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValuationSpec:
    """The numbers a formulation needs from one valuation.

    Attributes
    ----------
    kind : {"quadratic", "pwl", "alpha_fair"}
    a, b : float
        Quadratic θ(z) = a z − b z²/2 (θ'(z) = a − b z up to the peak a/b).
    slopes, lengths : tuple of float
        Piecewise-linear concave θ: segment k has slope ``slopes[k]`` (non-increasing, ≥ 0) and
        length ``lengths[k]``; θ is flat after the last segment (free disposal).
    sigma, alpha, offset : float
        α-fair θ(d) = σ ((d + o)^{1−α} − o^{1−α})/(1−α) (log form for α = 1).
    source : object
        The original valuation object (its ``value`` is used for reported welfare if present).
    """

    kind: str
    a: float = 0.0
    b: float = 0.0
    slopes: tuple[float, ...] = ()
    lengths: tuple[float, ...] = ()
    sigma: float = 0.0
    alpha: float = 0.0
    offset: float = 0.0
    source: Any = None

    def value(self, z: np.ndarray | float) -> np.ndarray:
        """θ(z), vectorised."""
        z = np.asarray(z, dtype=float)
        if self.source is not None and hasattr(self.source, "value"):
            return np.vectorize(lambda t: float(self.source.value(float(t))), otypes=[float])(z)
        return self._own_value(z)

    def _own_value(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "quadratic":
            zc = np.minimum(z, self.a / self.b) if self.b > 0 else z
            return self.a * zc - 0.5 * self.b * zc**2
        if self.kind == "pwl":
            out = np.zeros_like(z)
            start = 0.0
            for s, L in zip(self.slopes, self.lengths, strict=True):
                out += s * np.clip(z - start, 0.0, L)
                start += L
            return out
        o, al = self.offset, self.alpha
        if al == 1.0:
            return self.sigma * (np.log(z + o) - (np.log(o) if o > 0 else 0.0))
        return self.sigma * ((z + o) ** (1 - al) - o ** (1 - al)) / (1 - al)

    def marginal_interval(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Superdifferential [θ'_+(z), θ'_-(z)] of θ at z ≥ 0 (equal ends where θ is smooth)."""
        z = np.asarray(z, dtype=float)
        if self.kind == "quadratic":
            m = np.maximum(self.a - self.b * z, 0.0)
            return m, m
        if self.kind == "alpha_fair":
            with np.errstate(divide="ignore"):
                m = self.sigma * (z + self.offset) ** (-self.alpha)
            return m, m
        ends = np.cumsum(self.lengths)
        starts = ends - np.asarray(self.lengths)
        s = np.asarray(self.slopes)
        scale = max(1.0, float(ends[-1])) if len(ends) else 1.0
        # a total within KINK_TOL·scale of a breakpoint is AT the breakpoint: interior-point
        # solvers (Clarabel, tolerance 1e-10 in the gap) leave totals ~1e-8 short of a buyer's
        # demand, and judging them on one segment's slope failed ~5% of default (mixed) solves
        tol = KINK_TOL * scale
        lo = np.zeros_like(z)
        hi = np.zeros_like(z)
        for k in range(len(s)):
            inside = (z >= starts[k] - tol) & (z < ends[k] - tol)
            lo = np.where(inside, s[k], lo)
            right_in = (z > starts[k] + tol) & (z <= ends[k] + tol)
            hi = np.where(right_in, s[k], hi)
        hi = np.where(z <= tol, s[0] if len(s) else 0.0, hi)
        # at an interior kink: θ'_+ is the next slope, θ'_- the previous one
        return np.minimum(lo, hi), np.maximum(lo, hi)

    @property
    def max_marginal(self) -> float:
        """θ'(0) (the largest marginal value), finite for every supported kind."""
        if self.kind == "quadratic":
            return self.a
        if self.kind == "pwl":
            return float(self.slopes[0]) if self.slopes else 0.0
        if self.offset <= 0:
            return math.inf
        return self.sigma * self.offset ** (-self.alpha)


def valuation_spec(v: Any, *, node: Any = None) -> ValuationSpec:
    """Turn a valuation object or its JSON dict into a :class:`ValuationSpec`.

    Parameters
    ----------
    v : object or dict
        A ``datamarkets.graphs.valuations`` object (anything with ``to_dict()``) or a dict with
        ``kind`` in {"quadratic", "linear", "piecewise_linear", "alpha_fair"}.
    node : hashable, optional
        Buyer name for error messages.

    Returns
    -------
    ValuationSpec

    Raises
    ------
    InvalidInputError
        Unknown kind, missing or non-finite parameters, a non-concave piecewise-linear valuation.
    """
    source = None if isinstance(v, dict) else v
    d = v if isinstance(v, dict) else (v.to_dict() if hasattr(v, "to_dict") else None)
    if not isinstance(d, dict) or "kind" not in d:
        raise InvalidInputError(f"buyer {node!r} has no usable valuation: {v!r}")
    kind = str(d["kind"]).lower().replace("-", "_")

    def num(key: str, *alts: str, default: float | None = None) -> float:
        for k in (key, *alts):
            if k in d and d[k] is not None:
                try:
                    x = float(d[k])
                except (TypeError, ValueError):
                    raise InvalidInputError(
                        f"buyer {node!r}: valuation {k!r} is not a number: {d[k]!r}"
                    ) from None
                if not math.isfinite(x):
                    raise InvalidInputError(f"buyer {node!r}: valuation {k!r} is not finite: {x}")
                return x
        if default is not None:
            return default
        raise InvalidInputError(f"buyer {node!r}: {kind} valuation lacks {key!r}")

    if kind == "quadratic":
        a, b = num("a"), num("b")
        if a < 0 or b <= 0:
            raise InvalidInputError(
                f"buyer {node!r}: quadratic valuation needs a ≥ 0, b > 0, got a={a}, b={b}"
            )
        return ValuationSpec("quadratic", a=a, b=b, source=source)
    if kind == "linear":
        p, D = num("unit_price", "price"), num("demand", "quantity")
        if p < 0 or D < 0:
            raise InvalidInputError(f"buyer {node!r}: linear valuation needs unit_price, demand ≥ 0")
        return ValuationSpec("pwl", slopes=(p,), lengths=(D,), source=source)
    if kind in ("piecewise_linear", "pwl"):
        if "slopes" in d and ("lengths" in d or "widths" in d):
            slopes = [float(s) for s in d["slopes"]]
            lengths = [float(s) for s in (d["lengths"] if "lengths" in d else d["widths"])]
        elif "breakpoints" in d and "slopes" in d:
            bp = [float(s) for s in d["breakpoints"]]
            slopes = [float(s) for s in d["slopes"]]
            if len(bp) == len(slopes) + 1:
                lengths = list(np.diff(bp))
            elif len(bp) == len(slopes):
                lengths = list(np.diff([0.0, *bp]))
            else:
                raise InvalidInputError(f"buyer {node!r}: breakpoints/slopes lengths do not match")
        elif "breakpoints" in d and "values" in d:
            bpa = np.asarray(d["breakpoints"], dtype=float)
            val = np.asarray(d["values"], dtype=float)
            if bpa.size != val.size or bpa.size < 2:
                raise InvalidInputError(f"buyer {node!r}: breakpoints/values lengths do not match")
            lengths = list(np.diff(bpa))
            slopes = list(np.diff(val) / np.diff(bpa))
        else:
            raise InvalidInputError(f"buyer {node!r}: piecewise-linear valuation needs slopes and lengths")
        if len(slopes) != len(lengths) or not slopes:
            raise InvalidInputError(f"buyer {node!r}: piecewise-linear valuation has no segments")
        s, L = np.asarray(slopes), np.asarray(lengths)
        if np.any(~np.isfinite(s)) or np.any(~np.isfinite(L)) or np.any(L < 0) or np.any(s < 0):
            raise InvalidInputError(f"buyer {node!r}: piecewise-linear segments must be finite, ≥ 0")
        if np.any(np.diff(s) > 1e-12):
            raise InvalidInputError(f"buyer {node!r}: piecewise-linear valuation is not concave: {slopes}")
        return ValuationSpec("pwl", slopes=tuple(s), lengths=tuple(L), source=source)
    if kind in ("alpha_fair", "alphafair"):
        sigma, alpha = num("sigma"), num("alpha")
        offset = num("offset", default=0.0)
        if sigma <= 0 or not (0 <= alpha) or offset < 0:
            raise InvalidInputError(f"buyer {node!r}: α-fair needs σ > 0, α ≥ 0, offset ≥ 0")
        return ValuationSpec("alpha_fair", sigma=sigma, alpha=alpha, offset=offset, source=source)
    raise InvalidInputError(f"buyer {node!r}: unknown valuation kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# Graph → arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class MarketArrays:
    """A market graph as arrays (the *data* of the PyPSA-style split).

    Attributes
    ----------
    kind : {"bipartite", "routes"}
    buyers, resources : list
        Node names of buyers (users) and resources (sellers or links), in row order.
    columns : list
        One key per flow column: a ``(buyer, seller)`` edge, or a user on a route network.
    B : scipy.sparse.csr_array, shape (I, E)
        Buyer–column incidence: ``x = B @ f``.
    R : scipy.sparse.csr_array, shape (J, E)
        Resource–column incidence: ``R @ f ≤ cap``.
    cap : ndarray, shape (J,)
        Seller supplies D^j or link capacities.
    demand : ndarray, shape (I,)
        Buyer demand caps D_i (``inf`` where none).
    specs : list of ValuationSpec
        One per buyer.
    col_buyer, col_resources : ndarray / list
        Buyer index of each column; for bipartite markets the seller index of each column.
    """

    kind: str
    buyers: list[Any]
    resources: list[Any]
    columns: list[Any]
    B: sp.csr_array
    R: sp.csr_array
    cap: np.ndarray
    demand: np.ndarray
    specs: list[ValuationSpec]
    col_buyer: np.ndarray
    col_seller: np.ndarray | None = None
    routes: list[list[Any]] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_buyers(self) -> int:
        return len(self.buyers)

    @property
    def n_resources(self) -> int:
        return len(self.resources)

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def kinds(self) -> set[str]:
        return {s.kind for s in self.specs}

    def quad_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Index, ``a`` and ``b`` arrays of the quadratic buyers."""
        if "quad" not in self._cache:
            idx = np.array([i for i, s in enumerate(self.specs) if s.kind == "quadratic"], dtype=np.int64)
            a = np.array([self.specs[i].a for i in idx], dtype=float)
            b = np.array([self.specs[i].b for i in idx], dtype=float)
            self._cache["quad"] = (idx, a, b)
        return self._cache["quad"]

    def segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Buyer index, slope and length of every piecewise-linear segment."""
        if "seg" not in self._cache:
            owner, slope, length = [], [], []
            for i, s in enumerate(self.specs):
                if s.kind == "pwl":
                    owner += [i] * len(s.slopes)
                    slope += list(s.slopes)
                    length += list(s.lengths)
            self._cache["seg"] = (
                np.asarray(owner, dtype=np.int64),
                np.asarray(slope, dtype=float),
                np.asarray(length, dtype=float),
            )
        return self._cache["seg"]

    def max_marginal(self) -> np.ndarray:
        """θ_i'(0) per buyer."""
        return np.array([s.max_marginal for s in self.specs], dtype=float)


def _num_attr(data: dict, key: str, what: str, node: Any, *, required: bool = True) -> float | None:
    if key not in data or data[key] is None:
        if required:
            raise GraphError(f"{what} {node!r} has no {key!r}")
        return None
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
    role: str = "role",
    supply: str = "supply",
    valuation: str = "valuation",
    demand: str = "demand",
    validate: bool = True,
) -> MarketArrays:
    """Validate a market graph (:mod:`datamarkets.graphs.market`) and turn it into arrays.

    ``G.graph["kind"]`` is ``"bipartite"`` (default: every buyer–seller edge is a flow column,
    x_i = Σ_j x_ij) or ``"routes"`` (every buyer is a user with one flow column that loads each
    resource it is joined to, i.e. every link of its route).

    Parameters
    ----------
    G : networkx.Graph
        The market.
    role, supply, valuation, demand : str
        Attribute names.
    validate : bool
        Run :func:`datamarkets.graphs.market.validate_market` first (default attribute names only).

    Returns
    -------
    MarketArrays

    Raises
    ------
    GraphError
        Unknown roles, missing/negative supplies, buyer–buyer edges, bad routes, empty market.
    InvalidInputError
        A malformed valuation.
    """
    if not isinstance(G, nx.Graph):
        raise GraphError(f"expected a networkx graph, got {type(G).__name__}")
    if G.number_of_nodes() == 0:
        raise GraphError("market graph is empty")
    if validate and (role, supply, valuation, demand) == ("role", "supply", "valuation", "demand"):
        validate_market(G)
    kind = G.graph.get("kind", "bipartite")
    if kind not in ("bipartite", "routes"):
        raise GraphError(f"unknown market kind {kind!r} (expected 'bipartite' or 'routes')")
    buyers, sellers = [], []
    for n, d in G.nodes(data=True):
        r = d.get(role)
        if r == "buyer":
            buyers.append(n)
        elif r == "seller":
            sellers.append(n)
        else:
            raise GraphError(f"node {n!r} has unknown role {r!r} (expected 'buyer' or 'seller')")
    if not buyers or not sellers:
        raise GraphError(
            f"market needs at least one buyer and one seller, got {len(buyers)} and {len(sellers)}"
        )
    bidx = {n: k for k, n in enumerate(buyers)}
    sidx = {n: k for k, n in enumerate(sellers)}
    cap = np.array([_num_attr(G.nodes[s], supply, "seller", s) for s in sellers], dtype=float)
    specs = [valuation_spec(G.nodes[b].get(valuation), node=b) for b in buyers]
    dem = np.array(
        [
            np.inf if (x := _num_attr(G.nodes[b], demand, "buyer", b, required=False)) is None else x
            for b in buyers
        ],
        dtype=float,
    )
    cols, cb, cs = [], [], []
    for u, v in G.edges():
        if u in bidx and v in sidx:
            b, s = u, v
        elif v in bidx and u in sidx:
            b, s = v, u
        else:
            raise GraphError(f"edge {(u, v)!r} does not join a buyer and a seller")
        cols.append((b, s))
        cb.append(bidx[b])
        cs.append(sidx[s])
    cb_arr = np.asarray(cb, dtype=np.int64)
    cs_arr = np.asarray(cs, dtype=np.int64)
    if kind == "routes":
        E = len(buyers)
        R = sp.csr_array((np.ones(cb_arr.size), (cs_arr, cb_arr)), shape=(len(sellers), E))
        B = sp.csr_array(sp.identity(E, format="csr"))
        routes = [list(G.nodes[b].get("route", [])) for b in buyers]
        return MarketArrays(
            "routes", buyers, sellers, list(buyers), B, R, cap, dem, specs, np.arange(E), None, routes
        )
    E = len(cols)
    ones = np.ones(E)
    B = sp.csr_array((ones, (cb_arr, np.arange(E))), shape=(len(buyers), E))
    R = sp.csr_array((ones, (cs_arr, np.arange(E))), shape=(len(sellers), E))
    return MarketArrays("bipartite", buyers, sellers, cols, B, R, cap, dem, specs, cb_arr, cs_arr)


# ---------------------------------------------------------------------------------------------
# Program builders: standard form  min ½ vᵀ P v + cᵀ v  s.t.  A_eq v = 0, A_ub v ≤ b_ub, l ≤ v ≤ u
# ---------------------------------------------------------------------------------------------


@dataclass
class WelfareArrays:
    """The welfare program in array form over ``v = [f (E), x (I), y (K segments)]``."""

    M: MarketArrays
    P_diag: np.ndarray  # Hessian diagonal (only on quadratic buyers' x)
    c: np.ndarray  # linear cost (minimisation of −welfare)
    A_eq: sp.csr_array  # x − B f = 0 ; Σ_k y_ik − x_i = 0 (pwl buyers)
    A_ub: sp.csr_array  # R f ≤ cap
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    n_f: int
    n_x: int
    n_y: int
    quad_const: float = 0.0


def define_flow_and_totals(M: MarketArrays) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """Columns ``f ≥ 0`` and ``0 ≤ x ≤ D_i`` with ``x − B f = 0`` (buyer totals, one row each)."""
    E, I = M.n_columns, M.n_buyers
    A = sp.hstack([-M.B, sp.identity(I, format="csr")], format="csr")
    lb = np.zeros(E + I)
    ub = np.concatenate([np.full(E, np.inf), M.demand])
    return sp.csr_array(A), lb, ub


def define_valuations(M: MarketArrays) -> tuple[np.ndarray, np.ndarray, sp.csr_array, np.ndarray]:
    """Objective pieces: −(a x − b x²/2) on quadratic buyers; −Σ_k s_k y_ik on segment columns with
    ``Σ_k y_ik = x_i`` and ``0 ≤ y_ik ≤ L_ik`` for piecewise-linear buyers."""
    E, I = M.n_columns, M.n_buyers
    owner, slope, length = M.segments()
    K = owner.size
    qi, a, b = M.quad_params()
    P_diag = np.zeros(E + I + K)
    c = np.zeros(E + I + K)
    P_diag[E + qi] = b
    c[E + qi] = -a
    c[E + I :] = -slope
    pwl_buyers = np.unique(owner)
    rows = np.searchsorted(pwl_buyers, owner)
    Ay = sp.csr_array((np.ones(K), (rows, E + I + np.arange(K))), shape=(pwl_buyers.size, E + I + K))
    Ax = sp.csr_array(
        (-np.ones(pwl_buyers.size), (np.arange(pwl_buyers.size), E + pwl_buyers)), shape=Ay.shape
    )
    return P_diag, c, sp.csr_array(Ay + Ax), length


def define_supply(M: MarketArrays, n_cols: int) -> tuple[sp.csr_array, np.ndarray]:
    """Seller supply / link capacity rows ``Σ_e R_je f_e ≤ D^j`` (dual: price p_j)."""
    A = sp.hstack([M.R, sp.csr_array((M.n_resources, n_cols - M.n_columns))], format="csr")
    return sp.csr_array(A), M.cap.copy()


def build_welfare_arrays(M: MarketArrays) -> WelfareArrays:
    """Assemble the welfare QP/LP as sparse arrays (validate → variables → constraints → objective).

    Raises
    ------
    InvalidInputError
        α-fair valuations (use :func:`build_welfare_cvxpy`).
    """
    if "alpha_fair" in M.kinds():
        raise InvalidInputError("α-fair valuations need a cone program: choose method cvxpy or auto")
    E, I = M.n_columns, M.n_buyers
    A_link, lb, ub = define_flow_and_totals(M)
    P_diag, c, A_seg, seg_len = define_valuations(M)
    n = P_diag.size
    K = n - E - I
    A_link = sp.hstack([A_link, sp.csr_array((I, K))], format="csr")
    A_eq = sp.csr_array(sp.vstack([A_link, A_seg], format="csr"))
    A_ub, b_ub = define_supply(M, n)
    lb = np.concatenate([lb, np.zeros(K)])
    ub = np.concatenate([ub, seg_len])
    return WelfareArrays(M, P_diag, c, A_eq, A_ub, b_ub, lb, ub, E, I, K)
