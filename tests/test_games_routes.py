"""Routes of the games layer agree with each other and with closed forms; honest statuses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamarkets.conformance import check_formulation
from datamarkets.errors import NonConvexGameError
from datamarkets.formulations.games import (
    LQGameFormulation,
    best_response_iteration,
    certify_game,
    lq_game,
    random_lq_game,
    solve_game,
    solve_kkt_milp,
)
from datamarkets.formulations.games import milp as milp_mod
from datamarkets.status import Status

FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def coordination():
    """Player i minimises ½x_i² − 2x_i x_j + ½x_i on [0, 1]: BR_i = clip(2x_j − ½, 0, 1); the
    equilibria solve x = BR(BR(x)): exactly (0, 0), (½, ½), (1, 1). sym(M) has eigenvalue −1."""
    return lq_game([1, 1], [[[1, -2], [-2, 0]], [[0, -2], [-2, 1]]], [[0.5, 0], [0, 0.5]], lb=0, ub=1)


@FAST
@given(n=st.integers(4, 12), seed=st.integers(0, 10_000))
def test_routes_agree_on_strongly_monotone_nash_games(n, seed):
    g = random_lq_game(n, seed=seed, shared=0)
    ref = solve_game(g, "vi")
    assert ref.certified
    for method in ("best_response", "jacobi", "milp"):
        r = solve_game(g, method)
        assert r.status is Status.OPTIMAL and r.certified, (method, r.certificate.failures)
        np.testing.assert_allclose(r.solution["x"], ref.solution["x"], atol=1e-6)
    r = solve_game(g, "vi", qp_solver="highs")
    np.testing.assert_allclose(r.solution["x"], ref.solution["x"], atol=1e-6)


@FAST
@given(n=st.integers(4, 14), seed=st.integers(0, 10_000))
def test_variational_equilibrium_vi_equals_milp(n, seed):
    g = random_lq_game(n, seed=seed, shared=max(1, n // 4))
    vi = solve_game(g, "vi")
    mi = solve_game(g, "milp", variational=True)
    assert vi.certified and mi.certified, (vi.certificate.failures, mi.certificate.failures)
    np.testing.assert_allclose(mi.solution["x"], vi.solution["x"], atol=1e-6)
    np.testing.assert_allclose(mi.solution["lambda"], vi.solution["lambda"], atol=1e-5)


def planted_degenerate_game(n, seed, *, symmetric):
    """A strongly monotone game whose variational equilibrium is PLANTED (the oracle): x* and
    common multipliers are drawn, some rows active with multiplier 0 (weakly active, degenerate),
    some with tiny multipliers (1e-4), and q = −(M x* + Gᵀz) makes them satisfy (4)–(7) exactly."""
    rng = np.random.default_rng(seed)
    N = max(2, n // 3)
    sizes = [len(b) for b in np.array_split(np.arange(n), N)]
    B = rng.normal(size=(n, n))
    S = B @ B.T / n + 0.5 * np.eye(n)
    K = np.zeros((n, n)) if symmetric else rng.normal(size=(n, n))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(N):  # an own block of M is symmetric in an LQ game (Q_i is symmetrised)
        K[starts[i] : starts[i + 1], starts[i] : starts[i + 1]] = 0.0
    M = S + (K - K.T) / 2
    m = max(1, n // 3)
    A = rng.uniform(0, 1, (m, n)) * (rng.random((m, n)) < 0.6)
    x = rng.uniform(0.5, 2.0, n)
    kind = rng.integers(0, 4, n)  # 0 interior, 1 at lb weakly, 2 at lb tiny ν, 3 at lb normal ν
    x[kind > 0] = 0.0
    nu = np.where(kind == 2, 1e-4, np.where(kind == 3, rng.uniform(0.5, 2, n), 0.0))
    rk = rng.integers(0, 3, m)  # 0 slack, 1 weakly active, 2 active with a tiny/normal λ
    b = A @ x + np.where(rk == 0, rng.uniform(0.1, 1, m), 0.0)
    lam = np.where(rk == 2, rng.choice([1e-4, 1.0], m), 0.0)
    q = -(M @ x + A.T @ lam - nu)
    Q, c = [], np.zeros((N, n))
    for i in range(N):
        Qi = np.zeros((n, n))
        blk = slice(starts[i], starts[i + 1])
        Qi[blk, :] = M[blk, :]
        Qi[:, blk] += M[blk, :].T
        Qi[blk, blk] = M[blk, blk]
        Q.append(Qi)
        c[i, blk] = q[blk]
    # multipliers are unique only when the active gradients are independent (LICQ)
    act = np.vstack([A[(rk > 0)], -np.eye(n)[kind > 0]])
    licq = np.linalg.matrix_rank(act) == act.shape[0] if act.size else True
    return lq_game(sizes, Q, c, A=A, b=b, lb=0), x, (lam if licq else None)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 12), seed=st.integers(0, 10_000), symmetric=st.booleans())
def test_vi_is_exact_on_planted_degenerate_games(n, seed, symmetric):
    g, x_star, lam_star = planted_degenerate_game(n, seed, symmetric=symmetric)
    assert g.monotonicity_min_eig > 0.4 and g.is_potential == symmetric
    for qp_solver in ("clarabel", "highs"):
        r = solve_game(g, "vi", qp_solver=qp_solver)
        assert r.certified, (qp_solver, r.certificate.failures)
        np.testing.assert_allclose(r.solution["x"], x_star, rtol=0, atol=1e-7)
        if lam_star is not None:
            np.testing.assert_allclose(r.solution["lambda"], lam_star, rtol=0, atol=1e-7)


@FAST
@given(n=st.integers(2, 10), seed=st.integers(0, 10_000), scale=st.sampled_from([1e-6, 1e-3, 1e-1]))
def test_certificate_distance_bound_covers_the_true_distance(n, seed, scale):
    g, x_star, _ = planted_degenerate_game(n, seed, symmetric=bool(seed % 2))
    rng = np.random.default_rng(seed)
    x = x_star + scale * rng.normal(size=n)
    bound = certify_game(g, x).details["distance_bound"]
    assert bound is not None and np.linalg.norm(x - x_star) <= bound * (1 + 1e-9) + 1e-12


def test_best_response_with_shared_constraints_finds_a_gne_not_claimed_variational():
    g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, A=[[1, 1]], b=[5])
    r = solve_game(g, "best_response")
    assert r.certified and r.solution["variational"] is False
    # the VE is (3, 2) (λ = 1); the Gauss–Seidel fixed point from the LP's start is another GNE
    assert abs(sum(r.solution["x"]) - 5) < 1e-8
    ve = solve_game(g, "vi")
    np.testing.assert_allclose(ve.solution["x"], [3, 2], atol=1e-8)
    # judged as a variational claim it fails unless it is the VE
    if np.abs(np.asarray(r.solution["x"]) - [3, 2]).max() > 1e-3:
        assert not certify_game(g, r.solution["x"], variational=True).passed


def test_enumeration_finds_the_three_equilibria_of_a_coordination_game():
    g = coordination()
    with pytest.raises(NonConvexGameError, match="-1"):
        solve_game(g, "vi")
    r = solve_game(g, "auto", enumerate=5)
    assert r.solution["route"] == "milp" and "not monotone" in r.solution["route_reason"]
    found = sorted(np.round(e, 9).tolist() for e in r.solution["equilibria"])
    assert found == [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
    for e in r.solution["equilibria"]:
        assert certify_game(g, e).passed
    assert r.solution["bounds_proven"] is True


def test_gne_enumeration_with_shared_constraint_gives_distinct_certified_points():
    g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, A=[[1, 1]], b=[5])
    out = solve_kkt_milp(g, variational=False, enumerate=3)
    xs = [x for x, _ in out.equilibria]
    assert len(xs) == 3
    for x, m in out.equilibria:
        assert certify_game(g, x, m, variational=False).passed
        assert abs(x.sum() - 5) < 1e-8  # every GNE here uses the whole capacity


def test_unproven_big_m_is_doubled_never_silently_returned(monkeypatch):
    g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], A=[[1, 1]], b=[5])
    # without lower bounds, x (and so the per-player multipliers) has no provable bound; start tiny
    monkeypatch.setattr(milp_mod, "STATED_BOUND", 1e-3)
    out = solve_kkt_milp(g, variational=False, retries=0)
    assert out.status is Status.NO_EQUILIBRIUM and not out.bounds_proven and "unproven" in out.message
    out = solve_kkt_milp(g, variational=False, retries=30)
    assert out.status is Status.OPTIMAL and out.retries > 0
    x, m = out.equilibria[0]
    assert certify_game(g, x, m, variational=False).passed


def test_infeasible_shared_constraints_are_a_typed_status():
    g = lq_game([1, 1], [np.eye(2), np.eye(2)], np.zeros((2, 2)), A=[[1, 1]], b=[-1], lb=0)
    for method in ("vi", "milp", "best_response"):
        r = solve_game(g, method)
        assert r.status in (Status.INFEASIBLE,), (method, r.status)
        assert not r.status.has_solution


def test_no_equilibrium_is_a_typed_status():
    # player 0 minimises −x₀ over x₀ ≥ 0: unbounded, no equilibrium
    g = lq_game([1, 1], [np.zeros((2, 2)), np.eye(2)], [[-1, 0], [0, 0]], lb=0)
    assert solve_game(g, "vi").status is Status.NO_EQUILIBRIUM


def test_limits_are_reported_never_as_answers():
    g = random_lq_game(200, seed=0)
    r = solve_game(g, "best_response", time_limit=1e-3)
    assert r.status is Status.TIME_LIMIT and "x" not in r.solution
    r = solve_game(g, "best_response", max_iter=1)
    assert r.status is Status.ITERATION_LIMIT and "x" not in r.solution
    r = solve_game(g, "milp", time_limit=1e-3)
    assert r.status.group.value == "limit"


def test_direct_best_response_iteration_contracts():
    g = random_lq_game(30, seed=4, shared=0)
    br = best_response_iteration(g, np.zeros(g.n), tol=1e-12)
    assert br.status is Status.OPTIMAL
    assert all(b <= a * 0.9 + 1e-12 for a, b in zip(br.history[1:], br.history[2:], strict=False))


def test_lq_game_formulation_conforms():
    f = LQGameFormulation()
    report = check_formulation(f, sizes=(12,), seeds=(0, 1))
    assert report.runs and all(r["certified"] and r["verified"] for r in report.runs)
