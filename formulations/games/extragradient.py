"""Variational equilibria of monotone LQ games by projection methods with a proven step size.

The variational equilibrium solves the affine VI ``F(x)ᵀ(y − x) ≥ 0 ∀ y ∈ X`` with ``F(x) = M x + q``
and X the joint feasible set (own bounds, shared rows). With ``Π`` the Euclidean projection onto X
(a QP per projection on Clarabel, or HiGHS; a clip when X is a box) and ``L = ‖M‖₂`` the
Lipschitz constant of F:

- **extragradient** (Korpelevich 1976): ``y = Π(x − τF(x))``, ``x⁺ = Π(x − τF(y))`` converges for
  every *monotone* F (``μ = λ_min(sym M) ≥ 0``) when ``0 < τ < 1/L``; the step is ``τ = 0.9/L``;
- **projection** (Sibony 1970): ``x⁺ = Π(x − τF(x))`` is a contraction with factor
  ``√(1 − 2τμ + τ²L²) < 1`` for a *strongly* monotone F when ``0 < τ < 2μ/L²``; the step is
  ``τ = μ/L²`` (the factor's minimiser, ``√(1 − μ²/L²)``).

A fixed point of ``Π(x − τF(x))`` is a solution of the VI. The stopping test is the natural residual
``‖x − Π(x − τF(x))‖∞ / τ ≤ tol · (1 + ‖q‖∞ + ‖M x‖∞)``. The last projection's duals, divided by τ,
are the common multipliers of the shared rows (stationarity of the projection QP at its fixed point
is ``τF(x) + Gᵀz = 0``): a variational equilibrium. The answer is then polished on its active face
(:func:`~datamarkets.formulations.games.vi.polish_vi`), kept only when no worse.

``L`` is the exact spectral norm up to n = :data:`EXACT_NORM_MAX_N`; above, the proven upper bound
``min(√(‖M‖₁‖M‖∞), ‖M‖_F)`` (a smaller step, still inside the proven range).

References
----------
G. M. Korpelevich, The extragradient method for finding saddle points and other problems,
Ekonomika i Matematicheskie Metody 12 (1976) 747–756. F. Facchinei and J.-S. Pang, Finite-Dimensional
Variational Inequalities and Complementarity Problems, Springer 2003, §12.1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games._backend import INF, clarabel_qp, run_highs
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.vi import (
    feasible_point,
    joint_constraints,
    multipliers_from_highs,
    polish_vi,
)
from datamarkets.solvers import highs_model
from datamarkets.sparse_blocks import block_matrix, selection_rows
from datamarkets.status import Status

__all__ = ["EXACT_NORM_MAX_N", "EGOut", "Projector", "lipschitz_constant", "solve_extragradient"]

EXACT_NORM_MAX_N = 400
"""Largest n for which ``L = ‖M‖₂`` is computed exactly (dense SVD); above, a proven upper bound."""

SCHEMES = ("extragradient", "projection")


@dataclass
class EGOut:
    """Outcome of :func:`solve_extragradient`."""

    status: Status
    x: np.ndarray | None
    multipliers: Multipliers | None
    scheme: str
    iterations: int
    residual: float
    mu: float
    L: float
    step: float
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def lipschitz_constant(M: sp.sparray, exact_max_n: int = EXACT_NORM_MAX_N) -> tuple[float, str]:
    """``‖M‖₂`` (dense SVD up to ``exact_max_n``, default :data:`EXACT_NORM_MAX_N`) or the proven
    bound ``min(√(‖M‖₁‖M‖∞), ‖M‖_F)`` above; returns the value and how it was obtained.

    Examples
    --------
    >>> lipschitz_constant(sp.csr_array(np.array([[3.0, 0.0], [4.0, 0.0]])))
    (5.0, 'exact')
    """
    n = M.shape[0]
    if n == 0:
        return 0.0, "exact"
    if n <= exact_max_n:
        return float(np.linalg.norm(sp.csr_array(M).toarray(), 2)), "exact"
    Ma = abs(sp.csr_array(M))
    one = float(Ma.sum(axis=0).max())
    inf = float(Ma.sum(axis=1).max())
    fro = float(np.sqrt((Ma.data**2).sum()))
    return min(np.sqrt(one * inf), fro), "bound"


class Projector:
    """Euclidean projection onto the joint feasible set X of a game, with its multipliers.

    A box (no shared rows) is a clip; otherwise the QP ``min ½‖y‖² − vᵀy`` over X on Clarabel
    (default: interior point, tolerance 1e-10, a few sparse factorisations) or HiGHS (active set,
    exact vertices, but measured ~1.5 s per projection at n = 1000 against milliseconds for Clarabel;
    a warm re-run of one HiGHS object with a new cost was no faster and its clock counts across runs,
    so each call builds a fresh model).
    """

    def __init__(self, game: LQGame, *, time_limit: float | None = None, solver: str = "clarabel") -> None:
        if solver not in ("clarabel", "highs"):
            raise InvalidInputError(f"projection solver must be 'clarabel' or 'highs', got {solver!r}")
        self.game = game
        self.box = game.m + game.p == 0
        self.time_limit = time_limit
        self.solver = solver
        if not self.box:
            self.A = block_matrix([[game.A], [game.Aeq]], format="csc")
            self.rl = np.concatenate([np.full(game.m, -INF), game.beq])
            self.ru = np.concatenate([game.b, game.beq])
            self.H = selection_rows(np.arange(game.n), game.n).tocsc()
            self.G, self.h, self.fl, self.fu = joint_constraints(game)

    def __call__(self, v: np.ndarray) -> tuple[Status, np.ndarray | None, Multipliers | None]:
        """``Π(v)`` and the multipliers ``z`` of ``y − v + Gᵀz = 0`` (scaled by 1, not by τ)."""
        g = self.game
        v = np.asarray(v, dtype=float)
        if self.box:
            y = np.clip(v, g.lb, g.ub)
            d = y - v
            mult = Multipliers(np.zeros(0), np.zeros(0), np.maximum(d, 0.0), np.maximum(-d, 0.0), True)
            return Status.OPTIMAL, y, mult
        if self.solver == "clarabel":
            out = clarabel_qp(self.H, -v, g.Aeq, g.beq, self.G, self.h, time_limit=self.time_limit, tol=1e-10)
            if out.status in (Status.ITERATION_LIMIT, Status.ERROR, Status.OPTIMAL_INACCURATE):
                return self._highs(v)  # Clarabel stalled at 1e-10 (seen at n = 4): active set
            if not out.status.has_solution or out.x is None or out.row_dual is None:
                return out.status, None, None
            z = out.row_dual[g.p :]
            m, kl = g.m, self.fl.size
            nl, nu = np.zeros(g.n), np.zeros(g.n)
            nl[self.fl] = np.maximum(z[m : m + kl], 0.0)
            nu[self.fu] = np.maximum(z[m + kl :], 0.0)
            mult = Multipliers(np.maximum(z[:m], 0.0), out.row_dual[: g.p].copy(), nl, nu, True)
            return out.status, out.x, mult
        return self._highs(v)

    def _highs(self, v: np.ndarray) -> tuple[Status, np.ndarray | None, Multipliers | None]:
        g = self.game
        h = highs_model(
            -v,
            g.lb,
            g.ub,
            self.A,
            self.rl,
            self.ru,
            H=self.H,
            time_limit=self.time_limit,
            primal_feasibility_tolerance=1e-10,
            dual_feasibility_tolerance=1e-10,
        )
        out = run_highs(h)
        if not out.status.has_solution or out.x is None or out.row_dual is None or out.col_dual is None:
            return out.status, None, None
        return out.status, out.x, multipliers_from_highs(g, out.row_dual, out.col_dual)

    def set_time_limit(self, seconds: float | None) -> None:
        """Cap the next projection's HiGHS run at ``seconds``."""
        self.time_limit = None if seconds is None else max(float(seconds), 1e-3)


