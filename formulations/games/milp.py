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

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games._backend import INF, run_highs
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.milp_bounds import primal_ranges
from datamarkets.formulations.games.milp_model import (
    KKTLayout,
    build_kkt_model,
    multipliers_from_columns,
    touches_unproven,
)
from datamarkets.formulations.games.milp_multipliers import multiplier_bounds, nu_bounds
from datamarkets.formulations.games.milp_start import run_from_start, start_switches, start_vector
from datamarkets.solvers import highs_model
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
    L = KKTLayout(game, variational)
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
        Lam, Mu, pl, pm = multiplier_bounds(game, L, xlo, xhi, left())
        Lam = np.where(pl, Lam, stated)
        Mu = np.where(pm, Mu, stated)
    secs["bounding_seconds"] = time.perf_counter() - ta
    n_try = 0
    while True:
        if fixed_big_m is None:
            Vlo, Vup = nu_bounds(game, L, xlo, xhi, Lam, Mu)
        R, rl, ru, clo, chi = build_kkt_model(
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
        zs = start_switches(game, L, start, xlo, xhi, R, chi) if use_start and start else None
        v_start = (
            None if zs is None or start is None else start_vector(game, L, start, zs, (R, rl, ru, clo, chi))
        )
        while len(found) < max(1, enumerate) and attempts < 20 * max(1, enumerate):
            attempts += 1
            out = None
            from_start = zs is not None and attempts == 1
            if from_start and zs is not None:
                ts = time.perf_counter()
                out, mip_start = run_from_start(h, nz, zidx, zs, clo[zc:], chi[zc:], v_start)
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
            touched = touches_unproven(v, L, xlo, xhi, Lam, Mu, plo, phi, pl, pm)
            if touched and from_start:  # the start's vertex sits on an unproven bound: go cold
                mip_start, zs, touched = "rejected", None, False
                continue
            if touched:
                break
            z = np.round(v[int(L.off[5]) :])
            if not any(np.abs(x - xf).max() <= 1e-7 * (1 + np.abs(x).max()) for xf, _ in found):
                found.append((x.copy(), multipliers_from_columns(game, L, v)))
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
