"""Players' own programs (1) with the others fixed, and best-response iteration (Gauss–Seidel, Jacobi).

Player i's program, given ``x_{−i}``, is the QP

    min_y ½ yᵀ H_i y + g_iᵀ y   s.t.  A[R_i, i] y ≤ b[R_i] − A[R_i, −i] x_{−i},
                                      Aeq[E_i, i] y = beq[E_i] − Aeq[E_i, −i] x_{−i},  lb_i ≤ y ≤ ub_i   (8)

with ``H_i = Q_i[i, i]``, ``g_i = (M x + q)_i − H_i x_i`` and ``R_i``/``E_i`` the shared rows that
involve player i. :class:`PlayerPrograms` builds every player's HiGHS model once; a re-solve only
changes the linear term and the row bounds (HiGHS QP, Clarabel fallback).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games._backend import INF, clarabel_qp, run_highs
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.vi import feasible_point
from datamarkets.solvers import highs_model
from datamarkets.sparse_blocks import block_matrix
from datamarkets.status import Status

__all__ = ["BRIterate", "PlayerPrograms", "best_response_iteration"]


class PlayerPrograms:
    """Every player's program (8) as a reusable HiGHS model.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> pp = PlayerPrograms(g)
    >>> y, val, status = pp.solve(0, np.array([0.0, 2.0]))
    >>> round(float(y[0]), 9), status.value
    (3.5, 'optimal')
    """

    def __init__(self, game: LQGame) -> None:
        self.game = game
        self.H = [sp.csr_array(game.M_own[game.block(i), game.block(i)]) for i in range(game.N)]
        Acsc = sp.csc_array(game.A)
        Aeqc = sp.csc_array(game.Aeq)
        self.rows: list[np.ndarray] = []
        self.rows_eq: list[np.ndarray] = []
        self.Ai: list[sp.csr_array] = []
        self.Aeqi: list[sp.csr_array] = []
        for i in range(game.N):
            b = game.block(i)
            Ab = Acsc[:, b]
            Eb = Aeqc[:, b]
            r = np.unique(sp.coo_array(Ab).row)
            e = np.unique(sp.coo_array(Eb).row)
            self.rows.append(r)
            self.rows_eq.append(e)
            self.Ai.append(sp.csr_array(Ab[r, :]) if r.size else sp.csr_array((0, game.sizes[i])))
            self.Aeqi.append(sp.csr_array(Eb[e, :]) if e.size else sp.csr_array((0, game.sizes[i])))
        self._models: dict[int, Any] = {}

    def data(self, i: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Linear term ``g_i`` and right-hand sides (ineq, eq) of program (8) at ``x``."""
        game = self.game
        b = game.block(i)
        xi = x[b]
        g = (game.M[b, :] @ x) + game.q[b] - self.H[i] @ xi
        r, e = self.rows[i], self.rows_eq[i]
        rhs = game.b[r] - (game.A[r, :] @ x) + self.Ai[i] @ xi if r.size else np.zeros(0)
        rhs_eq = game.beq[e] - (game.Aeq[e, :] @ x) + self.Aeqi[i] @ xi if e.size else np.zeros(0)
        return np.asarray(g), np.asarray(rhs), np.asarray(rhs_eq)

    def value(self, i: int, y: np.ndarray, g: np.ndarray) -> float:
        """Objective of (8) at ``y``."""
        return float(0.5 * y @ (self.H[i] @ y) + g @ y)

    def _model(self, i: int) -> Any:
        h = self._models.get(i)
        if h is None:
            game = self.game
            b = game.block(i)
            A = sp.vstack([self.Ai[i], self.Aeqi[i]], format="csc")
            m = A.shape[0]
            h = highs_model(
                np.zeros(game.sizes[i]),
                game.lb[b],
                game.ub[b],
                A,
                np.full(m, -INF),
                np.zeros(m),
                H=self.H[i],
                primal_feasibility_tolerance=1e-9,
                dual_feasibility_tolerance=1e-9,
            )
            self._models[i] = h
        return h

    def solve(
        self, i: int, x: np.ndarray, *, time_limit: float | None = None
    ) -> tuple[np.ndarray | None, float, Status]:
        """Player i's best response to ``x`` (its own block ignored): ``(y, value, status)``."""
        g, rhs, rhs_eq = self.data(i, x)
        h = self._model(i)
        k = self.game.sizes[i]
        h.changeColsCost(k, np.arange(k, dtype=np.int32), g)
        m1, m2 = rhs.size, rhs_eq.size
        if m1 + m2:
            lo = np.concatenate([np.full(m1, -INF), rhs_eq])
            hi = np.concatenate([rhs, rhs_eq])
            h.changeRowsBounds(m1 + m2, np.arange(m1 + m2, dtype=np.int32), lo, hi)
        h.setOptionValue("time_limit", float(time_limit) if time_limit is not None else np.inf)
        out = run_highs(h)
        if out.status is not Status.OPTIMAL or out.x is None:
            # fallback: Clarabel (interior point) on the same program
            out2 = self._clarabel(i, g, rhs, rhs_eq, time_limit)
            if out2.status.has_solution or out.x is None:
                out = out2
        if out.x is None:
            return None, float("nan"), out.status
        return out.x, self.value(i, out.x, g), out.status

    def _clarabel(
        self, i: int, g: np.ndarray, rhs: np.ndarray, rhs_eq: np.ndarray, time_limit: float | None
    ) -> Any:
        game = self.game
        b = game.block(i)
        k = game.sizes[i]
        lo, up = game.lb[b], game.ub[b]
        fl, fu = np.flatnonzero(np.isfinite(lo)), np.flatnonzero(np.isfinite(up))
        I = sp.eye_array(k, format="csr")
        Ale = sp.vstack([self.Ai[i], -I[fl, :], I[fu, :]], format="csr")
        ble = np.concatenate([rhs, -lo[fl], up[fu]])
        return clarabel_qp(self.H[i], g, self.Aeqi[i], rhs_eq, Ale, ble, time_limit=time_limit)


