"""The milp route's start from the vi answer: used on monotone games, the answer is still the
MILP's (certified, equal to the cold MILP's and the vi route's), never used on non-monotone games,
where enumeration still finds every equilibrium (checked against an enumeration of active sets)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games import certify_game, random_lq_game, solve_game
from datamarkets.formulations.games.kkt import Multipliers
from datamarkets.formulations.games.lq import lq_game
from datamarkets.formulations.games.milp import solve_kkt_milp
from datamarkets.formulations.games.milp_bounds import feasible_point, interval_matvec, kkt_ball
from datamarkets.status import Status

TOL = 1e-7  # agreement in x relative to 1 + max|x|


def _close(x: np.ndarray, y: np.ndarray) -> bool:
    return bool(np.abs(x - y).max() <= TOL * (1.0 + np.abs(y).max()))


@pytest.mark.parametrize("n,seed", [(20, 0), (20, 1), (40, 2), (60, 0)])
@pytest.mark.parametrize("variational", [True, False])
def test_start_from_vi_is_used_and_the_answer_is_the_milps(n, seed, variational):
    g = random_lq_game(n, seed=seed)
    vi = solve_game(g, "vi")
    r = solve_game(g, "milp", variational=variational, mip_start="vi")
    assert r.status is Status.OPTIMAL and r.certified
    assert r.meta["mip_start"] == "vi" and "mip_start_seconds" in r.timings
    # a GNE (per-player λ): the start's vertex may sit on an unproven bound, then the MILP goes cold
    assert r.solution["mip_start_result"] in (("used",) if variational else ("used", "rejected"))
    auto = solve_game(g, "milp", variational=variational)
    assert auto.meta["mip_start"] == ("vi" if variational else "none")
    cold = solve_game(g, "milp", variational=variational, mip_start="none")  # a second algorithm
    assert cold.meta["mip_start"] == "none" and cold.certified
    if variational:  # the variational equilibrium is unique; GNEs (per-player λ) form a set
        x = np.asarray(r.solution["x"])
        assert _close(x, np.asarray(vi.solution["x"]))
        assert _close(x, np.asarray(cold.solution["x"]))


def test_enumeration_with_a_start_finds_the_unique_equilibrium_once():
    g = random_lq_game(20, seed=3)  # strongly monotone: one equilibrium
    r = solve_game(g, "milp", enumerate=3)
    assert r.status is Status.OPTIMAL and r.certified and r.solution["mip_start_result"] == "used"
    assert len(r.solution["equilibria"]) == 1
    assert _close(np.asarray(r.solution["equilibria"][0]), np.asarray(solve_game(g, "vi").solution["x"]))


def test_fixed_big_m_baseline_takes_no_start():
    r = solve_game(random_lq_game(20, seed=0), "milp", fixed_big_m=1e4)
    assert r.meta["mip_start"] == "none" and r.solution["mip_start_result"] == "none"


def _box_equilibria(M: np.ndarray, q: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> list[np.ndarray]:
    """Every KKT point of a box-constrained game with one variable per player, by enumerating the
    active sets (lower / upper / interior per variable): the interior rows solve (Mx + q)_j = 0,
    then the signs: (Mx + q)_j ≥ 0 at a lower bound, ≤ 0 at an upper bound."""
    n = q.size
    out: list[np.ndarray] = []
    for act in itertools.product("LUI", repeat=n):
        x = np.where(np.array(act) == "L", lb, ub).astype(float)
        free = np.flatnonzero(np.array(act) == "I")
        if free.size:
            fixed = np.setdiff1d(np.arange(n), free)
            K = M[np.ix_(free, free)]
            if abs(np.linalg.det(K)) < 1e-9:
                raise AssertionError("degenerate instance")  # not used below
            x[free] = np.linalg.solve(K, -(q[free] + M[np.ix_(free, fixed)] @ x[fixed]))
        g = M @ x + q
        ok = np.all(x >= lb - 1e-9) and np.all(x <= ub + 1e-9)
        ok &= all(g[j] >= -1e-9 for j in range(n) if act[j] == "L")
        ok &= all(g[j] <= 1e-9 for j in range(n) if act[j] == "U")
        if ok and not any(np.abs(x - y).max() < 1e-7 for y in out):
            out.append(x)
    return out


def _as_game(M: np.ndarray, q: np.ndarray):
    """Player j owns x_j and minimises ½ M_jj x_j² + (Σ_{k≠j} M_jk x_k + q_j) x_j on [0, 1]."""
    n = q.size
    Q = []
    for j in range(n):
        Qj = np.zeros((n, n))
        Qj[j, :] = M[j, :]
        Qj[:, j] = M[j, :]
        Q.append(Qj)
    return lq_game([1] * n, Q, np.diag(q), lb=0, ub=1)


@pytest.mark.parametrize(
    "M,q",
    [
        (np.array([[1.0, -2.0], [-2.0, 1.0]]), np.array([0.5, 0.5])),  # coordination: 3 equilibria
        (np.array([[1.0, -3.0], [-2.0, 1.0]]), np.array([1.0, 0.5])),
        (np.array([[1.0, -2.0, 0.5], [-2.0, 1.0, -1.0], [0.5, -1.5, 1.0]]), np.array([0.4, 0.3, -0.2])),
    ],
)
def test_non_monotone_games_take_no_start_and_enumeration_finds_every_equilibrium(M, q):
    g = _as_game(M, q)
    np.testing.assert_allclose(g.M.toarray(), M, atol=1e-12)  # the game's pseudo-gradient is M x + q
    assert g.monotonicity_min_eig < 0
    expected = _box_equilibria(M, q, np.zeros(q.size), np.ones(q.size))
    r = solve_game(g, "milp", enumerate=10)
    assert r.meta["mip_start"] == "none" and r.solution["mip_start_result"] == "none"
    assert r.status is Status.OPTIMAL and r.certified
    found = [np.asarray(x) for x in r.solution["equilibria"]]
    assert len(expected) >= 2 and len(found) == len(expected)
    for y in expected:
        assert any(np.abs(x - y).max() <= 1e-7 for x in found)


def test_a_vi_start_on_a_non_monotone_game_is_refused():
    g = _as_game(np.array([[1.0, -2.0], [-2.0, 1.0]]), np.array([0.5, 0.5]))
    with pytest.raises(NonConvexGameError):
        solve_game(g, "milp", mip_start="vi")
    with pytest.raises(InvalidInputError, match="mip_start"):
        solve_game(g, "milp", mip_start="warm")
    with pytest.raises(InvalidInputError, match="mip_start"):
        solve_game(random_lq_game(10, seed=0), "vi", mip_start="warm")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wrong_start_never_changes_the_answer(seed):
    # a start that is no KKT point (x shifted, every multiplier 0: all switches off) is either
    # repaired by the restricted solve or refused; the MILP's answer is the equilibrium all the same
    g = random_lq_game(20, seed=seed)
    vi = solve_game(g, "vi")
    zero = Multipliers(np.zeros(g.m), np.zeros(g.p), np.zeros(g.n), np.zeros(g.n), True)
    out = solve_kkt_milp(g, start=(np.asarray(vi.solution["x"]) + 1.0, zero))
    assert out.status is Status.OPTIMAL and out.extra["mip_start_result"] in ("used", "rejected")
    x, mult = out.equilibria[0]
    assert _close(x, np.asarray(vi.solution["x"]))
    assert certify_game(g, x, mult).passed


def test_interval_product_with_an_infinite_side_is_infinite_whatever_the_coefficient():
    # a row meeting an infinite side through a nonzero entry is unbounded (no large sentinel)
    A = sp.csr_array(np.array([[0.03, 0.0], [-1e-6, 2.0], [0.0, 1.0]]))
    lo, hi = interval_matvec(A, np.array([0.0, -1.0]), np.array([np.inf, 1.0]))
    np.testing.assert_array_equal(lo, [0.0, -np.inf, -1.0])
    np.testing.assert_array_equal(hi, [np.inf, 2.0, 1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feasible_point_accepts_points_of_x_and_rejects_others(seed):
    """The vi start replaces the feasibility LP only when it lies in X: a convex combination of two
    vi answers (X convex) is accepted; a point moved past a shared row by 1e-6 · (1 + |b|), or past
    a box side, is not; and the MILP started from it finds the cold MILP's equilibrium."""
    g = random_lq_game(30, seed=seed)
    x1 = solve_game(g, "vi").solution["x"]
    x2 = solve_game(random_lq_game(30, seed=seed), "best_response").solution["x"]
    x = 0.5 * (np.asarray(x1) + np.asarray(x2))
    assert feasible_point(g, x) is not None
    assert feasible_point(g, x[:-1]) is None and feasible_point(g, np.full(g.n, np.nan)) is None
    k = int(np.argmax(g.A @ x - g.b))
    row = g.A.toarray()[k]
    j = int(np.flatnonzero(row)[0])
    viol = 1e-6 * (1 + abs(g.b[k]))
    bad = x.copy()
    bad[j] += (g.b[k] - row @ x + viol) / row[j]
    assert row @ bad > g.b[k] + 0.5 * viol
    assert np.all(bad >= g.lb) and np.all(bad <= g.ub)  # only the shared row is violated
    assert feasible_point(g, bad) is None
    assert np.any(np.isfinite(g.ub))
    assert feasible_point(g, np.where(np.isfinite(g.ub), g.ub + 1e-5, x)) is None
    warm = solve_game(g, "milp", mip_start="vi")
    cold = solve_game(g, "milp", mip_start="none")
    assert warm.solution["mip_start_result"] == "used"
    assert _close(np.asarray(warm.solution["x"]), np.asarray(cold.solution["x"]))


