r"""Welfare maximisation (network utility maximisation) on market graphs, with clearing prices.

The program, for buyers :math:`i`, resources :math:`j` (sellers of a data-share market, or the
capacitated links of a route network) and *columns* :math:`e` (a buyer–seller edge, or a user's
route flow)::

    max   Σ_i θ_i(x_i)                                   (welfare)
    s.t.  x_i = Σ_e B_ie f_e                             buyer i's total allocation
          Σ_e R_je f_e ≤ D^j           [price p_j ≥ 0]   seller supply / link capacity
          0 ≤ x_i ≤ D_i                [μ_i ≥ 0]         optional buyer demand cap
          f_e ≥ 0

On a bipartite market ``B`` is the buyer–edge and ``R`` the seller–edge incidence; on a route
network each column is a user (``B = I``) and ``R`` is the link–route incidence. The duals
:math:`p_j` are the clearing prices; at an optimum the KKT conditions of the data-share paper
(36)–(38) hold: :math:`ρ_i = θ_i'(x_i)` equals :math:`p_j + μ_i` on every edge with flow and is
at most :math:`p_j + μ_i` on every edge without (summed along the route on route networks).

Valuations (duck-typed from ``datamarkets.models.valuations`` or their JSON dicts):

- quadratic θ(z) = a z − b z²/2 → QP (Hessian ``b`` on ``x``, zero curvature on flows);
- linear ("demand D at unit price p") and piecewise-linear concave → LP with segment columns;
- α-fair θ(d) = σ (d + o)^{1−α}/(1−α) (up to a constant) → power cone, cvxpy + Clarabel only.

Routes (``method=``). Measured with ``benchmarks/bench_auction.py`` on this shared 2-core machine
(load average 2–5 from other jobs, so pessimistic), quadratic valuations, B buyers × B/10 sellers
× 5 random edges per buyer, build + solve seconds, medians of 3, two runs (ranges):

==================  ===========  ===========  ===========  ==================================
route               B = 100      B = 1,000    B = 10,000   notes
==================  ===========  ===========  ===========  ==================================
arrays → Clarabel   0.004–0.015  0.032–0.14   1.97–3.90    ``"clarabel"``, default for QPs
arrays → HiGHS QP   0.012–0.073  1.56–2.72    not run      active set; SOLVERS.md: fails at 10k
cvxpy → Clarabel    0.013–0.049  0.052–0.092  2.86–4.98    compile 0.07–0.11 s at 10k
Pyomo → HiGHS       0.24–0.87    1.90–4.48    not run      small instances only
==================  ===========  ===========  ===========  ==================================

End to end from the graph (``solve_welfare(G)``: validation + build + Clarabel + certificate) at
10,000 × 1,000 × 5 (50,000 flows): 2.2–2.4 s (load 2.2–3.3); 5.3 s was seen once at load 5.

Choice (``method="auto"``): Clarabel on sparse arrays for quadratic and mixed instances — an
interior point method, unaffected by the zero curvature on edge flows that stalls HiGHS's
active-set QP (20–50× slower at B = 1,000, "nullspace limit" at 10,000 per SOLVERS.md); HiGHS IPX
(crossover on, so a vertex and exact duals) for pure LP instances (linear / piecewise-linear
valuations); cvxpy power/exponential cones + Clarabel for α-fair. ``Result.method`` names the route
(``"qp-clarabel"``, ``"qp-highs"``, ``"lp-highs-ipx"``, ``"cvxpy-clarabel"``, ``"pyomo-highs"``).

Exactness. Clarabel runs to gap/feasibility tolerance 1e-10 and every result carries a
certificate: primal and dual feasibility, the natural complementarity residual and — decisive for
welfare — the Lagrangian duality gap g(p, μ) − W(x) (:func:`dual_bound`), 2.5e-12 relative at
10,000 × 1,000. Interior points leave flows of order 1e-5…1e-3 on columns whose reduced cost is
of order 1e-5, and on degenerate instances (a buyer whose θ'(0) equals its price) buyer totals
are accurate to ~1e-5 only (complementarity converges like √μ); HiGHS (vertex) is exact there.
HiGHS's QP regularisation is lowered from 1e-7 to 1e-12 (otherwise x is off by ~1e-5 at a peak).

References
----------
psp-data-share-market, KKT conditions (36)–(38); distributed-psp-draft §1.1 (routes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import GraphError, InvalidInputError, SolverError
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.solvers import reset_highs_scheduler
from datamarkets.status import Status, status_from_cvxpy, status_from_highs

__all__ = [
    "METHODS",
    "MarketArrays",
    "ValuationSpec",
    "WelfareResult",
    "allocation_vector",
    "build_welfare_arrays",
    "build_welfare_cvxpy",
    "build_welfare_pyomo",
    "dual_bound",
    "kkt_residuals",
    "market_arrays",
    "reset_highs_scheduler",
    "solve_welfare",
    "valuation_spec",
    "welfare_of",
    "write_solution",
]

METHODS = ("auto", "highs", "clarabel", "cvxpy", "pyomo")
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
        A ``datamarkets.models.valuations`` object (anything with ``to_dict()``) or a dict with
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
            lengths = [float(s) for s in d.get("lengths", d.get("widths"))]
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
            bp = np.asarray(d["breakpoints"], dtype=float)
            val = np.asarray(d["values"], dtype=float)
            if bp.size != val.size or bp.size < 2:
                raise InvalidInputError(f"buyer {node!r}: breakpoints/values lengths do not match")
            lengths = list(np.diff(bp))
            slopes = list(np.diff(val) / np.diff(bp))
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
        from datamarkets.graphs.market import validate_market

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
    NotImplementedError
        α-fair valuations (use :func:`build_welfare_cvxpy`).
    """
    if "alpha_fair" in M.kinds():
        raise NotImplementedError("α-fair valuations need a cone program: use method='cvxpy'")
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


