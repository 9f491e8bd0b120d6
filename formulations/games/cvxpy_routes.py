r"""Routes and certificate for cvxpy games: best-response iteration and the two-sided gap certificate.

**Best responses** (Gauss–Seidel or Jacobi): each sweep re-solves every player's compiled program
with Clarabel, the others' parameters set to the current (Gauss–Seidel: newest) profile; optional
damping :math:`x_i \leftarrow (1-\omega) BR_i + \omega x_i`. It stops when the relative step
:math:`\|x^{t+1} - x^t\|_\infty / \max(1, \|x^t\|_\infty) \le` ``tol`` **and** the certificate's
best-response gap is within ``gap_tol``; otherwise the status is ``ITERATION_LIMIT`` or
``TIME_LIMIT`` — never ``OPTIMAL``. With shared constraints it computes *a* generalized Nash
equilibrium (each player faces the shared constraints with the others fixed), not the variational
one: ``variational=True`` for a non-LQ game with shared constraints raises
:class:`~datamarkets.formulations.games.cvxpy_players.UnsupportedGameError` (a variational
equilibrium of a conic game needs a joint fixed point on the shared multipliers, not implemented);
for LQ games ``method="auto"`` defers to the LQ layer, which offers it.

**Certificate** (:func:`certify_cvxpy_game`, any candidate :math:`x`). For each player, with
:math:`f_i(x)` its cost at :math:`x`, the re-solve of its own program with the others fixed at
:math:`x` gives a primal optimum :math:`p_i` and a Wolfe dual value :math:`d_i` (canonical form,
:mod:`~datamarkets.formulations.games.cvxpy_kkt`), so

.. math:: f_i(x) - d_i \;\ge\; f_i(x) - \min_{x_i'} f_i(x_i', x_{-i}) \;\ge\; f_i(x) - p_i,

up to the dual residual (stationarity and :math:`y \in K^*`, reported as ``dual_feasibility_max``)
and the re-solve's primal residual. ``br_gap_max`` is the upper bound divided by
:math:`\max(1, |f_i(x)|)`. ``primal_feasibility_max`` is the largest violation of any player's own
constraints, sign attributes and the shared constraints at :math:`x` (cvxpy
``constraint.violation()``) divided by :math:`1 + \|x\|_\infty`.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games.cvxpy_kkt import conic_kkt
from datamarkets.formulations.games.cvxpy_players import (
    CvxpyGame,
    NotLinearQuadraticError,
    UnsupportedGameError,
)
from datamarkets.result import Certificate, Result, provenance
from datamarkets.status import Status

__all__ = ["certify_cvxpy_game", "solve_cvxpy_game"]

GAP_TOL = 1e-6
"""Default tolerance on the relative best-response gap bound."""
FEAS_TOL = 1e-7
"""Default tolerance on primal feasibility (relative to 1 + max |x|), dual and KKT residuals."""


def _attribute_violation(v: Any, val: NDArray) -> float:
    at = v.attributes
    out = 0.0
    if at.get("nonneg") or at.get("pos"):
        out = max(out, float(np.max(-val, initial=0.0)))
    if at.get("nonpos") or at.get("neg"):
        out = max(out, float(np.max(val, initial=0.0)))
    return out


def certify_cvxpy_game(
    game: CvxpyGame,
    x: ArrayLike,
    *,
    tol: float = GAP_TOL,
    feas_tol: float = FEAS_TOL,
    solver_opts: dict[str, Any] | None = None,
) -> Certificate:
    """Certify a candidate profile: best-response gaps bounded from both sides, feasibility, KKT.

    Parameters
    ----------
    game : CvxpyGame
    x : array, shape (n,)
        Stacked profile (player order, each variable column-major).
    tol : float
        Tolerance on ``br_gap_max`` (relative to :math:`\\max(1, |f_i(x)|)`).
    feas_tol : float
        Tolerance on ``primal_feasibility_max``, ``dual_feasibility_max``,
        ``best_response_primal_feasibility_max`` and ``complementarity_max``.
    solver_opts : dict, optional
        Clarabel settings (default :data:`~datamarkets.formulations.games.cvxpy_players.CLARABEL_TIGHT`).

    Returns
    -------
    Certificate
        Residuals ``br_gap_max`` (upper bound), ``primal_feasibility_max``, ``dual_feasibility_max``,
        ``best_response_primal_feasibility_max``, ``complementarity_max``; details per player:
        ``cost``, ``br_gap_upper``, ``br_gap_lower``, ``br_value``, ``br_dual_value``, ``br_status``.

    Raises
    ------
    InvalidInputError
        ``x`` of the wrong length or non-finite.
    SolverError
        Clarabel crashed on a player's program.

    Examples
    --------
    A player with an exponential-cone objective, :math:`\\min_t t - (2 + s)\\ln t`, and one that
    copies it, :math:`\\min_s (s - t/2)^2`; the equilibrium is :math:`t = 2 + s`, :math:`s = t/2`,
    i.e. :math:`(t, s) = (4, 2)`:

    >>> import cvxpy as cp
    >>> from datamarkets.formulations.games import Player, cvxpy_game
    >>> t, s = cp.Variable(name="t"), cp.Variable(nonneg=True, name="s")
    >>> game = cvxpy_game([Player([t], cp.Minimize(t - cp.multiply(2 + s, cp.log(t)))),
    ...                    Player([s], cp.Minimize(cp.square(s - t / 2)))])
    >>> certify_cvxpy_game(game, [4.0, 2.0]).passed
    True
    >>> cert = certify_cvxpy_game(game, [4.0, 2.5])  # player 1 gains by moving s back to 2
    >>> cert.passed, list(cert.failures), round(cert.details["br_gap_lower"][1], 6)
    (False, ['br_gap_max'], 0.25)
    """
    x = game.check_x(x)
    cert = Certificate()
    N = game.N
    cost = np.array([game.cost(i, x) for i in range(N)])
    upper, lower = np.full(N, np.inf), np.full(N, np.inf)
    br_val, br_dual = np.full(N, np.nan), np.full(N, np.nan)
    dual_res, prim_res, compl = np.zeros(N), np.zeros(N), np.zeros(N)
    statuses: list[str] = []
    for i in range(N):
        status, _, raw = game.solve_player(i, x, solver_opts)
        statuses.append(status.value)
        if not status.has_solution or raw["z"] is None or raw["y"] is None:
            dual_res[i] = prim_res[i] = compl[i] = np.inf
            continue
        k = conic_kkt(raw)
        br_val[i] = k["primal"] + raw["offset"]
        br_dual[i] = k["dual"] + raw["offset"]
        scale = max(1.0, abs(cost[i])) if np.isfinite(cost[i]) else 1.0
        upper[i] = (cost[i] - br_dual[i]) / scale
        lower[i] = (cost[i] - br_val[i]) / scale
        dual_res[i] = max(k["stationarity"], k["dual_cone"])
        prim_res[i] = k["primal_cone"]
        compl[i] = k["complementarity"]
    upper = np.where(np.isnan(upper), np.inf, upper)
    # feasibility of x in every player's own constraints, sign attributes and the shared constraints
    game.set_values(x)
    viol = 0.0
    worst = ""
    pieces = [
        (f"player {game.names[i]!r} constraint {k}", c)
        for i, p in enumerate(game.players)
        for k, c in enumerate(p.constraints)
    ]
    pieces += [(f"shared constraint {k}", c) for k, c in enumerate(game.shared)]
    for where, con in pieces:
        v = con.violation()
        v = float(np.max(np.nan_to_num(np.asarray(v, dtype=float), nan=np.inf), initial=0.0))
        if v > viol:
            viol, worst = v, where
    for var in game.var_by_id.values():
        v = _attribute_violation(var, game.value_of(var, x))
        if v > viol:
            viol, worst = v, f"sign attribute of {var.name()!r}"
    feas = viol / (1.0 + float(np.max(np.abs(x), initial=0.0)))
    cert.add("br_gap_max", float(np.max(upper)), tol)
    cert.add("primal_feasibility_max", feas, feas_tol)
    cert.add("dual_feasibility_max", float(np.max(dual_res)), feas_tol)
    cert.add("best_response_primal_feasibility_max", float(np.max(prim_res)), feas_tol)
    cert.add("complementarity_max", float(np.max(compl)), feas_tol)
    cert.details.update(
        {
            "players": list(game.names),
            "cost": cost.tolist(),
            "br_gap_upper": upper.tolist(),
            "br_gap_lower": lower.tolist(),
            "br_value": br_val.tolist(),
            "br_dual_value": br_dual.tolist(),
            "br_status": statuses,
            "worst_violation": worst,
            "gap_scale": "max(1, |f_i(x)|)",
        }
    )
    return cert


def _variables_dict(game: CvxpyGame, x: NDArray) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, nm in enumerate(game.names):
        d: dict[str, Any] = {}
        for k, v in enumerate(game.variables[i]):
            val = game.value_of(v, x)
            d[v.name() if v.name() not in d else f"{v.name()}#{k}"] = val.tolist() if val.ndim else float(val)
        out[nm] = d
    return out


def _is_lq(game: CvxpyGame) -> bool:
    try:
        game.to_lq_args(check=False)
    except NotLinearQuadraticError:
        return False
    return True


def solve_cvxpy_game(
    game: CvxpyGame,
    method: Literal["auto", "best_response", "gauss_seidel", "jacobi"] = "auto",
    *,
    x0: ArrayLike | None = None,
    variational: bool | None = None,
    tol: float = 1e-8,
    gap_tol: float = GAP_TOL,
    max_iter: int = 500,
    time_limit: float | None = None,
    damping: float = 0.0,
    solver_opts: dict[str, Any] | None = None,
) -> Result:
    """Equilibrium of a cvxpy game.

    Parameters
    ----------
    game : CvxpyGame
    method : {"auto", "best_response", "gauss_seidel", "jacobi"}
        ``"best_response"`` (= ``"gauss_seidel"``): sequential best responses; ``"jacobi"``:
        simultaneous. ``"auto"``: an LQ game goes to the LQ layer's ``solve_game`` (via
        :meth:`CvxpyGame.to_lq`) when :mod:`datamarkets.formulations.games.lq` is installed,
        anything else to Gauss–Seidel best responses.
    x0 : array, optional
        Start (default: the variables' ``.value``, 0 where unset, 1 for ``pos`` variables).
    variational : bool, optional
        Ask for the variational equilibrium of a game with shared constraints. ``None``: the LQ
        layer's default on the LQ route, a generalized Nash equilibrium on best responses.
    tol : float
        Stop when the relative step is at most ``tol`` and the gap certificate passes.
    gap_tol : float
        Tolerance on ``br_gap_max`` (see :func:`certify_cvxpy_game`).
    max_iter : int
        Maximum sweeps over all players.
    time_limit : float, optional
        Seconds; checked before every player solve and passed on to Clarabel.
    damping : float
        :math:`\\omega \\in [0, 1)`.
    solver_opts : dict, optional
        Clarabel settings.

    Returns
    -------
    Result
        ``kind="game"``; ``OPTIMAL`` only when the certificate passes; ``ITERATION_LIMIT`` /
        ``TIME_LIMIT`` with the last iterate and its certificate; ``INFEASIBLE`` when a player's
        program has no feasible point at some iterate. Solution: ``x`` (stacked list),
        ``x_players`` (name → list), ``variables`` (name → variable name → value),
        ``iterations``, ``step_history``, ``programs_solved``, ``route``.

    Raises
    ------
    InvalidInputError
        Unknown method, bad ``x0``, ``damping`` outside [0, 1), non-positive limits.
    UnsupportedGameError
        ``variational=True`` on best responses for a game with shared constraints.
    Examples
    --------
    >>> import cvxpy as cp
    >>> from datamarkets.formulations.games import Player, cvxpy_game
    >>> t, s = cp.Variable(name="t"), cp.Variable(nonneg=True, name="s")
    >>> game = cvxpy_game([Player([t], cp.Minimize(t - cp.multiply(2 + s, cp.log(t)))),
    ...                    Player([s], cp.Minimize(cp.square(s - t / 2)))], names=["a", "b"])
    >>> res = solve_cvxpy_game(game, "best_response", x0=[1.0, 0.0])
    >>> res.status.value, res.certified, [round(v, 6) for v in res.solution["x"]]
    ('optimal', True, [4.0, 2.0])
    >>> solve_cvxpy_game(game, "jacobi", x0=[1.0, 0.0], max_iter=3).status.value
    'iteration_limit'
    """
    if method not in ("auto", "best_response", "gauss_seidel", "jacobi"):
        raise InvalidInputError(
            f"unknown method {method!r}; use 'auto', 'best_response', 'gauss_seidel' or 'jacobi'"
        )
    if not (0.0 <= damping < 1.0):
        raise InvalidInputError(f"damping must lie in [0, 1), got {damping!r}")
    if max_iter < 1 or (time_limit is not None and not time_limit > 0):
        raise InvalidInputError("max_iter must be >= 1 and time_limit > 0")
    t0 = time.perf_counter()
    if method == "auto":
        if game.has_lq_layer() and _is_lq(game):
            return _solve_via_lq(game, variational, time_limit, t0)
        method = "best_response"
    if variational and game.shared:
        raise UnsupportedGameError(
            "variational=True for a game with shared constraints is supported only for linear-quadratic "
            "games (method='auto' with the LQ layer); best responses compute a generalized Nash equilibrium"
        )
    scheme = "jacobi" if method == "jacobi" else "gauss-seidel"
    x = game.current_x() if x0 is None else game.check_x(x0).copy()
    opts = dict(solver_opts or {})
    steps: list[float] = []
    status = Status.ITERATION_LIMIT
    cert: Certificate | None = None
    reason = ""
    it = programs = 0
    t_cert = 0.0

    def out_of_time() -> bool:
        return time_limit is not None and time.perf_counter() - t0 >= time_limit

    for it in range(1, max_iter + 1):
        base = x.copy()
        new = x.copy()
        for i in range(game.N):
            if out_of_time():
                status = Status.TIME_LIMIT
                break
            if time_limit is not None:
                opts["time_limit"] = max(1e-3, time_limit - (time.perf_counter() - t0))
            st, xi, _ = game.solve_player(i, new if scheme == "gauss-seidel" else base, opts)
            programs += 1
            if not st.has_solution:
                status = Status.TIME_LIMIT if st.group.value == "limit" else st
                reason = f"player {game.names[i]!r}'s program: {st.value} at iteration {it}"
                break
            assert xi is not None  # a solved player's program carries its point
            sl = slice(game.offsets[i], game.offsets[i + 1])
            new[sl] = (1.0 - damping) * xi + damping * base[sl]
        else:
            step = float(np.max(np.abs(new - base), initial=0.0)) / max(
                1.0, float(np.max(np.abs(base), initial=0.0))
            )
            steps.append(step)
            x = new
            if step <= tol:
                tc = time.perf_counter()
                cert = certify_cvxpy_game(game, x, tol=gap_tol, solver_opts=solver_opts)
                t_cert += time.perf_counter() - tc
                if cert.passed:
                    status = Status.OPTIMAL
                    break
            continue
        break
    if cert is None or status is not Status.OPTIMAL:
        tc = time.perf_counter()
        try:
            cert = certify_cvxpy_game(game, x, tol=gap_tol, solver_opts=solver_opts)
        except Exception as exc:  # a certificate of a failed iterate is informative only
            cert = Certificate(details={"error": str(exc)})
        t_cert += time.perf_counter() - tc
    total = time.perf_counter() - t0
    sol: dict[str, Any] = {
        "x": x.tolist(),
        "x_players": {nm: blk.tolist() for nm, blk in zip(game.names, game.split(x), strict=True)},
        "variables": _variables_dict(game, x),
        "iterations": it,
        "step_history": steps,
        "programs_solved": programs,
        "route": f"best_response-{scheme}",
        "variational": False,
    }
    if reason:
        sol["reason"] = reason
    import cvxpy as cp

    meta = provenance({"cvxpy": cp.__version__, "solver": "CLARABEL"})
    meta.update({"scheme": scheme, "damping": damping, "tol": tol, "gap_tol": gap_tol, "max_iter": max_iter})
    timings = {"solve_seconds": total - t_cert, "certificate_seconds": t_cert}
    return Result("game", status, f"best_response-{scheme}", sol, cert, timings, meta)


def _solve_via_lq(game: CvxpyGame, variational: bool | None, time_limit: float | None, t0: float) -> Result:
    from datamarkets.formulations.games.solve import solve_game  # lazy: lands with the LQ layer

    tb = time.perf_counter()
    lq = game.to_lq()
    build = time.perf_counter() - tb
    kw: dict[str, Any] = {"time_limit": time_limit}
    if variational is not None:
        kw["variational"] = variational
    res = solve_game(lq, **kw)
    res.timings["cvxpy_to_lq_seconds"] = build
    res.meta["cvxpy_route"] = "lq"
    x = res.solution.get("x")
    if res.status.has_solution and x is not None:
        blocks = list(x.values()) if isinstance(x, dict) else x
        arr = (
            np.concatenate([np.ravel(np.asarray(b, dtype=float)) for b in np.atleast_1d(blocks)])
            if len(blocks)
            else np.zeros(0)
        )
        if arr.size == game.n:
            res.solution["x"] = arr.tolist()
            res.solution["x_players"] = {
                nm: b.tolist() for nm, b in zip(game.names, game.split(arr), strict=True)
            }
            res.solution["variables"] = _variables_dict(game, arr)
    return res
