"""The columns and rows of the KKT MILP of an LQ game (used by :mod:`~datamarkets.formulations.games.milp`).

Columns ``x | λ pairs | μ pairs | ν⁻ | ν⁺ | z_λ | z⁻ | z⁺``; rows: stationarity (4), the shared
constraints, and per complementarity pair ``y ≤ Y z`` and ``s ≤ S (1 − z)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games._backend import INF
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.milp_bounds import interval_matvec
from datamarkets.sparse_blocks import block_matrix, selection_rows

__all__ = ["KKTLayout", "build_kkt_model", "multipliers_from_columns", "slack_pairs", "touches_unproven"]


class KKTLayout:
    """Columns of the MILP: x | λ pairs | μ pairs | ν⁻ | ν⁺ | z_λ | z⁻ | z⁺."""

    def __init__(self, game: LQGame, variational: bool) -> None:
        self.game, self.variational = game, variational
        N = game.N
        self.Bl, self.lam_row, self.lam_player = self._pairs(game.A, variational)
        self.Bm, self.mu_row, self.mu_player = self._pairs(game.Aeq, variational)
        self.lam_key = self.lam_row * N + (self.lam_player if self.lam_player is not None else 0)
        self.fl = np.flatnonzero(np.isfinite(game.lb))
        self.fu = np.flatnonzero(np.isfinite(game.ub))
        # the shared rows of the λ pairs (A itself for common multipliers)
        self.A_pairs = game.A if variational else selection_rows(self.lam_row, game.m) @ game.A
        sizes = [game.n, self.lam_row.size, self.mu_row.size, self.fl.size, self.fu.size]
        sizes += [self.lam_row.size, self.fl.size, self.fu.size]
        self.off = np.concatenate([[0], np.cumsum(sizes)])
        self.ncol = int(self.off[-1])
        self.N = N

    def _pairs(
        self, Amat: sp.csr_array, variational: bool
    ) -> tuple[sp.csr_array, np.ndarray, np.ndarray | None]:
        """``B`` (n × pairs) with ``(B y)_j = Σ_r A_rj y_{r, owner(j)}`` and the pairs' rows/players."""
        game = self.game
        if variational:
            return sp.csr_array(Amat.T), np.arange(Amat.shape[0]), None
        coo = sp.coo_array(Amat)
        key = coo.row.astype(np.int64) * game.N + game.owner[coo.col]
        uniq, inv = np.unique(key, return_inverse=True)
        B = sp.csr_array((coo.data, (coo.col, inv)), shape=(game.n, uniq.size))
        return B, uniq // game.N, uniq % game.N

    def sl(self, k: int) -> slice:
        return slice(int(self.off[k]), int(self.off[k + 1]))


