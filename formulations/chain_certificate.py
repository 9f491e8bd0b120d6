r"""LP certificate of a chain-trading sequential equilibrium (Eq. 7–9).

Given everyone else's equilibrium strategies, player :math:`i`'s choice of a price is a finite
Markov decision problem with a single decision. For each player we write that problem as one
linear program covering all of the player's values at once and solve it with HiGHS:

* **policy evaluation** (the future reallocated profit down the chain, Eq. 20–21). For the
  players :math:`j > i` who follow the equilibrium, with :math:`V^{(i)}_n \equiv 0`,

  .. math::

      V^{(i)}_j(l) = \sum_{l'} q_{j+1,l,l'}\,\mathbf 1\{s_{j+1}(l') \ge p_j(l)\}
                     \bigl(t_{j+1,i}\,p_j(l) + V^{(i)}_{j+1}(l')\bigr),\qquad i < j < n;

* **epigraph** of the gain :math:`g_i(w_k, c)` (Eq. 8) over the candidate prices :math:`c`
  (the next player's non-negative thresholds, plus 0 — which never beats the smallest
  non-negative threshold, so the optimum is that of the issue's tie rules):

  .. math::

      z_k \ge w_k + \sum_{l'} q_{i+1,k,l'}\,\mathbf 1\{s_{i+1}(l') \ge c\}
              \bigl(t_{i+1,i}\,c + V^{(i)}_{i+1}(l')\bigr);

* objective :math:`\min \sum_k z_k`, so that :math:`z_k^\star = \max_c g_i(w_k, c)
  = \tilde s_i(w_k)` (Eq. 7).

The equilibrium is *certified* when for every player and value :math:`z_k^\star` equals the
DP threshold (relative :math:`10^{-7}`, scale :math:`\max(|w_k|, |s_i(k)|)`, see :func:`gap_scale`)
and the DP's own price
attains the LP optimum (its epigraph row is tight: it equals or ties the LP's optimal price).
The future profit :math:`V` is computed by the LP's equality rows, never copied from the DP.

Scaling. Every variable is scaled by the magnitude of its own (player, value),
:math:`\sigma_j(l)=\max(|w_l|, |s_j(l)|, p_j(l))` (:math:`\max|w|` when all are 0): the LP holds
:math:`\tilde V_j(l)=V_j(l)/\sigma_j(l)` and :math:`\tilde z_k=z_k/\sigma_i(k)`, each row is divided by
the scale of its own left-hand variable, and the objective is :math:`\min\sum_k\tilde z_k` (each
:math:`\tilde z_k` sits on its own epigraph, so the optimum is the same). This exact change of
variables makes HiGHS's absolute tolerances relative ones. Without it Model 1 fails from n ≈ 45 on:
its values span :math:`e^{\pm n/2}` and its thresholds pass :math:`10^{20}`, which HiGHS reads as
infinite, so the LP came back "unbounded" for a correct equilibrium.

Candidate pruning (``prune=True``): for value :math:`k` two candidates that the buyer accepts
on the same set of reachable values (:math:`q_{i+1,k,l'} > 0`) differ only in the term
:math:`t_{i+1,i}\,c\,\Pr[\text{accept}]` with :math:`t \ge 0`, so only the highest price of each
acceptance class can be a strict maximiser; the others are dropped (the LP optimum is unchanged).
The DP's own price is always added as an extra row so that its gain is evaluated exactly.

Two builds of the same LPs (``route=``):

* ``"highspy"`` (default): the rows are assembled as sparse arrays (the policy-evaluation block
  :math:`I-C` is built once for all players, each player takes its trailing principal block) and
  passed to ``highspy`` with ``passModel``. Model 1 at n = 50 (L = 201) builds and solves its 51 LPs
  in a few seconds.
* ``"pyomo"``: the readable model above, ``define_*`` piece by piece (about 40× slower to build;
  the only route for GLPK and CBC). The two are tested to give the same optima to 1e-9.

Ties. Where several prices attain the optimum the equilibrium is a selection; the DP's rule
(``tie_rule="lowest"`` or ``"highest"``) is checked as a count in the details
(``prices_off_tie_rule``: DP prices other than the rule's pick among the LP's tight prices, with the
LP's looser tolerance, so a count is a hint, not a failure).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError, SolverError, SolverLimitError
from datamarkets.models.chain_equilibrium import expectations, solve_equilibrium
from datamarkets.models.chain_game import check_tie_rule
from datamarkets.result import Certificate, Result, provenance
from datamarkets.solvers import PYOMO_NAMES, Deadline, new_highs, solve_highs, solve_pyomo
from datamarkets.status import Status

__all__ = [
    "RECOMPUTE_RTOL",
    "ROUTES",
    "ChainStrategyData",
    "build_certificate_arrays",
    "build_certificate_lp",
    "certify_chain_solution",
    "certify_equilibrium",
    "certify_strategies",
    "define_future_profit",
    "define_gain_epigraph",
    "define_objective",
    "gap_scale",
    "strategy_data",
    "variable_scale",
]

RTOL = 1e-7
"""Relative tolerance of the certificate (scale :func:`gap_scale`)."""

ROUTES = ("highspy", "pyomo")
"""Builds of the per-player LPs: sparse arrays to highspy (default) or the readable Pyomo model."""

_HIGHS_OPTIONS: dict[str, Any] = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
# GLPK 5.0's LP presolver returns a suboptimal basis within its tolerances on some of these LPs
# (paper-2, n=4: a threshold 6e-4 low); without it, and with the final basis checked in exact
# arithmetic (--xcheck), GLPK matches the DP to 1e-16
_LP_OPTIONS: dict[str, dict[str, Any]] = {
    "highs": _HIGHS_OPTIONS,
    "glpk": {"nopresol": None, "xcheck": None},
}


@dataclass
class ChainStrategyData:
    """The numbers the certificate LP is built from, validated.

    Attributes
    ----------
    W : ndarray, shape (L,)
        Value grid :math:`w_l`.
    Q : ndarray, shape (n, L, L)
        ``Q[j-1, k, l] = P(v_j = w_l | v_{j-1} = w_k)``.
    t : ndarray, shape (n, n+1)
        ``t[j-1, i]`` share of trade j's price paid to player i.
    s : ndarray, shape (n+1, L)
        Claimed thresholds (row 0 = player 0's gain).
    p : ndarray, shape (n, L)
        Claimed prices ``p[i, k]`` of player i with value ``w_k``.


    Examples
    --------
    >>> d = ChainStrategyData(W=np.array([0.0, 1.0]), Q=np.array([[[0.5, 0.5], [0.5, 0.5]]]),
    ...                       t=np.array([[1.0, 0.0]]), s=np.array([[0.5, 1.5], [0.0, 1.0]]),
    ...                       p=np.array([[1.0, 1.0]]))
    >>> d.n, d.L
    (1, 2)
    """

    W: np.ndarray
    Q: np.ndarray
    t: np.ndarray
    s: np.ndarray
    p: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.Q.shape[0])

    @property
    def L(self) -> int:
        return int(self.W.shape[0])


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    raise InvalidInputError(f"{type(obj).__name__!r} has none of the attributes {names!r}")


def strategy_data(game: Any, eq: Any) -> ChainStrategyData:
    """Extract and validate ``(W, Q, t, s, p)`` from a game and an equilibrium.

    Parameters
    ----------
    game : ChainGame
        Needs ``values`` (L,), ``Q`` (n, L, L) and ``t`` (n, n+1).
    eq : ChainEquilibrium
        Needs ``thresholds`` (n+1, L) and ``prices`` (n, L).

    Returns
    -------
    ChainStrategyData

    Raises
    ------
    InvalidInputError
        Wrong shapes, non-finite numbers or negative prices.


    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> g = paper_model("paper-2", 2)
    >>> d = strategy_data(g, solve_equilibrium(g))
    >>> d.n, d.L, d.s.shape, d.p.shape
    (2, 5, (3, 5), (2, 5))
    """
    W = np.asarray(_get(game, "values", "W"), dtype=float)
    Q = np.asarray(_get(game, "Q", "transitions"), dtype=float)
    t = np.asarray(_get(game, "t", "mechanism"), dtype=float)
    s = np.asarray(_get(eq, "thresholds", "u_star"), dtype=float)
    p = np.asarray(_get(eq, "prices", "p_star"), dtype=float)
    return _validated(W, Q, t, s, p)


def _validated(W: Any, Q: Any, t: Any, s: Any, p: Any) -> ChainStrategyData:
    W, Q, t, s, p = (np.asarray(a, dtype=float) for a in (W, Q, t, s, p))
    if W.ndim != 1 or W.size == 0:
        raise InvalidInputError(f"values must be a non-empty vector, got shape {W.shape!r}")
    L = W.size
    if Q.ndim != 3 or Q.shape[1:] != (L, L) or Q.shape[0] < 1:
        raise InvalidInputError(f"Q must have shape (n, {L}, {L}), got {Q.shape!r}")
    n = Q.shape[0]
    expected = {"t": (t, (n, n + 1)), "thresholds": (s, (n + 1, L)), "prices": (p, (n, L))}
    for name, (arr, shape) in expected.items():
        if arr.shape != shape:
            raise InvalidInputError(f"{name} must have shape {shape!r}, got {arr.shape!r}")
    for name, arr in {"values": W, "Q": Q, "t": t, "thresholds": s, "prices": p}.items():
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(x) for x in np.argwhere(~np.isfinite(arr))[0])
            raise InvalidInputError(f"{name} has a non-finite entry at index {bad!r}")
    if np.any(p < 0):
        bad = tuple(int(x) for x in np.argwhere(p < 0)[0])
        raise InvalidInputError(f"price at (player, value) {bad!r} is negative: {p[bad]!r}")
    if np.any(Q < 0) or np.any(t < 0):
        raise InvalidInputError("Q and t must be non-negative")
    return ChainStrategyData(W=W, Q=Q, t=t, s=s, p=p)


def variable_scale(data: ChainStrategyData) -> np.ndarray:
    r"""Scale :math:`\sigma_j(l)=\max(|w_l|,|s_j(l)|,p_j(l))` of each (player, value).

    Where it is 0 the game's magnitude :math:`\max_l|w_l|` is used (1 if every value is 0). It only
    conditions the LP (an exact change of variables); the pass/fail tolerance is :func:`gap_scale`.

    Parameters
    ----------
    data : ChainStrategyData

    Returns
    -------
    ndarray, shape (n+1, L)

    Examples
    --------
    >>> d = ChainStrategyData(W=np.array([0.0, 2.0]), Q=np.array([[[0.5, 0.5], [0.5, 0.5]]]),
    ...                       t=np.array([[1.0, 0.0]]), s=np.array([[1.0, 3.0], [0.0, 2.0]]),
    ...                       p=np.array([[2.0, 2.0]]))
    >>> variable_scale(d).tolist()
    [[2.0, 3.0], [2.0, 2.0]]
    """
    sigma = np.maximum(np.abs(data.W)[None, :], np.abs(data.s))
    sigma[:-1] = np.maximum(sigma[:-1], data.p)
    sigma[sigma == 0] = float(np.abs(data.W).max()) or 1.0
    return sigma


def gap_scale(data: ChainStrategyData) -> np.ndarray:
    r"""Scale of the certificate's relative gaps: :math:`\max(|w_k|, |s_i(k)|)` per (player, value).

    Where both are 0 the game's own magnitude :math:`\max_l|w_l|` is used (1 if every value is 0).
    The scale is invariant to rescaling the values (an absolute floor such as ``max(1, |s|)``
    would pass any claim whose values are below ~1e-7) and a claim cannot loosen it: inflating a
    threshold inflates its own gap. Claimed prices are not used.

    Parameters
    ----------
    data : ChainStrategyData

    Returns
    -------
    ndarray, shape (n+1, L)

    Examples
    --------
    >>> d = ChainStrategyData(W=np.array([0.0, 2e-9]), Q=np.array([[[0.5, 0.5], [0.5, 0.5]]]),
    ...                       t=np.array([[1.0, 0.0]]), s=np.array([[0.0, 3e-9], [0.0, 2e-9]]),
    ...                       p=np.array([[0.0, 0.0]]))
    >>> gap_scale(d).tolist()
    [[2e-09, 3e-09], [2e-09, 2e-09]]
    """
    scale = np.maximum(np.abs(data.W)[None, :], np.abs(data.s))
    floor = float(np.abs(data.W).max()) or 1.0
    scale[scale == 0] = floor
    return scale


# ----------------------------------------------------------------------------------------------
# program builder: define_* pieces
# ----------------------------------------------------------------------------------------------


def define_future_profit(b: Any, data: ChainStrategyData, i: int) -> None:
    r"""Policy evaluation of player ``i``'s future reallocated profit (Eq. 20–21).

    Variables ``V[j, l]`` for :math:`i < j < n` (value of trade :math:`j` having happened with
    :math:`v_j = w_l`, held scaled: ``V[j, l]`` :math:`=V_j(l)/\sigma_j(l)`, see
    :func:`variable_scale`) and one equality per ``(j, l)``, divided by :math:`\sigma_j(l)`:

    .. math:: V_j(l) - \sum_{l' \in A_j(l)} q_{j+1,l,l'} V_{j+1}(l')
              = t_{j+1,i}\,p_j(l) \sum_{l' \in A_j(l)} q_{j+1,l,l'},

    with :math:`A_j(l) = \{l' : s_{j+1}(l') \ge p_j(l)\}` and :math:`V_n \equiv 0`. Nothing is
    declared for :math:`i \ge n - 1` (no reallocated profit beyond trade :math:`i+1`). The scales
    are stored as ``b.scale`` (shape (n+1, L)).


    Parameters
    ----------
    b : pyomo Block or ConcreteModel
        Receives ``scale``, ``J``, ``V`` and ``future_profit``.
    data : ChainStrategyData
    i : int
        The player whose LP this is.

    Returns
    -------
    None
    """
    import pyomo.environ as pyo

    n, L = data.n, data.L
    sigma = variable_scale(data)
    b.scale = sigma
    J = list(range(i + 1, n))
    b.J = pyo.Set(initialize=J, ordered=True)
    b.V = pyo.Var(b.J, range(L), domain=pyo.Reals)
    if not J:
        return
    b.future_profit = pyo.ConstraintList()
    for j in J:
        q = data.Q[j]  # trade j+1: rows = v_j, cols = v_{j+1}
        share = data.t[j, i]
        for l in range(L):
            accept = (data.s[j + 1] >= data.p[j, l]) & (q[l] > 0)  # buyer j+1's threshold rule (Eq. 6)
            cols = np.flatnonzero(accept)
            rhs = share * data.p[j, l] * float(q[l, cols].sum())
            expr = b.V[j, l]
            if j + 1 < n:
                ratio = sigma[j + 1] / sigma[j, l]
                expr = expr - sum(float(q[l, c] * ratio[c]) * b.V[j + 1, int(c)] for c in cols)
            b.future_profit.add(expr == rhs / sigma[j, l])


def _candidates(data: ChainStrategyData, i: int, k: int, prune: bool) -> list[float]:
    """Candidate prices of player ``i`` with value ``w_k`` (next thresholds ≥ 0, plus 0)."""
    s_next = data.s[i + 1]
    cands = np.unique(np.concatenate([s_next[s_next >= 0], [0.0]]))
    if prune:
        reach = data.Q[i, k] > 0
        keep: dict[bytes, float] = {}
        for c in cands:  # ascending: the last price of each acceptance class is its highest
            keep[((s_next >= c) & reach).tobytes()] = float(c)
        cands = np.array(sorted(keep.values()))
    return [float(c) for c in cands]


def define_gain_epigraph(b: Any, data: ChainStrategyData, i: int, prune: bool = True) -> None:
    r"""Epigraph rows ``z[k] ≥ g_i(w_k, c)`` for every candidate price ``c`` (Eq. 8).

    .. math:: z_k - \sum_{l' : s_{i+1}(l') \ge c} q_{i+1,k,l'} V_{i+1}(l')
              \ge w_k + t_{i+1,i}\, c \sum_{l' : s_{i+1}(l') \ge c} q_{i+1,k,l'}.

    The candidates are the next player's non-negative thresholds and 0 (pruned to one per
    acceptance class when ``prune``) plus the claimed price ``p_i(w_k)``, whose row is stored in
    ``b.dp_row[k]``. For the last player (``i = n``) there is no trade to price: ``z_k ≥ w_k``.
    ``z[k]`` is held scaled, :math:`z_k/\sigma_i(k)`, and each row is divided by :math:`\sigma_i(k)`
    (call :func:`define_future_profit` first: it sets ``b.scale``).


    Parameters
    ----------
    b : pyomo Block or ConcreteModel
        Receives ``z``, ``epigraph``, ``rows`` and ``dp_row``.
    data : ChainStrategyData
    i : int
        The player whose LP this is (``0..n``).
    prune : bool, default True
        Keep only the highest candidate price of each acceptance class (exact).

    Returns
    -------
    None
    """
    import pyomo.environ as pyo

    n, L = data.n, data.L
    sigma = b.scale if hasattr(b, "scale") else variable_scale(data)
    b.z = pyo.Var(range(L), domain=pyo.Reals)
    b.epigraph = pyo.ConstraintList()
    b.rows = {}  # constraint index -> (k, price)
    b.dp_row = {}
    for k in range(L):
        w_k = float(data.W[k])
        tau = float(sigma[i, k])
        if i == n:
            idx = len(b.epigraph) + 1
            b.epigraph.add(b.z[k] >= w_k / tau)
            b.rows[idx] = (k, 0.0)
            continue
        q = data.Q[i, k]
        share = float(data.t[i, i])
        cands = _candidates(data, i, k, prune)
        p_dp = float(data.p[i, k])
        if p_dp not in cands:
            cands.append(p_dp)
        for c in cands:
            cols = np.flatnonzero((data.s[i + 1] >= c) & (q > 0))
            prob = float(q[cols].sum())
            expr = b.z[k]
            if i + 1 < n:
                ratio = sigma[i + 1] / tau
                expr = expr - sum(float(q[col] * ratio[col]) * b.V[i + 1, int(col)] for col in cols)
            idx = len(b.epigraph) + 1
            b.epigraph.add(expr >= (w_k + share * c * prob) / tau)
            b.rows[idx] = (k, c)
            if c == p_dp:
                b.dp_row[k] = idx


def define_objective(b: Any, data: ChainStrategyData) -> None:
    r"""Objective :math:`\min \sum_k z_k` (scaled ``z``): each :math:`z_k` sits on its own epigraph,
    so the optimum is :math:`z_k = \max_c g_i(w_k, c)` whatever the positive weights.

    Parameters
    ----------
    b : pyomo Block or ConcreteModel
    data : ChainStrategyData

    Returns
    -------
    None
    """
    import pyomo.environ as pyo

    b.objective = pyo.Objective(expr=sum(b.z[k] for k in range(data.L)), sense=pyo.minimize)


def _populate(b: Any, data: ChainStrategyData, i: int, prune: bool) -> None:
    define_future_profit(b, data, i)
    define_gain_epigraph(b, data, i, prune=prune)


def build_certificate_lp(game: Any, eq: Any, i: int, *, prune: bool = True) -> Any:
    """Build player ``i``'s certificate LP (all of its values at once).

    Parameters
    ----------
    game : ChainGame
        The chain game.
    eq : ChainEquilibrium
        Claimed equilibrium (thresholds and prices).
    i : int
        Player index, ``0 ≤ i ≤ n``.
    prune : bool, default True
        Keep only the highest candidate price of each acceptance class (exact; see module doc).

    Returns
    -------
    pyomo.environ.ConcreteModel
        With ``V`` (future profit), ``z`` (gain epigraph), ``epigraph``/``future_profit``
        constraint lists, ``rows`` (constraint index → (value index, price)) and ``dp_row``.

    Raises
    ------
    InvalidInputError
        Bad shapes, non-finite numbers, negative prices or ``i`` out of range.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> game = paper_model("paper-1", 3, "ave")
    >>> m = build_certificate_lp(game, solve_equilibrium(game), 0)
    >>> len(m.z), len(m.V)  # one gain per value; V_j(l) for j = 1, 2
    (13, 26)
    """
    data = game if isinstance(game, ChainStrategyData) else strategy_data(game, eq)
    return _build(data, i, prune)


def _build(data: ChainStrategyData, i: int, prune: bool) -> Any:
    import pyomo.environ as pyo

    if not (0 <= int(i) <= data.n):
        raise InvalidInputError(f"player {i!r} is not in 0..{data.n}")
    m = pyo.ConcreteModel(name=f"chain-certificate-player-{i}")
    _populate(m, data, int(i), prune)
    define_objective(m, data)
    return m


# ----------------------------------------------------------------------------------------------
# program builder, second route: sparse arrays for highspy
# ----------------------------------------------------------------------------------------------


@dataclass
class CertificateArrays:
    """Player ``i``'s certificate LP as sparse arrays (scaled exactly as the Pyomo model).

    Columns: ``V[j, l]`` for ``j = i+1..n-1`` (index ``(j-i-1)*L + l``), then ``z[k]``. Rows: the
    policy-evaluation equalities in the same order, then one epigraph row per (value, candidate).

    Attributes
    ----------
    A : scipy.sparse.csr_matrix
        Constraint matrix.
    row_lower, row_upper, cost : ndarray
        Row bounds and the objective (``1`` on every ``z``).
    n_V : int
        Number of ``V`` columns.
    epi_k, epi_price : ndarray
        Value index and candidate price of every epigraph row.
    epi_rhs : ndarray
        Scaled right-hand side of every epigraph row.
    epi_G : scipy.sparse.csr_matrix
        ``q_{i+1,k,l'} sigma_{i+1}(l') / sigma_i(k)`` on ``V[i+1, l']`` per epigraph row (the
        scaled future-profit term of the gain).
    dp_row : ndarray of int
        Epigraph row of the claimed price of every value (``-1`` for the last player).
    tau : ndarray
        :math:`\\sigma_i(k)`.
    """

    A: Any
    row_lower: np.ndarray
    row_upper: np.ndarray
    cost: np.ndarray
    n_V: int
    epi_k: np.ndarray
    epi_price: np.ndarray
    epi_rhs: np.ndarray
    epi_G: Any
    dp_row: np.ndarray
    tau: np.ndarray


class _PolicyBlocks:
    """The policy-evaluation rows shared by all players, built once (Eq. 20–21, scaled).

    ``P`` is the ``nL × nL`` block upper-bidiagonal matrix :math:`I - C` over ``(j, l)``,
    ``j = 0..n-1``, with :math:`C_j(l,l') = q_{j+1,l,l'}\\mathbf 1\\{s_{j+1}(l')\\ge p_j(l)\\}
    \\sigma_{j+1}(l')/\\sigma_j(l)` for ``j + 1 < n``; player ``i`` uses its trailing block from
    ``j = i+1``. ``prob[j, l]`` is the acceptance probability, whose right-hand side
    ``t[j, i] p_j(l) prob[j, l] / sigma_j(l)`` depends on the player only through ``t``.
    """

    def __init__(self, data: ChainStrategyData) -> None:
        import scipy.sparse as sp

        n, L = data.n, data.L
        self.sigma = variable_scale(data)
        Q, s, p = data.Q, data.s, data.p
        acc = (s[1:, None, :] >= p[:, :, None]) & (Q > 0)  # (n, L, L): buyer j+1's rule (Eq. 6)
        self.prob = (Q * acc).sum(axis=2)  # (n, L)
        off = []
        for j in range(n - 1):
            C = Q[j] * acc[j] * (self.sigma[j + 1][None, :] / self.sigma[j][:, None])
            off.append(sp.csr_matrix(C))
        I_nL = sp.identity(n * L, format="csr")
        if off:
            upper = sp.block_diag(off, format="csr")  # rows j = 0..n-2, cols j+1 = 1..n-1
            upper = sp.hstack([sp.csr_matrix(((n - 1) * L, L)), upper], format="csr")
            upper = sp.vstack([upper, sp.csr_matrix((L, n * L))], format="csr")
            self.P = (I_nL - upper).tocsr()
        else:
            self.P = I_nL


def _pruned_candidates(data: ChainStrategyData, i: int, prune: bool) -> tuple[np.ndarray, np.ndarray]:
    """(value index, price) of every candidate row of player ``i`` (< n), claimed price included,
    sorted by value then price.

    Vectorised version of :func:`_candidates`: with pruning, the highest price of each acceptance
    class is the reachable non-negative thresholds plus, when it exceeds them all, the highest
    candidate (whose class is empty).
    """
    L = data.L
    s_next = data.s[i + 1]
    cands = np.unique(np.concatenate([s_next[s_next >= 0], [0.0]]))
    top = cands[-1]
    if prune:
        kk, ll = np.nonzero((data.Q[i] > 0) & (s_next >= 0)[None, :])
        cc = s_next[ll]
        max_reach = np.full(L, -np.inf)
        np.maximum.at(max_reach, kk, cc)
        lacking = np.flatnonzero(top > max_reach)
        kk = np.concatenate([kk, lacking])
        cc = np.concatenate([cc, np.full(lacking.size, top)])
    else:
        kk = np.repeat(np.arange(L), cands.size)
        cc = np.tile(cands, L)
    kk = np.concatenate([kk, np.arange(L)])
    cc = np.concatenate([cc, data.p[i]])
    order = np.lexsort((cc, kk))
    kk, cc = kk[order], cc[order]
    keep = np.ones(kk.size, dtype=bool)
    keep[1:] = (kk[1:] != kk[:-1]) | (cc[1:] != cc[:-1])
    return kk[keep], cc[keep]


def build_certificate_arrays(
    data: ChainStrategyData, i: int, *, prune: bool = True, blocks: Any = None
) -> CertificateArrays:
    """Player ``i``'s certificate LP as sparse arrays (the same LP as :func:`build_certificate_lp`).

    Parameters
    ----------
    data : ChainStrategyData
    i : int
        Player, ``0 ≤ i ≤ n``.
    prune : bool, default True
        Keep only the highest candidate price of each acceptance class (exact).
    blocks : optional
        The shared policy-evaluation rows of all players (built here when omitted).

    Returns
    -------
    CertificateArrays

    Raises
    ------
    InvalidInputError
        ``i`` out of range.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> game = paper_model("paper-1", 3, "ave")
    >>> a = build_certificate_arrays(strategy_data(game, solve_equilibrium(game)), 0)
    >>> a.n_V, a.A.shape[1] - a.n_V  # V_j(l) for j = 1, 2; one gain per value
    (26, 13)
    """
    import scipy.sparse as sp

    n, L = data.n, data.L
    if not (0 <= int(i) <= n):
        raise InvalidInputError(f"player {i!r} is not in 0..{n}")
    i = int(i)
    blocks = blocks if blocks is not None else _PolicyBlocks(data)
    sigma = blocks.sigma
    tau = sigma[i]
    n_V = max(n - 1 - i, 0) * L
    # policy evaluation: trailing principal block of I - C from j = i+1
    r0 = (i + 1) * L
    P = blocks.P[r0:, r0:] if n_V else sp.csr_matrix((0, 0))
    j_idx = np.arange(i + 1, n)
    pol_rhs = (data.t[j_idx, i][:, None] * data.p[j_idx] * blocks.prob[j_idx] / sigma[j_idx]).ravel()
    # epigraph rows z_k - sum q ratio V[i+1] >= (w_k + t_ii c prob) / tau_k   (Eq. 8)
    if i == n:
        epi_k = np.arange(L)
        epi_c = np.zeros(L)
        epi_rhs = data.W / tau
        G = sp.csr_matrix((L, 0))
        dp_row = np.full(L, -1, dtype=np.int64)
    else:
        epi_k, epi_c = _pruned_candidates(data, i, prune)
        q = data.Q[i][epi_k]  # (R, L)
        accept = (data.s[i + 1][None, :] >= epi_c[:, None]) & (q > 0)
        qa = q * accept
        epi_rhs = (data.W[epi_k] + data.t[i, i] * epi_c * qa.sum(axis=1)) / tau[epi_k]
        if i + 1 < n:
            G = sp.csr_matrix(qa * (sigma[i + 1][None, :] / tau[epi_k][:, None]))
        else:
            G = sp.csr_matrix((epi_k.size, 0))
        dp_row = np.full(L, -1, dtype=np.int64)
        hit = np.flatnonzero(epi_c == data.p[i, epi_k])
        dp_row[epi_k[hit]] = hit
    R = epi_k.size
    Zcol = sp.csr_matrix((np.ones(R), (np.arange(R), epi_k)), shape=(R, L))
    G_full = sp.hstack([-G, sp.csr_matrix((R, max(n_V - G.shape[1], 0)))], format="csr") if n_V else None
    if n_V:
        top = sp.hstack([P, sp.csr_matrix((n_V, L))], format="csr")
        bottom = sp.hstack([G_full, Zcol], format="csr")
        A = sp.vstack([top, bottom], format="csr")
    else:
        A = Zcol
    row_lower = np.concatenate([pol_rhs, epi_rhs])
    row_upper = np.concatenate([pol_rhs, np.full(R, np.inf)])
    cost = np.concatenate([np.zeros(n_V), np.ones(L)])
    return CertificateArrays(
        A=A,
        row_lower=row_lower,
        row_upper=row_upper,
        cost=cost,
        n_V=n_V,
        epi_k=epi_k,
        epi_price=epi_c,
        epi_rhs=epi_rhs,
        epi_G=G,
        dp_row=dp_row,
        tau=tau,
    )


def _solve_arrays(a: CertificateArrays, time_limit: float | None) -> tuple[Any, np.ndarray | None]:
    """Pass the arrays to HiGHS; return (SolveInfo, column values or None)."""
    import highspy

    csc = a.A.tocsc()
    lp = highspy.HighsLp()
    lp.num_col_ = int(csc.shape[1])
    lp.num_row_ = int(csc.shape[0])
    lp.col_cost_ = a.cost
    lp.col_lower_ = np.full(lp.num_col_, -np.inf)
    lp.col_upper_ = np.full(lp.num_col_, np.inf)
    lp.row_lower_ = a.row_lower
    lp.row_upper_ = a.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data.astype(float)
    lp.a_matrix_.num_col_ = lp.num_col_
    lp.a_matrix_.num_row_ = lp.num_row_
    h = new_highs(time_limit=time_limit, **_HIGHS_OPTIONS)
    if h.passModel(lp) == highspy.HighsStatus.kError:  # kWarning: tiny entries dropped, fine
        raise SolverError("highspy rejected the chain certificate LP (passModel)")
    info = solve_highs(h)
    x = np.asarray(h.getSolution().col_value, dtype=float) if info.status.has_solution else None
    return info, x


def _summarise(
    data: ChainStrategyData,
    i: int,
    z: np.ndarray,
    epi_k: np.ndarray,
    epi_price: np.ndarray,
    epi_gain: np.ndarray,
    dp_row: np.ndarray,
    tie_rule: str,
) -> dict[str, Any]:
    """From the LP optimum and every epigraph row's gain: the claimed price's gain, the LP's
    optimal price (highest gain, lowest price on exact ties) and the tie rule's pick among the
    prices tight within ``RTOL`` (restricted to the next player's non-negative thresholds)."""
    L = data.L
    gscale = gap_scale(data)[i]
    best = np.full(L, -np.inf)
    np.maximum.at(best, epi_k, epi_gain)
    tight = best[epi_k] - epi_gain <= RTOL * gscale[epi_k]
    order = np.lexsort((epi_price, -epi_gain, epi_k))  # per value: highest gain, then lowest price
    first = order[np.flatnonzero(np.r_[True, np.diff(epi_k[order]) != 0])]
    lp_price = np.zeros(L)
    lp_price[epi_k[first]] = epi_price[first]
    issue = None if i == data.n else np.unique(data.s[i + 1][data.s[i + 1] >= 0])
    if issue is not None and issue.size:
        rule = tight & np.isin(epi_price, issue)
        has_rule = np.zeros(L, dtype=bool)
        has_rule[epi_k[rule]] = True
        pool = np.where(has_rule[epi_k], rule, tight)
        pick = np.full(L, np.inf if tie_rule == "lowest" else -np.inf)
        reduce = np.minimum if tie_rule == "lowest" else np.maximum
        reduce.at(pick, epi_k[pool], epi_price[pool])
        tie_pick = pick
    else:
        tie_pick = np.zeros(L)  # price 0 when the next player has no non-negative threshold
    dp_gain = epi_gain[dp_row] if i < data.n else z.copy()
    return {"z": z, "dp_gain": dp_gain, "lp_price": lp_price, "tie_pick": tie_pick}


# ----------------------------------------------------------------------------------------------
# solve + solution writer
# ----------------------------------------------------------------------------------------------


def _solve_player_arrays(
    data: ChainStrategyData,
    i: int,
    prune: bool,
    blocks: Any,
    tie_rule: str,
    time_limit: float | None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    a = build_certificate_arrays(data, i, prune=prune, blocks=blocks)
    build_s = time.perf_counter() - t0
    info, x = _solve_arrays(a, time_limit)
    out: dict[str, Any] = {
        "status": info.status,
        "build_seconds": build_s,
        "solve_seconds": info.seconds,
        "rows": int(a.A.shape[0]),
        "solver_version": info.solver_version,
    }
    if x is None:
        return out
    z = a.tau * x[a.n_V :]
    V_next = x[: a.epi_G.shape[1]]  # V[i+1, .] is the first block
    gain = a.tau[a.epi_k] * (a.epi_rhs + a.epi_G @ V_next)
    out.update(_summarise(data, i, z, a.epi_k, a.epi_price, gain, a.dp_row, tie_rule))
    return out


def _solve_player(
    data: ChainStrategyData,
    i: int,
    prune: bool,
    solver: str = "highs",
    tie_rule: str = "lowest",
    time_limit: float | None = None,
) -> dict[str, Any]:
    import pyomo.environ as pyo

    t0 = time.perf_counter()
    deadline = Deadline(time_limit, start=t0)
    try:  # the Pyomo build is pure Python: interrupted at the deadline
        with deadline.interrupting(f"the Pyomo build of player {i}'s LP"):
            m = _build(data, i, prune)
    except SolverLimitError:
        return {
            "status": Status.TIME_LIMIT,
            "build_seconds": time.perf_counter() - t0,
            "solve_seconds": 0.0,
            "rows": 0,
            "solver_version": "unknown",
        }
    build_s = time.perf_counter() - t0
    info = solve_pyomo(
        m, PYOMO_NAMES[solver], time_limit=deadline.solver_limit(), options=_LP_OPTIONS.get(solver)
    )
    out: dict[str, Any] = {
        "status": info.status,
        "build_seconds": build_s,
        "solve_seconds": info.seconds,
        "rows": len(m.epigraph) + (len(m.future_profit) if hasattr(m, "future_profit") else 0),
        "solver_version": info.solver_version,
    }
    if not info.status.has_solution:
        return out
    L = data.L
    tau = m.scale[i]
    z_scaled = np.array([pyo.value(m.z[k]) for k in range(L)])
    z = tau * z_scaled
    # gain of every epigraph row at the LP solution: z_k - slack, with the LP's own V
    idxs = sorted(m.rows)
    epi_k = np.array([m.rows[r][0] for r in idxs], dtype=np.int64)
    epi_c = np.array([m.rows[r][1] for r in idxs], dtype=float)
    pos = {r: n for n, r in enumerate(idxs)}
    gain = np.array(
        [
            tau[m.rows[r][0]]
            * (z_scaled[m.rows[r][0]] - (pyo.value(m.epigraph[r].body) - pyo.value(m.epigraph[r].lower)))
            for r in idxs
        ]
    )
    dp_row = np.array([pos[m.dp_row[k]] for k in range(L)]) if i < data.n else np.full(L, -1)
    out.update(_summarise(data, i, z, epi_k, epi_c, gain, dp_row, tie_rule))
    return out


def certify_strategies(
    data: ChainStrategyData,
    *,
    rtol: float = RTOL,
    prune: bool = True,
    players: Any = None,
    solver: str = "highs",
    route: str | None = None,
    tie_rule: str = "lowest",
    time_limit: float | None = None,
) -> Result:
    """Certify claimed strategies ``(s, p)`` player by player with one LP each.

    Parameters
    ----------
    data : ChainStrategyData
        Game arrays and the claimed thresholds/prices.
    rtol : float, default 1e-7
        Relative tolerance (scale :func:`gap_scale`).
    prune : bool, default True
        Candidate pruning (exact).
    players : iterable of int, optional
        Subset of players to check (default all ``0..n``).
    solver : {"highs", "glpk", "cbc"}, default "highs"
        LP solver: HiGHS through highspy (or Pyomo's ``appsi_highs``), GLPK and CBC through Pyomo.
    route : {"highspy", "pyomo"}, optional
        How the LPs are built: sparse arrays passed to highspy (default for HiGHS) or the
        readable Pyomo model (default, and the only route, for GLPK and CBC).
    tie_rule : {"lowest", "highest"}, default "lowest"
        The claimed prices' tie rule, counted in ``details["prices_off_tie_rule"]``.
    time_limit : float, optional
        Wall-clock seconds for all the LPs (each LP gets what is left; checked between players).
        When it runs out the status is ``time_limit`` and the certificate does not pass.

    Returns
    -------
    Result
        ``kind="chain-certificate"``; ``solution`` holds ``lp_thresholds`` ((n+1)×L),
        ``lp_prices`` (n×L), ``max_gap`` and ``certified``; ``certificate.details`` per-player
        gaps.

    Raises
    ------
    InvalidInputError
        Unknown route or tie rule, ``route="highspy"`` with another solver than HiGHS, or a
        negative/non-finite time limit.


    Examples
    --------
    One trade; the buyer's value is 1 or 3 with probability 1/2; price 3 earns 1.5, price 1 earns 1:

    >>> d = ChainStrategyData(W=np.array([0.0, 1.0, 3.0]),
    ...                       Q=np.array([[[0.0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]]]),
    ...                       t=np.array([[1.0, 0.0]]),
    ...                       s=np.array([[1.5, 2.0, 6.0], [0.0, 1.0, 3.0]]),
    ...                       p=np.array([[3.0, 1.0, 3.0]]))
    >>> certify_strategies(d).certificate.passed
    True
    >>> d.p[0, 0] = 1.0  # a strictly worse price for value 0
    >>> round(certify_strategies(d).solution["max_gap"], 6)
    0.333333
    """
    n, L = data.n, data.L
    check_tie_rule(tie_rule)
    route = ("highspy" if solver == "highs" else "pyomo") if route is None else route
    if route not in ROUTES:
        raise InvalidInputError(f"route must be one of {ROUTES!r}, got {route!r}")
    if route == "highspy" and solver != "highs":
        raise InvalidInputError(f"route 'highspy' solves with HiGHS only, not {solver!r}; use route='pyomo'")
    if time_limit is not None and not (isinstance(time_limit, int | float) and 0 <= time_limit < np.inf):
        raise InvalidInputError(f"time_limit must be a finite number of seconds >= 0, got {time_limit!r}")
    players = list(range(n + 1)) if players is None else [int(i) for i in players]
    t_start = time.perf_counter()
    deadline = None if time_limit is None else t_start + float(time_limit)
    blocks = _PolicyBlocks(data) if route == "highspy" else None
    z_all = np.full((n + 1, L), np.nan)
    lp_price = np.full((n, L), np.nan)
    per_player = []
    worst_status = Status.OPTIMAL
    thr_gap_max = price_gap_max = 0.0
    build_s = solve_s = 0.0
    version = "unknown"
    ties = equal = off_rule = 0
    unchecked: list[int] = []
    for pos, i in enumerate(players):
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            worst_status = Status.TIME_LIMIT
            unchecked = players[pos:]
            thr_gap_max = price_gap_max = float("inf")
            break
        if route == "highspy":
            r = _solve_player_arrays(data, i, prune, blocks, tie_rule, left)
        else:
            r = _solve_player(data, i, prune, solver, tie_rule, left)
        build_s += r["build_seconds"]
        solve_s += r["solve_seconds"]
        version = r["solver_version"]
        if not r["status"].has_solution:
            worst_status = r["status"]
            per_player.append({"player": i, "status": r["status"].value})
            thr_gap_max = price_gap_max = float("inf")
            continue
        z = r["z"]
        z_all[i] = z
        scale = gap_scale(data)[i]
        thr_gap = np.abs(z - data.s[i]) / scale  # LP optimum vs DP threshold
        price_gap = np.maximum(z - r["dp_gain"], 0.0) / scale  # DP price attains the optimum?
        k_t, k_p = int(np.argmax(thr_gap)), int(np.argmax(price_gap))
        entry = {
            "player": i,
            "status": r["status"].value,
            "threshold_gap_rel": float(thr_gap[k_t]),
            "threshold_gap_at_value": k_t,
            "price_gap_rel": float(price_gap[k_p]),
            "price_gap_at_value": k_p,
            "rows": r["rows"],
        }
        if i < n:
            lp_price[i] = r["lp_price"]
            same = r["lp_price"] == data.p[i]
            equal += int(same.sum())
            ties += int((~same & (price_gap <= rtol)).sum())
            off_rule += int((data.p[i] != r["tie_pick"]).sum())
        per_player.append(entry)
        thr_gap_max = max(thr_gap_max, float(thr_gap.max()))
        price_gap_max = max(price_gap_max, float(price_gap.max()))
    seconds = time.perf_counter() - t_start

    cert = Certificate()
    cert.add("lp_vs_dp_threshold_rel_max", thr_gap_max, rtol)
    cert.add("dp_price_vs_lp_optimum_rel_max", price_gap_max, rtol)
    cert.details.update(
        per_player=per_player,
        prices_equal_lp_argmax=equal,
        prices_tied_with_lp_argmax=ties,
        tie_rule=tie_rule,
        prices_off_tie_rule=off_rule,
        candidate_pruning=prune,
        route=route,
    )
    if unchecked:
        cert.details["unchecked_players"] = unchecked
        cert.add("players_unchecked_time_limit", float(len(unchecked)), 0.0)
    max_gap = max(thr_gap_max, price_gap_max)
    certified = worst_status.has_solution and cert.passed
    return Result(
        kind="chain-certificate",
        status=worst_status,
        method=f"lp-{route}-{solver}",
        solution={
            "certified": certified,
            "max_gap": max_gap,
            "lp_thresholds": z_all,
            "lp_prices": lp_price,
        },
        certificate=cert,
        timings={"build_seconds": build_s, "lp_seconds": solve_s, "certify_seconds": seconds},
        meta=provenance({solver: version}) | {"players": players, "n": n, "L": L},
    )


def certify_equilibrium(
    game: Any,
    eq: Any,
    *,
    rtol: float = RTOL,
    prune: bool = True,
    route: str | None = None,
    tie_rule: str | None = None,
    time_limit: float | None = None,
) -> Result:
    """LP certificate of a claimed chain equilibrium (Eq. 9), one LP per player.

    Certified when for every player and value the LP optimum equals the claimed threshold
    (relative ``rtol``, scale :func:`gap_scale`) and the claimed price attains the LP
    optimum (equals or ties the LP's optimal price).

    Parameters
    ----------
    game : ChainGame
        The game (``values``, ``Q``, ``t``).
    eq : ChainEquilibrium
        Claimed equilibrium (``thresholds`` (n+1, L), ``prices`` (n, L)).
    rtol : float, default 1e-7
    prune : bool, default True
    route : {"highspy", "pyomo"}, optional
        LP build (default: sparse arrays to highspy).
    tie_rule : {"lowest", "highest"}, optional
        Tie rule of the claim (default: ``eq.tie_rule``, else the game's, else ``"lowest"``).
    time_limit : float, optional
        Seconds for all the LPs (see :func:`certify_strategies`).

    Returns
    -------
    Result
        ``kind="chain-certificate"``; ``certificate.passed`` says whether it is certified;
        ``solution["max_gap"]`` is the largest gap; per-player gaps in
        ``certificate.details["per_player"]``.

    Raises
    ------
    InvalidInputError
        Malformed game or strategies.
    SolverError
        HiGHS is unavailable.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> game = paper_model("paper-1", 5, "ave")
    >>> certify_equilibrium(game, solve_equilibrium(game)).certificate.passed
    True
    """
    if tie_rule is None:
        tie_rule = getattr(eq, "tie_rule", None) or getattr(game, "tie_rule", "lowest")
        if isinstance(eq, dict):
            tie_rule = eq.get("tie_rule") or tie_rule
    return certify_strategies(
        strategy_data(game, eq), rtol=rtol, prune=prune, route=route, tie_rule=tie_rule, time_limit=time_limit
    )


# ----------------------------------------------------------------------------------------------
# the certificate of a chain-equilibrium result: every reported number
# ----------------------------------------------------------------------------------------------

#: Tolerance of the recomputed expectations and DP quantities (relative, see :func:`certify_chain_solution`).
RECOMPUTE_RTOL = 1e-9

_NOT_CHECKED = {
    "label": "free-form name, not a number",
    "certified": "the producer's verdict; the certificate re-derives its own (certificate.passed)",
}


def _numeric(solution: Any, key: str) -> np.ndarray:
    try:
        v = np.asarray([np.nan if x is None else x for x in np.ravel(solution[key]).tolist()], dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"chain solution field {key!r} is not numeric: {exc}") from exc
    return v


def _rel_max(claimed: np.ndarray, exact: np.ndarray, floor: float) -> float:
    """``max |claimed - exact| / max(|exact|, floor)`` (NaN must match NaN; a shape mismatch is inf)."""
    claimed, exact = np.ravel(claimed), np.ravel(exact)
    if claimed.shape != exact.shape:
        return float("inf")
    both_nan = np.isnan(claimed) & np.isnan(exact)
    diff = np.where(both_nan, 0.0, np.abs(claimed - exact))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(np.max(diff / np.maximum(np.abs(np.nan_to_num(exact)), floor), initial=0.0))


def certify_chain_solution(
    game: Any,
    solution: Any,
    *,
    lp: bool = True,
    route: str | None = None,
    time_limit: float | None = None,
) -> Certificate:
    r"""The one certificate of a ``chain-equilibrium`` result (``chain solve`` and the formulation).

    Every number the result reports is recomputed from the game and the claimed strategies and
    compared, or listed in ``details["not_checked"]`` with the reason:

    * ``thresholds``, ``prices``: the per-player LPs (``lp_vs_dp_threshold_rel_max``,
      ``dp_price_vs_lp_optimum_rel_max``, relative :data:`RTOL`; see :func:`certify_strategies`) and,
      as the equilibrium *selection* under the game's tie rule, the DP recomputed
      (``thresholds_vs_dp_rel_max``, ``prices_vs_dp_rel_max``, :data:`RECOMPUTE_RTOL`, scale
      :func:`gap_scale`);
    * ``social_welfare``, ``transaction_volume``, ``trade_success``,
      ``trade_success_conditional``, ``player_utility``: exact expectations recomputed from the
      claimed strategies by forward propagation (``<field>_rel``, :data:`RECOMPUTE_RTOL` relative to
      ``max(|exact|, 1e-3·scale)``, scale :math:`(n+1)\max|w|` for welfare and utilities, 1 for
      probabilities, n for TV);
    * ``tie_rule``, ``tie_count``, ``sw_tie_range``: the game's rule, and the DP under both rules;
    * ``n``, ``L``, ``values``, ``mechanism``: against the game;
    * ``objective`` (Σ thresholds) and ``lp_thresholds`` (LP routes): against the LPs' optima
      (relative :data:`RTOL`) or, when ``lp=False``, the recomputed DP.

    Parameters
    ----------
    game : ChainGame
    solution : mapping
        The result's ``solution`` (or a saved result's fields).
    lp : bool, default True
        Run the per-player LPs. When False their residuals are absent and
        ``details["not_checked"]["equilibrium_optimality"]`` says so.
    route : {"highspy", "pyomo"}, optional
        LP build.
    time_limit : float, optional
        Seconds for the LPs.

    Returns
    -------
    Certificate

    Raises
    ------
    InvalidInputError
        Missing or non-numeric ``thresholds``/``prices`` or wrong shapes.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> g = paper_model("paper-2", 3)
    >>> sol = solve_equilibrium(g).to_result().solution
    >>> certify_chain_solution(g, sol).passed
    True
    >>> certify_chain_solution(g, {**sol, "social_welfare": sol["social_welfare"] * 1.001}).passed
    False
    """
    if not hasattr(solution, "get"):
        raise InvalidInputError(f"a chain solution must be a mapping, got {type(solution).__name__!r}")
    n, L = game.n, game.L
    for key in ("thresholds", "prices"):
        if key not in solution:
            raise InvalidInputError(f"a chain solution needs numeric 'thresholds' and 'prices' (no {key!r})")
    s = _numeric(solution, "thresholds")
    p = _numeric(solution, "prices")
    if s.size != (n + 1) * L or p.size != n * L:
        raise InvalidInputError(
            f"thresholds/prices must have shapes {(n + 1, L)!r}/{(n, L)!r} for this game, "
            f"got {s.size!r}/{p.size!r} numbers"
        )
    s, p = s.reshape(n + 1, L), p.reshape(n, L)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(p))):
        raise InvalidInputError("thresholds and prices must be finite numbers")
    data = _validated(game.values, game.Q, game.t, s, p)
    cert = Certificate()
    checked: dict[str, list[str]] = {}
    not_checked = dict(_NOT_CHECKED)  # "certified" may be added after this certificate

    def add(field_: str, name: str, residual: float, tol: float) -> None:
        cert.add(name, residual, tol)
        checked.setdefault(field_, []).append(name)

    gscale = gap_scale(data)
    wmax = float(np.abs(game.values).max()) or 1.0
    scale = wmax * (n + 1)
    # -- the game the result claims to be about
    if "n" in solution or "L" in solution:
        size = [_numeric(solution, k)[0] if k in solution else v for k, v in (("n", n), ("L", L))]
        add("n", "size_vs_instance", float(abs(size[0] - n) + abs(size[1] - L)), 0.0)
        checked.setdefault("L", []).append("size_vs_instance")
    if "values" in solution:
        add(
            "values",
            "values_vs_instance_rel",
            _rel_max(_numeric(solution, "values"), game.values, wmax),
            1e-12,
        )
    if "mechanism" in solution:
        add(
            "mechanism",
            "mechanism_vs_instance",
            _rel_max(_numeric(solution, "mechanism"), game.t, 1.0),
            1e-12,
        )
    # -- optimality: the per-player LPs
    z_sum = None
    if lp:
        res = certify_strategies(data, route=route, tie_rule=game.tie_rule, time_limit=time_limit)
        for k, v in res.certificate.residuals.items():
            add("thresholds", k, v, res.certificate.tolerances[k])
        checked.setdefault("prices", []).append("dp_price_vs_lp_optimum_rel_max")
        if not res.status.has_solution:
            add("thresholds", "lp_status_ok", 1.0, 0.0)
        else:
            z_sum = res.solution["lp_thresholds"]
        cert.details["lp_per_player"] = res.certificate.details.get("per_player")
        cert.details["lp_route"] = res.method
        cert.details["prices_off_tie_rule"] = res.certificate.details.get("prices_off_tie_rule")
    else:
        not_checked["equilibrium_optimality"] = (
            "per-player LPs skipped (large instance); `datamarkets verify RESULT.json` runs them"
        )
    # -- the selection under the tie rule, by the DP (and the other rule for the range)
    eq = solve_equilibrium(game, tie_range=True)
    add(
        "thresholds",
        "thresholds_vs_dp_rel_max",
        float(np.max(np.abs(s - eq.thresholds) / gscale)),
        RECOMPUTE_RTOL,
    )
    add("prices", "prices_vs_dp_rel_max", float(np.max(np.abs(p - eq.prices) / gscale[:-1])), RECOMPUTE_RTOL)
    if "tie_rule" in solution:
        add("tie_rule", "tie_rule_vs_instance", float(solution["tie_rule"] != game.tie_rule), 0.0)
    if "tie_count" in solution:
        add(
            "tie_count", "tie_count_vs_dp", abs(float(_numeric(solution, "tie_count")[0]) - eq.tie_count), 0.0
        )
    if "sw_tie_range" in solution:
        rng = solution["sw_tie_range"]
        exact_rng = np.asarray(eq.sw_tie_range, dtype=float)
        claimed_rng = np.full(2, np.nan) if rng is None else _numeric(solution, "sw_tie_range")
        add(
            "sw_tie_range", "sw_tie_range_rel", _rel_max(claimed_rng, exact_rng, 1e-3 * scale), RECOMPUTE_RTOL
        )
    # -- exact expectations of the claimed strategies
    ex = expectations(game, s, p)
    floors = {
        "social_welfare": scale,
        "player_utility": scale,
        "transaction_volume": float(n),
        "trade_success": 1.0,
        "trade_success_conditional": 1.0,
    }
    for key, fl in floors.items():
        if key in solution:
            claimed = _numeric(solution, key)
            add(
                key,
                f"{key}_rel",
                _rel_max(claimed, np.asarray(ex[key], dtype=float), 1e-3 * fl),
                RECOMPUTE_RTOL,
            )
    # -- sums of thresholds reported by a route
    ref = eq.thresholds if z_sum is None else z_sum
    if solution.get("objective") is not None:
        z = float(np.sum(ref))
        add(
            "objective",
            "objective_rel",
            abs(float(_numeric(solution, "objective")[0]) - z) / max(1.0, abs(z)),
            RTOL,
        )
    if "lp_thresholds" in solution:
        add(
            "lp_thresholds",
            "lp_thresholds_vs_lp_rel_max",
            _rel_max(_numeric(solution, "lp_thresholds"), np.ravel(ref), float(np.min(gscale))),
            RTOL,
        )
    for key in solution:
        if key not in checked and key not in not_checked:
            not_checked[key] = "not recognised by the chain certificate"
    cert.details["checked"] = checked
    cert.details["not_checked"] = not_checked
    cert.details["recomputed"] = {
        "social_welfare": ex["social_welfare"],
        "transaction_volume": ex["transaction_volume"],
        "tie_count": eq.tie_count,
        "sw_tie_range": list(eq.sw_tie_range or ()),
    }
    return cert
