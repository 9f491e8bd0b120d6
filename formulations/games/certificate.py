"""The certificate of a candidate equilibrium of an LQ game, from any source.

:func:`certify_game` judges a profile ``x`` (and, if given, its multipliers) on the game alone:

- ``br_gap_max``: every player's best-response gap ``φ_i(x_i) − min_y φ_i(y)`` of program (8),
  obtained by RE-SOLVING the player's own QP with the others fixed (HiGHS QP, Clarabel fallback),
  relative to ``1 + |½x_iᵀH_ix_i| + |g_i|ᵀ|x_i|`` — this, not a replayed heuristic, judges ε-Nash;
- the KKT residuals (4)–(7) of :mod:`~datamarkets.formulations.games.kkt` — ``stationarity_max``,
  ``primal_feasibility_max`` (own bounds and the shared constraints), ``dual_feasibility_max``,
  ``complementarity_max`` — with the given multipliers, or with those recovered by the L1 LP of
  :func:`~datamarkets.formulations.games.kkt.recover_multipliers` when none are given;
- ``complementarity_min_max``: the largest ``min(multiplier / s_g, slack / s_r)`` over the
  inequality rows and finite bounds — complementarity measured *linearly* in the distance, where
  ``complementarity_max`` multiplies the two and so lets a variable sit ``d`` off a bound whose
  multiplier is tiny at a cost of only ``ν·d`` (with claimed multipliers; recovered ones only
  count a constraint as active within 1e-7, so they were already this strict);
- ``multiplier_spread_max`` (variational claims only) — the largest difference between two
  players' multipliers of one shared row, relative to the stationarity scale (0 when the
  multipliers are stored as common ones; a 2-d ``lambda`` is per player).

Tolerances (all relative to the stated scales): ``tol`` (default 1e-6) for every residual.

What passing means: ``x`` is an ε-KKT point and an ε-Nash profile, not a point within ε of the
equilibrium. At a degenerate vertex the two differ: a variable ``d`` above a bound whose multiplier
is ``ν`` costs only ``ν·d`` in the product complementarity and in the best-response gap (a
profile 3.8e-5 off with ``ν = 1.4e-3`` scored 6.5e-10 and 2.1e-8); ``complementarity_min_max``
scores it ``d`` relative to the row scale (3.8e-5, a failure at 1e-6). For a strongly monotone
game (``μ = λ_min(sym M) > 0``) up to n = :data:`PER_PLAYER_MAX_N` the details add the *proven* distance bound
``‖x − x*‖₂ ≤ (1 + L)/μ · ‖x − Π_X(x − F(x))‖₂`` (``L ≥ ‖M‖₂``; one projection QP)
as ``distance_bound`` — reported, not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from datamarkets.claims import compare_claim, not_checked, unlisted_fields
from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games.best_response import PlayerPrograms, solve_batched
from datamarkets.formulations.games.extragradient import Projector, lipschitz_constant
from datamarkets.formulations.games.kkt import Multipliers, kkt_residuals, recover_multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.result import Certificate
from datamarkets.status import Status
from datamarkets.validation import check_tolerances

__all__ = [
    "DEFAULT_TOL",
    "DISTANCE_EXACT_NORM_MAX_N",
    "PER_PLAYER_MAX_N",
    "best_response_gaps",
    "certify_game",
    "certify_game_solution",
    "complementarity_min",
    "distance_bound",
]

PER_PLAYER_MAX_N = 200
"""Largest n for which the certificate solves the players' QPs on HiGHS's active-set QP (exact
vertices; stacked into one QP, one player at a time when that fails) and adds the distance bound;
above, the stacked QP runs on Clarabel. (The name is kept from when each player had its own
model.)"""

DISTANCE_EXACT_NORM_MAX_N = 100
"""Up to this n the distance bound uses ``L = ‖M‖₂`` (dense SVD, < 1 ms); above, the proven bound
``min(√(‖M‖₁‖M‖∞), ‖M‖_F) ≥ ‖M‖₂`` (the SVD took 15–100 ms at n = 200, more than the rest of the
certificate)."""

DEFAULT_TOL = 1e-6
"""Default relative tolerance of every residual of the certificate."""


def best_response_gaps(
    game: LQGame, x: np.ndarray, programs: PlayerPrograms | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each player's best-response gap at ``x`` (absolute), its scale, and the solve statuses.

    A player whose program (8) cannot be solved (infeasible, unbounded) gets an infinite gap.
    All players' programs are stacked into one separable QP
    (:func:`~datamarkets.formulations.games.best_response.solve_batched`: its optimum is every
    player's own optimum) and solved by HiGHS's active-set QP (exact vertices) up to
    n = :data:`PER_PLAYER_MAX_N` — one model instead of N (n = 60, 6 players: 27 → 9 ms
    measured) — and by Clarabel above (n = 1000: 0.07 s against 6 s for the stack on HiGHS QP).
    When the stacked solve fails, or ``programs`` are given, each player's QP is solved on its
    own (HiGHS, Clarabel fallback). Clarabel's tolerance 1e-10 bounds the error of the computed
    gaps far below the certificate's 1e-6.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> gaps, _, _ = best_response_gaps(g, np.array([3.0, 2.0]))  # BRs 3.5 and 2.5: gaps (0.5)²
    >>> np.round(gaps, 12).tolist()
    [0.25, 0.25]
    """
    xs = np.asarray(x, dtype=float)
    if programs is None:
        solver = "highs" if game.n <= PER_PLAYER_MAX_N else "clarabel"
        y, vals, st, prog = solve_batched(game, xs, solver=solver)
        if y is not None and (st is Status.OPTIMAL or solver == "clarabel"):
            xv = np.zeros(game.N)
            np.add.at(xv, game.owner, 0.5 * xs * (prog.H @ xs) + prog.g * xs)
            scales = 1.0 + np.zeros(game.N)
            np.add.at(scales, game.owner, np.abs(0.5 * xs * (prog.H @ xs)) + np.abs(prog.g) * np.abs(xs))
            return xv - vals, scales, [f"batched-{solver}:{st.value}"] * game.N
    pp = programs or PlayerPrograms(game)
    gaps = np.empty(game.N)
    scales = np.empty(game.N)
    statuses = []
    for i in range(game.N):
        g, _, _ = pp.data(i, xs)
        xi = xs[game.block(i)]
        val_x = pp.value(i, xi, g)
        scales[i] = 1.0 + abs(0.5 * float(xi @ (pp.H[i] @ xi))) + float(np.abs(g) @ np.abs(xi))
        y, val_y, st = pp.solve(i, xs)
        statuses.append(st.value)
        gaps[i] = val_x - val_y if y is not None and st.has_solution else np.inf
    return gaps, scales, statuses


