"""The joint KKT system (4)–(7) of an LQ game as a MILP on HiGHS, with big-M bounds derived from data.

Every complementarity pair ``0 ≤ y ⊥ s ≥ 0`` (a shared-row multiplier and the row's slack; a bound
multiplier and the distance to the bound) is switched by a binary ``z``: ``y ≤ Y z`` and
``s ≤ S (1 − z)``. The bounds are derived, never a blind constant:

- primal ``x`` ranges from the box, and by LP (min/max ``x_j`` over the joint set X) where the box
  is infinite; slack bounds ``S`` by interval arithmetic over those ranges;
- shared-row multipliers ``Λ`` (and ``|μ|``) by LP over the relaxed KKT polytope (stationarity (4),
  ``x ∈ X``, signs (6)) strengthened by one valid inequality per player obtained by multiplying
  player i's stationarity by ``x_i`` and using complementarity:

      Σ_r λ_{i,r} β_{r,i} − Σ_j ν⁻_j lb_j + Σ_j ν⁺_j ub_j ≤ U_i,                               (12)

  ``β_{r,i} = b_r − max A_{r,−i} x_{−i}`` and ``U_i ≥ −x_iᵀ(Mx + q)_i`` over the box (intervals);
- bound multipliers ``ν`` from (4) by interval arithmetic given ``Λ``.

A bound that cannot be proven finite starts at a stated value; a solution touching an unproven bound
(within 1e-6 relative) triggers a re-solve with that bound doubled (at most ``retries`` times), and
never returns silently: the result then has status ``ITERATION_LIMIT`` with the reason.
``fixed_big_m`` replaces all of this by one blind constant (the benchmark baseline only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games._backend import INF, run_highs
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.milp_bounds import interval_matvec, primal_ranges
from datamarkets.solvers import highs_model
from datamarkets.sparse_blocks import block_matrix, selection_rows
from datamarkets.status import Status

__all__ = ["MILPOut", "solve_kkt_milp"]

STATED_BOUND = 1e3
"""Start value (times the data scale) of a bound that LP bounding could not prove finite."""


@dataclass
class MILPOut:
    """Outcome of :func:`solve_kkt_milp`: the equilibria found (each ``(x, multipliers)``)."""

    status: Status
    equilibria: list[tuple[np.ndarray, Multipliers]]
    bounds_proven: bool
    retries: int
    seconds: dict[str, float] = field(default_factory=dict)
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class _Layout:
    """Columns of the MILP: x | λ pairs | μ pairs | ν⁻ | ν⁺ | z_λ | z⁻ | z⁺."""

    def __init__(self, game: LQGame, variational: bool) -> None:
        self.game, self.variational = game, variational
        N = game.N
        self.Bl, self.lam_row, self.lam_player = self._pairs(game.A, variational)
        self.Bm, self.mu_row, self.mu_player = self._pairs(game.Aeq, variational)
        self.lam_key = self.lam_row * N + (self.lam_player if self.lam_player is not None else 0)
        self.fl = np.flatnonzero(np.isfinite(game.lb))
        self.fu = np.flatnonzero(np.isfinite(game.ub))
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
        coo = sp.coo_array(Amat)
        if variational:
            return sp.csr_array(Amat.T), np.arange(Amat.shape[0]), None
        key = coo.row.astype(np.int64) * game.N + game.owner[coo.col]
        uniq, inv = np.unique(key, return_inverse=True)
        B = sp.csr_array((coo.data, (coo.col, inv)), shape=(game.n, uniq.size))
        return B, uniq // game.N, uniq % game.N

    def sl(self, k: int) -> slice:
        return slice(int(self.off[k]), int(self.off[k + 1]))


def _build(
    game: LQGame,
    L: _Layout,
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
    rows0 = [
        [game.M, L.Bl, L.Bm, selection_rows(fl, n, -1.0).T, selection_rows(fu, n).T],  # (4)
        [game.A, (m, nl), (m, nm), (m, nfl), (m, nfu)],
        [game.Aeq, None, None, None, None],
    ]
    rl = [-game.q, np.full(m, -INF), game.beq]
    ru = [-game.q, game.b, game.beq]
    R0 = block_matrix(rows0)
    if extra_rows is not None:
        R0 = block_matrix([[R0], [extra_rows[0]]])
        rl.append(np.full(extra_rows[0].shape[0], -INF))
        ru.append(extra_rows[1])
    clo = np.concatenate([xlo, np.zeros(nl), -Mu, np.zeros(nfl), np.zeros(nfu)])
    chi = np.concatenate([xhi, Lam, Mu, Vlo, Vup])
    nz = nl + nfl + nfu
    Axr = selection_rows(L.lam_row, m) @ game.A
    Ax_lo, Ax_hi = interval_matvec(Axr, xlo, xhi)
    off = np.zeros(nz, bool)
    if fix:
        b_l = game.b[L.lam_row]
        slack_lo = np.concatenate([b_l - Ax_hi, xlo[fl] - game.lb[fl], game.ub[fu] - xhi[fu]])
        ref = np.concatenate([np.abs(b_l), np.abs(game.lb[fl]), np.abs(game.ub[fu])])
        off = slack_lo > 1e-9 * (1.0 + ref)
        chi[int(L.off[1]) : int(L.off[2])][off[:nl]] = 0.0  # λ of a slack row
        chi[int(L.off[3]) : int(L.off[5])][off[nl:]] = 0.0  # ν of an inactive bound
    if not integer:
        return R0, np.concatenate(rl), np.concatenate(ru), clo, chi
    # switches: y ≤ Y z,  s ≤ S (1 − z)
    S = game.b[L.lam_row] - Ax_lo  # slack ≤ S
    Dlo = xhi[fl] - game.lb[fl]
    Dup = game.ub[fu] - xlo[fu]
    Y = np.concatenate([Lam, Vlo, Vup])
    cont = int(L.off[5])
    # y − Y z ≤ 0
    cols_y = np.concatenate([np.arange(L.off[1], L.off[2]), np.arange(L.off[3], L.off[5])])
    zsel = np.arange(nz)
    # slack rows: −A_r x + S z ≤ S − b_r ; x_j + D z ≤ lb_j + D ; −x_j + D z ≤ D − ub_j
    Sx = block_matrix([[-Axr], [selection_rows(fl, n)], [selection_rows(fu, n, -1.0)]])
    SD = np.concatenate([S, Dlo, Dup])
    R = block_matrix(
        [
            [R0, (R0.shape[0], nz)],
            [selection_rows(cols_y, cont), selection_rows(zsel, nz, -Y)],
            [block_matrix([[Sx, (nz, cont - n)]]), selection_rows(zsel, nz, SD)],
        ]
    )
    Srhs = np.concatenate([S - game.b[L.lam_row], game.lb[fl] + Dlo, Dup - game.ub[fu]])
    rl_all = np.concatenate([*rl, np.full(nz, -INF), np.full(nz, -INF)])
    ru_all = np.concatenate([*ru, np.zeros(nz), Srhs])
    clo = np.concatenate([clo, np.zeros(nz)])
    zhi = np.where(off, 0.0, 1.0)
    chi = np.concatenate([chi, zhi])
    return R, rl_all, ru_all, clo, chi


def _valid_inequalities(
    game: LQGame, L: _Layout, xlo: np.ndarray, xhi: np.ndarray
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
:func:`_multiplier_bounds_narrow` (e.g. inside the KKT ball around the vi route's answer)."""