def build_kkt_model(
    game: LQGame,
    L: KKTLayout,
    xlo: np.ndarray,
    xhi: np.ndarray,
    Lam: np.ndarray,
    Mu: np.ndarray,
    Vlo: np.ndarray,
    Vup: np.ndarray,
    *,
    integer: bool,
    extra_rows: tuple[sp.csr_array, np.ndarray] | None = None,
    fix: bool = False,
) -> tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows, row bounds and column bounds of the KKT MILP (or its relaxation without z).

    ``fix``: a pair whose constraint is provably slack over the ranges (a row with
    ``min (b − A x) > 0``, a variable with ``xlo_j > lb_j`` or ``xhi_j < ub_j``) has its switch and
    multiplier fixed at 0 (HiGHS's presolve then drops them); in the relaxation (``integer=False``)
    the multiplier alone."""
    n, nl, nm = game.n, L.lam_row.size, L.mu_row.size
    fl, fu = L.fl, L.fu
    m, nfl, nfu = game.m, fl.size, fu.size
    rl = [-game.q, np.full(m, -INF), game.beq]
    ru = [-game.q, game.b, game.beq]
    clo = np.concatenate([xlo, np.zeros(nl), -Mu, np.zeros(nfl), np.zeros(nfu)])
    chi = np.concatenate([xhi, Lam, Mu, Vlo, Vup])
    nz = nl + nfl + nfu
    off = slack_pairs(game, L, xlo, xhi) if fix else np.zeros(nz, bool)
    if fix:
        chi[int(L.off[1]) : int(L.off[2])][off[:nl]] = 0.0  # λ of a slack row
        chi[int(L.off[3]) : int(L.off[5])][off[nl:]] = 0.0  # ν of an inactive bound
    if not integer:
        R0 = block_matrix(
            [
                [game.M, L.Bl, L.Bm, selection_rows(fl, n, -1.0).T, selection_rows(fu, n).T],  # (4)
                [game.A, (m, nl), (m, nm), (m, nfl), (m, nfu)],
                [game.Aeq, None, None, None, None],
            ]
        )
        if extra_rows is not None:
            R0 = block_matrix([[R0], [extra_rows[0]]])
            rl.append(np.full(extra_rows[0].shape[0], -INF))
            ru.append(extra_rows[1])
        return R0, np.concatenate(rl), np.concatenate(ru), clo, chi
    # switches: y ≤ Y z,  s ≤ S (1 − z), one block grid over the columns
    # x | λ | μ | ν⁻ | ν⁺ | z_λ | z⁻ | z⁺ (the relaxation's extra rows are not used here)
    if extra_rows is not None:
        raise InvalidInputError("extra rows are for the relaxation (integer=False) only")
    Ax_lo, _ = interval_matvec(L.A_pairs, xlo, xhi)
    S = game.b[L.lam_row] - Ax_lo  # slack ≤ S
    Dlo = xhi[fl] - game.lb[fl]
    Dup = game.ub[fu] - xlo[fu]

    def eye(k: int, v: Any = 1.0) -> Any:
        return selection_rows(np.arange(k), k, v)

    R = block_matrix(
        [
            [game.M, L.Bl, L.Bm, selection_rows(fl, n, -1.0).T, selection_rows(fu, n).T, None, None, None],
            [game.A, (m, nl), None, None, None, None, None, None],  # shared rows, then equalities
            [game.Aeq, None, None, None, None, None, None, None],
            # y − Y z ≤ 0
            [None, eye(nl), None, None, None, eye(nl, -Lam), None, None],
            [None, None, None, eye(nfl), None, None, eye(nfl, -Vlo), None],
            [None, None, None, None, eye(nfu), None, None, eye(nfu, -Vup)],
            # −A_r x + S z ≤ S − b_r ;  x_j + D z ≤ lb_j + D ;  −x_j + D z ≤ D − ub_j
            [-L.A_pairs, None, None, None, None, eye(nl, S), None, None],
            [selection_rows(fl, n), None, None, None, None, None, eye(nfl, Dlo), None],
            [selection_rows(fu, n, -1.0), None, None, None, None, None, None, eye(nfu, Dup)],
        ]
    )
    Srhs = np.concatenate([S - game.b[L.lam_row], game.lb[fl] + Dlo, Dup - game.ub[fu]])
    rl_all = np.concatenate([*rl, np.full(nz, -INF), np.full(nz, -INF)])
    ru_all = np.concatenate([*ru, np.zeros(nz), Srhs])
    clo = np.concatenate([clo, np.zeros(nz)])
    zhi = np.where(off, 0.0, 1.0)
    chi = np.concatenate([chi, zhi])
    return R, rl_all, ru_all, clo, chi


def slack_pairs(game: LQGame, L: KKTLayout, xlo: np.ndarray, xhi: np.ndarray) -> np.ndarray:
    """Which complementarity pairs (λ pairs | finite lower | finite upper bounds) are provably slack
    over the ranges: ``min (b_r − A_r x) > 0`` or ``xlo_j > lb_j`` / ``xhi_j < ub_j`` (1e-9 relative)."""
    fl, fu = L.fl, L.fu
    _, Ax_hi = interval_matvec(L.A_pairs, xlo, xhi)
    b_l = game.b[L.lam_row]
    slack_lo = np.concatenate([b_l - Ax_hi, xlo[fl] - game.lb[fl], game.ub[fu] - xhi[fu]])
    ref = np.concatenate([np.abs(b_l), np.abs(game.lb[fl]), np.abs(game.ub[fu])])
    return np.asarray(slack_lo > 1e-9 * (1.0 + ref))


def touches_unproven(
    v: np.ndarray,
    L: KKTLayout,
    xlo: np.ndarray,
    xhi: np.ndarray,
    Lam: np.ndarray,
    Mu: np.ndarray,
    plo: np.ndarray,
    phi: np.ndarray,
    pl: np.ndarray,
    pm: np.ndarray,
) -> bool:
    """Whether a value sits at an unproven bound (within 1e-6 relative); a proven side (the game's
    own bound, or one derived above) may be touched."""
    rel = 1e-6
    x = v[L.sl(0)]
    lam = v[L.sl(1)]
    mu = v[L.sl(2)]
    t = np.any(~phi & (x >= xhi - rel * (1 + np.abs(xhi))))
    t |= np.any(~plo & (x <= xlo + rel * (1 + np.abs(xlo))))
    t |= np.any(~pl & (lam >= Lam * (1 - rel)))
    t |= np.any(~pm & (np.abs(mu) >= Mu * (1 - rel)))
    return bool(t)


def multipliers_from_columns(game: LQGame, L: KKTLayout, v: np.ndarray) -> Multipliers:
    lam_v, mu_v = v[L.sl(1)], v[L.sl(2)]
    nl = np.zeros(game.n)
    nu = np.zeros(game.n)
    nl[L.fl] = np.maximum(v[L.sl(3)], 0.0)
    nu[L.fu] = np.maximum(v[L.sl(4)], 0.0)
    if L.variational:
        return Multipliers(np.maximum(lam_v, 0.0), mu_v.copy(), nl, nu, True)
    lam = np.zeros((game.N, game.m))
    mu = np.zeros((game.N, game.p))
    lam[L.lam_player, L.lam_row] = np.maximum(lam_v, 0.0)
    mu[L.mu_player, L.mu_row] = mu_v
    return Multipliers(lam, mu, nl, nu, False)
