r"""Cournot sellers, part 2: the three routes to the equilibrium.

* :func:`build_qp` — the concave potential maximisation ``max Φ(q)`` s.t. ``q ≥ 0``, ``S q ≤ k``
  in cvxpy (its maximiser is the unique Nash equilibrium of the potential game);
* :func:`build_kkt_model` — every seller's KKT conditions
  ``0 ≤ q_sb ⟂ λ_s − m_sb ≥ 0``, ``0 ≤ λ_s ⟂ k_s − q_s ≥ 0`` as a big-M MILP in Pyomo, with the
  big-Ms of :func:`kkt_bounds` and :func:`polish_active_set` solving the KKT equations exactly
  on the active set the MILP found;
* :func:`best_response_iteration` — Gauss–Seidel closed-form best responses (block-coordinate
  ascent on Φ), no program at all.

The model is in :mod:`datamarkets.examples.cournot_sellers`; read with
``docs/writing-a-formulation.md`` §4.3.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.examples.cournot_sellers_model import CournotArrays, best_response, cournot_arrays
from datamarkets.status import Status

__all__ = [
    "CournotProgram",
    "best_response_iteration",
    "build_kkt_model",
    "build_qp",
    "kkt_bounds",
    "polish_active_set",
]


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
    >>> from datamarkets.examples.cournot_sellers_model import cournot_arrays, symmetric_cournot_graph
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
    >>> from datamarkets.examples.cournot_sellers_model import cournot_arrays, symmetric_cournot_graph
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
    >>> from datamarkets.examples.cournot_sellers_model import cournot_arrays, symmetric_cournot_graph
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