def _multiplier_bounds_narrow(
    game: LQGame, L: _Layout, xlo: np.ndarray, xhi: np.ndarray, time_limit: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``Λ``, ``|μ|`` by LP over the multipliers alone: stationarity (4) with ``Mx + q`` replaced by
    its interval over the ranges, ``g_lo ≤ −(B_λ λ + B_μ μ − ν⁻ + ν⁺) ≤ g_hi``, and the multipliers
    of provably slack rows and bounds fixed at 0 — an outer relaxation of the full LP's polytope
    (every KKT point's multipliers lie in it), so its maxima are proven bounds; a few columns and
    no x. ``None`` when it does not give finite bounds (the caller runs the full LP)."""
    nl, nm = L.lam_row.size, L.mu_row.size
    free = [np.full(k, np.inf) for k in (nl, nm, L.fl.size, L.fu.size)]
    R, _, _, clo, chi = _build(game, L, xlo, xhi, *free, integer=False, fix=True)
    n = game.n
    g_lo, g_hi = interval_matvec(game.M, xlo, xhi)
    if not (np.all(np.isfinite(g_lo)) and np.all(np.isfinite(g_hi))):
        return None
    S = R[:n, :][:, n:]  # stationarity rows over the multiplier columns
    rl, ru = -(g_hi + game.q), -(g_lo + game.q)
    pad = 1e-9 * (1.0 + np.abs(rl) + np.abs(ru))
    h = highs_model(np.zeros(S.shape[1]), clo[n:], chi[n:], S, rl - pad, ru + pad, time_limit=time_limit)
    Lam, Mu = np.full(nl, np.inf), np.full(nm, np.inf)
    lam_cols = np.arange(nl, dtype=np.int32)
    if nl:
        h.changeColsCost(nl, lam_cols, np.full(nl, -1.0))
        o = run_highs(h)
        h.changeColsCost(nl, lam_cols, np.zeros(nl))
        if o.status is not Status.OPTIMAL or o.x is None:
            return None
        Lam[:] = float(np.sum(np.abs(o.x[:nl]))) * (1.0 + 1e-9)
    for k in range(nm):
        for sgn in (-1.0, 1.0):
            h.changeColCost(nl + k, sgn)
            o = run_highs(h)
            h.changeColCost(nl + k, 0.0)
            if o.status is not Status.OPTIMAL or o.x is None:
                return None
            Mu[k] = max(Mu[k] if np.isfinite(Mu[k]) else 0.0, abs(o.x[nl + k]) * (1.0 + 1e-9))
    return Lam, Mu, np.ones(nl, bool), np.ones(nm, bool)


def _multiplier_bounds(
    game: LQGame, L: _Layout, xlo: np.ndarray, xhi: np.ndarray, time_limit: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``Λ``, ``|μ|`` bounds by LP over the strengthened relaxed KKT polytope, and which are proven
    (every ``λ_k ≤ max Σλ``: one LP; one per ``μ_k`` side; one HiGHS instance, warm-started)."""
    nl, nm = L.lam_row.size, L.mu_row.size
    Lam = np.full(nl, np.inf)
    Mu = np.full(nm, np.inf)
    if nl + nm == 0:
        return Lam, Mu, np.ones(0, bool), np.ones(0, bool)
    if np.all(xhi - xlo <= NARROW * (1.0 + np.abs(xlo))):
        got = _multiplier_bounds_narrow(game, L, xlo, xhi, time_limit)
        if got is not None:
            return got
    extra = _valid_inequalities(game, L, xlo, xhi)
    free = [np.full(k, np.inf) for k in (nl, nm, L.fl.size, L.fu.size)]
    # a multiplier whose row or bound is provably slack over the ranges is 0 at every KKT point
    R, rl, ru, clo, chi = _build(game, L, xlo, xhi, *free, integer=False, extra_rows=extra, fix=True)
    h = highs_model(np.zeros(R.shape[1]), clo, chi, R, rl, ru, time_limit=time_limit)
    lam_cols = (int(L.off[1]) + np.arange(nl)).astype(np.int32)
    targets = [(int(L.off[2]) + k, s, Mu, k) for k in range(nm) for s in (-1.0, 1.0)]
    if nl:  # one LP: max Σλ bounds every λ_k ≥ 0 (per-k LPs only when that sum is not bounded)
        h.changeColsCost(nl, lam_cols, np.full(nl, -1.0))
        o = run_highs(h)
        h.changeColsCost(nl, lam_cols, np.zeros(nl))
        if o.status is Status.OPTIMAL and o.x is not None and np.all(clo[lam_cols] >= 0):
            Lam[:] = float(np.sum(np.abs(o.x[lam_cols]))) * (1.0 + 1e-9)
        elif o.status not in (Status.OPTIMAL, Status.UNBOUNDED):
            return Lam, Mu, np.zeros(nl, bool), np.zeros(nm, bool)  # empty polytope or no answer: none proven
        else:
            targets = [(int(lam_cols[k]), -1.0, Lam, k) for k in range(nl)] + targets
    for i, (col, s, arr, k) in enumerate(targets):
        h.changeColCost(col, s)
        o = run_highs(h)
        h.changeColCost(col, 0.0)
        if i == 0 and nl == 0 and o.status not in (Status.OPTIMAL, Status.UNBOUNDED):
            return Lam, Mu, np.zeros(nl, bool), np.zeros(nm, bool)  # empty polytope or no answer: none proven
        if o.status is Status.OPTIMAL and o.x is not None:
            arr[k] = max(arr[k] if np.isfinite(arr[k]) else 0.0, abs(o.x[col]))
        else:
            arr[k] = np.inf
    return Lam, Mu, np.isfinite(Lam), np.isfinite(Mu)


def solve_kkt_milp(
    game: LQGame,
    *,
    variational: bool = True,
    enumerate: int = 0,
    time_limit: float | None = None,
    fixed_big_m: float | None = None,
    retries: int = 8,
    tol: float = 1e-9,
    start: tuple[np.ndarray, Multipliers] | None = None,
) -> MILPOut:
    """Equilibria of ``game`` as solutions of its KKT MILP (see the module docstring).

    Parameters
    ----------
    game : LQGame
    variational : bool
        Common multipliers on the shared constraints (a variational equilibrium).
    enumerate : int
        Find up to this many distinct equilibria (no-good cuts on the binaries); 0 = one.
    time_limit : float, optional
        Seconds for the whole route (bounding, every MILP).
    fixed_big_m : float, optional
        Benchmark baseline: every big-M is this constant, no bounding, no retries.
    retries : int
        Doublings of unproven bounds before giving up.
    tol : float
        HiGHS primal / MIP feasibility tolerance.
    start : (x, Multipliers), optional
        A KKT point from another route (e.g. the vi route's answer). Its switches (a pair is on
        when its multiplier exceeds its slack, both relative to their bounds) are fixed in a first
        solve of this MILP, then an LP; that solution is passed to HiGHS as the start of the full
        MILP, which checks it and, the objective being a constant, stops
        (``extra["mip_start_result"] = "used"``). When the restricted MILP is infeasible
        (``"rejected"``) the full MILP is solved cold; further equilibria of ``enumerate`` always
        come from the full MILP with no-good cuts.

    Returns
    -------
    MILPOut

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[1, -2], [-2, 0]], [[0, -2], [-2, 1]]], [[0.5, 0], [0, 0.5]], lb=0, ub=1)
    >>> out = solve_kkt_milp(g, enumerate=5)
    >>> sorted(np.round(x, 9).tolist() for x, _ in out.equilibria)
    [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
    """
    t0 = time.perf_counter()
    left = lambda: None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 1e-3)  # noqa: E731
    if enumerate < 0:
        raise InvalidInputError(f"enumerate must be ≥ 0, got {enumerate}")
    L = _Layout(game, variational)
    secs: dict[str, float] = {}
    mip_start = "none" if start is None else "unused"
    extra_start = "none"
    ta = time.perf_counter()
    if fixed_big_m is not None:
        Mb = float(fixed_big_m)
        xlo = np.where(np.isfinite(game.lb), game.lb, -Mb)
        xhi = np.where(np.isfinite(game.ub), game.ub, Mb)
        Lam, Mu = np.full(L.lam_row.size, Mb), np.full(L.mu_row.size, Mb)
        plo, phi = np.ones(game.n, bool), np.ones(game.n, bool)  # no retries
        pl, pm = np.ones(L.lam_row.size, bool), np.ones(L.mu_row.size, bool)
        Vlo, Vup = np.full(L.fl.size, Mb), np.full(L.fu.size, Mb)
    else:
        x_start = None if start is None else start[0]  # checked in X, else the feasibility LP runs
        m_start = None if start is None else start[1]
        xlo, xhi, st = primal_ranges(
            game, L.Bl, L.Bm, L.variational, left(), x_feasible=x_start, multipliers=m_start
        )
        if st is not Status.OPTIMAL:
            return MILPOut(st, [], True, 0, message=f"joint feasible set: {st.value}")
        if np.any(xlo > xhi):  # stationarity propagation proved the KKT system has no solution
            j = int(np.flatnonzero(xlo > xhi)[0])
            msg = f"no KKT point: stationarity bounds of x[{j}] are empty ({xlo[j]:.6g} > {xhi[j]:.6g})"
            return MILPOut(Status.NO_EQUILIBRIUM, [], True, 0, message=msg)
        # a side is proven when finite (box, stationarity, monotone ball or LP over X); an unproven
        # side starts at a stated distance from the other side and is doubled when touched
        plo, phi = np.isfinite(xlo), np.isfinite(xhi)
        stated = STATED_BOUND * game.scale
        xlo = np.where(plo, xlo, np.where(phi, np.minimum(xhi, 0.0), 0.0) - stated)
        xhi = np.where(phi, xhi, np.where(plo, np.maximum(xlo, 0.0), 0.0) + stated)
        Lam, Mu, pl, pm = _multiplier_bounds(game, L, xlo, xhi, left())
        Lam = np.where(pl, Lam, stated)
        Mu = np.where(pm, Mu, stated)
    secs["bounding_seconds"] = time.perf_counter() - ta
    n_try = 0
    while True:
        if fixed_big_m is None:
            Vlo, Vup = _nu_bounds(game, L, xlo, xhi, Lam, Mu)
        R, rl, ru, clo, chi = _build(
            game, L, xlo, xhi, Lam, Mu, Vlo, Vup, integer=True, fix=fixed_big_m is None
        )
        nz = R.shape[1] - int(L.off[5])
        integ = np.concatenate([np.zeros(int(L.off[5]), bool), np.ones(nz, bool)])
        h = highs_model(  # a feasibility MILP: stop at the first feasible point (= an equilibrium)
            np.zeros(R.shape[1]),
            clo,
            chi,
            R,
            rl,
            ru,
            integrality=integ,
            time_limit=left(),
            primal_feasibility_tolerance=tol,
            mip_feasibility_tolerance=tol,
            mip_max_improving_sols=1,
        )
        found: list[tuple[np.ndarray, Multipliers]] = []
        status = Status.OPTIMAL
        touched = False
        attempts = 0
        zc = int(L.off[5])
        zidx = (zc + np.arange(nz)).astype(np.int32)
        use_start = start is not None and mip_start != "rejected"
        zs = _start_switches(game, L, start, xlo, xhi, R, chi) if use_start and start else None
        v_start = (
            None if zs is None or start is None else _start_vector(game, L, start, zs, (R, rl, ru, clo, chi))
        )
        while len(found) < max(1, enumerate) and attempts < 20 * max(1, enumerate):
            attempts += 1
            out = None
            from_start = zs is not None and attempts == 1
            if from_start and zs is not None:
                ts = time.perf_counter()
                out, mip_start = _run_from_start(h, nz, zidx, zs, clo[zc:], chi[zc:], v_start)
                secs["start_milp_seconds"] = time.perf_counter() - ts
                extra_start = "direct" if v_start is not None else "restricted-lp"
            if out is None:
                out = run_highs(h)
            first_feasible = "SolutionLimit" in str(out.extra.get("raw_status")) and out.x is not None
            if (out.status is not Status.OPTIMAL and not first_feasible) or out.x is None:
                status = out.status if out.status.group.value == "limit" else Status.INFEASIBLE
                break
            v = out.x
            x = v[: game.n]
            touched = _touches(v, L, xlo, xhi, Lam, Mu, plo, phi, pl, pm)
            if touched and from_start:  # the start's vertex sits on an unproven bound: go cold
                mip_start, zs, touched = "rejected", None, False
                continue
            if touched:
                break
            z = np.round(v[int(L.off[5]) :])
            if not any(np.abs(x - xf).max() <= 1e-7 * (1 + np.abs(x).max()) for xf, _ in found):
                found.append((x.copy(), _multipliers(game, L, v)))
            # no-good cut: Σ_{z*=1}(1 − z) + Σ_{z*=0} z ≥ 1
            coef = np.where(z > 0.5, -1.0, 1.0)
            idx = (int(L.off[5]) + np.arange(nz)).astype(np.int32)
            h.addRow(1.0 - float((z > 0.5).sum()), INF, nz, idx, coef)
            if enumerate == 0:
                break
        unproven = not (pl.all() and pm.all() and plo.all() and phi.all())
        retry = touched or (status is Status.INFEASIBLE and not found and unproven)
        if retry and n_try < retries and fixed_big_m is None:
            n_try += 1  # double every unproven bound (its distance from the other side for x)
            Lam, Mu = np.where(pl, Lam, 2 * Lam), np.where(pm, Mu, 2 * Mu)
            width = xhi - xlo
            xlo = np.where(plo, xlo, xlo - width)
            xhi = np.where(phi, xhi, xhi + width)
            continue
        break
    secs["milp_seconds"] = time.perf_counter() - ta - secs["bounding_seconds"]
    proven = bool(pl.all() and pm.all() and plo.all() and phi.all()) and fixed_big_m is None
    extra = {
        "binaries": int(nz),
        "binaries_free": int(np.sum(chi[int(L.off[5]) :] > 0)),  # the others are proven 0
        "lambda_bound_max": float(Lam.max(initial=0.0)),
        "retries": n_try,
        "mip_start_result": mip_start,
        "mip_start_point": extra_start,
    }
    if touched:
        return MILPOut(
            Status.ITERATION_LIMIT,
            [],
            proven,
            n_try,
            secs,
            f"a solution touches an unproven big-M bound after {n_try} doublings",
            extra,
        )
    if found:
        return MILPOut(Status.OPTIMAL, found, proven, n_try, secs, "", extra)
    if status is Status.INFEASIBLE:
        msg = "the KKT system has no solution" + ("" if proven else " within the stated (unproven) bounds")
        return MILPOut(Status.NO_EQUILIBRIUM, [], proven, n_try, secs, msg, extra)
    return MILPOut(status, [], proven, n_try, secs, f"MILP stopped: {status.value}", extra)


def _nu_bounds(
    game: LQGame, L: _Layout, xlo: np.ndarray, xhi: np.ndarray, Lam: np.ndarray, Mu: np.ndarray
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


def _run_from_start(
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


def _start_vector(
    game: LQGame,
    L: _Layout,
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


def _start_switches(
    game: LQGame,
    L: _Layout,
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
    s = np.concatenate(
        [game.b[L.lam_row] - game.A[L.lam_row, :] @ x, x[L.fl] - game.lb[L.fl], game.ub[L.fu] - x[L.fu]]
    )
    zc = int(L.off[5])
    nz = chi.size - zc
    Y = np.concatenate([chi[int(L.off[1]) : int(L.off[2])], chi[int(L.off[3]) : int(L.off[5])]])
    # the slack bound S is the coefficient of z in its slack row (the last nz rows of R)
    S = R[R.shape[0] - nz :, :].diagonal(k=zc)
    with np.errstate(divide="ignore", invalid="ignore"):
        on = np.nan_to_num(y / np.maximum(Y, 1e-300)) > np.nan_to_num(s / np.maximum(S, 1e-300))
    return np.where(chi[zc:] > 0, on, False).astype(float)


def _touches(
    v: np.ndarray,
    L: _Layout,
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


def _multipliers(game: LQGame, L: _Layout, v: np.ndarray) -> Multipliers:
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
