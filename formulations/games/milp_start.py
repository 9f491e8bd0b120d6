"""Starting the KKT MILP from another route's KKT point (e.g. the vi route's answer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.formulations.games._backend import run_highs
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.milp_model import KKTLayout
from datamarkets.status import Status

__all__ = ["run_from_start", "start_switches", "start_vector"]


def run_from_start(
    h: Any,
    nz: int,
    zidx: np.ndarray,
    zs: np.ndarray,
    zlo: np.ndarray,
    zhi: np.ndarray,
    v_start: np.ndarray | None,
) -> tuple[Any, str]:
    """Hand HiGHS a start for the full MILP: ``v_start`` (the start's own x, multipliers and
    switches) when it satisfies every row and bound to 1e-10, else the solution of the MILP with
    the switches fixed at ``zs`` (an LP for HiGHS). Presolve is off for that run so that HiGHS checks
    the start on the model as written and, the objective being 0 = its bound, stops at once.
    Returns the full MILP's outcome and ``"used"`` (it returned the start) or ``"rejected"``; an
    infeasible restricted MILP gives ``(None, "rejected")`` and the caller solves the MILP cold."""
    v0 = v_start
    if v0 is None:
        h.changeColsBounds(nz, zidx, zs, zs)
        out = run_highs(h)
        h.changeColsBounds(nz, zidx, zlo, zhi)
        if out.status is not Status.OPTIMAL or out.x is None:
            return None, "rejected"
        v0 = out.x
    h.setOptionValue("presolve", "off")
    h.setSolution(int(v0.size), np.arange(v0.size, dtype=np.int32), v0)
    conf = run_highs(h)
    h.setOptionValue("presolve", "choose")
    if conf.x is None:
        return conf, "rejected"
    same = np.abs(conf.x - v0).max(initial=0.0) <= 1e-9 * (1.0 + np.abs(v0).max(initial=0.0))
    return conf, "used" if same and conf.status is Status.OPTIMAL else "rejected"


def start_vector(
    game: LQGame,
    L: KKTLayout,
    start: tuple[np.ndarray, Multipliers],
    zs: np.ndarray,
    mats: tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray | None:
    """The start as a point of the MILP's columns, or ``None`` when it misses a row or a bound of
    the MILP (``mats`` = rows, row bounds, column bounds) by more than 1e-10."""
    x, mult = start
    lam, mu = np.asarray(mult.lam, dtype=float), np.asarray(mult.mu, dtype=float)
    if lam.ndim != 1 or mu.ndim != 1 or not L.variational:
        return None
    v = np.concatenate([x, lam, mu, mult.nu_lower[L.fl], mult.nu_upper[L.fu], zs])
    R, rl, ru, clo, chi = mats
    if v.size != R.shape[1]:
        return None
    r = R @ v
    eps = 1e-10
    ok = np.all(r >= rl - eps) and np.all(r <= ru + eps) and np.all(v >= clo - eps) and np.all(v <= chi + eps)
    return v if ok else None


def start_switches(
    game: LQGame,
    L: KKTLayout,
    start: tuple[np.ndarray, Multipliers],
    xlo: np.ndarray,
    xhi: np.ndarray,
    R: sp.csr_array,
    chi: np.ndarray,
) -> np.ndarray:
    """The switches a KKT point implies: a pair is on (``z = 1``) when its multiplier, relative to
    its bound, exceeds its slack, relative to the slack's bound; a switch fixed at 0 stays 0."""
    x, mult = start
    lam = np.asarray(mult.lam, dtype=float)
    if lam.ndim == 2:  # per-player multipliers
        y_l = lam[L.lam_player, L.lam_row] if L.lam_player is not None else lam.max(axis=0)
    else:
        y_l = lam[L.lam_row] if lam.size else np.zeros(L.lam_row.size)
    y = np.concatenate([y_l, mult.nu_lower[L.fl], mult.nu_upper[L.fu]])
    s = np.concatenate([game.b[L.lam_row] - L.A_pairs @ x, x[L.fl] - game.lb[L.fl], game.ub[L.fu] - x[L.fu]])
    zc = int(L.off[5])
    nz = chi.size - zc
    Y = np.concatenate([chi[int(L.off[1]) : int(L.off[2])], chi[int(L.off[3]) : int(L.off[5])]])
    # the slack bound S is the coefficient of z in its slack row (the last nz rows of R)
    S = R[R.shape[0] - nz :, :].diagonal(k=zc)
    with np.errstate(divide="ignore", invalid="ignore"):
        on = np.nan_to_num(y / np.maximum(Y, 1e-300)) > np.nan_to_num(s / np.maximum(S, 1e-300))
    return np.where(chi[zc:] > 0, on, False).astype(float)
