"""Proven ranges of the primal variables at the KKT points of an LQ game (used by the KKT MILP).

Three arguments, each valid at every KKT point (4)–(7), intersected with the box:

- stationarity propagation: where ``x_j > lb_j`` complementarity (7) kills ``ν⁻_j`` and (4) bounds
  ``x_j`` from above by interval arithmetic (symmetrically from below);
- the strongly monotone ball ``‖x* − x0‖₂ ≤ ‖F(x0)‖₂ / α`` around a feasible point (variational
  equilibria, or games without shared rows); around a feasible point with common multipliers (e.g.
  the vi route's answer) the far smaller ball of :func:`kkt_ball`, whose radius is set by that
  point's KKT residuals (about 1e-7 around a polished answer, against ~1 for ``‖F(x0)‖/α``);
- LP over the joint feasible set X for the sides still infinite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.formulations.games._backend import INF, run_highs
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.solvers import highs_model
from datamarkets.status import Status

__all__ = [
    "feasible_point",
    "interval_matvec",
    "kkt_ball",
    "monotone_ball",
    "primal_ranges",
    "stationarity_ranges",
]


def interval_matvec(Mat: sp.csr_array, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``Mat x`` for ``lo ≤ x ≤ hi`` (interval arithmetic; inf-safe)."""
    return _interval(*_signed_parts(Mat), lo, hi)


DENSE_MAX_ENTRIES = 40_000  # interval products of smaller matrices run dense (scipy's per-call overhead)


def _signed_parts(Mat: sp.sparray) -> tuple[Any, Any, Any, Any]:
    """``max(Mat, 0)``, ``min(Mat, 0)`` and their patterns (1 where the entry is nonzero); dense
    arrays when the matrix is small (the same products, without scipy's per-call overhead)."""
    if Mat.shape[0] * Mat.shape[1] <= DENSE_MAX_ENTRIES:
        D = np.asarray(Mat.toarray(), dtype=float)
        return np.maximum(D, 0.0), np.minimum(D, 0.0), (D > 0).astype(float), (D < 0).astype(float)
    P = sp.csr_array(Mat, dtype=float, copy=True)
    Nn, Pb, Nb = P.copy(), P.copy(), P.copy()
    P.data = np.maximum(P.data, 0.0)
    Nn.data = np.minimum(Nn.data, 0.0)
    Pb.data = (P.data > 0).astype(float)
    Nb.data = (Nn.data < 0).astype(float)
    return P, Nn, Pb, Nb