# ---------------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    status: Status
    raw: str
    f: np.ndarray | None = None
    x: np.ndarray | None = None
    p: np.ndarray | None = None
    mu: np.ndarray | None = None
    solver: str = ""
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _solve_clarabel(W: WelfareArrays, tol: float, time_limit: float | None = None) -> _Raw:
    import clarabel

    n = W.P_diag.size
    E, I = W.n_f, W.n_x
    fin_ub = np.flatnonzero(np.isfinite(W.ub))
    # lower-bound rows only for flows and segments: x ≥ 0 is implied by x = B f, f ≥ 0
    lb_cols = np.concatenate([np.arange(E), np.arange(E + I, n)])
    # rows: A_eq (zero cone) | A_ub ; −v ≤ −lb ; v ≤ ub (finite)   (nonnegative cone)
    A = sp.vstack(
        [
            W.A_eq,
            W.A_ub,
            sp.csr_array(
                (-np.ones(lb_cols.size), (np.arange(lb_cols.size), lb_cols)), shape=(lb_cols.size, n)
            ),
            sp.csr_array((np.ones(fin_ub.size), (np.arange(fin_ub.size), fin_ub)), shape=(fin_ub.size, n)),
        ],
        format="csc",
    )
    b = np.concatenate([np.zeros(W.A_eq.shape[0]), W.b_ub, -W.lb[lb_cols], W.ub[fin_ub]])
    P = sp.diags_array(W.P_diag, format="csc")
    cones = [clarabel.ZeroConeT(W.A_eq.shape[0]), clarabel.NonnegativeConeT(A.shape[0] - W.A_eq.shape[0])]
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = tol
    st.tol_gap_rel = tol
    st.tol_feas = tol
    st.max_threads = 1
    if time_limit is not None:
        st.time_limit = float(time_limit)
    try:
        solver = clarabel.DefaultSolver(sp.csc_matrix(P), W.c, sp.csc_matrix(A), b, cones, st)
        sol = solver.solve()
    except Exception as exc:  # pragma: no cover - crash
        raise SolverError(f"clarabel failed: {exc}") from exc
    name = str(sol.status).rsplit(".", 1)[-1]
    status = {
        "Solved": Status.OPTIMAL,
        "AlmostSolved": Status.OPTIMAL_INACCURATE,
        "PrimalInfeasible": Status.INFEASIBLE,
        "AlmostPrimalInfeasible": Status.INFEASIBLE,
        "DualInfeasible": Status.UNBOUNDED,
        "AlmostDualInfeasible": Status.UNBOUNDED,
        "MaxIterations": Status.ITERATION_LIMIT,
        "MaxTime": Status.TIME_LIMIT,
    }.get(name, Status.ERROR)
    out = _Raw(status, name, solver="clarabel", version=clarabel.__version__)
    out.extra["iterations"] = int(sol.iterations)
    if status.has_solution:
        v = np.asarray(sol.x)
        z = np.asarray(sol.z)
        m_eq = W.A_eq.shape[0]
        out.f = np.maximum(v[:E], 0.0)
        out.x = v[E : E + I]
        out.p = np.maximum(z[m_eq : m_eq + W.A_ub.shape[0]], 0.0)
        # μ_i: dual of x_i ≤ D_i rows (finite demands only)
        mu = np.zeros(I)
        up = z[m_eq + W.A_ub.shape[0] + lb_cols.size :]
        is_x = (fin_ub >= E) & (fin_ub < E + I)
        mu[fin_ub[is_x] - E] = np.maximum(up[is_x], 0.0)
        out.mu = mu
    return out


def _solve_highs(W: WelfareArrays, tol: float, time_limit: float | None) -> _Raw:
    import highspy

    from datamarkets.solvers import highs_version, new_highs

    n = W.P_diag.size
    E, I = W.n_f, W.n_x
    A = sp.vstack([W.A_eq, W.A_ub], format="csc")
    m_eq = W.A_eq.shape[0]
    row_lo = np.concatenate([np.zeros(m_eq), np.full(W.A_ub.shape[0], -highspy.kHighsInf)])
    row_hi = np.concatenate([np.zeros(m_eq), W.b_ub])
    inf = highspy.kHighsInf
    ub = np.where(np.isfinite(W.ub), W.ub, inf)
    is_qp = bool(np.any(W.P_diag > 0))
    opts: dict[str, Any] = {}
    if not is_qp:
        opts.update(solver="ipm", run_crossover="on")  # IPX ≈ 60× dual simplex here (SOLVERS.md)
    h = new_highs(time_limit=time_limit, **opts)
    h.setOptionValue("primal_feasibility_tolerance", tol)
    h.setOptionValue("dual_feasibility_tolerance", tol)
    if is_qp:  # the active-set QP regularises by 1e-7 by default: x off by ~1e-5 at the peak
        h.setOptionValue("qp_regularization_value", 1e-12)
    A.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = A.shape[0]
    lp.col_cost_ = W.c
    lp.col_lower_ = W.lb
    lp.col_upper_ = ub
    lp.row_lower_ = row_lo
    lp.row_upper_ = row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = A.shape[0]
    if h.passModel(lp) != highspy.HighsStatus.kOk:
        raise SolverError("highspy rejected the welfare model (passModel)")
    if is_qp:
        q = np.flatnonzero(W.P_diag > 0)
        start = np.searchsorted(q, np.arange(n + 1)).astype(np.int32)
        hs = h.passHessian(n, q.size, 1, start, q.astype(np.int32), W.P_diag[q])
        if hs != highspy.HighsStatus.kOk:
            raise SolverError("highspy rejected the Hessian (passHessian)")
    reset_highs_scheduler()
    h.run()
    ms = h.getModelStatus()
    status = status_from_highs(ms)
    out = _Raw(status, str(ms), solver="highs", version=highs_version())
    if status.has_solution:
        sol = h.getSolution()
        v = np.asarray(sol.col_value)
        rd = np.asarray(sol.row_dual)
        cd = np.asarray(sol.col_dual)
        out.f = np.maximum(v[:E], 0.0)
        out.x = v[E : E + I]
        out.p = np.maximum(-rd[m_eq:], 0.0)  # minimisation: a binding ≤ row has dual ≤ 0
        mu = np.zeros(I)
        at_up = np.isfinite(W.ub[E : E + I])
        mu[at_up] = np.maximum(-cd[E : E + I][at_up], 0.0)
        out.mu = mu
    return out