def complementarity_min(game: LQGame, x: np.ndarray, mult: Multipliers) -> float:
    """``max min(multiplier / s_g, slack⁺ / s_r)`` over shared inequalities and finite bounds.

    Scales as in :mod:`~datamarkets.formulations.games.kkt`: ``s_g = 1 + ‖Mx‖∞ + ‖q‖∞``, a row
    ``1 + |b_r| + Σ_j |A_rj x_j|``, a bound ``1 + |x_j| + |bound_j|``. Per-player multipliers count
    by their largest magnitude on the row. Infeasibility (negative slack) is judged elsewhere.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [np.eye(2), np.eye(2)], np.zeros((2, 2)), lb=0)
    >>> m = Multipliers(np.zeros(0), np.zeros(0), np.array([1.0, 0.0]), np.zeros(2), True)
    >>> round(complementarity_min(g, np.array([1e-3, 0.0]), m), 6)  # slack 1e-3 / (1 + 1e-3)
    0.000999
    """
    s_g = 1.0 + float(np.abs(game.M @ x).max(initial=0.0)) + float(np.abs(game.q).max(initial=0.0))
    lam = np.abs(mult.lam) if mult.lam.ndim == 1 else np.abs(mult.lam).max(axis=0, initial=0.0)
    slack = np.maximum(game.b - game.A @ x, 0.0) / (1.0 + np.abs(game.b) + abs(game.A) @ np.abs(x))
    parts = [np.minimum(lam / s_g, slack)]
    for bound, nu, sign in ((game.lb, mult.nu_lower, 1.0), (game.ub, mult.nu_upper, -1.0)):
        fin = np.isfinite(bound)
        sl = np.maximum(sign * (x[fin] - bound[fin]), 0.0) / (1.0 + np.abs(x[fin]) + np.abs(bound[fin]))
        parts.append(np.minimum(np.abs(nu[fin]) / s_g, sl))
    return float(np.concatenate(parts).max(initial=0.0))


