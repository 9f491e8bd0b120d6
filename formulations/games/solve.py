"""``solve_game``: one entry point over the routes, one :class:`~datamarkets.result.Result`, and the
``lq-game`` formulation plug-in (``datamarkets solve lq-game``, ``verify``, ``bench solvers``, ``sweep``).

Routes (``method``):

- ``"vi"`` — monotone games: the potential QP (10) or the gap QP (11); returns the variational
  equilibrium and its common multipliers (Clarabel, or HiGHS QP with ``qp_solver="highs"``);
- ``"extragradient"`` / ``"projection"`` — monotone games: Korpelevich's extragradient (τ = 0.9/L)
  or the projection method (strongly monotone, τ = μ/L²) with a proven step, projecting onto the
  joint feasible set; the final projection's duals are the common multipliers (a VE); reports μ,
  L, the step, iterations and the natural residual;
- ``"milp"`` — the KKT MILP with derived big-M bounds (any game, small n; ``enumerate=k``);
- ``"best_response"`` (Gauss–Seidel) / ``"jacobi"`` — iterate the players' own QPs; with shared
  constraints a fixed point is *a* GNE, so the claim is judged as non-variational;
- ``"auto"`` — vi when monotone, else milp when ``n ≤ MILP_AUTO_MAX_N``, else best_response. (The
  vi route's one convex QP is exact and faster than the first-order routes on every game measured,
  see docs/games.md, so auto never picks extragradient.)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.formulation import Formulation, check_params
from datamarkets.formulations.games.best_response import PlayerPrograms, best_response_iteration
from datamarkets.formulations.games.certificate import DEFAULT_TOL, certify_game_solution
from datamarkets.formulations.games.extragradient import solve_extragradient
from datamarkets.formulations.games.generate import random_lq_game
from datamarkets.formulations.games.kkt import Multipliers, recover_multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.milp import solve_kkt_milp
from datamarkets.formulations.games.vi import feasible_point, solve_vi
from datamarkets.result import Certificate, Result
from datamarkets.solvers import Deadline, available_solvers
from datamarkets.status import Status
from datamarkets.validation import check_integer, check_time_limit, check_tolerances, real_array

__all__ = ["METHODS", "MILP_AUTO_MAX_N", "LQGameFormulation", "game_solution", "solve_game"]

METHODS = ("auto", "vi", "extragradient", "projection", "milp", "best_response", "jacobi")
MILP_AUTO_MAX_N = 200
"""Largest n for which ``method="auto"`` picks the MILP for a non-monotone game."""


def game_solution(
    game: LQGame, x: np.ndarray, mult: Multipliers | None, *, route: str, variational: bool
) -> dict[str, Any]:
    """The solution dict of a game result: ``x``, ``x_players``, multipliers, objective."""
    sol: dict[str, Any] = {
        "x": np.asarray(x, dtype=float).tolist(),
        "x_players": [b.tolist() for b in game.split(np.asarray(x, dtype=float))],
        "players": list(game.names),
        "route": route,
        "variational": bool(variational),
        "costs": [game.cost(i, x) for i in range(game.N)],
    }
    sol["objective"] = float(np.sum(sol["costs"]))
    if mult is not None:
        sol.update(mult.to_solution())
    return sol


def _choose(game: LQGame, method: str, monotone_tol: float) -> tuple[str, str]:
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    e = game.monotonicity_min_eig
    if method != "auto":
        return method, "requested"
    if e >= -monotone_tol * game.scale:
        kind = "potential game (M symmetric)" if game.is_potential else "monotone game"
        return "vi", f"{kind}: min eig sym(M) = {e:.6g} ≥ 0"
    if game.n <= MILP_AUTO_MAX_N:
        return "milp", f"not monotone (min eig sym(M) = {e:.6g}) and n = {game.n} ≤ {MILP_AUTO_MAX_N}"
    return "best_response", f"not monotone (min eig sym(M) = {e:.6g}) and n = {game.n} > {MILP_AUTO_MAX_N}"


def _mip_start(
    game: LQGame,
    mip_start: str,
    fixed_big_m: float | None,
    variational: bool,
    monotone_tol: float,
    deadline: Deadline,
    timings: dict[str, float],
) -> tuple[tuple[np.ndarray, Multipliers] | None, str]:
    """The milp route's start: the vi route's answer when asked for (``"auto"``: a monotone game,
    variational mode — with per-player multipliers the start's vertex can sit on an unproven bound)."""
    monotone = game.monotonicity_min_eig >= -monotone_tol * game.scale
    if mip_start == "none" or (
        mip_start == "auto" and (fixed_big_m is not None or not monotone or not variational)
    ):
        return None, "none"
    t0 = time.perf_counter()  # mip_start="vi" on a non-monotone game: NonConvexGameError
    out = solve_vi(game, time_limit=deadline.solver_limit(), monotone_tol=monotone_tol)
    timings["mip_start_seconds"] = time.perf_counter() - t0
    if not out.status.has_solution or out.x is None or out.multipliers is None:
        return None, "none"
    return (out.x, out.multipliers), "vi"


def solve_game(
    game: LQGame,
    method: str = "auto",
    *,
    variational: bool = True,
    time_limit: float | None = None,
    tol: float = DEFAULT_TOL,
    enumerate: int = 0,
    qp_solver: str = "clarabel",
    max_iter: int | None = None,
    x0: Any = None,
    fixed_big_m: float | None = None,
    monotone_tol: float = 1e-9,
    certify: bool = True,
    mip_start: str = "auto",
) -> Result:
    """An equilibrium of ``game`` by the chosen route, with its certificate.

    Parameters
    ----------
    game : LQGame
    method : {"auto", "vi", "extragradient", "projection", "milp", "best_response", "jacobi"}
    variational : bool
        Ask for the variational equilibrium (common multipliers on the shared constraints).
        The vi route always returns it; best-response routes return *a* GNE and their claim is
        judged as variational only when there are no shared constraints.
    time_limit : float, optional
        Seconds for the route (the certificate is not limited).
    tol : float
        Relative tolerance of the certificate's residuals.
    enumerate : int
        milp route: find up to this many distinct equilibria (``solution["equilibria"]``).
    qp_solver : {"clarabel", "highs"}
        vi route's QP solver; the projection QP's solver of the extragradient / projection routes.
    max_iter : int, optional
        Best-response sweeps; extragradient / projection iterations (``None``: 1000 sweeps,
        100,000 iterations).
    x0 : array, optional
        Best-response, extragradient or projection start.
    fixed_big_m : float, optional
        milp route: blind constant big-M (benchmark baseline only).
    monotone_tol : float
        Monotonicity test tolerance (relative to the data scale).
    certify : bool
        Attach the certificate (:func:`~datamarkets.formulations.games.certificate.certify_game_solution`).
    mip_start : {"auto", "vi", "none"}
        milp route: ``"vi"`` first solves the vi route and fixes the switches its answer implies
        in a first solve of the MILP (an LP; the answer returned is still the MILP's);
        ``"auto"`` does so on monotone games with ``variational=True`` (not with
        ``fixed_big_m``); ``"none"``: cold.

    Returns
    -------
    Result
        ``kind="game"``; ``solution`` has ``x``, ``x_players``, ``lambda``, ``mu``, ``nu_lower``,
        ``nu_upper``, ``route``, ``route_reason``, ``monotonicity_min_eig``, ``iterations``;
        ``instance`` is the game's dict. Infeasible shared constraints → ``INFEASIBLE``; no
        equilibrium found → ``NO_EQUILIBRIUM``; limits → ``TIME_LIMIT`` / ``ITERATION_LIMIT``.

    Raises
    ------
    InvalidInputError
        Unknown method or option.
    NonConvexGameError
        ``method="vi"`` or ``"extragradient"`` on a non-monotone game, ``"projection"`` on one
        that is not strongly monotone.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, A=[[1, 1]], b=[5])
    >>> r = solve_game(g)
    >>> np.round(r.solution["x"], 6).tolist(), np.round(r.solution["lambda"], 6).tolist(), r.certified
    ([3.0, 2.0], [1.0], True)
    """
    if not isinstance(game, LQGame):
        raise InvalidInputError(
            f"game must be an LQGame (see lq_game, LQGame.from_dict), got {type(game).__name__!r}"
        )
    check_tolerances(tol=tol, monotone_tol=monotone_tol, fixed_big_m=fixed_big_m)
    check_integer(enumerate, "enumerate", 0)
    if x0 is not None:
        x0 = real_array(x0, "x0").reshape(-1)
        if x0.size != game.n or not np.all(np.isfinite(x0)):
            raise InvalidInputError(f"x0 must hold {game.n} finite numbers, got shape {np.shape(x0)}")
    if max_iter is not None:
        check_integer(max_iter, "max_iter", 1)
    t0 = time.perf_counter()
    deadline = Deadline(check_time_limit(time_limit, "time_limit"), start=t0)  # route choice counts too
    route, reason = _choose(game, method, monotone_tol)
    if mip_start not in ("auto", "vi", "none"):
        raise InvalidInputError(f"mip_start must be 'auto', 'vi' or 'none', got {mip_start!r}")
    timings: dict[str, float] = {}
    meta: dict[str, Any] = {"route_reason": reason}
    extra: dict[str, Any] = {
        "route": route,
        "route_reason": reason,
        "monotonicity_min_eig": game.monotonicity_min_eig,
    }
    x: np.ndarray | None = None
    mult: Multipliers | None = None
    claim_variational = variational
    status = Status.ERROR
    iterations = 0
    equilibria: list[list[float]] | None = None
    timings["build_seconds"] = time.perf_counter() - t0  # the game's matrices and spectrum
    t1 = time.perf_counter()
    time_limit = deadline.solver_limit()  # what is left for the route
    if route == "vi":
        out = solve_vi(game, qp_solver=qp_solver, time_limit=time_limit, monotone_tol=monotone_tol)
        status, x, mult = out.status, out.x, out.multipliers
        extra["program"] = out.program
        extra["gap_objective"] = out.objective
        iterations = int(out.extra.get("iterations", 0) or 0)
        claim_variational = True
        method_name = f"vi-{out.program}-{qp_solver}"
        if status.group.value == "infeasible_or_unbounded":
            st, _ = feasible_point(game)
            status = Status.INFEASIBLE if st is Status.INFEASIBLE else Status.NO_EQUILIBRIUM
    elif route in ("extragradient", "projection"):
        eg = solve_extragradient(
            game,
            scheme=route,
            x0=x0,
            max_iter=100_000 if max_iter is None else max_iter,
            time_limit=time_limit,
            monotone_tol=monotone_tol,
            qp_solver=qp_solver,
        )
        status, iterations = eg.status, eg.iterations
        extra.update(
            lipschitz_L=eg.L,
            lipschitz_how=eg.extra.get("lipschitz"),
            step=eg.step,
            natural_residual=eg.residual,
        )
        if "polish" in eg.extra:
            extra["polish"] = eg.extra["polish"]
        if eg.message:
            extra["message"] = eg.message
        claim_variational = True
        if status.has_solution:
            x, mult = eg.x, eg.multipliers
        elif status in (Status.TIME_LIMIT, Status.ITERATION_LIMIT) and eg.x is not None:
            extra["last_iterate"] = eg.x.tolist()
        method_name = f"vi-{route}-{qp_solver}"
    elif route == "milp":
        start, meta["mip_start"] = _mip_start(
            game, mip_start, fixed_big_m, variational, monotone_tol, deadline, timings
        )
        out_m = solve_kkt_milp(
            game,
            variational=variational,
            enumerate=enumerate,
            time_limit=deadline.solver_limit(),
            fixed_big_m=fixed_big_m,
            start=start,
        )
        status = out_m.status
        extra.update(bounds_proven=out_m.bounds_proven, big_m_retries=out_m.retries, **out_m.extra)
        timings.update(out_m.seconds)
        if out_m.message:
            extra["message"] = out_m.message
        if out_m.equilibria:
            x, mult = out_m.equilibria[0]
            if enumerate:
                equilibria = [e.tolist() for e, _ in out_m.equilibria]
        method_name = "kkt-milp-highs" + ("-fixed-big-m" if fixed_big_m is not None else "")
    else:
        pp = PlayerPrograms(game)
        br = best_response_iteration(
            game,
            x0,
            jacobi=route == "jacobi",
            max_iter=1000 if max_iter is None else max_iter,
            time_limit=time_limit,
            programs=pp,
        )
        status, iterations = br.status, br.iterations
        extra["last_step"] = br.step
        if br.message:
            extra["message"] = br.message
        claim_variational = variational and game.m + game.p == 0
        if status.has_solution:
            x = br.x
            mult = recover_multipliers(game, x, variational=claim_variational)
        elif status in (Status.TIME_LIMIT, Status.ITERATION_LIMIT):
            extra["last_iterate"] = br.x.tolist()
        method_name = "best-response-" + ("jacobi" if route == "jacobi" else "gauss-seidel")
    timings["solve_seconds"] = time.perf_counter() - t1
    extra["iterations"] = iterations
    solution: dict[str, Any] = dict(extra)
    if x is not None and status.has_solution:
        solution.update(game_solution(game, x, mult, route=route, variational=claim_variational))
        if equilibria is not None:
            solution["equilibria"] = equilibria
    cert = Certificate()
    if certify and x is not None and status.has_solution:
        t2 = time.perf_counter()
        cert = certify_game_solution(game, solution, tol=tol)  # the one certificate (verify's too)
        timings["certify_seconds"] = time.perf_counter() - t2
    instance = game.to_dict()  # before the clock is read: returning the answer is part of the work
    if status.has_solution and deadline.overran():
        # never "optimal" after overrunning the limit: the answer is kept, the status says what happened
        meta["status_before_time_limit"] = status.value
        meta["message"] = f"took {deadline.elapsed():.3g} s, over the time limit of {deadline.seconds:g} s"
        status = Status.TIME_LIMIT
    res = Result(
        kind="game",
        status=status,
        method=method_name,
        solution=solution,
        certificate=cert,
        timings=timings,
        meta=meta,
    )
    res.instance = instance
    return res


class LQGameFormulation(Formulation):
    """Linear-quadratic (generalized) Nash games as a formulation plug-in.

    Instances are :class:`~datamarkets.formulations.games.lq.LQGame` objects; :meth:`instance`
    generates a random strongly monotone game with shared constraints
    (:func:`~datamarkets.formulations.games.generate.random_lq_game`). The solver picks the QP
    solver of the default route (``auto``: vi for monotone games).

    Examples
    --------
    >>> f = LQGameFormulation()
    >>> r = f.solve(f.generate(20, 0))
    >>> r.kind, r.certified
    ('game', True)
    """

    name = "lq-game"
    summary = "Linear-quadratic generalized Nash games: VI / KKT-MILP / best-response routes, one certificate"
    kinds = ("game",)
    solvers = ("clarabel", "highs")
    size_meaning = "variables n (players = max(2, n // 10), shared rows = max(1, n // 20))"
    parameters: ClassVar[dict[str, Any]] = {
        "size": 20,
        "players": 0,
        "shared": -1,
        "seed": 0,
        "method": "auto",
    }
    tol: float = DEFAULT_TOL

    def instance(self, params: Mapping[str, Any]) -> Any:

        p = check_params(self.name, params, self.parameters)
        if p["method"] not in METHODS:
            raise InvalidInputError(f"unknown method {p['method']!r}; choose one of {', '.join(METHODS)}")
        game = random_lq_game(
            int(p["size"]),
            players=int(p["players"]) or None,
            seed=int(p["seed"]),
            shared=None if int(p["shared"]) < 0 else int(p["shared"]),
        )
        return game

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        return instance.to_dict()

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        return LQGame.from_dict(d)

    def build(self, instance: Any, solver: str) -> Any:
        """The game itself (its pseudo-gradient and spectrum are computed here)."""
        _ = instance.M, instance.monotonicity_min_eig
        return (instance, solver)

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:

        game, _ = program
        res = solve_game(game, "auto", qp_solver=solver, time_limit=time_limit, certify=False)
        res.instance = None
        res.meta["solvers"] = {
            solver: available_solvers().get(solver) or "",
            "highs": available_solvers()["highs"],
        }
        return res

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        return certify_game_solution(instance, dict(solution), tol=self.tol)
