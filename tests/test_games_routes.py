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