def distance_bound(game: LQGame, x: np.ndarray) -> float | None:
    """A proven bound on ``‖x − x*‖₂`` for a strongly monotone game, else ``None``.

    With ``r = x − Π_X(x − F(x))`` (the natural map), μ-strong monotonicity and ``L ≥ ‖M‖₂``
    (exact up to n = :data:`DISTANCE_EXACT_NORM_MAX_N`) give
    ``μ‖x − x*‖² ≤ (F(x) − F(x*))ᵀ(x − x*) ≤ (L + 1)‖r‖‖x − x*‖`` (combine the projection's
    variational inequality at ``x*`` with the VI at ``x*``), so ``‖x − x*‖ ≤ (1 + L)/μ · ‖r‖``. Only
    up to n = :data:`PER_PLAYER_MAX_N` and when the projection QP (Clarabel, HiGHS fallback) solves.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> distance_bound(g, np.array([10 / 3, 7 / 3])) < 1e-12  # the equilibrium
    True
    >>> bool(np.hypot(1 / 30, 1 / 15) <= distance_bound(g, np.array([3.3, 2.4])))
    True
    """
    mu = game.monotonicity_min_eig
    if game.n > PER_PLAYER_MAX_N or not mu > 1e-9 * game.scale:
        return None
    y = Projector(game)(x - game.F(x))[1]
    if y is None:
        return None
    L = lipschitz_constant(game.M, exact_max_n=DISTANCE_EXACT_NORM_MAX_N)[0]
    return float((1.0 + L) / mu * np.linalg.norm(x - y))


def certify_game(
    game: LQGame,
    x: Any,
    multipliers: Multipliers | dict[str, Any] | None = None,
    *,
    variational: bool = True,
    tol: float = DEFAULT_TOL,
    programs: PlayerPrograms | None = None,
) -> Certificate:
    """Certificate of ``x`` as a (variational) generalized Nash equilibrium of ``game``.

    Parameters
    ----------
    game : LQGame
    x : array (n,)
        Stacked profile.
    multipliers : Multipliers or dict, optional
        Claimed multipliers (a dict with ``lambda``, ``mu``, ``nu_lower``, ``nu_upper`` as saved
        in a result); recovered by LP when omitted.
    variational : bool
        Judge a variational claim (common multipliers on shared constraints).
    tol : float
        Relative tolerance of every residual (scales in the module docstring).

    Returns
    -------
    Certificate
        Residuals ``br_gap_max``, ``stationarity_max``, ``primal_feasibility_max``,
        ``dual_feasibility_max``, ``complementarity_max``, ``complementarity_min_max``,
        ``multiplier_spread_max``; ``details`` has the per-player gaps, whether the multipliers
        were recovered and ``distance_bound`` (module docstring).

    Raises
    ------
    InvalidInputError
        ``x`` has the wrong size or is not finite.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> certify_game(g, [10 / 3, 7 / 3]).passed, certify_game(g, [3.3, 2.4]).passed
    (True, False)
    """
    if not isinstance(game, LQGame):
        raise InvalidInputError(f"game must be an LQGame, got {type(game).__name__!r}")
    check_tolerances(tol=tol)
    if multipliers is not None and not isinstance(multipliers, (Multipliers, Mapping)):
        raise InvalidInputError(
            f"multipliers must be Multipliers or a dict, got {type(multipliers).__name__!r}"
        )
    try:
        x = np.asarray(x, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"x is not numeric: {exc}") from exc
    if x.size != game.n or not np.all(np.isfinite(x)):
        raise InvalidInputError(
            f"x must be {game.n} finite numbers, got {x.size} (finite: {np.isfinite(x).all()})"
        )
    if isinstance(multipliers, dict):
        multipliers = Multipliers.from_solution(game, multipliers)
    recovered = multipliers is None
    if multipliers is None:
        multipliers = recover_multipliers(game, x, variational=variational)
    cert = Certificate()
    gaps, scales, statuses = best_response_gaps(game, x, programs)
    rel = gaps / scales
    cert.add("br_gap_max", float(np.max(rel, initial=0.0)), tol)
    res = kkt_residuals(game, x, multipliers)
    for name in (
        "stationarity_max",
        "primal_feasibility_max",
        "dual_feasibility_max",
        "complementarity_max",
    ):
        cert.add(name, res[name], tol)
    cert.add("complementarity_min_max", complementarity_min(game, x, multipliers), tol)
    if variational:  # equal multipliers on the shared constraints (0 when stored as common)
        cert.add("multiplier_spread_max", res["multiplier_spread_max"], tol)
    cert.details.update(
        distance_bound=distance_bound(game, x),
        br_gap=gaps.tolist(),
        br_gap_rel=rel.tolist(),
        br_status=statuses,
        multipliers_recovered=recovered,
        variational=variational,
        multiplier_spread_max=res["multiplier_spread_max"],
        where=res["where"],
    )
    return cert