def build_welfare_cvxpy(M: MarketArrays) -> tuple[Any, dict[str, Any]]:
    """The welfare program as a vectorised ``cvxpy.Problem`` (quadratic, piecewise-linear, α-fair).

    Returns
    -------
    problem : cvxpy.Problem
    handles : dict
        ``f``, ``x`` variables and the ``supply`` / ``demand`` constraints (for duals).
    """
    import cvxpy as cp

    E, I = M.n_columns, M.n_buyers
    f = cp.Variable(E, nonneg=True, name="flow")
    x = cp.Variable(I, nonneg=True, name="total")
    cons = [x == M.B @ f]
    supply = M.R @ f <= M.cap
    cons.append(supply)
    fin = np.flatnonzero(np.isfinite(M.demand))
    demand = None
    if fin.size:
        demand = x[fin] <= M.demand[fin]
        cons.append(demand)
    terms = []
    qi, a, b = M.quad_params()
    if qi.size:
        terms.append(a @ x[qi] - 0.5 * cp.sum(cp.multiply(b, cp.square(x[qi]))))
    owner, slope, length = M.segments()
    if owner.size:
        y = cp.Variable(owner.size, nonneg=True, name="segment")
        cons += [y <= length]
        pb = np.unique(owner)
        S = sp.csr_array((np.ones(owner.size), (np.searchsorted(pb, owner), np.arange(owner.size))))
        cons.append(S @ y == x[pb])
        terms.append(slope @ y)
    af = np.array([i for i, s in enumerate(M.specs) if s.kind == "alpha_fair"], dtype=np.int64)
    if af.size:
        al = np.array([M.specs[i].alpha for i in af])
        sig = np.array([M.specs[i].sigma for i in af])
        off = np.array([M.specs[i].offset for i in af])
        d = x[af] + off
        lt, eq, gt = al < 1, al == 1, al > 1
        if lt.any():  # t ≤ d^{1−α}:  PowCone3D(d, 1, t; 1−α)  (power cone, exact)
            t = cp.Variable(int(lt.sum()))
            cons.append(cp.constraints.PowCone3D(d[lt], np.ones(int(lt.sum())), t, 1 - al[lt]))
            terms.append((sig[lt] / (1 - al[lt])) @ t)
        if eq.any():  # σ log(d)  (exponential cone)
            terms.append(sig[eq] @ cp.log(d[eq]))
        if gt.any():  # t ≥ d^{1−α}  ⇔  t^{1/α} d^{1−1/α} ≥ 1:  PowCone3D(t, d, 1; 1/α)
            t = cp.Variable(int(gt.sum()))
            cons.append(cp.constraints.PowCone3D(t, d[gt], np.ones(int(gt.sum())), 1 / al[gt]))
            terms.append((sig[gt] / (1 - al[gt])) @ t)
    obj = cp.Maximize(cp.sum(cp.hstack(terms)) if len(terms) > 1 else terms[0])
    prob = cp.Problem(obj, cons)
    return prob, {"f": f, "x": x, "supply": supply, "demand": demand, "demand_idx": fin}


CVXPY_SOLVERS = {"clarabel": "CLARABEL", "osqp": "OSQP", "scs": "SCS", "ecos": "ECOS", "highs": "HIGHS"}
"""Solvers reached through cvxpy, by datamarkets name."""


def _cvxpy_options(solver: str, tol: float, time_limit: float | None) -> dict[str, Any]:
    if solver == "clarabel":
        opts: dict[str, Any] = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol}
        if time_limit is not None:
            opts["time_limit"] = float(time_limit)
        return opts
    if solver == "osqp":  # first-order: polish the active set to reach vertex accuracy
        from importlib.metadata import version

        polish = "polishing" if int(version("osqp").split(".")[0]) >= 1 else "polish"
        return {"eps_abs": tol, "eps_rel": tol, polish: True, "max_iter": 200_000}
    if solver == "scs":
        return {"eps_abs": tol, "eps_rel": tol, "max_iters": 200_000}
    if solver == "ecos":
        return {"abstol": tol, "reltol": tol, "feastol": tol}
    return {}


