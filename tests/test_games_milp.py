"""The KKT-MILP route's derived bounds: proven where the theory proves them, never mistaken for a
big-M, and the answers agree with closed forms and with the VI route (a second algorithm)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datamarkets.formulations.games import certify_game, random_lq_game, solve_game
from datamarkets.formulations.games.lq import lq_game
from datamarkets.formulations.games.milp import solve_kkt_milp
from datamarkets.status import Status

TOL = 1e-6  # agreement in x relative to 1 + max|x|


def _cournot(a: float, b: float, costs: list[float]):
    """Cournot with inverse demand a − bΣq, unit costs c_i, q_i ≥ 0 and no upper bound (compact rows)."""
    N = len(costs)
    rows = [b * (np.eye(N)[i] + 1.0)[None, :] for i in range(N)]  # ∂/∂q_i of −profit: b(Q + q_i) − a + c_i
    c = np.diag(np.asarray(costs, dtype=float) - a)
    return lq_game([1] * N, rows, c, lb=0)


@pytest.mark.parametrize("N", [1, 2, 3, 7])
def test_unbounded_quantities_are_bounded_by_stationarity(N):
    a, b, cost = 10.0, 2.0, 1.5
    out = solve_kkt_milp(_cournot(a, b, [cost] * N))
    assert out.status is Status.OPTIMAL and out.bounds_proven and out.retries == 0
    np.testing.assert_allclose(out.equilibria[0][0], (a - cost) / (b * (N + 1)), rtol=1e-8)  # textbook


def test_a_player_at_its_own_lower_bound_is_not_a_touched_big_m():
    # seller 2's cost exceeds the monopoly price of seller 1: it sells 0 (its own bound lb = 0);
    # closed form q₁ = (a − c₁)/(2b), q₂ = 0 when c₂ ≥ a − b q₁
    a, b = 10.0, 1.0
    out = solve_kkt_milp(_cournot(a, b, [2.0, 7.0]))
    assert out.status is Status.OPTIMAL and out.bounds_proven and out.retries == 0
    np.testing.assert_allclose(out.equilibria[0][0], [4.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_free_variables_of_a_strongly_monotone_game_lie_in_the_proven_ball(seed):
    rng = np.random.default_rng(seed)
    sizes = [2, 1, 3]
    n = sum(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    owner = np.repeat(np.arange(len(sizes)), sizes)
    K = rng.normal(size=(n, n))
    skew = np.where(owner[:, None] != owner[None, :], K - K.T, 0.0) / n  # own blocks stay symmetric
    M = K @ K.T / n + np.eye(n) + skew  # sym(M) ⪰ I, M not symmetric
    q = rng.normal(size=n) * 3
    rows = [M[starts[i] : starts[i + 1]] for i in range(len(sizes))]
    c = np.zeros((len(sizes), n))
    for i in range(len(sizes)):
        c[i, starts[i] : starts[i + 1]] = q[starts[i] : starts[i + 1]]
    g = lq_game(sizes, rows, c)  # no bounds at all: only the monotone ball bounds x
    out = solve_kkt_milp(g)
    assert out.status is Status.OPTIMAL and out.bounds_proven and out.retries == 0
    np.testing.assert_allclose(out.equilibria[0][0], np.linalg.solve(M, -q), atol=1e-7)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(4, 24), seed=st.integers(0, 10_000), upper=st.booleans())
@example(n=4, seed=15, upper=False)  # a 1e300 sentinel times 0.03 once passed for a finite bound
def test_milp_agrees_with_the_vi_route_and_fixes_switches_soundly(n, seed, upper):
    g0 = random_lq_game(n, seed=seed)
    rows = [sp.csr_array(g0.M[g0.block(i), :]) for i in range(g0.N)]
    g = lq_game(g0.sizes, rows, g0.c, g0.A, g0.b, lb=g0.lb, ub=g0.ub if upper else None)
    vi = solve_game(g, "vi")
    out = solve_kkt_milp(g)
    assert out.status is Status.OPTIMAL and out.bounds_proven
    x, mult = out.equilibria[0]
    x_vi = np.asarray(vi.solution["x"])
    assert np.max(np.abs(x - x_vi)) <= TOL * (1 + np.max(np.abs(x_vi)))
    assert certify_game(g, x, mult).passed
    assert out.extra["binaries_free"] <= out.extra["binaries"]


def test_switches_of_provably_slack_pairs_are_fixed():
    g = random_lq_game(60, seed=0)
    out = solve_kkt_milp(g)
    assert out.status is Status.OPTIMAL and out.bounds_proven
    assert out.extra["binaries_free"] < out.extra["binaries"]  # stationarity proves some bounds slack
    # and the fixed-big-M baseline (no derivation, nothing fixed) finds the same equilibrium
    base = solve_kkt_milp(g, fixed_big_m=1e4)
    assert base.extra["binaries_free"] == base.extra["binaries"]
    np.testing.assert_allclose(out.equilibria[0][0], base.equilibria[0][0], atol=1e-6)
