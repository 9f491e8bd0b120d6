"""Tests of the direct GNE algorithm (Leontief system (25)-(26), Theorem 1, Lemma 1).

Oracles: A built by explicit loops from (25) (tests/oracles.py, independent of the vectorised
operator) and a dense numpy solve; numpy eigenvalues for rho(A); the two-firm example of §IV derived by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.formulations.gne_solve import solve_gne
from datamarkets.models.gne_inputs import GNEInputs, as_gne_inputs, effort_response, variance_response
from datamarkets.models.gne_leontief import (
    leontief_matrix,
    leontief_operator,
    solve_leontief,
    spectral_radius,
)
from datamarkets.models.gne_polytope import c_polytope
from datamarkets.status import Status

from oracles import leontief_matrix_by_loops, two_firm_closed_form


def random_market(seed, K, N, rho_target=None, uses_p=1.0):
    rng = np.random.default_rng(seed)
    xi = rng.uniform(0.0, 1.0, (K, N, N))
    for k in range(K):
        np.fill_diagonal(xi[k], 1.0)
    gamma = rng.uniform(0.1, 2.0, (K, N))
    uses = rng.uniform(size=(K, N)) < uses_p
    uses[0] = True
    gamma = np.where(uses, gamma, 0.0)
    if rho_target is not None:
        A = leontief_matrix_by_loops(gamma, xi, uses)
        rho = max(abs(np.linalg.eigvals(A))) if A.any() else 0.0
        if rho > 0:
            off = xi * rho_target / rho
            for k in range(K):
                np.fill_diagonal(off[k], 1.0)
            xi = off
    return GNEInputs.from_arrays(gamma, xi, rng.uniform(0.5, 2.0, N), uses=uses)


# ------------------------------------------------------------------ operator and linear solve
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), N=st.integers(1, 6), p=st.sampled_from([1.0, 0.7]))
def test_matrix_free_operator_matches_loop_definition(seed, K, N, p):
    inp = random_market(seed, K, N, uses_p=p)
    A = leontief_matrix_by_loops(inp.gamma, inp.xi, inp.uses)
    np.testing.assert_allclose(leontief_matrix(inp), A, atol=1e-14)
    v = np.random.default_rng(seed).uniform(size=K * N) * inp.uses.ravel()
    np.testing.assert_allclose(leontief_operator(inp).matvec(v), A @ v, rtol=1e-12, atol=1e-14)


@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), N=st.integers(2, 6), rho=st.floats(0.05, 0.95))
def test_dense_gmres_neumann_agree_with_numpy_solve(seed, K, N, rho):
    inp = random_market(seed, K, N, rho_target=rho)
    A = leontief_matrix_by_loops(inp.gamma, inp.xi)
    d_ref = np.linalg.solve(np.eye(K * N) - A, inp.gamma.ravel()).reshape(K, N)
    for method in ("dense", "gmres", "neumann"):
        d, info = solve_leontief(inp, method=method)
        assert info["method"] == method
        np.testing.assert_allclose(d, d_ref, rtol=1e-8, atol=1e-10)


def test_eta_normalises_gamma():
    inp = random_market(3, 2, 3, rho_target=0.5)
    eta = np.array([2.0, 0.5])
    scaled = GNEInputs.from_arrays(inp.gamma, inp.xi, inp.alpha, eta=eta)
    A = leontief_matrix_by_loops(inp.gamma, inp.xi)
    d_ref = np.linalg.solve(np.eye(6) - A, (inp.gamma / eta[:, None]).ravel()).reshape(2, 3)
    np.testing.assert_allclose(solve_leontief(scaled)[0], d_ref, rtol=1e-10)


# ------------------------------------------------------------------ spectral radius
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), N=st.integers(1, 6), p=st.sampled_from([1.0, 0.6]))
def test_spectral_radius_matches_numpy_eigvals(seed, K, N, p):
    inp = random_market(seed, K, N, uses_p=p)
    A = leontief_matrix_by_loops(inp.gamma, inp.xi, inp.uses)
    ref = max(abs(np.linalg.eigvals(A))) if A.any() else 0.0
    r = spectral_radius(A)
    assert r.lower - 1e-9 <= ref <= r.upper + 1e-9
    assert r.value == pytest.approx(ref, rel=1e-7, abs=1e-10)


def test_spectral_radius_special_structures():
    # periodic (eigenvalues +-sqrt(ab)): plain power iteration would oscillate
    r = spectral_radius(np.array([[0.0, 0.25], [4.0, 0.0]]))
    assert r.value == pytest.approx(1.0, rel=1e-10) and r.lower <= 1.0 <= r.upper
    # reducible, triangular: rho = largest diagonal entry
    T = np.array([[0.3, 5.0, 1.0], [0.0, 0.7, 2.0], [0.0, 0.0, 0.1]])
    assert spectral_radius(T).value == pytest.approx(0.7, rel=1e-7)
    assert spectral_radius(np.zeros((3, 3))).value == 0.0


def test_spectral_radius_large_operator_path():
    rng = np.random.default_rng(0)
    M = rng.uniform(size=(410, 410)) * (rng.uniform(size=(410, 410)) < 0.05)
    ref = max(abs(np.linalg.eigvals(M)))
    r = spectral_radius(aslinearoperator(M), 410)
    assert r.value == pytest.approx(ref, rel=1e-8)
    assert r.lower - 1e-9 <= ref <= r.upper + 1e-9


# ------------------------------------------------------------------ two-firm example by hand
def two_firm_by_hand(x1):
    """x2 = 1, alpha = 1, F uniform on [-1, 1], delta = 0 (tests/oracles.py), as arrays."""
    c = two_firm_closed_form(x1)
    g1, g2, d11, d22 = c["g1"], c["g2"], c["d1"], c["d2"]
    return np.array([[g1, g2], [g1, g2]]), c["xi12"], c["xi21"], np.array([[d11, d22], [d11, d22]]), c["rho"]


@pytest.mark.parametrize("x1", [-1.0, -0.6, 0.0, 0.3, 0.8, 0.95])
def test_two_firm_example_hand_derived(x1):
    gamma, xi12, xi21, d_hand, rho_hand = two_firm_by_hand(x1)
    xi = np.array([[[1.0, xi12], [xi21, 1.0]]] * 2)
    res = solve_gne(GNEInputs.from_arrays(gamma, xi, np.ones(2)), best_response_gap=True)
    assert res.status is Status.OPTIMAL and res.certificate.passed, res.certificate.failures
    assert res.solution["spectral_radius"] == pytest.approx(rho_hand, rel=1e-9, abs=1e-12)
    assert rho_hand == pytest.approx((x1 + 1) ** 2 / (2 * (x1**2 + 1)), abs=1e-12)
    np.testing.assert_allclose(res.solution["d"], d_hand, rtol=1e-10)
    # efforts (17): e = ln(2 D)/2 with D = 2 d
    np.testing.assert_allclose(res.solution["effort_equilibrium"], np.log(4 * d_hand[0]) / 2, rtol=1e-10)


def test_two_firm_from_graph_matches_hand(two_firm=0.3):
    from datamarkets.graphs.estimation_market import two_firm_example

    res = solve_gne(two_firm_example(two_firm))
    np.testing.assert_allclose(res.solution["d"], two_firm_by_hand(two_firm)[3], rtol=1e-9)


def test_paper_matrix_31_row_two_is_a_typo():
    """Printed (31) puts xi^1_{1,2} in row 2 (d_1^2); (25) needs xi^1_{2,1}. They differ at x1 = 0.3."""
    x1 = 0.3
    gamma, xi12, xi21, d_hand, _ = two_firm_by_hand(x1)
    g = np.array([gamma[0, 0], gamma[1, 0], gamma[0, 1], gamma[1, 1]])  # (d_1^1, d_1^2, d_2^1, d_2^2)
    B_printed = np.array([[1, 0, 0, -xi21], [0, 1, -xi12, 0], [0, -xi12, 1, 0], [-xi12, 0, 0, 1]])
    d_printed = np.linalg.solve(B_printed, g)
    d_ours = np.array([d_hand[0, 0], d_hand[1, 0], d_hand[0, 1], d_hand[1, 1]])
    assert abs(d_printed[1] - d_ours[1]) > 1.0  # row 2 differs materially
    assert d_printed[0] == pytest.approx(d_ours[0], rel=1e-12)  # row 1 is right


# ------------------------------------------------------------------ no equilibrium, collapse
def test_no_equilibrium_is_a_typed_result_without_nan():
    inp = random_market(1, 3, 4, rho_target=1.5)
    res = solve_gne(inp)
    assert res.status is Status.NO_EQUILIBRIUM
    assert res.solution["d"] is None and "spectral radius" in res.solution["reason"]
    assert res.solution["spectral_radius"] == pytest.approx(1.5, rel=1e-6)
    assert res.solution["spectral_radius_bounds"][0] >= 1.0
    text = res.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["status"] == "no_equilibrium"


@pytest.mark.parametrize(
    ("x1", "ill", "certified"), [(0.5, False, True), (0.999, True, True), (0.9999999, True, False)]
)
def test_near_collapse_is_flagged(x1, ill, certified):
    gamma, xi12, xi21, _, _ = two_firm_by_hand(x1)
    xi = np.array([[[1.0, xi12], [xi21, 1.0]]] * 2)
    res = solve_gne(GNEInputs.from_arrays(gamma, xi, np.ones(2)))
    assert res.status is Status.OPTIMAL
    assert res.solution["ill_conditioned"] is ill
    assert res.certificate.passed is certified
    if not certified:
        assert "forward_error_bound_rel" in res.certificate.failures


# ------------------------------------------------------------------ c-polytope (Theorem 1)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), N=st.integers(1, 5))
def test_polytope_point_satisfies_lemma1_and_21(seed, K, N):
    inp = random_market(seed, K, N, rho_target=0.5)
    # gamma >= 1 on used pairs and alpha >= 0.5, and d >= gamma, so 2 alpha D >= 1 (e* >= 0);
    # the former factor 5 gave 2 alpha gamma down to 0.5, i.e. negative efforts
    inp = GNEInputs.from_arrays(inp.gamma * 10, inp.xi, inp.alpha)
    res = solve_gne(inp, welfare=False)
    assert res.status is Status.OPTIMAL
    d, c = res.solution["d"], res.solution["c_point"]
    D = d.sum(axis=0)
    s = 1 / (2 * inp.alpha * D)
    e = np.log(2 * inp.alpha * D) / (2 * inp.alpha)
    pen = np.array(
        [[d[k, i] * sum(inp.xi[k, i, l] * s[l] for l in range(N)) for i in range(N)] for k in range(K)]
    )
    assert np.all(c - pen >= -1e-10)  # (21)
    np.testing.assert_allclose((c - pen).sum(axis=0), e, rtol=1e-9, atol=1e-12)  # Lemma 1: (20) tight
    assert res.solution["c_polytope_nonempty"]


def test_negative_effort_is_typed_no_equilibrium():
    # Before the fix this came back Status.OPTIMAL with a d that is not a GNE.
    inp = random_market(2, 2, 3, rho_target=0.3)
    small = GNEInputs.from_arrays(inp.gamma * 1e-3, inp.xi, inp.alpha)
    res = solve_gne(small)
    assert res.status is Status.NO_EQUILIBRIUM
    assert res.solution["d"] is None and res.solution["no_equilibrium_cause"] == "negative_effort"
    assert "no interior GNE" in res.solution["reason"]
    assert not res.solution["c_polytope_nonempty"]
    assert "c_polytope_negative_effort" in res.certificate.failures
    # independent oracle: the candidate solves (25) and, from (17), some e_i < 0; then the lower
    # bounds (21) summed over buyers exceed Lemma 1's total, so no c exists for this d
    d = res.solution["d_candidate"]
    A = leontief_matrix(small)
    np.testing.assert_allclose(
        d.ravel(), np.linalg.solve(np.eye(A.shape[0]) - A, small.gamma.ravel()), rtol=1e-10
    )
    D = d.sum(axis=0)
    e = np.log(2 * small.alpha * D) / (2 * small.alpha)
    np.testing.assert_allclose(res.solution["effort_candidate"], e, rtol=1e-12)
    assert e.min() < 0
    s = 1 / (2 * small.alpha * D)
    xi = small.xi.copy()
    for k in range(xi.shape[0]):
        np.fill_diagonal(xi[k], 1.0)
    L = d * np.einsum("kil,l->ki", xi, s)
    i = int(np.argmin(e))
    assert L[:, i].sum() > L[:, i].sum() + e[i]  # sum_k c_i^k >= sum_k L_i^k > T_i: infeasible
    # the same instance with larger gamma (interior) is a certified GNE
    assert solve_gne(GNEInputs.from_arrays(inp.gamma * 1e3, inp.xi, inp.alpha)).status is Status.OPTIMAL


def test_polytope_constraints_text_and_range():
    inp = random_market(5, 2, 2, rho_target=0.4)
    inp = GNEInputs.from_arrays(inp.gamma * 10, inp.xi, inp.alpha)
    d, _ = solve_leontief(inp)
    poly = c_polytope(inp, d)
    lines = poly.constraints(["a", "b"], ["s", "t"])
    assert len(lines) == 2 + 4 and lines[0].startswith("c['a','s'] + c['b','s'] =")
    pr = poly.payment_range()
    np.testing.assert_allclose(pr["payment_most"], poly.effort.sum() * np.ones(2))
    np.testing.assert_allclose(pr["payment_least"], 0.0)


def test_effort_and_variance_response():
    np.testing.assert_allclose(effort_response([1.0, 2.0], [0.5, 1.0]), [0.0, math.log(4) / 2])
    np.testing.assert_allclose(variance_response([1.0, 2.0], [0.5, 1.0]), [1.0, 0.25])
    # (18) is sigma^2 at (17): exp(-2 alpha e*)
    D, a = np.array([0.7, 3.0]), np.array([1.3, 0.4])
    np.testing.assert_allclose(np.exp(-2 * a * effort_response(D, a)), variance_response(D, a))


def test_graph_input_and_report():
    from datamarkets.models.estimators import random_estimation_market

    G = random_estimation_market(2, 5, degree=1, seed=3, alpha_range=(50.0, 60.0))
    res = solve_gne(G)
    assert res.solution["buyers"] == ["b0", "b1"]
    assert res.status in (Status.OPTIMAL, Status.NO_EQUILIBRIUM)


# ------------------------------------------------------------------ exceptions
def _ok():
    return dict(gamma=np.ones((2, 2)), xi=np.ones((2, 2, 2)), alpha=np.ones(2))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"gamma": np.ones(2)}, "shape"),
        ({"gamma": np.ones((0, 2))}, "at least one"),
        ({"xi": np.ones((2, 2))}, "xi must have shape"),
        ({"alpha": np.ones(3)}, "alpha must have shape"),
        ({"eta": np.ones(3)}, "eta must have shape"),
        ({"uses": np.ones(3)}, "uses must have shape"),
        ({"gamma": np.array([[1.0, np.nan], [1.0, 1.0]])}, "non-finite"),
        ({"alpha": np.array([1.0, 0.0])}, "alpha"),
        ({"eta": np.array([1.0, -1.0])}, "eta"),
        ({"xi": -np.ones((2, 2, 2))}, "xi"),
        ({"gamma": np.array([[1.0, -0.1], [1.0, 1.0]])}, "Theorem 1"),
        (
            {"uses": np.array([[True, False], [True, False]]), "gamma": np.array([[1.0, 0.0], [1.0, 0.0]])},
            "no buyer",
        ),
        ({"uses": np.array([[True, False], [True, True]])}, "does not use"),
    ],
)
def test_invalid_inputs(change, match):
    kw = _ok() | change
    with pytest.raises(InvalidInputError, match=match):
        GNEInputs.from_arrays(**kw)


def test_invalid_names_and_objects():
    with pytest.raises(InvalidInputError, match="names"):
        GNEInputs.from_arrays(**_ok(), buyers=["a"])
    with pytest.raises(InvalidInputError, match="cannot read"):
        as_gne_inputs(object())


def test_unknown_method_and_convergence_errors():
    inp = random_market(4, 2, 3, rho_target=0.99)
    with pytest.raises(ValueError, match="unknown method"):
        solve_leontief(inp, method="lu")
    with pytest.raises(ConvergenceError) as exc:
        solve_leontief(inp, method="neumann", max_iter=2)
    assert exc.value.iterations == 2
    with pytest.raises(ConvergenceError):
        solve_leontief(random_market(4, 2, 3, rho_target=3.0), method="neumann")
    big = random_market(7, 3, 40, rho_target=0.999)
    with pytest.raises(ConvergenceError):
        solve_leontief(big, method="gmres", max_iter=1, rtol=1e-15)