def _solve_cvxpy(
    M: MarketArrays,
    tol: float,
    time_limit: float | None = None,
    solver: str = "clarabel",
    built: tuple[Any, dict[str, Any]] | None = None,
) -> _Raw:
    import cvxpy as cp

    from datamarkets.solvers import require_solver, solver_time_options

    if solver not in CVXPY_SOLVERS:
        raise ValueError(f"unknown cvxpy solver {solver!r}; choose one of {tuple(CVXPY_SOLVERS)}")
    version = require_solver(solver)
    prob, hd = built if built is not None else build_welfare_cvxpy(M)
    opts = {**_cvxpy_options(solver, tol, time_limit), **solver_time_options(solver, time_limit)}
    try:
        prob.solve(solver=CVXPY_SOLVERS[solver], **opts)
    except cp.error.SolverError as exc:
        raise SolverError(f"cvxpy/{solver} failed: {exc}") from exc
    status = status_from_cvxpy(prob.status)
    out = _Raw(status, str(prob.status), solver=f"cvxpy+{solver}", version=f"{cp.__version__}/{version}")
    if status.has_solution:
        out.f = np.maximum(np.asarray(hd["f"].value, float), 0.0)
        out.x = np.asarray(hd["x"].value, float)
        out.p = np.maximum(np.asarray(hd["supply"].dual_value, float), 0.0)
        mu = np.zeros(M.n_buyers)
        if hd["demand"] is not None:
            mu[hd["demand_idx"]] = np.maximum(np.asarray(hd["demand"].dual_value, float), 0.0)
        out.mu = mu
    return out


def build_welfare_pyomo(M: MarketArrays) -> Any:
    """The welfare program as a Pyomo ``ConcreteModel`` (small instances; ~40× the array build).

    Variables ``flow[e]``, ``total[i]``, ``segment[k]``; constraints ``supply[j]`` (dual = price),
    ``link[i]``, ``segsum[i]``; a ``dual`` Suffix is attached.
    """
    import pyomo.environ as pyo

    if "alpha_fair" in M.kinds():
        raise NotImplementedError("α-fair valuations: use method='cvxpy'")
    E, I, J = M.n_columns, M.n_buyers, M.n_resources
    m = pyo.ConcreteModel(name="welfare")
    m.E = pyo.RangeSet(0, E - 1)
    m.I = pyo.RangeSet(0, I - 1)
    m.J = pyo.RangeSet(0, J - 1)
    owner, slope, length = M.segments()
    m.K = pyo.RangeSet(0, owner.size - 1) if owner.size else pyo.Set(initialize=[])
    m.flow = pyo.Var(m.E, domain=pyo.NonNegativeReals)
    m.total = pyo.Var(m.I, domain=pyo.NonNegativeReals)
    for i in range(I):
        if math.isfinite(M.demand[i]):
            m.total[i].setub(float(M.demand[i]))
    m.segment = pyo.Var(m.K, domain=pyo.NonNegativeReals, bounds=lambda _m, k: (0.0, float(length[k])))
    Bc = M.B.tocsr()
    Rc = M.R.tocsr()
    m.link = pyo.Constraint(
        m.I,
        rule=lambda _m, i: (
            _m.total[i] == sum(_m.flow[int(e)] for e in Bc.indices[Bc.indptr[i] : Bc.indptr[i + 1]])
        ),
    )
    m.supply = pyo.Constraint(
        m.J,
        rule=lambda _m, j: (
            sum(_m.flow[int(e)] for e in Rc.indices[Rc.indptr[j] : Rc.indptr[j + 1]]) <= float(M.cap[j])
            if Rc.indptr[j + 1] > Rc.indptr[j]
            else pyo.Constraint.Skip
        ),
    )
    pb = np.unique(owner)
    m.segsum = pyo.Constraint(
        list(map(int, pb)),
        rule=lambda _m, i: sum(_m.segment[int(k)] for k in np.flatnonzero(owner == i)) == _m.total[i],
    )
    qi, a, b = M.quad_params()
    m.welfare = pyo.Objective(
        expr=sum(
            float(a[k]) * m.total[int(i)] - 0.5 * float(b[k]) * m.total[int(i)] ** 2 for k, i in enumerate(qi)
        )
        + sum(float(slope[k]) * m.segment[k] for k in range(owner.size)),
        sense=pyo.maximize,
    )
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    return m


def _solve_pyomo(M: MarketArrays, time_limit: float | None, solver: str = "highs", model: Any = None) -> _Raw:
    from datamarkets.solvers import PYOMO_NAMES, require_solver, solve_pyomo

    require_solver(solver)
    m = model if model is not None else build_welfare_pyomo(M)
    reset_highs_scheduler()
    if solver == "highs":  # contrib highs: LP and QP; see _solve_highs for the regularisation
        info = solve_pyomo(m, "highs", time_limit=time_limit, options={"qp_regularization_value": 1e-12})
    else:  # glpk/cbc (LP valuations) or ipopt (QP); their own time-limit option names
        # GLPK: no LP presolve, final basis checked exactly (its presolver can stop suboptimal)
        opts = {"ipopt": {"tol": 1e-10, "print_level": 0}, "glpk": {"nopresol": None, "xcheck": None}}.get(
            solver, {}
        )
        if time_limit is not None:
            opts[{"glpk": "tmlim", "cbc": "sec", "ipopt": "max_cpu_time"}[solver]] = (
                int(time_limit) if solver == "glpk" else float(time_limit)
            )
        info = solve_pyomo(m, PYOMO_NAMES[solver], options=opts)
    out = _Raw(info.status, info.raw_status, solver=f"pyomo+{solver}", version=info.solver_version)
    if info.status.has_solution:
        out.f = np.maximum(np.array([m.flow[e].value or 0.0 for e in range(M.n_columns)]), 0.0)
        out.x = np.array([m.total[i].value or 0.0 for i in range(M.n_buyers)])
        # maximisation: a binding ≤ row has dual ≥ 0 in Pyomo's convention for HiGHS
        p = np.zeros(M.n_resources)
        for j in m.supply:
            p[j] = abs(m.dual.get(m.supply[j], 0.0))
        out.p = p
        out.mu = _mu_from_prices(M, out.x, out.p, out.f)
    return out


