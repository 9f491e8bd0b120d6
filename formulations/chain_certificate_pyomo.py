r"""Chain LP certificate, Pyomo route: the readable per-player LP, ``define_*`` piece by piece.

For player :math:`i` (:mod:`~datamarkets.formulations.chain_certificate`, Eq. 7–9, 20–21):
:func:`define_future_profit` (policy evaluation of :math:`V^{(i)}`), :func:`define_gain_epigraph`
(:math:`z_k \ge g_i(w_k, c)` over the candidate prices) and :func:`define_objective`
(:math:`\min\sum_k z_k`), assembled by :func:`build_certificate_lp` and solved through Pyomo by
:func:`solve_player_pyomo` (HiGHS, GLPK or CBC). About 40× slower to build than the sparse-array
route (:mod:`~datamarkets.formulations.chain_certificate_arrays`); the only route for GLPK and CBC.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.formulations.chain_certificate_data import (
    LP_OPTIONS,
    ChainStrategyData,
    strategy_data,
    summarise_player,
    variable_scale,
)
from datamarkets.solvers import PYOMO_NAMES, Deadline, solve_pyomo
from datamarkets.status import Status

__all__ = [
    "build_certificate_lp",
    "define_future_profit",
    "define_gain_epigraph",
    "define_objective",
    "solve_player_pyomo",
]


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


def solve_player_pyomo(
    data: ChainStrategyData,
    i: int,
    prune: bool,
    solver: str = "highs",
    tie_rule: str = "lowest",
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Build player ``i``'s LP with Pyomo, solve it and summarise the optimum.

    Parameters
    ----------
    data : ChainStrategyData
    i : int
        The player, ``0 ≤ i ≤ n``.
    prune : bool
        Candidate pruning (exact).
    solver : {"highs", "glpk", "cbc"}, default "highs"
    tie_rule : {"lowest", "highest"}, default "lowest"
    time_limit : float, optional
        Seconds for the build (interrupted at the deadline) and the solve.

    Returns
    -------
    dict
        ``status``, ``build_seconds``, ``solve_seconds``, ``rows``, ``solver_version`` and, when a
        solution is present, the entries of :func:`summarise_player`.
    """
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
        m, PYOMO_NAMES[solver], time_limit=deadline.solver_limit(), options=LP_OPTIONS.get(solver)
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
    out.update(summarise_player(data, i, z, epi_k, epi_c, gain, dp_row, tie_rule))
    return out
