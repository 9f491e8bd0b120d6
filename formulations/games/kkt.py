"""The KKT system of an LQ game, derived from its matrices (no hand-written KKT per game).

For each player i (with ``g = M x + q`` the pseudo-gradient, 2):

    g_i + A[:, i]ᵀ λ_i + Aeq[:, i]ᵀ μ_i − ν⁻_i + ν⁺_i = 0                      (4) stationarity
    A x ≤ b,  Aeq x = beq,  lb ≤ x ≤ ub                                       (5) primal feasibility
    λ_i ≥ 0,  ν⁻, ν⁺ ≥ 0                                                      (6) dual feasibility
    λ_i ⊥ (b − A x),  ν⁻ ⊥ (x − lb),  ν⁺ ⊥ (ub − x)                            (7) complementarity

A variational equilibrium has ``λ_i = λ`` and ``μ_i = μ`` for every i. Player i's multiplier of a
shared row only matters when the row involves player i's variables (the *incidence*), so per-player
multipliers are stored as N × m arrays that are zero off the incidence.

Scales (stated tolerances are relative to these):

- stationarity / dual feasibility: ``s_g = 1 + ‖M x‖∞ + ‖q‖∞``;
- a shared row r: ``s_r = 1 + |b_r| + Σ_j |A_rj x_j|``; a bound j: ``1 + |x_j| + |bound_j|``;
- complementarity: ``s_g · (1 + ‖x‖∞)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, SolverError
from datamarkets.formulations.games._backend import highs_qp
from datamarkets.formulations.games.lq import LQGame

__all__ = ["Multipliers", "incidence", "kkt_residuals", "recover_multipliers"]

ACTIVE_TOL = 1e-7
"""A constraint counts as active when its slack is ≤ ACTIVE_TOL times its row scale."""


@dataclass
class Multipliers:
    """KKT multipliers: ``lam`` (m,) or (N, m), ``mu`` (p,) or (N, p), ``nu_lower``, ``nu_upper`` (n,)."""

    lam: np.ndarray
    mu: np.ndarray
    nu_lower: np.ndarray
    nu_upper: np.ndarray
    variational: bool

    def to_solution(self) -> dict[str, Any]:
        return {
            "lambda": self.lam.tolist(),
            "mu": self.mu.tolist(),
            "nu_lower": self.nu_lower.tolist(),
            "nu_upper": self.nu_upper.tolist(),
        }

    @classmethod
    def from_solution(cls, game: LQGame, sol: dict[str, Any]) -> Multipliers | None:
        """Read multipliers saved by :meth:`to_solution` (``None`` when absent); a 2-d ``lambda``
        (N × m) means per-player multipliers, a 1-d one common multipliers."""
        if sol.get("lambda") is None or sol.get("nu_lower") is None:
            return None
        try:
            lam = np.asarray(sol["lambda"], dtype=float)
            variational = lam.ndim < 2
            shape_l = (game.m,) if variational else (game.N, game.m)
            shape_e = (game.p,) if variational else (game.N, game.p)
            lam = lam.reshape(shape_l)
            mu = np.asarray(sol.get("mu") if sol.get("mu") is not None else [], dtype=float).reshape(shape_e)
            nl = np.asarray(sol["nu_lower"], dtype=float).reshape(game.n)
            nu = np.asarray(sol["nu_upper"], dtype=float).reshape(game.n)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed multipliers: {exc}") from exc
        if not all(np.all(np.isfinite(a)) for a in (lam, mu, nl, nu)):
            raise InvalidInputError("multipliers must be finite numbers")
        return cls(lam, mu, nl, nu, variational)


def incidence(game: LQGame, Amat: sp.csr_array) -> sp.csr_array:
    """Boolean rows × players matrix: row r involves player i (a nonzero in i's block)."""
    coo = sp.coo_array(Amat)
    inc = sp.csr_array(
        (np.ones(coo.nnz, dtype=bool), (coo.row, game.owner[coo.col])), shape=(Amat.shape[0], game.N)
    )
    inc.sum_duplicates()
    return inc


def _row_scale(Amat: sp.csr_array, rhs: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 + np.abs(rhs) + abs(Amat) @ np.abs(x)


def _coupling_term(game: LQGame, Amat: sp.csr_array, y: np.ndarray, variational: bool) -> np.ndarray:
    """``Σ_r A_rj y_{r, owner(j)}`` (per player) or ``Aᵀ y`` (common)."""
    if variational:
        return Amat.T @ y
    coo = sp.coo_array(Amat)
    out = np.zeros(game.n)
    np.add.at(out, coo.col, coo.data * y[game.owner[coo.col], coo.row])
    return out


def kkt_residuals(game: LQGame, x: np.ndarray, mult: Multipliers) -> dict[str, Any]:
    """Scaled residuals (4)–(7) of ``(x, multipliers)``; see the module docstring for the scales.

    Returns
    -------
    dict
        ``stationarity_max``, ``primal_feasibility_max``, ``dual_feasibility_max``,
        ``complementarity_max``, ``multiplier_spread_max`` (0 for common multipliers) and the
        argmax indices under ``"where"``.
    """
    g = game.M @ x
    s_g = 1.0 + float(np.abs(g).max(initial=0.0)) + float(np.abs(game.q).max(initial=0.0))
    g = g + game.q
    v = mult.variational
    if v:  # common multipliers: no incidence masks needed
        inc = None
        lam, mu = mult.lam, mult.mu
    else:
        inc = incidence(game, game.A).toarray().T  # N × m
        inc_eq = incidence(game, game.Aeq).toarray().T
        lam = np.where(inc, mult.lam, 0.0)
        mu = np.where(inc_eq, mult.mu, 0.0)
    stat = (
        g
        + _coupling_term(game, game.A, lam, v)
        + _coupling_term(game, game.Aeq, mu, v)
        - mult.nu_lower
        + mult.nu_upper
    )
    slack = game.b - game.A @ x
    s_row = _row_scale(game.A, game.b, x)
    eq_res = np.abs(game.Aeq @ x - game.beq) / _row_scale(game.Aeq, game.beq, x)
    lo_fin, up_fin = np.isfinite(game.lb), np.isfinite(game.ub)
    lo_slack = np.where(lo_fin, x - np.where(lo_fin, game.lb, 0.0), np.inf)
    up_slack = np.where(up_fin, np.where(up_fin, game.ub, 0.0) - x, np.inf)
    s_lo = 1.0 + np.abs(x) + np.where(lo_fin, np.abs(np.where(lo_fin, game.lb, 0.0)), 0.0)
    s_up = 1.0 + np.abs(x) + np.where(up_fin, np.abs(np.where(up_fin, game.ub, 0.0)), 0.0)
    primal = np.concatenate(
        [
            np.maximum(-slack, 0.0) / s_row,
            eq_res,
            np.maximum(-lo_slack, 0.0) / s_lo,
            np.maximum(-up_slack, 0.0) / s_up,
        ]
    )
    # dual feasibility: λ, ν ≥ 0, and no multiplier on an infinite bound
    dual = np.concatenate(
        [
            np.maximum(-np.ravel(lam), 0.0),
            np.maximum(-mult.nu_lower, 0.0),
            np.maximum(-mult.nu_upper, 0.0),
            np.abs(mult.nu_lower[~lo_fin]),
            np.abs(mult.nu_upper[~up_fin]),
        ]
    )
    s_c = s_g * (1.0 + float(np.abs(x).max(initial=0.0)))
    comp_rows = np.abs(lam * slack) if v else np.abs(lam * slack[None, :])
    comp = np.concatenate(
        [
            np.ravel(comp_rows),
            np.abs(mult.nu_lower[lo_fin] * lo_slack[lo_fin]),
            np.abs(mult.nu_upper[up_fin] * up_slack[up_fin]),
        ]
    )
    spread = 0.0
    if inc is not None and game.m:
        hi = np.where(inc, mult.lam, -np.inf).max(axis=0)
        lo = np.where(inc, mult.lam, np.inf).min(axis=0)
        d = np.where(np.isfinite(hi) & np.isfinite(lo), hi - lo, 0.0)
        spread = float(d.max(initial=0.0)) / s_g
    return {
        "stationarity_max": float(np.abs(stat).max(initial=0.0)) / s_g,
        "primal_feasibility_max": float(primal.max(initial=0.0)),
        "dual_feasibility_max": float(dual.max(initial=0.0)) / s_g,
        "complementarity_max": float(comp.max(initial=0.0)) / s_c,
        "multiplier_spread_max": spread,
        "where": {
            "stationarity_argmax": int(np.argmax(np.abs(stat))) if stat.size else None,
            "primal_argmax": int(np.argmax(primal)) if primal.size else None,
        },
    }


def recover_multipliers(game: LQGame, x: np.ndarray, *, variational: bool = True) -> Multipliers:
    """Multipliers that best satisfy stationarity (4) at ``x`` with complementarity (7) enforced:
    only active constraints get a multiplier; an L1 LP (HiGHS) over the shared-row multipliers and
    the bound multipliers of the variables the shared rows touch; the other bound multipliers in
    closed form (``ν⁻ = max(g, 0)`` at an active lower bound, ``ν⁺ = max(−g, 0)`` at an upper).

    Parameters
    ----------
    game : LQGame
    x : ndarray (n,)
    variational : bool
        Common multipliers (λ, μ) for all players, else one per player and incidence.

    Returns
    -------
    Multipliers

    Raises
    ------
    SolverError
        The LP failed.
    """
    n, N = game.n, game.N
    x = np.asarray(x, dtype=float)
    g = game.M @ x + game.q
    slack = game.b - game.A @ x
    act_row = slack <= ACTIVE_TOL * _row_scale(game.A, game.b, x)
    lo_fin, up_fin = np.isfinite(game.lb), np.isfinite(game.ub)
    act_lo = lo_fin & (x - np.where(lo_fin, game.lb, 0.0) <= ACTIVE_TOL * (1.0 + np.abs(x)))
    act_up = up_fin & (np.where(up_fin, game.ub, 0.0) - x <= ACTIVE_TOL * (1.0 + np.abs(x)))
    A_act = sp.csr_array(game.A[np.flatnonzero(act_row), :])
    rows_act = np.flatnonzero(act_row)
    coupled = np.zeros(n, dtype=bool)
    coupled[sp.coo_array(A_act).col] = True
    coupled[sp.coo_array(game.Aeq).col] = True
    J = np.flatnonzero(coupled)
    nu_lo = np.zeros(n)
    nu_up = np.zeros(n)
    # closed form for variables no active shared row touches
    free = ~coupled
    nu_lo[free & act_lo] = np.maximum(g[free & act_lo], 0.0)
    nu_up[free & act_up] = np.maximum(-g[free & act_up], 0.0)
    both = free & act_lo & act_up  # fixed variable: any sign is fine
    nu_lo[both] = np.maximum(g[both], 0.0)
    nu_up[both] = np.maximum(-g[both], 0.0)
    lam = np.zeros(game.m) if variational else np.zeros((N, game.m))
    mu = np.zeros(game.p) if variational else np.zeros((N, game.p))
    if J.size == 0:
        return Multipliers(lam, mu, nu_lo, nu_up, variational)
    pos = -np.ones(n, dtype=np.int64)
    pos[J] = np.arange(J.size)
    blocks, lbs, ubs = [], [], []
    pairs_list = []
    for Amat, rowids, free_sign in ((A_act, rows_act, False), (game.Aeq, np.arange(game.p), True)):
        coo = sp.coo_array(Amat)
        if variational:
            key = coo.row
            uniq, inv = np.unique(key, return_inverse=True)
            pair_rows, pair_players = rowids[uniq], None
        else:
            key = coo.row.astype(np.int64) * N + game.owner[coo.col]
            uniq, inv = np.unique(key, return_inverse=True)
            pair_rows, pair_players = rowids[uniq // N], uniq % N
        B = sp.csr_array((coo.data, (pos[coo.col], inv)), shape=(J.size, uniq.size))
        blocks.append(B)
        lbs.append(np.full(uniq.size, -np.inf if free_sign else 0.0))
        ubs.append(np.full(uniq.size, np.inf))
        pairs_list.append((pair_rows, pair_players))
    aL = np.flatnonzero(act_lo[J])
    aU = np.flatnonzero(act_up[J])
    I = sp.eye_array(J.size, format="csr")
    blocks += [-I[:, aL], I[:, aU], -I, I]  # ν⁻, ν⁺, e⁺, e⁻
    lbs += [np.zeros(aL.size), np.zeros(aU.size), np.zeros(J.size), np.zeros(J.size)]
    ubs += [
        np.full(aL.size, np.inf),
        np.full(aU.size, np.inf),
        np.full(J.size, np.inf),
        np.full(J.size, np.inf),
    ]
    Bm = sp.hstack(blocks, format="csc")
    ncol = Bm.shape[1]
    cost = np.zeros(ncol)
    cost[ncol - 2 * J.size :] = 1.0
    out = highs_qp(None, cost, np.concatenate(lbs), np.concatenate(ubs), Bm, -g[J], -g[J])
    if not out.status.has_solution or out.x is None:
        raise SolverError(f"multiplier recovery LP failed: {out.extra.get('raw_status')}")
    v = out.x
    k = 0
    for (pair_rows, pair_players), target in zip(pairs_list, (lam, mu), strict=True):
        size = pair_rows.size
        vals = v[k : k + size]
        if variational:
            target[pair_rows] = vals
        else:
            target[pair_players, pair_rows] = vals
        k += size
    nu_lo[J[aL]] = v[k : k + aL.size]
    k += aL.size
    nu_up[J[aU]] = v[k : k + aU.size]
    return Multipliers(np.maximum(lam, 0.0), mu, np.maximum(nu_lo, 0.0), np.maximum(nu_up, 0.0), variational)