def _shifted(g, rng, size):
    """The same game with its linear terms moved (own entries only): same X, same M."""
    c = np.array(g.c, dtype=float)
    c[g.owner, np.arange(g.n)] += rng.normal(size=g.n) * size
    return dataclasses.replace(g, c=c)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(4, 40), seed=st.integers(0, 10_000), size=st.sampled_from([0.0, 1e-6, 1e-3, 0.3]))
def test_the_kkt_ball_holds_the_variational_equilibrium(n, seed, size):
    # x0 and its multipliers: the VE of a game with moved linear terms (a point of X with a KKT
    # residual of about `size` for this game); oracle: this game's VE, polished to ~1e-13
    g = random_lq_game(n, seed=seed)
    x_star = np.asarray(solve_game(g, "vi").solution["x"])
    other = solve_game(_shifted(g, np.random.default_rng(seed), size), "vi")
    x0 = np.asarray(other.solution["x"])
    r = kkt_ball(g, x0, Multipliers.from_solution(g, other.solution))
    assert r is not None
    assert np.linalg.norm(x0 - x_star) <= r + 1e-12
    if size == 0.0:  # the equilibrium itself: the ball is the rounding margin alone
        assert r <= 1e-6 * (1.0 + np.abs(x_star).max())


def test_the_kkt_ball_needs_strong_monotonicity_and_common_multipliers():
    g = random_lq_game(10, seed=0)
    x = np.asarray(solve_game(g, "vi").solution["x"])
    per_player = Multipliers(np.zeros((g.N, g.m)), np.zeros((g.N, g.p)), np.zeros(g.n), np.zeros(g.n), False)
    assert kkt_ball(g, x, per_player) is None
    flat = lq_game(
        [1, 1], [[[1, 0], [0, 0]], [[0, 0], [0, 0]]], [[1, 0], [0, 1]], lb=0, ub=1
    )  # M ⪰ 0, singular
    zero = Multipliers(np.zeros(0), np.zeros(0), np.zeros(2), np.zeros(2), True)
    assert kkt_ball(flat, np.zeros(2), zero) is None


@settings(max_examples=15, deadline=None)
@given(n=st.integers(4, 60), seed=st.integers(0, 10_000))
def test_the_started_milp_proves_its_bounds_and_they_hold_the_equilibrium(n, seed):
    # the vi start narrows x to the KKT ball and bounds the multipliers by the x-free LP: the
    # bounds still count as proven, hold the VE's multipliers, and the answer is the vi route's
    g = random_lq_game(n, seed=seed)
    vi = solve_game(g, "vi")
    x_vi = np.asarray(vi.solution["x"])
    mult = Multipliers.from_solution(g, vi.solution)
    out = solve_kkt_milp(g, start=(x_vi, mult))
    assert out.status is Status.OPTIMAL and out.bounds_proven and out.retries == 0
    assert out.extra["mip_start_result"] == "used"
    assert out.extra["lambda_bound_max"] >= float(np.sum(mult.lam)) * (1 - 1e-9)
    x, m = out.equilibria[0]
    assert _close(x, x_vi)
    assert certify_game(g, x, m).passed
