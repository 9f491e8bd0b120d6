"""Extragradient and projection routes (formulations/games/extragradient.py): against the vi QP on
potential games, against the KKT MILP and the gap QP on non-symmetric monotone games with shared
constraints, against a closed form on a merely monotone game; refusals and limits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games import lq_game, random_lq_game, solve_game
from datamarkets.formulations.games.extragradient import lipschitz_constant, solve_extragradient
from datamarkets.status import Status

FAST = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def potential_game(n, seed):
    """A potential game (M = Mᵀ ≻ 0) with shared rows: player i's cost is ½xᵀSx + qᵀx restricted
    to its own block, so the pseudo-gradient is S x + q."""
    rng = np.random.default_rng(seed)
    N = max(2, n // 3)
    sizes = [len(b) for b in np.array_split(np.arange(n), N)]
    B = rng.normal(size=(n, n))
    S = B @ B.T / n + 0.3 * np.eye(n)
    q = rng.uniform(-5, -1, n)
    A = rng.uniform(0, 1, (max(1, n // 4), n))
    b = 0.3 * A.sum(axis=1)
    c = np.tile(q, (N, 1))
    return lq_game(sizes, [S] * N, c, A=A, b=b, lb=0, ub=5)


@FAST
@given(
    n=st.integers(3, 12),
    seed=st.integers(0, 10_000),
    scheme=st.sampled_from(["extragradient", "projection"]),
    qp_solver=st.sampled_from(["clarabel", "highs"]),
)
@example(n=4, seed=620, scheme="projection", qp_solver="clarabel")  # Clarabel stalled: HiGHS fallback
@example(n=3, seed=341, scheme="extragradient", qp_solver="clarabel")  # projection error 2e-9
@example(n=10, seed=2466, scheme="extragradient", qp_solver="clarabel")  # 3e-7 off: Clarabel projection error
def test_unpolished_iterates_reach_the_potential_qp_answer(n, seed, scheme, qp_solver):
    g = potential_game(n, seed)
    assert g.is_potential
    ref = solve_game(g, "vi")
    out = solve_extragradient(g, scheme=scheme, tol=1e-11, polish=False, qp_solver=qp_solver)
    assert out.status is Status.OPTIMAL and out.residual >= 0
    # strongly monotone: ‖x − x*‖₂ ≤ (1 + L)/μ · ‖x − Π(x − F(x))‖₂ ≤ (1 + L)/μ · ‖r_τ(x)‖₂/τ for
    # τ ≤ 1; the returned point is y = x − r_τ(x), one more τ·‖r_τ‖/τ away
    r2 = np.sqrt(g.n) * out.residual
    bound = (1 + out.L) / out.mu * r2 + out.step * r2
    # the bound holds for exact projections (HiGHS's active set); Clarabel's interior-point
    # projections at tol 1e-10 are ~2e-8 off in x (measured: n=10, seed=2466), an error the
    # bound scales by (1 + L)/μ like the residual's
    slack = 1e-9 if qp_solver == "highs" else (1 + out.L) / out.mu * 5e-8
    assert np.linalg.norm(out.x - ref.solution["x"]) <= bound + slack
    np.testing.assert_allclose(out.x, ref.solution["x"], rtol=0, atol=1e-6)
    # the final projection's duals / τ are the common multipliers
    np.testing.assert_allclose(out.multipliers.lam, ref.solution["lambda"], rtol=0, atol=1e-5)


@FAST
@given(n=st.integers(4, 14), seed=st.integers(0, 10_000))
def test_non_symmetric_monotone_games_agree_with_milp_and_gap_qp(n, seed):
    g = random_lq_game(n, seed=seed, shared=max(1, n // 4))
    assert not g.is_potential and g.monotonicity_min_eig > 0
    eg = solve_game(g, "extragradient")
    pr = solve_game(g, "projection")
    mi = solve_game(g, "milp", variational=True)
    vi = solve_game(g, "vi")
    for r in (eg, pr, mi, vi):
        assert r.status is Status.OPTIMAL and r.certified, (r.method, r.certificate.failures)
    for r in (eg, pr):
        assert r.solution["variational"] is True
        np.testing.assert_allclose(r.solution["x"], mi.solution["x"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(r.solution["x"], vi.solution["x"], rtol=0, atol=1e-7)
        np.testing.assert_allclose(r.solution["lambda"], mi.solution["lambda"], rtol=0, atol=1e-5)
        assert r.solution["natural_residual"] <= 1e-9 * (1 + 10 * r.solution["lipschitz_L"] * 10)
        assert 0 < r.solution["step"] < 1 / r.solution["lipschitz_L"]
    # projection's step is inside its proven range 2μ/L²
    mu, L = pr.solution["monotonicity_min_eig"], pr.solution["lipschitz_L"]
    assert pr.solution["step"] < 2 * mu / L**2


def matching_pennies(q=(0.3, -0.2)):
    """x₀ minimises x₀x₁ + q₀x₀, x₁ minimises −x₀x₁ + q₁x₁ on [−1, 1]²: M = [[0, 1], [−1, 0]] is
    skew (μ = 0, merely monotone), so the projection method cycles while extragradient converges.
    Interior VE: M x + q = 0 ⇒ x₁ = −q₀, x₀ = q₁, i.e. x = (−0.2, −0.3)."""
    return lq_game([1, 1], [[[0, 1], [1, 0]], [[0, -1], [-1, 0]]], [[q[0], 0], [0, q[1]]], lb=-1, ub=1)


def test_merely_monotone_game_extragradient_converges_projection_refuses():
    g = matching_pennies()
    assert abs(g.monotonicity_min_eig) < 1e-12
    out = solve_extragradient(g, tol=1e-11, polish=False)
    assert out.status is Status.OPTIMAL
    np.testing.assert_allclose(out.x, [-0.2, -0.3], rtol=0, atol=1e-8)
    r = solve_game(g, "extragradient")
    assert r.certified
    np.testing.assert_allclose(r.solution["x"], [-0.2, -0.3], rtol=0, atol=1e-12)
    with pytest.raises(NonConvexGameError, match="strongly monotone"):
        solve_game(g, "projection")


def test_non_monotone_game_is_refused():
    g = lq_game([1, 1], [[[1, -2], [-2, 0]], [[0, -2], [-2, 1]]], [[0.5, 0], [0, 0.5]], lb=0, ub=1)
    for method in ("extragradient", "projection"):
        with pytest.raises(NonConvexGameError, match="monotone"):
            solve_game(g, method)


def test_closed_form_duopoly_with_a_shared_capacity():
    # Cournot duopoly, demand 10 − X, costs 1 and 2, X ≤ 5: VE (3, 2) with λ = 1 (solve.py docstring)
    g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, A=[[1, 1]], b=[5])
    for method in ("extragradient", "projection"):
        r = solve_game(g, method)
        assert r.certified
        np.testing.assert_allclose(r.solution["x"], [3, 2], rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.solution["lambda"], [1], rtol=0, atol=1e-12)
        assert r.solution["lipschitz_L"] == pytest.approx(3.0, rel=1e-12)  # eigenvalues 1 and 3
        assert r.solution["monotonicity_min_eig"] == pytest.approx(1.0, rel=1e-12)


def test_limits_are_typed_statuses_never_answers():
    g = random_lq_game(60, seed=3)
    r = solve_game(g, "extragradient", max_iter=2)
    assert r.status is Status.ITERATION_LIMIT and "x" not in r.solution and "last_iterate" in r.solution
    r = solve_game(g, "projection", time_limit=1e-3)
    assert r.status is Status.TIME_LIMIT and "x" not in r.solution


def test_infeasible_shared_constraints():
    g = lq_game([1, 1], [np.eye(2), np.eye(2)], np.zeros((2, 2)), A=[[1, 1]], b=[-1], lb=0)
    for method in ("extragradient", "projection"):
        assert solve_game(g, method).status is Status.INFEASIBLE


def test_bad_input():
    g = matching_pennies()
    with pytest.raises(InvalidInputError, match="scheme"):
        solve_extragradient(g, scheme="mirror")
    with pytest.raises(InvalidInputError, match="x0"):
        solve_extragradient(g, x0=[0.0])
    with pytest.raises(InvalidInputError, match="max_iter"):
        solve_extragradient(g, max_iter=0)
    with pytest.raises(InvalidInputError, match="tol"):
        solve_extragradient(g, tol=float("nan"))


def test_lipschitz_bound_above_the_exact_norm():
    rng = np.random.default_rng(0)
    M = sp.random_array((450, 450), density=0.02, random_state=rng, format="csr")
    L, how = lipschitz_constant(M)
    exact = float(np.linalg.norm(M.toarray(), 2))
    assert how == "bound" and exact <= L <= np.sqrt(450) * exact
