r"""Data of the chain LP certificate: validated arrays, scales, tolerance, per-player summary.

The numbers both builds of the certificate LP (:mod:`~datamarkets.formulations.chain_certificate`,
Eq. 7–9) start from: :class:`ChainStrategyData` holds the value grid :math:`w`, the transitions
:math:`Q`, the mechanism :math:`t` and the claimed thresholds :math:`s` and prices :math:`p`,
checked at the door (:func:`strategy_data`, :func:`validated_strategy_data`).
:func:`variable_scale` is the exact change of variables :math:`\sigma_j(l)` that conditions the LPs;
:func:`gap_scale` is the scale of the pass/fail test (relative :data:`RTOL`).
:func:`summarise_player` turns one player's LP optimum into the claimed price's gain, the LP's own
price and the tie rule's pick; the Pyomo route (:mod:`~datamarkets.formulations.chain_certificate_pyomo`)
and the sparse-array route (:mod:`~datamarkets.formulations.chain_certificate_arrays`) both end there.

Scaling. Every variable is scaled by the magnitude of its own (player, value),
:math:`\sigma_j(l)=\max(|w_l|, |s_j(l)|, p_j(l))` (:math:`\max|w|` when all are 0): the LP holds
:math:`\tilde V_j(l)=V_j(l)/\sigma_j(l)` and :math:`\tilde z_k=z_k/\sigma_i(k)`, each row is divided by
the scale of its own left-hand variable, and the objective is :math:`\min\sum_k\tilde z_k` (each
:math:`\tilde z_k` sits on its own epigraph, so the optimum is the same). This exact change of
variables makes HiGHS's absolute tolerances relative ones. Without it Model 1 fails from n ≈ 45 on:
its values span :math:`e^{\pm n/2}` and its thresholds pass :math:`10^{20}`, which HiGHS reads as
infinite, so the LP came back "unbounded" for a correct equilibrium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError

__all__ = [
    "LP_OPTIONS",
    "RTOL",
    "ChainStrategyData",
    "gap_scale",
    "strategy_data",
    "summarise_player",
    "validated_strategy_data",
    "variable_scale",
]

RTOL = 1e-7
"""Relative tolerance of the certificate (scale :func:`gap_scale`)."""

# GLPK 5.0's LP presolver returns a suboptimal basis within its tolerances on some of these LPs
# (paper-2, n=4: a threshold 6e-4 low); without it, and with the final basis checked in exact
# arithmetic (--xcheck), GLPK matches the DP to 1e-16
LP_OPTIONS: dict[str, dict[str, Any]] = {
    "highs": {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    "glpk": {"nopresol": None, "xcheck": None},
}
"""Solver options of the certificate LPs, by solver (HiGHS: both routes; GLPK: Pyomo)."""


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
    return validated_strategy_data(W, Q, t, s, p)


def validated_strategy_data(W: Any, Q: Any, t: Any, s: Any, p: Any) -> ChainStrategyData:
    """Validate ``(W, Q, t, s, p)`` and hold them as a :class:`ChainStrategyData`.

    Parameters
    ----------
    W : array_like, shape (L,)
        Value grid.
    Q : array_like, shape (n, L, L)
        Transitions, non-negative.
    t : array_like, shape (n, n+1)
        Mechanism shares, non-negative.
    s : array_like, shape (n+1, L)
        Claimed thresholds.
    p : array_like, shape (n, L)
        Claimed prices, non-negative.

    Returns
    -------
    ChainStrategyData

    Raises
    ------
    InvalidInputError
        Wrong shapes, non-finite numbers, negative prices, or negative ``Q``/``t``.
    """
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


def summarise_player(
    data: ChainStrategyData,
    i: int,
    z: np.ndarray,
    epi_k: np.ndarray,
    epi_price: np.ndarray,
    epi_gain: np.ndarray,
    dp_row: np.ndarray,
    tie_rule: str,
) -> dict[str, Any]:
    """Summarise player ``i``'s LP optimum (both routes end here).

    From the LP optimum and every epigraph row's gain: the claimed price's gain, the LP's
    optimal price (highest gain, lowest price on exact ties) and the tie rule's pick among the
    prices tight within ``RTOL`` (restricted to the next player's non-negative thresholds).

    Parameters
    ----------
    data : ChainStrategyData
    i : int
        The player, ``0 ≤ i ≤ n``.
    z : ndarray, shape (L,)
        The LP optimum :math:`z_k` (unscaled).
    epi_k, epi_price, epi_gain : ndarray
        Value index, candidate price and gain :math:`g_i(w_k, c)` of every epigraph row.
    dp_row : ndarray of int
        Epigraph row of the claimed price of every value (ignored for the last player).
    tie_rule : {"lowest", "highest"}

    Returns
    -------
    dict
        ``z``, ``dp_gain`` (gain of the claimed price), ``lp_price`` and ``tie_pick`` (each (L,)).
    """
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