def _scaled(m: Multipliers, tau: float) -> Multipliers:
    return Multipliers(m.lam / tau, m.mu / tau, m.nu_lower / tau, m.nu_upper / tau, True)


def solve_extragradient(
    game: LQGame,
    *,
    scheme: str = "extragradient",
    x0: Any = None,
    tol: float = 1e-9,
    max_iter: int = 100_000,
    time_limit: float | None = None,
    monotone_tol: float = 1e-9,
    polish: bool = True,
    qp_solver: str = "clarabel",
) -> EGOut:
    """The variational equilibrium of a monotone LQ game by extragradient or projection steps.

    Parameters
    ----------
    game : LQGame
    scheme : {"extragradient", "projection"}
        Extragradient needs a monotone game (τ = 0.9/L); projection a strongly monotone one
        (τ = μ/L²). See the module docstring for the proofs cited.
    x0 : array (n,), optional
        Start (projected onto X); default a feasible point found by LP.
    tol : float
        Natural-residual tolerance, relative to ``1 + ‖q‖∞ + ‖M x‖∞``.
    max_iter : int
        Iterations (an extragradient iteration costs two projections).
    time_limit : float, optional
        Seconds; the clock is read between iterations.
    monotone_tol : float
        Monotone when ``μ ≥ −monotone_tol·scale``.
    polish : bool
        Polish the answer on its active face (:func:`~datamarkets.formulations.games.vi.polish_vi`).
    qp_solver : {"clarabel", "highs"}
        Solver of the projection QP (:class:`Projector`).

    Returns
    -------
    EGOut
        ``status`` (``OPTIMAL``, ``INFEASIBLE``, ``TIME_LIMIT``, ``ITERATION_LIMIT``), ``x`` (the
        last iterate also on a limit), common multipliers, ``iterations``, natural ``residual``,
        ``mu`` (smallest eigenvalue of sym(M)), ``L``, ``step``.

    Raises
    ------
    NonConvexGameError
        The game is not monotone (``μ < −monotone_tol·scale``), or ``scheme="projection"`` on a game
        that is not strongly monotone.
    InvalidInputError
        Unknown scheme, ``tol ≤ 0``, ``max_iter < 1`` or a malformed ``x0``.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, A=[[1, 1]], b=[5])
    >>> out = solve_extragradient(g)
    >>> np.round(out.x, 9).tolist(), np.round(out.multipliers.lam, 9).tolist(), out.status.value
    ([3.0, 2.0], [1.0], 'optimal')
    """
    t0 = time.perf_counter()
    if scheme not in SCHEMES:
        raise InvalidInputError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if not (np.isfinite(tol) and tol > 0):
        raise InvalidInputError(f"tol must be a positive number, got {tol!r}")
    if int(max_iter) < 1:
        raise InvalidInputError(f"max_iter must be ≥ 1, got {max_iter!r}")
    mu = float(game.monotonicity_min_eig)
    if mu < -monotone_tol * game.scale:
        raise NonConvexGameError(
            f"the {scheme} route needs a monotone game: smallest eigenvalue of sym(M) is {mu:.6g} < 0"
        )
    L, how = lipschitz_constant(game.M)
    if scheme == "projection" and mu <= monotone_tol * game.scale:
        raise NonConvexGameError(
            f"the projection scheme needs a strongly monotone game (μ > 0), got μ = {mu:.6g}; "
            "use scheme='extragradient'"
        )
    extra: dict[str, Any] = {"lipschitz": how}
    if L == 0.0:  # F constant: one projection of −q decides (x = Π(x − q) for any step)
        L = 1.0
    step = 0.9 / L if scheme == "extragradient" else mu / L**2
    if scheme == "projection":
        extra["contraction"] = float(np.sqrt(max(1.0 - (mu / L) ** 2, 0.0)))

    def remaining() -> float | None:
        return None if time_limit is None else time_limit - (time.perf_counter() - t0)

    def out(
        status: Status, x: np.ndarray | None, mult: Multipliers | None, it: int, res: float, msg: str = ""
    ) -> EGOut:
        extra["seconds"] = time.perf_counter() - t0
        return EGOut(status, x, mult, scheme, it, res, mu, L, step, msg, extra)

    if x0 is None:
        st, x = feasible_point(game, time_limit=remaining())
        if x is None:
            return out(
                st,
                None,
                None,
                0,
                float("nan"),
                "the joint feasible set is empty" if st is Status.INFEASIBLE else "",
            )
    else:
        try:
            x = np.asarray(x0, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"x0 is not numeric: {exc}") from exc
        if x.size != game.n or not np.all(np.isfinite(x)):
            raise InvalidInputError(f"x0 must be {game.n} finite numbers")
    proj = Projector(game, time_limit=remaining(), solver=qp_solver)
    M, q = game.M, game.q
    qn = float(np.abs(q).max(initial=0.0))
    res = float("inf")
    mult: Multipliers | None = None
    for it in range(1, int(max_iter) + 1):
        left = remaining()
        if left is not None and left <= 0:
            extra["last_residual"] = res
            return out(Status.TIME_LIMIT, x, None, it - 1, res, f"time limit after {it - 1} iterations")
        proj.set_time_limit(left)
        Mx = M @ x
        st, y, my = proj(x - step * (Mx + q))
        if y is None or my is None:
            if st is Status.INFEASIBLE or st.group.value == "infeasible_or_unbounded":
                return out(Status.INFEASIBLE, None, None, it, res, "the joint feasible set is empty")
            return out(st, x, None, it - 1, res, f"projection QP: {st.value}")
        res = float(np.abs(x - y).max(initial=0.0)) / step
        if res <= tol * (1.0 + qn + float(np.abs(Mx).max(initial=0.0))):
            x, mult = y, _scaled(my, step)  # y = Π(x − τF(x)) ≈ x: its duals / τ
            break
        if scheme == "extragradient":
            st, xn, _ = proj(x - step * (M @ y + q))
            if xn is None:
                return out(st, x, None, it, res, f"projection QP: {st.value}")
            x = xn
        else:
            x = y
    else:
        return out(Status.ITERATION_LIMIT, x, None, int(max_iter), res, f"{max_iter} iterations")
    assert mult is not None
    if polish:
        x, mult, info = polish_vi(game, x, mult)
        extra["polish"] = info
    return out(Status.OPTIMAL, x, mult, it, res)
