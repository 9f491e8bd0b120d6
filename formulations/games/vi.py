"""Variational equilibria of monotone LQ games as ONE convex QP.

The joint feasible set is ``X = {x : G x ≤ h, E x = e}`` with ``G = [A; −I_L; I_U]`` (shared rows
and finite bounds) and ``E = Aeq``. A variational equilibrium solves the affine VI
``(M x + q)ᵀ(y − x) ≥ 0 ∀ y ∈ X`` (9).

- Potential game (``M = Mᵀ``): (9) is the optimality condition of ``min ½xᵀMx + qᵀx`` over X (10),
  whose duals are the common multipliers.
- Monotone game (``sym(M) ⪰ 0``): the primal–dual gap QP

      min  xᵀMx + qᵀx + hᵀλ + eᵀμ   s.t.  M x + q + Gᵀλ + Eᵀμ = 0,  G x ≤ h,  E x = e,  λ ≥ 0     (11)

  is convex, and on its feasible set the objective equals ``λᵀ(h − G x) ≥ 0`` (substitute the
  equality); so its optimum is 0 exactly at the KKT points of (9), i.e. at a VE with its common
  multipliers. (A non-monotone game makes (11) non-convex; the route refuses it.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games._backend import INF, QPOut, clarabel_qp, highs_qp, run_highs
from datamarkets.formulations.games.kkt import Multipliers, kkt_residuals, recover_multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.solvers import highs_model
from datamarkets.sparse_blocks import block_matrix, selection_rows
from datamarkets.status import Status

__all__ = [
    "VIOut",
    "feasible_point",
    "gap_qp",
    "joint_constraints",
    "multipliers_from_highs",
    "polish_vi",
    "solve_vi",
]

HIGHS_QP_ITERATIONS_PER_VAR = 50
"""HiGHS QP iteration cap per variable and row of the QP (then the route falls back to Clarabel)."""

POLISH_DENSE_MAX = 3000
"""Largest KKT order for which a singular active-face system is solved by dense least squares."""


@dataclass
class VIOut:
    """Outcome of :func:`solve_vi`."""

    status: Status
    x: np.ndarray | None
    multipliers: Multipliers | None
    program: str
    objective: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)


def joint_constraints(game: LQGame) -> tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray]:
    """``G, h`` of X (shared rows, then finite lower and upper bounds) and the finite-bound indices."""
    fl = np.flatnonzero(np.isfinite(game.lb))
    fu = np.flatnonzero(np.isfinite(game.ub))
    G = block_matrix([[game.A], [selection_rows(fl, game.n, -1.0)], [selection_rows(fu, game.n)]])
    h = np.concatenate([game.b, -game.lb[fl], game.ub[fu]])
    return G, h, fl, fu


def multipliers_from_highs(game: LQGame, row_dual: np.ndarray, col_dual: np.ndarray) -> Multipliers:
    """Common multipliers from HiGHS's duals of a program over X (rows ``A``, then ``Aeq``).

    HiGHS's convention is ``∇f − Aᵀ row_dual − col_dual = 0``: λ = max(−row_dual[:m], 0) on the
    shared inequalities, μ = −row_dual[m:] on the equalities, ν⁻/ν⁺ the positive/negative parts
    of ``col_dual`` on finite lower/upper bounds.
    """
    rd = -np.asarray(row_dual, dtype=float)
    cd = np.asarray(col_dual, dtype=float)
    return Multipliers(
        np.maximum(rd[: game.m], 0.0),
        rd[game.m :],
        np.where(np.isfinite(game.lb), np.maximum(cd, 0.0), 0.0),
        np.where(np.isfinite(game.ub), np.maximum(-cd, 0.0), 0.0),
        True,
    )


def _split_G_duals(game: LQGame, z: np.ndarray, fl: np.ndarray, fu: np.ndarray) -> Multipliers:
    m = game.m
    lam = np.maximum(z[:m], 0.0)
    nl = np.zeros(game.n)
    nu = np.zeros(game.n)
    nl[fl] = np.maximum(z[m : m + fl.size], 0.0)
    nu[fu] = np.maximum(z[m + fl.size :], 0.0)
    return Multipliers(lam, np.zeros(game.p), nl, nu, True)


def feasible_point(game: LQGame, *, time_limit: float | None = None) -> tuple[Status, np.ndarray | None]:
    """A point of the joint feasible set X by LP (HiGHS); ``(INFEASIBLE, None)`` when X is empty.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [np.eye(2), np.eye(2)], np.zeros((2, 2)), A=[[1, 1]], b=[-1], lb=0)
    >>> feasible_point(g)[0].value
    'infeasible'
    """
    A = sp.vstack([game.A, game.Aeq], format="csc")
    rl = np.concatenate([np.full(game.m, -INF), game.beq])
    ru = np.concatenate([game.b, game.beq])
    out = highs_qp(None, np.zeros(game.n), game.lb, game.ub, A, rl, ru, time_limit=time_limit)
    if out.status is Status.OPTIMAL and out.x is not None:
        return Status.OPTIMAL, out.x
    return (Status.INFEASIBLE if out.status.group.value == "infeasible_or_unbounded" else out.status), None


Joint = tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray]
"""What :func:`joint_constraints` returns (passed on within one solve instead of rebuilt)."""


def gap_qp(
    game: LQGame, joint: Joint | None = None
) -> tuple[sp.csc_array, np.ndarray, sp.csr_array, np.ndarray, sp.csr_array, np.ndarray]:
    """The gap QP (11) in Clarabel form over ``v = (x, λ, μ)``: ``P, c, Aeq, beq, Ale, ble``
    (``joint``: :func:`joint_constraints` of the game, when already at hand)."""
    n, p = game.n, game.p
    G, h, _, _ = joint if joint is not None else joint_constraints(game)
    mG = G.shape[0]
    M = game.M
    P = block_matrix([[M + M.T, None, None], [None, (mG, mG), None], [None, None, (p, p)]], format="csc")
    c = np.concatenate([game.q, h, game.beq])
    Aeq = block_matrix([[M, G.T, game.Aeq.T], [game.Aeq, None, (p, p)]])
    beq = np.concatenate([-game.q, game.beq])
    Ale = block_matrix([[G, (mG, mG), (mG, p)], [(mG, n), selection_rows(np.arange(mG), mG, -1.0), None]])
    ble = np.concatenate([h, np.zeros(mG)])
    return P, c, Aeq, beq, Ale, ble


def solve_vi(
    game: LQGame,
    *,
    qp_solver: str = "clarabel",
    time_limit: float | None = None,
    tol: float = 1e-9,
    monotone_tol: float = 1e-9,
    polish: bool = True,
) -> VIOut:
    """The variational equilibrium of a monotone game: the potential QP (10) when M is symmetric,
    else the gap QP (11). Returns x and the common multipliers.

    Parameters
    ----------
    game : LQGame
    qp_solver : {"clarabel", "highs"}
    time_limit : float, optional
    tol : float
        Solver tolerance.
    monotone_tol : float
        The game counts as monotone when min eig sym(M) ≥ −monotone_tol·scale.
    polish : bool
        Re-solve the KKT system on the active face of the answer (:func:`polish_vi`); the
        polished answer is kept only when it is feasible and no worse in the KKT residuals.

    Raises
    ------
    NonConvexGameError
        The game is not monotone (the message gives the eigenvalue).

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> out = solve_vi(g)
    >>> np.round(out.x, 6).tolist(), out.program
    ([3.333333, 2.333333], 'potential-qp')
    """
    if qp_solver not in ("clarabel", "highs"):
        raise InvalidInputError(f"qp_solver must be 'clarabel' or 'highs', got {qp_solver!r}")
    lam_min = game.monotonicity_min_eig
    if lam_min < -monotone_tol * game.scale:
        raise NonConvexGameError(
            f"the vi route needs a monotone game: smallest eigenvalue of sym(M) is {lam_min:.6g} < 0"
        )
    out = _solve_vi_qp(game, qp_solver, time_limit, tol, polish)
    if qp_solver == "highs" and out.status in (Status.ERROR, Status.ITERATION_LIMIT):
        # HiGHS's QP solver can fail (kSolveError, seen on 2-variable games) or cycle on the
        # singular Hessian of the gap QP (11); Clarabel solves the same program
        raw = out.extra.get("raw_status")
        out = _solve_vi_qp(game, "clarabel", time_limit, tol, polish)
        out.extra["fallback"] = f"clarabel after highs {raw}"
    return out


def _solve_vi_qp(game: LQGame, qp_solver: str, time_limit: float | None, tol: float, polish: bool) -> VIOut:
    n = game.n
    joint = joint_constraints(game)
    G, h, fl, fu = joint
    if game.is_potential:
        if qp_solver == "clarabel":
            out = clarabel_qp(game.M, game.q, game.Aeq, game.beq, G, h, time_limit=time_limit, tol=tol)
            if not out.status.has_solution:
                return VIOut(out.status, None, None, "potential-qp", extra=out.extra)
            y = out.row_dual
            assert y is not None and out.x is not None  # a solution carries x and the row duals
            mult = _split_G_duals(game, y[game.p :], fl, fu)
            mult.mu = y[: game.p].copy()
        else:
            A = sp.vstack([game.A, game.Aeq], format="csc")
            rl = np.concatenate([np.full(game.m, -INF), game.beq])
            ru = np.concatenate([game.b, game.beq])
            out = _highs(game.M, game.q, game.lb, game.ub, A, rl, ru, time_limit, tol)
            if not out.status.has_solution:
                return VIOut(out.status, None, None, "potential-qp", extra=out.extra)
            assert out.row_dual is not None and out.col_dual is not None and out.x is not None
            mult = multipliers_from_highs(game, out.row_dual, out.col_dual)
        return _polished(
            game, out.status, out.x[:n], mult, "potential-qp", out.objective, out.extra, polish, joint
        )
    P, c, Aeq, beq, Ale, ble = gap_qp(game, joint)
    mG = G.shape[0]
    if qp_solver == "clarabel":
        out = clarabel_qp(P, c, Aeq, beq, Ale, ble, time_limit=time_limit, tol=tol)
    else:
        # bounds as column bounds; λ ≥ 0 as column bounds; G's shared rows as rows
        lbv = np.concatenate([game.lb, np.zeros(mG), np.full(game.p, -np.inf)])
        ubv = np.concatenate([game.ub, np.full(mG, np.inf), np.full(game.p, np.inf)])
        Arows = sp.vstack([Aeq, Ale[: game.m, :]], format="csc")
        rl = np.concatenate([beq, np.full(game.m, -INF)])
        ru = np.concatenate([beq, ble[: game.m]])
        out = _highs(P, c, lbv, ubv, Arows, rl, ru, time_limit, tol)
    if not out.status.has_solution:
        return VIOut(out.status, None, None, "gap-qp", extra=out.extra)
    v = out.x
    assert v is not None  # a solution carries x
    mult = _split_G_duals(game, v[n : n + mG], fl, fu)
    mult.mu = v[n + mG :].copy()
    return _polished(game, out.status, v[:n], mult, "gap-qp", out.objective, out.extra, polish, joint)


def _polished(
    game: LQGame,
    status: Status,
    x: np.ndarray,
    mult: Multipliers,
    program: str,
    objective: float,
    extra: dict[str, Any],
    polish: bool,
    joint: Joint,
) -> VIOut:
    if polish:
        x, mult, info = polish_vi(game, x, mult, joint=joint)
        extra = {**extra, "polish": info}
    return VIOut(status, x, mult, program, objective, extra)


def _kkt_max(game: LQGame, x: np.ndarray, mult: Multipliers) -> float:
    r = kkt_residuals(game, x, mult)
    keys = ("stationarity_max", "primal_feasibility_max", "dual_feasibility_max", "complementarity_max")
    return max(float(r[k]) for k in keys)


def _solve_face(K: sp.csc_array, rhs: np.ndarray) -> np.ndarray | None:
    """Solve the active-face KKT system; least squares when it is singular and small."""
    from scipy.sparse.linalg import MatrixRankWarning, splu

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", MatrixRankWarning)
            sol = splu(K).solve(rhs)
        # a numerically singular K factors without complaint and returns garbage: check it
        scale = 1.0 + float(np.abs(rhs).max(initial=0.0))
        if np.all(np.isfinite(sol)) and float(np.abs(K @ sol - rhs).max(initial=0.0)) <= 1e-10 * scale:
            return np.asarray(sol)
    except (RuntimeError, MatrixRankWarning):  # exactly singular: redundant active rows
        pass
    if K.shape[0] > POLISH_DENSE_MAX:
        return None
    sol = np.linalg.lstsq(K.toarray(), rhs, rcond=None)[0]
    return np.asarray(sol) if np.all(np.isfinite(sol)) else None


def polish_vi(
    game: LQGame, x: np.ndarray, mult: Multipliers, *, rounds: int = 4, joint: Joint | None = None
) -> tuple[np.ndarray, Multipliers, dict[str, Any]]:
    """Polish an approximate variational equilibrium on its active face.

    An interior-point answer sits ~√(solver tolerance) away from a degenerate vertex (a bound with
    a tiny multiplier). The active set is read off the answer — row k of ``G x ≤ h`` is active when
    its multiplier exceeds its slack — and the equality-constrained KKT system of (9) on that face,

        M x + Gₐᵀ zₐ + Eᵀ μ = −q,   Gₐ x = hₐ,   E x = e,

    is solved directly (sparse LU; dense least squares when singular and small). A violated row
    joins the face; a negative multiplier (a degenerate face where the active gradients are
    dependent, or a wrong row) has the multipliers refitted by the L1 LP of
    :func:`~datamarkets.formulations.games.kkt.recover_multipliers` and, if that does not fit,
    drops its row; up to ``rounds`` passes. The
    polished pair is returned only when it is feasible, its multipliers are ≥ 0 and its largest
    KKT residual (:func:`~datamarkets.formulations.games.kkt.kkt_residuals`) is no worse than the
    input's; otherwise the input comes back unchanged.

    Parameters
    ----------
    game : LQGame
    x : ndarray (n,)
    mult : Multipliers
        Common (variational) multipliers of ``x``.
    rounds : int
        Active-set corrections.
    joint : tuple, optional
        :func:`joint_constraints` of the game, when already at hand.

    Returns
    -------
    tuple
        ``(x, multipliers, info)``; ``info`` has ``accepted``, ``kkt_before``, ``kkt_after``,
        ``active`` (rows on the face) and ``rounds``.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, A=[[1, 1]], b=[5])
    >>> m = Multipliers(np.array([0.99]), np.zeros(0), np.zeros(2), np.zeros(2), True)
    >>> xp, mp, info = polish_vi(g, np.array([3.001, 1.998]), m)
    >>> bool(np.abs(xp - [3, 2]).max() < 1e-12), bool(abs(mp.lam[0] - 1) < 1e-12), info["accepted"]
    (True, True, True)
    """
    x = np.asarray(x, dtype=float)
    before = _kkt_max(game, x, mult)
    info: dict[str, Any] = {"accepted": False, "kkt_before": before, "kkt_after": before, "rounds": 0}
    if not mult.variational:
        return x, mult, info
    n, m = game.n, game.m
    G, h, fl, fu = joint if joint is not None else joint_constraints(game)
    z = np.concatenate([mult.lam, mult.nu_lower[fl], mult.nu_upper[fu]])
    slack = h - G @ x
    active = z > slack
    # a fixed variable (lb = ub) keeps only its lower row, with a free-sign multiplier
    fixed_u = np.isin(fu, fl[game.lb[fl] == game.ub[fl]])
    upper_rows = m + fl.size + np.flatnonzero(fixed_u)
    E = game.Aeq
    best: tuple[np.ndarray, Multipliers, float] | None = None
    for r in range(rounds):
        info["rounds"] = r + 1
        active[upper_rows] = False
        act = np.flatnonzero(active)
        Ga = selection_rows(act, G.shape[0]) @ G
        k = act.size
        K = block_matrix([[game.M, Ga.T, E.T], [Ga, (k, k), None], [E, None, (game.p, game.p)]], format="csc")
        sol = _solve_face(K, np.concatenate([-game.q, h[act], game.beq]))
        if sol is None:
            break
        xp, za, mup = sol[:n], sol[n : n + k], sol[n + k :]
        zfull = np.zeros(G.shape[0])
        zfull[act] = za
        free_sign = np.isin(act, m + np.flatnonzero(np.isin(fl, fu[fixed_u])))
        neg = (za < 0) & ~free_sign
        viol = (h - G @ xp) < -1e-12 * (1.0 + np.abs(h))
        lam = zfull[:m].copy()
        nl = np.zeros(n)
        nu = np.zeros(n)
        nl[fl] = zfull[m : m + fl.size]
        nu[fu] = zfull[m + fl.size :]
        fixed = np.isfinite(game.lb) & (game.lb == game.ub)
        nu[fixed] = np.maximum(-nl[fixed], 0.0)
        nl[fixed] = np.maximum(nl[fixed], 0.0)
        mp = Multipliers(np.maximum(lam, 0.0), mup, np.maximum(nl, 0.0), np.maximum(nu, 0.0), True)
        xp = np.clip(xp, game.lb, game.ub)
        if viol.any():
            active |= viol
            continue
        if neg.any():  # degenerate face (LICQ fails) or a wrong row: refit multipliers ≥ 0 by LP
            mp = recover_multipliers(game, xp, variational=True)
        after = _kkt_max(game, xp, mp)
        if after <= max(before, 1e-14):
            best = (xp, mp, after)
            break
        active[act[neg]] = False
    if best is not None and best[2] <= max(before, 1e-14):
        info.update(accepted=True, kkt_after=best[2], active=int(active.sum()))
        return best[0], best[1], info
    return x, mult, info


def _highs(
    P: Any,
    c: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    A: Any,
    rl: np.ndarray,
    ru: np.ndarray,
    tl: Any,
    tol: float,
) -> QPOut:
    h = highs_model(
        c,
        lb,
        ub,
        A,
        rl,
        ru,
        H=P,
        time_limit=tl,
        primal_feasibility_tolerance=max(tol, 1e-10),
        dual_feasibility_tolerance=max(tol, 1e-10),
        # HiGHS's active-set QP can cycle on the singular Hessian of the gap QP (11) (seen at
        # n = 20): a cap well above its usual count (≲ 2 per variable) turns that into a limit
        qp_iteration_limit=int(HIGHS_QP_ITERATIONS_PER_VAR * (np.size(c) + A.shape[0]) + 1000),
    )
    return run_highs(h)
