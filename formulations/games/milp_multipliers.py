"""Proven bounds of the KKT MILP's multipliers: ``Λ``, ``|μ|`` by LP, ``ν`` by interval arithmetic."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.formulations.games._backend import run_highs
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.milp_bounds import interval_matvec
from datamarkets.formulations.games.milp_model import KKTLayout, build_kkt_model, slack_pairs
from datamarkets.solvers import highs_model
from datamarkets.sparse_blocks import block_matrix, selection_rows
from datamarkets.status import Status

__all__ = ["NARROW", "multiplier_bounds", "multiplier_bounds_narrow", "nu_bounds", "valid_inequalities"]


def valid_inequalities(
    game: LQGame, L: KKTLayout, xlo: np.ndarray, xhi: np.ndarray
) -> tuple[sp.csr_array, np.ndarray]:
    """Rows of (12) over the continuous columns: one per player without equality rows (and with
    every ``β_{r,i}`` and ``U_i`` finite), plus the exact summed one in variational mode."""
    N = game.N
    g_lo, g_hi = interval_matvec(game.M, xlo, xhi)
    g_lo, g_hi = g_lo + game.q, g_hi + game.q
    with np.errstate(invalid="ignore"):
        prods = np.stack([-xlo * g_lo, -xlo * g_hi, -xhi * g_lo, -xhi * g_hi])
    prods = np.where(np.isnan(prods), np.inf, prods)
    U = np.bincount(game.owner, weights=prods.max(axis=0), minlength=N)  # U_i ≥ −x_iᵀ g_i
    cont = int(L.off[5])
    Acoo = sp.coo_array(game.A)
    # β_{r,i} = b_r − max A_{r,−i} x_{−i} = b_r − (max A_r x − max A_{r,i} x_i), per pair (r, i)
    with np.errstate(invalid="ignore"):
        contrib_hi = np.where(Acoo.data > 0, Acoo.data * xhi[Acoo.col], Acoo.data * xlo[Acoo.col])
    row_hi = np.bincount(Acoo.row, weights=contrib_hi, minlength=game.m)
    key = Acoo.row.astype(np.int64) * N + game.owner[Acoo.col]
    uniq, inv = np.unique(key, return_inverse=True)
    own_hi = np.bincount(inv, weights=contrib_hi, minlength=uniq.size)
    r_of, p_of = uniq // N, uniq % N
    with np.errstate(invalid="ignore"):
        beta = game.b[r_of] - (row_hi[r_of] - own_hi)
    ok = np.isfinite(U)
    ok[game.owner[sp.coo_array(game.Aeq).col]] = False  # μ_r Aeq_{r,i} x_i is not linear: skip
    ok[p_of[~np.isfinite(beta)]] = False
    row_of = np.cumsum(ok) - 1  # row index of each kept player
    keep = ok[p_of]
    lam_col = r_of if L.variational else np.searchsorted(L.lam_key, uniq)
    rows = [row_of[p_of[keep]]]
    cols = [int(L.off[1]) + lam_col[keep]]
    vals = [beta[keep]]
    for idx, k, sign, bnd in ((L.fl, 3, -1.0, game.lb), (L.fu, 4, 1.0, game.ub)):
        sel = ok[game.owner[idx]]
        rows.append(row_of[game.owner[idx[sel]]])
        cols.append(int(L.off[k]) + np.flatnonzero(sel))
        vals.append(sign * bnd[idx[sel]])
    rhs = [U[ok]]
    n_rows = int(ok.sum())
    if L.variational and np.all(np.isfinite(U)):  # Σ_i: λᵀb + μᵀbeq − ν⁻ᵀlb + ν⁺ᵀub ≤ Σ U_i
        nf = game.m + game.p + L.fl.size + L.fu.size
        rows.append(np.full(nf, n_rows))
        cols.append(
            np.concatenate(
                [
                    int(L.off[1]) + np.arange(game.m),
                    int(L.off[2]) + np.arange(game.p),
                    int(L.off[3]) + np.arange(L.fl.size),
                    int(L.off[4]) + np.arange(L.fu.size),
                ]
            )
        )
        vals.append(np.concatenate([game.b, game.beq, -game.lb[L.fl], game.ub[L.fu]]))
        rhs.append(np.array([U.sum()]))
        n_rows += 1
    R = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, cont)
    )
    return R, np.concatenate(rhs).astype(float)


NARROW = 1e-4
"""x ranges narrower than this (relative) bound the multipliers by the x-free LP of
:func:`multiplier_bounds_narrow` (e.g. inside the KKT ball around the vi route's answer)."""


def multiplier_bounds_narrow(
    game: LQGame, L: KKTLayout, xlo: np.ndarray, xhi: np.ndarray, time_limit: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``Λ``, ``|μ|`` by LP over the multipliers alone: stationarity (4) with ``Mx + q`` replaced by
    its interval over the ranges, ``g_lo ≤ −(B_λ λ + B_μ μ − ν⁻ + ν⁺) ≤ g_hi``, and the multipliers
    of provably slack rows and bounds fixed at 0 — an outer relaxation of the full LP's polytope
    (every KKT point's multipliers lie in it), so its maxima are proven bounds; a few columns and
    no x. ``None`` when it does not give finite bounds (the caller runs the full LP)."""
    nl, nm = L.lam_row.size, L.mu_row.size
    n = game.n
    g_lo, g_hi = interval_matvec(game.M, xlo, xhi)
    if not (np.all(np.isfinite(g_lo)) and np.all(np.isfinite(g_hi))):
        return None
    # stationarity rows (4) over the multiplier columns (λ | μ | ν⁻ | ν⁺)
    S = block_matrix([[L.Bl, L.Bm, selection_rows(L.fl, n, -1.0).T, selection_rows(L.fu, n).T]])
    off = slack_pairs(game, L, xlo, xhi)
    clo = np.concatenate([np.zeros(nl), np.full(nm, -np.inf), np.zeros(L.fl.size + L.fu.size)])
    chi = np.full(S.shape[1], np.inf)
    chi[:nl][off[:nl]] = 0.0
    chi[nl + nm :][off[nl:]] = 0.0
    rl, ru = -(g_hi + game.q), -(g_lo + game.q)
    pad = 1e-9 * (1.0 + np.abs(rl) + np.abs(ru))
    h = highs_model(np.zeros(S.shape[1]), clo, chi, S, rl - pad, ru + pad, time_limit=time_limit)
    got = _maximise_multipliers(h, np.arange(nl), nl + np.arange(nm), per_column=False)
    if got is None or not (np.all(np.isfinite(got[0])) and np.all(np.isfinite(got[1]))):
        return None
    return got[0], got[1], np.ones(nl, bool), np.ones(nm, bool)


def _maximise_multipliers(
    h: Any, lam_cols: np.ndarray, mu_cols: np.ndarray, *, per_column: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounds ``Λ`` (every ``λ_k ≤ max Σλ``, λ ≥ 0: one LP) and ``|μ_k|`` (one LP per side) over the
    polytope held by the HiGHS model ``h`` (costs reset to 0 after each run), widened by 1e-9
    relative. ``None`` when the first LP finds the polytope empty or gives no answer. When ``max Σλ``
    is unbounded: with ``per_column`` one LP per ``λ_k``, else all of ``Λ`` infinite. A side whose
    LP does not end optimal is infinite."""
    nl, nm = lam_cols.size, mu_cols.size
    Lam, Mu = np.full(nl, np.inf), np.full(nm, np.inf)
    lam_c = lam_cols.astype(np.int32)
    targets = [(int(mu_cols[k]), sgn, Mu, k) for k in range(nm) for sgn in (-1.0, 1.0)]
    if nl:
        h.changeColsCost(nl, lam_c, np.full(nl, -1.0))
        o = run_highs(h)
        h.changeColsCost(nl, lam_c, np.zeros(nl))
        if o.status is Status.OPTIMAL and o.x is not None:
            Lam[:] = float(np.sum(np.abs(o.x[lam_c]))) * (1.0 + 1e-9)
        elif o.status is not Status.UNBOUNDED:
            return None  # empty polytope or no answer
        elif per_column:
            targets = [(int(lam_c[k]), -1.0, Lam, k) for k in range(nl)] + targets
    for i, (col, sgn, arr, k) in enumerate(targets):
        h.changeColCost(col, sgn)
        o = run_highs(h)
        h.changeColCost(col, 0.0)
        if i == 0 and nl == 0 and o.status not in (Status.OPTIMAL, Status.UNBOUNDED):
            return None  # empty polytope or no answer
        if o.status is Status.OPTIMAL and o.x is not None:
            arr[k] = max(arr[k] if np.isfinite(arr[k]) else 0.0, abs(o.x[col]) * (1.0 + 1e-9))
        else:
            arr[k] = np.inf
    return Lam, Mu


def multiplier_bounds(
    game: LQGame, L: KKTLayout, xlo: np.ndarray, xhi: np.ndarray, time_limit: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``Λ``, ``|μ|`` bounds by LP over the strengthened relaxed KKT polytope, and which are proven
    (every ``λ_k ≤ max Σλ``: one LP; one per ``μ_k`` side; one HiGHS instance, warm-started)."""
    nl, nm = L.lam_row.size, L.mu_row.size
    Lam = np.full(nl, np.inf)
    Mu = np.full(nm, np.inf)
    if nl + nm == 0:
        return Lam, Mu, np.ones(0, bool), np.ones(0, bool)
    if np.all(xhi - xlo <= NARROW * (1.0 + np.abs(xlo))):
        narrow = multiplier_bounds_narrow(game, L, xlo, xhi, time_limit)
        if narrow is not None:
            return narrow
    extra = valid_inequalities(game, L, xlo, xhi)
    free = [np.full(k, np.inf) for k in (nl, nm, L.fl.size, L.fu.size)]
    # a multiplier whose row or bound is provably slack over the ranges is 0 at every KKT point
    R, rl, ru, clo, chi = build_kkt_model(game, L, xlo, xhi, *free, integer=False, extra_rows=extra, fix=True)
    h = highs_model(np.zeros(R.shape[1]), clo, chi, R, rl, ru, time_limit=time_limit)
    lam_cols, mu_cols = int(L.off[1]) + np.arange(nl), int(L.off[2]) + np.arange(nm)
    maxima = _maximise_multipliers(h, lam_cols, mu_cols, per_column=True)
    if maxima is None:  # empty polytope or no answer: none proven
        return Lam, Mu, np.zeros(nl, bool), np.zeros(nm, bool)
    Lam, Mu = maxima
    return Lam, Mu, np.isfinite(Lam), np.isfinite(Mu)


def nu_bounds(
    game: LQGame, L: KKTLayout, xlo: np.ndarray, xhi: np.ndarray, Lam: np.ndarray, Mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ν bounds from (4): ``ν⁻_j = g_j + (Bλ)_j + (Bμ)_j`` when positive (ν⁺_j = 0 unless fixed)."""
    g_lo, g_hi = interval_matvec(game.M, xlo, xhi)
    g_lo, g_hi = g_lo + game.q, g_hi + game.q
    bl_lo, bl_hi = interval_matvec(L.Bl, np.zeros_like(Lam), Lam)
    bm_lo, bm_hi = interval_matvec(L.Bm, -Mu, Mu)
    hi = g_hi + bl_hi + bm_hi
    lo = g_lo + bl_lo + bm_lo
    fixed = game.lb == game.ub
    Vlo = np.maximum(hi, 0.0)
    Vup = np.maximum(-lo, 0.0)
    # a fixed variable: ν⁻ − ν⁺ = g + …; one of them may be taken 0, the other bounded as above
    Vlo[fixed] = np.maximum(Vlo[fixed], 0.0)
    return Vlo[L.fl] * (1 + 1e-9) + 1e-9, Vup[L.fu] * (1 + 1e-9) + 1e-9