def _interval(
    P: Any,
    Nn: Any,
    Pb: Any,
    Nb: Any,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval product on the finite parts; a row meeting an infinite side through a nonzero
    entry is infinite (counted exactly, not by a large sentinel)."""
    lo_inf = (~np.isfinite(lo)).astype(float)
    hi_inf = (~np.isfinite(hi)).astype(float)
    lo_f = np.where(lo_inf > 0, 0.0, lo)
    hi_f = np.where(hi_inf > 0, 0.0, hi)
    low = P @ lo_f + Nn @ hi_f
    high = P @ hi_f + Nn @ lo_f
    low[(Pb @ lo_inf + Nb @ hi_inf) > 0] = -np.inf
    high[(Pb @ hi_inf + Nb @ lo_inf) > 0] = np.inf
    return low, high


def feasible_point(game: LQGame, x: np.ndarray | None, tol: float = 1e-9) -> np.ndarray | None:
    """``x`` when it lies in X (box, ``A x ≤ b``, ``Aeq x = beq``) to ``tol`` relative to each row's
    scale — tighter than HiGHS's own primal feasibility tolerance (1e-7), so a point accepted here is
    as good as the feasibility LP's; ``None`` otherwise (or for a wrong shape / non-finite ``x``)."""
    if x is None:
        return None
    x = np.asarray(x, dtype=float)
    if x.shape != (game.n,) or not np.all(np.isfinite(x)):
        return None
    ax = np.abs(x)
    if np.any(x < game.lb - tol * (1 + ax)) or np.any(x > game.ub + tol * (1 + ax)):
        return None
    for Mat, rhs, eq in ((game.A, game.b, False), (game.Aeq, game.beq, True)):
        if rhs.size == 0:
            continue
        r = Mat @ x - rhs
        scale = tol * (1.0 + abs(Mat) @ ax + np.abs(rhs))
        if np.any(r > scale) or (eq and np.any(r < -scale)):
            return None
    return np.clip(x, game.lb, game.ub)


def _box(game: LQGame, time_limit: float | None) -> tuple[np.ndarray, np.ndarray, Status, np.ndarray | None]:
    """The box, and a point of X from a feasibility LP (or the status saying X is empty)."""
    lo, hi = game.lb.copy(), game.ub.copy()
    A = sp.vstack([game.A, game.Aeq], format="csc")
    rl = np.concatenate([np.full(game.m, -INF), game.beq])
    ru = np.concatenate([game.b, game.beq])
    h = highs_model(np.zeros(game.n), game.lb, game.ub, A, rl, ru, time_limit=time_limit)
    out = run_highs(h)
    if out.status.group.value == "infeasible_or_unbounded":
        return lo, hi, Status.INFEASIBLE, None
    if out.status is not Status.OPTIMAL or out.x is None:
        return lo, hi, out.status, None
    return lo, hi, Status.OPTIMAL, out.x


def _lp_ranges(
    game: LQGame, lo: np.ndarray, hi: np.ndarray, time_limit: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Tighten the still-infinite sides of ``[lo, hi]`` by LP over X (one LP per such side)."""
    need = np.flatnonzero(~np.isfinite(lo) | ~np.isfinite(hi))
    if need.size == 0:
        return lo, hi
    A = sp.vstack([game.A, game.Aeq], format="csc")
    rl = np.concatenate([np.full(game.m, -INF), game.beq])
    ru = np.concatenate([game.b, game.beq])
    h = highs_model(np.zeros(game.n), game.lb, game.ub, A, rl, ru, time_limit=time_limit)
    for j in need:
        for sense, arr in ((1.0, lo), (-1.0, hi)):
            if np.isfinite(arr[j]):
                continue
            h.changeColCost(int(j), sense)
            o = run_highs(h)
            h.changeColCost(int(j), 0.0)
            if o.status is Status.OPTIMAL and o.x is not None:
                arr[j] = o.x[j]
    return lo, hi


def stationarity_ranges(
    game: LQGame, Bl: sp.csr_array, Bm: sp.csr_array, lo: np.ndarray, hi: np.ndarray, rounds: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Ranges of ``x`` at every KKT point, propagated from stationarity (4) (interval arithmetic).

    With ``d_j = M_jj ≥ 0`` (player j's own block is PSD) and ``r_j = (Mx + q)_j − d_j x_j +
    (B_λ λ)_j + (B_μ μ)_j``, (4) reads ``d_j x_j + r_j = ν⁻_j − ν⁺_j``. Where ``x_j > lb_j``,
    ``ν⁻_j = 0`` by (7), so ``d_j x_j ≤ −r_j``; hence ``x_j ≤ max(lb_j, −min r_j / d_j)``, and
    symmetrically ``x_j ≥ min(ub_j, −max r_j / d_j)``. ``λ ∈ [0, ∞)`` and ``μ`` free here (their
    bounds are not known yet), so only the signs of the coupling columns help. Repeated (Jacobi)
    until nothing tightens; the bounds widen by 1e-9 relative to stay valid under rounding.
    """
    d = game.M.diagonal()
    pos = d > 0
    if not np.any(pos):
        return lo, hi
    Moff = sp.csr_array(game.M - sp.diags_array(d))
    bl_lo, bl_hi = interval_matvec(Bl, np.zeros(Bl.shape[1]), np.full(Bl.shape[1], np.inf))
    bm_lo, bm_hi = interval_matvec(Bm, np.full(Bm.shape[1], -np.inf), np.full(Bm.shape[1], np.inf))
    with np.errstate(invalid="ignore"):
        c_lo, c_hi = game.q + bl_lo + bm_lo, game.q + bl_hi + bm_hi
    c_lo, c_hi = np.nan_to_num(c_lo, nan=-np.inf), np.nan_to_num(c_hi, nan=np.inf)
    lo, hi = lo.copy(), hi.copy()
    parts = _signed_parts(Moff)
    for _ in range(rounds):
        o_lo, o_hi = _interval(*parts, lo, hi)
        with np.errstate(all="ignore"):
            up = np.where(pos, -(o_lo + c_lo) / np.where(pos, d, 1.0), np.inf)
            dn = np.where(pos, -(o_hi + c_hi) / np.where(pos, d, 1.0), -np.inf)
            up = np.nan_to_num(up, nan=np.inf, posinf=np.inf, neginf=-np.inf)
            dn = np.nan_to_num(dn, nan=-np.inf, posinf=np.inf, neginf=-np.inf)
            up = np.maximum(game.lb, up + 1e-9 * (1.0 + np.abs(up)))
            dn = np.minimum(game.ub, dn - 1e-9 * (1.0 + np.abs(dn)))
            new_hi, new_lo = np.minimum(hi, up), np.maximum(lo, dn)
            gain = (new_hi < hi - 1e-9 * (1.0 + np.abs(new_hi))) | (
                new_lo > lo + 1e-9 * (1.0 + np.abs(new_lo))
            )
        lo, hi = new_lo, new_hi
        if not np.any(gain):
            break
    return lo, hi


def monotone_ball(
    game: LQGame, x0: np.ndarray, variational: bool, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Strongly monotone games (sym(M) ⪰ αI, α > 0): every variational equilibrium ``x*`` (every
    KKT point with common multipliers, or any equilibrium without shared rows) lies in the ball
    ``‖x* − x0‖₂ ≤ ‖F(x0)‖₂ / α`` around any ``x0 ∈ X`` — from ``F(x*)ᵀ(x0 − x*) ≥ 0`` and
    ``(F(x0) − F(x*))ᵀ(x0 − x*) ≥ α‖x0 − x*‖²``. Intersected with ``[lo, hi]``."""
    if not (variational or game.m + game.p == 0):
        return lo, hi
    alpha = _alpha(game)
    if not alpha > 0:
        return lo, hi
    r = float(np.linalg.norm(game.F(x0))) / alpha
    r = r * (1.0 + 1e-6) + 1e-7 * (1.0 + float(np.abs(x0).max(initial=0.0)))
    return np.maximum(lo, x0 - r), np.minimum(hi, x0 + r)


def _alpha(game: LQGame) -> float:
    """A safe lower bound on the strong monotonicity modulus (0 or less: not strongly monotone)."""
    return game.monotonicity_min_eig * (1.0 - 1e-6) - 1e-9 * game.scale


def kkt_ball(game: LQGame, x0: np.ndarray, mult: Multipliers) -> float | None:
    """Radius of a ball around ``x0 ∈ X`` holding every variational equilibrium of a strongly
    monotone game (sym(M) ⪰ αI, α > 0), from ``x0``'s KKT residuals with common multipliers
    ``λ, ν ≥ 0`` (and ``μ``); ``None`` when the game is not strongly monotone or ``mult`` is not
    common.

    With ``ρ = F(x0) + Aᵀλ + Aeqᵀμ − ν⁻ + ν⁺`` (the stationarity residual (4)) and ``x*`` a VE,
    expanding ``F(x0)ᵀ(x0 − x*)`` and using ``Ax* ≤ b``, ``Aeq x* = beq``, ``lb ≤ x* ≤ ub`` gives
    ``F(x0)ᵀ(x0 − x*) ≤ ‖ρ‖ d + c`` with ``d = ‖x0 − x*‖`` and the complementarity sum
    ``c = Σ|λ_r (b − Ax0)_r| + Σ|ν⁻_j (x0 − lb)_j| + Σ|ν⁺_j (ub − x0)_j| + |μᵀ(Aeq x0 − beq)|``;
    with ``F(x*)ᵀ(x0 − x*) ≥ 0`` (the VI at ``x*``) and strong monotonicity,
    ``α d² ≤ ‖ρ‖ d + c``, so ``d ≤ (‖ρ‖ + √(‖ρ‖² + 4αc)) / (2α)``. Widened like
    :func:`monotone_ball` (1e-6 relative, 1e-7 absolute on the scale of ``x0``) to stay valid
    under rounding.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> m = Multipliers(np.zeros(0), np.zeros(0), np.zeros(2), np.zeros(2), True)
    >>> kkt_ball(g, np.array([10 / 3, 7 / 3]), m) < 1e-6  # the equilibrium itself
    True
    >>> bool(np.hypot(1 / 30, 1 / 15) <= kkt_ball(g, np.array([3.3, 2.4]), m))
    True
    """
    alpha = _alpha(game)
    lam = np.asarray(mult.lam, dtype=float)
    if not alpha > 0 or not mult.variational or lam.ndim != 1:
        return None
    mu = np.asarray(mult.mu, dtype=float)
    nl = np.where(np.isfinite(game.lb), mult.nu_lower, 0.0)
    nu = np.where(np.isfinite(game.ub), mult.nu_upper, 0.0)
    if np.any(lam < 0) or np.any(nl < 0) or np.any(nu < 0):
        return None
    rho = game.F(x0) + game.A.T @ lam + game.Aeq.T @ mu - nl + nu
    with np.errstate(invalid="ignore"):
        c = float(np.abs(lam * (game.b - game.A @ x0)).sum())
        c += float(np.abs(np.where(nl > 0, nl * (x0 - game.lb), 0.0)).sum())
        c += float(np.abs(np.where(nu > 0, nu * (game.ub - x0), 0.0)).sum())
        c += abs(float(mu @ (game.Aeq @ x0 - game.beq))) if mu.size else 0.0
    r_norm = float(np.linalg.norm(rho))
    if not (np.isfinite(r_norm) and np.isfinite(c)):
        return None
    d = (r_norm + np.sqrt(r_norm**2 + 4.0 * alpha * c)) / (2.0 * alpha)
    return float(d * (1.0 + 1e-6) + 1e-7 * (1.0 + float(np.abs(x0).max(initial=0.0))))


def primal_ranges(
    game: LQGame,
    Bl: sp.csr_array,
    Bm: sp.csr_array,
    variational: bool,
    time_limit: float | None,
    x_feasible: np.ndarray | None = None,
    multipliers: Multipliers | None = None,
) -> tuple[np.ndarray, np.ndarray, Status]:
    """Proven ranges of ``x`` at the KKT points: box ∩ stationarity propagation ∩ (strongly monotone
    ball) ∩ LP over X for what is still infinite. ``Status.INFEASIBLE`` when X is empty.

    ``x_feasible`` (e.g. another route's answer) replaces the feasibility LP when
    :func:`feasible_point` accepts it; otherwise the LP runs as usual. With its common
    ``multipliers`` too (variational mode, strongly monotone game), the box is intersected with
    the :func:`kkt_ball` around it first, and stationarity propagation is skipped when that
    already bounds every variable.
    """
    x0 = feasible_point(game, x_feasible)
    if x0 is None:
        lo, hi, st, x0 = _box(game, time_limit)
        if st is not Status.OPTIMAL or x0 is None:
            return lo, hi, st
    else:
        lo, hi = game.lb.copy(), game.ub.copy()
        if variational and multipliers is not None:
            r = kkt_ball(game, x0, multipliers)
            if r is not None:
                lo, hi = np.maximum(lo, x0 - r), np.minimum(hi, x0 + r)
                if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
                    return lo, hi, Status.OPTIMAL
    lo, hi = stationarity_ranges(game, Bl, Bm, lo, hi)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        lo, hi = monotone_ball(game, x0, variational, lo, hi)
    lo, hi = _lp_ranges(game, lo, hi, time_limit)
    return lo, hi, Status.OPTIMAL