@dataclass
class BRIterate:
    """Outcome of :func:`best_response_iteration`."""

    status: Status
    x: np.ndarray
    iterations: int
    step: float
    seconds: float
    history: list[float] = field(default_factory=list)
    message: str = ""


def best_response_iteration(
    game: LQGame,
    x0: np.ndarray | None = None,
    *,
    jacobi: bool = False,
    tol: float = 1e-10,
    max_iter: int = 1000,
    time_limit: float | None = None,
    programs: PlayerPrograms | None = None,
) -> BRIterate:
    """Best-response iteration: Gauss–Seidel (each player replies to the latest profile) or Jacobi
    (all reply to the previous one). Stops when a sweep moves ``x`` by ≤ ``tol·(1 + ‖x‖∞)``.

    Converges for strongly monotone games without shared constraints (a contraction when the own
    blocks dominate); with shared constraints, Gauss–Seidel from a jointly feasible point stays
    feasible and a fixed point is *a* generalized Nash equilibrium (not necessarily the variational
    one). Non-convergence is reported as ``ITERATION_LIMIT`` / ``TIME_LIMIT``, never as an answer.

    Parameters
    ----------
    game : LQGame
    x0 : ndarray, optional
        Start; must be jointly feasible when shared constraints exist (default: a feasible point of
        the joint set found by LP).
    jacobi : bool
        Jacobi instead of Gauss–Seidel.
    tol, max_iter, time_limit
        Stopping rules.

    Returns
    -------
    BRIterate
    """
    t0 = time.perf_counter()
    pp = programs or PlayerPrograms(game)
    if x0 is None:
        st, x0 = feasible_point(game, time_limit=time_limit)
        if x0 is None:
            return BRIterate(st, np.zeros(game.n), 0, np.inf, time.perf_counter() - t0, message=st.value)
    x = np.array(x0, dtype=float)
    if x.shape != (game.n,):
        raise InvalidInputError(f"x0 must have {game.n} entries, got shape {x.shape}")
    hist: list[float] = []
    step = np.inf
    for it in range(1, max_iter + 1):
        x_prev = x.copy()
        base = x_prev if jacobi else x
        new = x.copy() if jacobi else x
        for i in range(game.N):
            left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                return BRIterate(Status.TIME_LIMIT, x_prev, it - 1, step, time.perf_counter() - t0, hist)
            y, _, st = pp.solve(i, base, time_limit=left)
            if y is None:
                msg = f"player {game.names[i]!r}'s program is {st.value} at the current profile"
                status = Status.TIME_LIMIT if st is Status.TIME_LIMIT else Status.ERROR
                return BRIterate(status, x_prev, it, step, time.perf_counter() - t0, hist, msg)
            new[game.block(i)] = y
        x = new
        step = float(np.abs(x - x_prev).max(initial=0.0))
        hist.append(step)
        if not np.all(np.isfinite(x)):
            return BRIterate(Status.ERROR, x_prev, it, step, time.perf_counter() - t0, hist, "diverged")
        if step <= tol * (1.0 + float(np.abs(x).max(initial=0.0))):
            return BRIterate(Status.OPTIMAL, x, it, step, time.perf_counter() - t0, hist)
    return BRIterate(
        Status.ITERATION_LIMIT, x, max_iter, step, time.perf_counter() - t0, hist, "no convergence"
    )