_ROUTE_TRACE = {
    "gap_objective": "the route's own program value (potential or gap QP), not part of the equilibrium",
    "iterations": "the route's iteration count: a trace of the run, not re-derivable from the answer",
    "lipschitz_L": "the extragradient route's step constant: a trace of the run",
    "step": "the extragradient route's step size: a trace of the run",
    "natural_residual": "the first-order route's own stopping residual; the certificate judges x itself",
    "polish": "the first-order route's polishing record: a trace of the run",
    "last_step": "the best-response route's last step length: a trace of the run",
    "big_m_retries": "the milp route's big-M doublings: a trace of the run",
    "retries": "the milp route's big-M doublings: a trace of the run",
    "binaries": "the milp route's count of switch variables: a trace of the run",
    "binaries_free": "the milp route's count of unfixed switches: a trace of the run",
    "lambda_bound_max": "the milp route's largest proven multiplier bound: a trace of the run",
    "bounds_proven": "the milp route's record of whether its big-M bounds were proven: a trace of the run",
    "equilibria": "further equilibria of the milp enumeration: only the first, x, is certified",
}


def certify_game_solution(game: LQGame, solution: dict[str, Any], *, tol: float = DEFAULT_TOL) -> Certificate:
    """The one certificate of a saved ``game`` result: :func:`certify_game` of its ``x`` with its
    multipliers, plus every other number the result reports recomputed and compared.

    ``x_players`` (the blocks of ``x``), ``players`` (names), ``costs`` (each player's cost at
    ``x``), ``objective`` (their sum) and ``monotonicity_min_eig`` (of the game) are recomputed
    (``claimed_<field>_rel``, relative 1e-9; the eigenvalue relative to the game's scale);
    ``variational`` selects the claim judged (common multipliers); the multipliers are judged by
    the KKT residuals; the routes' traces (iteration counts, step sizes, the route's program value)
    are listed under ``details["not_checked"]`` with the reason. :func:`solve_game` and the
    ``lq-game`` formulation (``verify``) both apply it, so one answer gets one certificate.

    Raises
    ------
    InvalidInputError
        No ``x`` or malformed multipliers.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> sol = {"x": [10 / 3, 7 / 3], "objective": -16.5}
    >>> c = certify_game_solution(g, sol)
    >>> c.passed, c.residuals["claimed_objective_rel"] > 1e-3
    (False, True)
    """
    if "x" not in solution:
        raise InvalidInputError("a game solution needs 'x'")
    mult = Multipliers.from_solution(game, dict(solution))
    cert = certify_game(
        game, solution["x"], mult, variational=bool(solution.get("variational", True)), tol=tol
    )
    x = np.asarray(solution["x"], dtype=float).reshape(-1)  # finite and of size n: certify_game checked
    costs = [game.cost(i, x) for i in range(game.N)]
    compare_claim(cert, solution, "x_players", [b.tolist() for b in game.split(x)])
    compare_claim(cert, solution, "players", list(game.names))
    compare_claim(cert, solution, "costs", costs)
    compare_claim(cert, solution, "objective", float(np.sum(costs)))
    compare_claim(cert, solution, "monotonicity_min_eig", game.monotonicity_min_eig, floor=game.scale)
    for key, why in _ROUTE_TRACE.items():
        if key in solution:
            not_checked(cert, key, why)
    checked = {"x", "x_players", "players", "costs", "objective", "monotonicity_min_eig", "variational"}
    unlisted_fields(cert, solution, checked | {"lambda", "mu", "nu_lower", "nu_upper"})
    return cert