def _mu_from_prices(M: MarketArrays, x: np.ndarray, p: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Demand-cap multipliers μ_i = max(0, ρ_i − min over i's active columns of the column price)."""
    mu = np.zeros(M.n_buyers)
    fin = np.isfinite(M.demand)
    capped = np.zeros(M.n_buyers, dtype=bool)
    capped[fin] = x[fin] >= M.demand[fin] - 1e-7 * np.maximum(1.0, M.demand[fin])
    if not capped.any():
        return mu
    colprice = M.R.T @ p
    lo, _hi = _marginals(M, x)
    best = np.full(M.n_buyers, np.inf)
    np.minimum.at(best, M.col_buyer, colprice)
    mu[capped] = np.maximum(lo[capped] - best[capped], 0.0)
    return mu


# ---------------------------------------------------------------------------------------------
# KKT residuals (36)–(38) and the solution writer
# ---------------------------------------------------------------------------------------------


def _marginals(M: MarketArrays, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.empty(M.n_buyers)
    hi = np.empty(M.n_buyers)
    qi, a, b = M.quad_params()
    if qi.size:
        m = np.maximum(a - b * x[qi], 0.0)
        lo[qi] = m
        hi[qi] = m
    for i, s in enumerate(M.specs):
        if s.kind != "quadratic":
            lo_i, hi_i = s.marginal_interval(np.array([x[i]]))
            lo[i], hi[i] = lo_i[0], hi_i[0]
    return lo, hi


def welfare_of(M: MarketArrays, x: np.ndarray) -> float:
    """Σ_i θ_i(x_i) for buyer totals ``x`` (the valuations' own ``value``)."""
    qi, a, b = M.quad_params()
    total = 0.0
    if qi.size:
        xq = np.minimum(x[qi], a / b)
        total += float(np.sum(a * xq - 0.5 * b * xq**2))
    for i, s in enumerate(M.specs):
        if s.kind != "quadratic":
            total += float(s.value(x[i]))
    return total


def dual_bound(M: MarketArrays, p: np.ndarray, mu: np.ndarray | None = None) -> float:
    """Lagrangian dual bound g(p, μ) ≥ W* for any prices p ≥ 0, μ ≥ 0 (weak duality).

    g(p, μ) = Σ_j p_j D^j + Σ_i μ_i D_i + Σ_i max_{z ≥ 0} [θ_i(z) − π_i z], where π_i is the
    cheapest column price of buyer i plus μ_i (the route price on route networks). The conjugate
    is closed-form: quadratic z* = max(0, (a − π)/b); piecewise-linear Σ_k L_k max(0, s_k − π);
    α-fair z* = max(0, (σ/π)^{1/α} − o). So g − W(x) bounds the welfare gap of any feasible x.
    """
    p = np.maximum(np.asarray(p, dtype=float), 0.0)
    mu = np.zeros(M.n_buyers) if mu is None else np.maximum(np.asarray(mu, dtype=float), 0.0)
    colprice = M.R.T @ p
    pi = np.full(M.n_buyers, np.inf)
    np.minimum.at(pi, M.col_buyer, colprice)
    pi = pi + mu
    fin = np.isfinite(M.demand)
    g = float(p @ M.cap) + float(mu[fin] @ M.demand[fin])
    qi, a, b = M.quad_params()
    if qi.size:
        z = np.clip((a - pi[qi]) / b, 0.0, None)
        g += float(np.sum(a * z - 0.5 * b * z**2 - pi[qi] * z))
    for i, s in enumerate(M.specs):
        if s.kind == "pwl":
            g += float(np.sum(np.asarray(s.lengths) * np.maximum(np.asarray(s.slopes) - pi[i], 0.0)))
        elif s.kind == "alpha_fair":
            if pi[i] <= 0:
                return math.inf
            z = (
                max(0.0, (s.sigma / pi[i]) ** (1.0 / s.alpha) - s.offset)
                if s.alpha > 0
                else (math.inf if s.sigma > pi[i] else 0.0)
            )
            if math.isinf(z):
                return math.inf
            g += float(s._own_value(np.array(z))) - pi[i] * z
    return g


def kkt_residuals(
    M: MarketArrays,
    f: np.ndarray,
    p: np.ndarray,
    mu: np.ndarray | None = None,
    *,
    active_tol: float = 1e-6,
) -> dict[str, Any]:
    """Residuals of the KKT conditions (36)–(38) at flows ``f`` with prices ``p`` and caps' ``μ``.

    With ρ_i chosen in the superdifferential ∂θ_i(x_i) as close as possible to the cheapest column
    price of buyer i (the best ρ for fixed prices), and the reduced cost of column e
    g_e = Σ_j R_je p_j + μ_i − ρ_i:

    - ``stationarity``: max |g_e| over columns with f_e > active_tol · qscale              (36)
    - ``dual_feasibility``: max over columns of max(0, −g_e)                                (37)
    - ``complementarity``: natural residual, dimensionless: max over columns of
      min(f_e/qscale, |g_e|/pscale), over resources of min(slack_j/qscale, p_j/pscale), and over
      capped buyers of min((D_i − x_i)/qscale, μ_i/pscale)
    - ``primal_feasibility``: max violation of supply, demand caps and f ≥ 0 (quantity)      (38)
    - ``welfare``, ``dual_bound``, ``duality_gap``: W(x), g(p, μ) (:func:`dual_bound`), g − W

    ``qscale`` = max(1, max supply), ``pscale`` = max(1, max finite θ'(0)).

    Parameters
    ----------
    M : MarketArrays
    f, p : ndarray
        Column flows (E,) and resource prices (J,).
    mu : ndarray, optional
        Demand-cap multipliers (I,), zero if omitted.
    active_tol : float
        Relative flow threshold of the stationarity residual.

    Returns
    -------
    dict
    """
    f = np.asarray(f, dtype=float)
    p = np.asarray(p, dtype=float)
    mu = np.zeros(M.n_buyers) if mu is None else np.asarray(mu, dtype=float)
    x = M.B @ f
    lo, hi = _marginals(M, x)
    colprice = M.R.T @ p + mu[M.col_buyer]
    cheapest = np.full(M.n_buyers, np.inf)
    np.minimum.at(cheapest, M.col_buyer, colprice)
    rho = np.clip(np.where(np.isfinite(cheapest), cheapest, hi), lo, hi)
    qscale = max(1.0, float(np.max(M.cap, initial=0.0)))
    mm = M.max_marginal()
    pscale = max(1.0, float(np.max(np.where(np.isfinite(mm), mm, 0.0), initial=0.0)))
    active = f > active_tol * qscale
    gap = colprice - rho[M.col_buyer]
    stat = np.where(active, np.abs(gap), 0.0)
    dual = np.maximum(-gap, 0.0)
    slack = M.cap - M.R @ f
    fin = np.isfinite(M.demand)
    nat = [
        np.minimum(np.abs(f) / qscale, np.abs(gap) / pscale),
        np.minimum(np.abs(slack) / qscale, np.abs(p) / pscale),
    ]
    if fin.any():
        nat.append(np.minimum(np.abs(M.demand[fin] - x[fin]) / qscale, np.abs(mu[fin]) / pscale))
    comp = np.concatenate(nat)
    feas = max(
        float(np.max(-slack, initial=0.0)),
        float(np.max(x[fin] - M.demand[fin], initial=0.0)) if fin.any() else 0.0,
        float(np.max(-f, initial=0.0)),
        0.0,
    )
    W = welfare_of(M, x)
    g = dual_bound(M, p, mu)
    return {
        "stationarity": float(np.max(stat, initial=0.0)),
        "dual_feasibility": float(np.max(dual, initial=0.0)),
        "complementarity": float(np.max(comp, initial=0.0)),
        "primal_feasibility": feas,
        "negative_price": float(max(np.max(-p, initial=0.0), np.max(-mu, initial=0.0), 0.0)),
        "welfare": W,
        "dual_bound": g,
        "duality_gap": g - W,
        "rho": rho,
        "qscale": qscale,
        "pscale": pscale,
        "argmax_stationarity": M.columns[int(np.argmax(stat))] if stat.size else None,
        "argmax_dual_feasibility": M.columns[int(np.argmax(dual))] if dual.size else None,
    }


class WelfareResult(Result):
    """:class:`~datamarkets.result.Result` of kind ``"auction-optimum"`` with table helpers."""

    def to_frame(self, table: str | None = None) -> Any:
        """A tidy ``pandas.DataFrame``: ``"allocation"`` (buyer, seller/user, amount; the default),
        ``"prices"`` (resource, price), ``"buyers"`` (buyer, total, marginal, mu), ``"summary"`` or
        ``"certificate"`` (see :mod:`datamarkets.frames`); an unknown table raises
        :class:`~datamarkets.errors.InvalidInputError` (a ``ValueError``)."""
        return super().to_frame(table)


def allocation_vector(M: MarketArrays, allocation: Any) -> np.ndarray:
    """Turn an allocation into column flows.

    Accepted: a list of ``{"buyer", "seller", "amount"}`` rows (missing edges mean 0), a
    ``{(buyer, seller): amount}`` dict, or a dict with an ``"allocation"`` key holding either. On a
    route market a user's rows are per resource of its route and its flow is the smallest of them
    (the quantity it holds on the whole route); ``{"buyer": user, "amount": x}`` rows also work.

    Raises
    ------
    InvalidInputError
        Unknown buyer/seller pair, a non-finite or negative amount, a duplicate row.
    """
    if isinstance(allocation, dict) and "allocation" in allocation:
        allocation = allocation["allocation"]
    if isinstance(allocation, dict):
        items = [
            ((k[0], k[1]) if isinstance(k, list | tuple) else (k, None), v) for k, v in allocation.items()
        ]
    elif isinstance(allocation, list | tuple):
        items = []
        for row in allocation:
            if not isinstance(row, dict) or "amount" not in row or "buyer" not in row:
                raise InvalidInputError(f"allocation row {row!r} needs 'buyer', 'seller' and 'amount'")
            items.append(((row["buyer"], row.get("seller")), row["amount"]))
    else:
        raise InvalidInputError(
            f"allocation must be a list of rows or a dict, got {type(allocation).__name__}"
        )
    bkey = {b: i for i, b in enumerate(M.buyers)} | {str(b): i for i, b in enumerate(M.buyers)}
    skey = {s: j for j, s in enumerate(M.resources)} | {str(s): j for j, s in enumerate(M.resources)}
    if M.kind == "bipartite":
        cidx = {(int(M.col_buyer[e]), int(M.col_seller[e])): e for e in range(M.n_columns)}
    f = np.zeros(M.n_columns)
    route_amounts: dict[int, list[float]] = {}
    seen: set[Any] = set()
    for (b, s), amount in items:
        try:
            val = float(amount)
        except (TypeError, ValueError):
            raise InvalidInputError(f"allocation amount for {(b, s)!r} is not a number: {amount!r}") from None
        if not math.isfinite(val) or val < 0:
            raise InvalidInputError(f"allocation amount for {(b, s)!r} must be finite and ≥ 0, got {val}")
        i = bkey.get(b)
        if i is None:
            raise InvalidInputError(f"allocation names buyer {b!r}, which is not a buyer of the market")
        j = skey.get(s) if s is not None else None
        if s is not None and j is None:
            raise InvalidInputError(f"allocation names seller {s!r}, which is not a seller of the market")
        if (i, j) in seen:
            raise InvalidInputError(f"allocation lists {(b, s)!r} twice")
        seen.add((i, j))
        if M.kind == "bipartite":
            e = cidx.get((i, j)) if j is not None else None
            if e is None:
                raise InvalidInputError(f"allocation names {(b, s)!r}, which is not an edge of the market")
            f[e] = val
        else:
            if j is not None and M.R[j, i] == 0:
                raise InvalidInputError(f"allocation names {(b, s)!r}, but {s!r} is not on {b!r}'s route")
            route_amounts.setdefault(i, []).append(val)
    for i, vals in route_amounts.items():
        f[i] = min(vals)
    return f


def _allocation_rows(M: MarketArrays, f: np.ndarray, tol: float = 0.0) -> list[dict[str, Any]]:
    """Rows ``{buyer, seller, amount}``: one per bipartite edge with flow; on a route market one
    per (user, resource of its route), each with the user's route flow."""
    rows = []
    if M.kind == "bipartite":
        for k in np.flatnonzero(f > tol):
            b, s = M.columns[k]
            rows.append({"buyer": b, "seller": s, "amount": float(f[k])})
        return rows
    Rc = M.R.tocsc()
    for k in np.flatnonzero(f > tol):
        for j in Rc.indices[Rc.indptr[k] : Rc.indptr[k + 1]]:
            rows.append({"buyer": M.buyers[k], "seller": M.resources[int(j)], "amount": float(f[k])})
    return rows


def write_solution(
    G: nx.Graph, result: Result, *, flow: str = "flow", price: str = "price", total: str = "allocation"
) -> None:
    """Write a welfare result back onto the graph (in place): ``flow`` on bipartite edges,
    ``price`` on sellers / resources, ``total`` on buyers (users of a route market)."""
    if not result.status.has_solution:
        return
    prices = result.solution["prices"]
    for n, pr in prices.items():
        G.nodes[n][price] = pr
    if result.meta.get("market_kind") != "routes":
        for u, v in G.edges():
            G.edges[u, v][flow] = 0.0
        for row in result.solution["allocation"]:
            G.edges[row["buyer"], row["seller"]][flow] = row["amount"]
    for row in result.solution.get("buyers", []):
        G.nodes[row["buyer"]][total] = row["total"]


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def solve_welfare(
    G: nx.Graph | MarketArrays,
    method: str = "auto",
    *,
    tol: float = 1e-10,
    time_limit: float | None = None,
    certify_tol: float | None = None,
    **attrs: str,
) -> WelfareResult:
    """Maximise welfare Σ θ_i(x_i) on a market graph; the duals are the clearing prices.

    Parameters
    ----------
    G : networkx.Graph or MarketArrays
        A bipartite data-share market, a single resource, or a route network (see
        :func:`market_arrays`).
    method : {"auto", "highs", "clarabel", "cvxpy", "pyomo"}
        The route; ``"auto"`` = Clarabel for quadratic, HiGHS IPX for LP, cvxpy for α-fair.
    tol : float
        Solver feasibility/gap tolerance.
    time_limit : float, optional
        Seconds, honoured by every route (HiGHS, Clarabel, cvxpy/Clarabel, Pyomo); when hit the
        result has ``Status.TIME_LIMIT`` and is not certified.
    certify_tol : float, optional
        Relative tolerance of the KKT certificate (price residuals × max(1, max θ'(0)), quantity
        residuals × max(1, max supply), duality gap × max(1, |W|)). Default 1e-6, and 1e-5 when
        α-fair valuations are present (Clarabel's power/exponential cones through cvxpy reach
        marginals to ~5e-6 here).
    **attrs
        Attribute names passed on to :func:`market_arrays`.

    Returns
    -------
    WelfareResult
        kind ``"auction-optimum"``; solution ``welfare``, ``allocation`` (rows buyer, seller,
        amount), ``prices`` (per seller or link), ``buyers`` (total, marginal, mu); certificate
        with the KKT residuals (36)–(38); ``method`` names the route, e.g. ``"qp-clarabel"``.

    Raises
    ------
    ValueError
        Unknown method.
    NotImplementedError
        α-fair valuations with a route other than cvxpy/auto.
    GraphError, InvalidInputError
        Invalid market.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.Graph()
    >>> G.add_node("s", role="seller", supply=10.0)
    >>> G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
    >>> G.add_edge("b", "s")
    >>> r = solve_welfare(G)
    >>> round(r.solution["welfare"], 6), round(r.solution["prices"]["s"], 6)
    (8.0, 0.0)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    timer = Timer()
    with timer("validate_seconds"):
        M = G if isinstance(G, MarketArrays) else market_arrays(G, **attrs)
    kinds = M.kinds()
    route = method
    if method == "auto":
        if "alpha_fair" in kinds:
            route = "cvxpy"
        elif "quadratic" in kinds:
            route = "clarabel"
        else:
            route = "highs"
    if "alpha_fair" in kinds and route not in ("cvxpy",):
        raise NotImplementedError(
            f"α-fair valuations need a cone program; method {method!r} cannot take them"
        )
    with timer("build_seconds"):
        W = build_welfare_arrays(M) if route in ("highs", "clarabel") else None
    with timer("solve_seconds"):
        if route == "clarabel":
            raw = _solve_clarabel(W, tol, time_limit)
        elif route == "highs":
            raw = _solve_highs(W, tol, time_limit)
        elif route == "cvxpy":
            raw = _solve_cvxpy(M, tol, time_limit)
        else:
            raw = _solve_pyomo(M, time_limit)
    lp = "quadratic" not in kinds and "alpha_fair" not in kinds
    label = {
        "clarabel": "qp-clarabel",
        "highs": "lp-highs-ipx" if lp else "qp-highs",
        "cvxpy": "cvxpy-clarabel",
    }
    method_label = label.get(route, "pyomo-highs")
    if certify_tol is None:
        certify_tol = 1e-5 if "alpha_fair" in kinds else 1e-6
    return _package(M, raw, method_label, timer, certify_tol)


def _add_kkt_certificate(
    cert: Certificate, res: dict[str, Any], tol: float, *, interior_point: bool = False
) -> None:
    """Judge KKT residuals: feasibility in quantity units (× qscale), dual feasibility in price
    units (× pscale), the dimensionless natural complementarity residual, and the duality gap
    relative to max(1, |W|). Stationarity on flow-carrying columns is kept as a detail: an
    interior-point flow of 1e-5 on a column whose reduced cost is 1e-3 is a complementarity
    (not a welfare) matter and is judged by the natural residual and the duality gap."""
    cert.add("primal_feasibility_max", res["primal_feasibility"], tol * res["qscale"])
    cert.add("dual_feasibility_max", res["dual_feasibility"], tol * res["pscale"])
    # interior points (Clarabel) converge like sqrt(μ) in complementarity on degenerate (not
    # strictly complementary) instances, e.g. a user whose θ'(0) equals its route price: for those
    # routes only it is judged at max(tol, 1e-5) (recorded in details); welfare optimality is
    # judged by the duality gap at ``tol``. Vertex (HiGHS) and MILP solutions are held to ``tol``.
    comp_tol = max(tol, 1e-5) if interior_point else tol
    cert.add("complementarity_natural_max", res["complementarity"], comp_tol)
    if comp_tol != tol:
        cert.details["complementarity_tolerance_note"] = "interior point: max(tol, 1e-5)"
    cert.add("negative_price_max", res["negative_price"], 0.0)
    rel = res["duality_gap"] / max(1.0, abs(res["welfare"]))
    cert.add("duality_gap_rel", rel if math.isfinite(rel) else math.inf, tol)
    cert.details["stationarity_max"] = res["stationarity"]
    cert.details["welfare"] = res["welfare"]
    cert.details["dual_bound"] = res["dual_bound"]
    cert.details["argmax_stationarity"] = res["argmax_stationarity"]
    cert.details["argmax_dual_feasibility"] = res["argmax_dual_feasibility"]


def _package(
    M: MarketArrays, raw: _Raw, method_label: str, timer: Timer, certify_tol: float
) -> WelfareResult:
    cert = Certificate()
    solution: dict[str, Any] = {"market_kind": M.kind}
    with timer("certify_seconds"):
        if raw.status.has_solution:
            f, p, mu = raw.f, raw.p, raw.mu
            x = M.B @ f
            res = kkt_residuals(M, f, p, mu)
            _add_kkt_certificate(
                cert, res, certify_tol, interior_point=method_label in ("qp-clarabel", "cvxpy-clarabel")
            )
            lo, _ = _marginals(M, x)
            solution.update(
                welfare=welfare_of(M, x),
                allocation=_allocation_rows(M, f),
                prices={r: float(v) for r, v in zip(M.resources, p, strict=True)},
                buyers=[
                    {"buyer": b, "total": float(x[i]), "marginal": float(lo[i]), "mu": float(mu[i])}
                    for i, b in enumerate(M.buyers)
                ],
            )
        else:
            solution.update(welfare=None, allocation=[], prices={}, buyers=[])
    meta = provenance({raw.solver: raw.version})
    meta.update(
        market_kind=M.kind,
        n_buyers=M.n_buyers,
        n_resources=M.n_resources,
        n_columns=M.n_columns,
        raw_status=raw.raw,
        **raw.extra,
    )
    solution.pop("market_kind")
    return WelfareResult(
        kind="auction-optimum",
        status=raw.status,
        method=method_label,
        solution=solution,
        certificate=cert,
        timings=dict(timer.seconds),
        meta=meta,
    )