@dataclass
class BatchedReplies:
    """All players' programs (8) at one profile, stacked into ONE separable QP (block-diagonal
    Hessian, each shared row copied once per player it involves): its solution is every player's
    best response to ``x`` at once (a Jacobi step)."""

    H: sp.csr_array
    g: np.ndarray
    A: sp.csr_array
    rhs: np.ndarray
    Aeq: sp.csr_array
    rhs_eq: np.ndarray


def _per_player_rows(game: LQGame, Amat: sp.csr_array, x: np.ndarray) -> tuple[sp.csr_array, np.ndarray]:
    """Rows ``A[r, i-block]`` for every incidence pair (r, i) and their right-hand sides
    ``rhs − A[r, −i] x_{−i}`` (the right-hand side vector is passed separately)."""
    coo = sp.coo_array(Amat)
    key = coo.row.astype(np.int64) * game.N + game.owner[coo.col]
    uniq, inv = np.unique(key, return_inverse=True)
    Ab = sp.csr_array((coo.data, (inv, coo.col)), shape=(uniq.size, game.n))
    return Ab, uniq // game.N


def batched_replies(game: LQGame, x: np.ndarray) -> BatchedReplies:
    """The stacked program of every player's best response to ``x`` (vectorised build).

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> b = batched_replies(g, np.array([0.0, 2.0]))
    >>> b.H.toarray().tolist(), b.g.tolist()
    ([[2.0, 0.0], [0.0, 2.0]], [-7.0, -8.0])
    """
    M = sp.coo_array(game.M)
    own = game.owner[M.row] == game.owner[M.col]
    H = sp.csr_array((M.data[own], (M.row[own], M.col[own])), shape=(game.n, game.n))
    g = game.M @ x + game.q - H @ x
    Ab, rows = _per_player_rows(game, game.A, x)
    rhs = game.b[rows] - (game.A @ x)[rows] + Ab @ x
    Eb, rows_e = _per_player_rows(game, game.Aeq, x)
    rhs_eq = game.beq[rows_e] - (game.Aeq @ x)[rows_e] + Eb @ x
    return BatchedReplies(H, g, Ab, rhs, Eb, rhs_eq)


def solve_batched(
    game: LQGame, x: np.ndarray, *, solver: str = "auto", time_limit: float | None = None
) -> tuple[np.ndarray | None, np.ndarray, Status, BatchedReplies]:
    """Every player's best response to ``x`` in one QP: ``(y, per-player values, status, program)``.

    ``solver="auto"``: HiGHS QP (active set, exact vertices) up to n = 2000, Clarabel above (the
    active-set QP stalls on large programs, SOLVERS.md).
    """
    prog = batched_replies(game, x)
    use = solver if solver != "auto" else ("highs" if game.n <= 2000 else "clarabel")
    if use == "highs":
        A = block_matrix([[prog.A], [prog.Aeq]], format="csc")
        rl = np.concatenate([np.full(prog.A.shape[0], -INF), prog.rhs_eq])
        ru = np.concatenate([prog.rhs, prog.rhs_eq])
        h = highs_model(
            prog.g,
            game.lb,
            game.ub,
            A,
            rl,
            ru,
            H=prog.H,
            time_limit=time_limit,
            primal_feasibility_tolerance=1e-9,
            dual_feasibility_tolerance=1e-9,
        )
        out = run_highs(h)
    else:
        fl = np.flatnonzero(np.isfinite(game.lb))
        fu = np.flatnonzero(np.isfinite(game.ub))
        I = sp.eye_array(game.n, format="csr")
        Ale = sp.vstack([prog.A, -I[fl, :], I[fu, :]], format="csr")
        ble = np.concatenate([prog.rhs, -game.lb[fl], game.ub[fu]])
        out = clarabel_qp(prog.H, prog.g, prog.Aeq, prog.rhs_eq, Ale, ble, time_limit=time_limit, tol=1e-10)
    if out.x is None or not out.status.has_solution:
        return None, np.full(game.N, np.nan), out.status, prog
    y = out.x
    vals = np.zeros(game.N)
    np.add.at(vals, game.owner, 0.5 * y * (prog.H @ y) + prog.g * y)
    return y, vals, out.status, prog
