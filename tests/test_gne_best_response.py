"""Best-response programs (cvxpy/Clarabel): iteration converges to the Leontief solution, the gap is
~0 at the equilibrium and > 0 at a perturbed profile; the exact program (which never uses A)
independently confirms the masked derivation of A for partial markets."""

from __future__ import annotations

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError, SolverError
from datamarkets.formulations.gne_best_response import (
    best_response_gaps,
    best_response_iteration,
    build_best_response,
    buyer_cost,
    lemma1_coefficients,
    solve_best_response,
)
from datamarkets.formulations.gne_solve import solve_gne
from datamarkets.models.gne_inputs import GNEInputs
from datamarkets.models.gne_leontief import solve_leontief
from datamarkets.models.gne_polytope import c_polytope
from datamarkets.status import Status

from helpers import random_gne_market


@pytest.mark.parametrize("scheme", ["gauss-seidel", "jacobi"])
@pytest.mark.parametrize("backend", ["cvxpy", "closed"])
def test_iteration_converges_to_leontief(backend, scheme):
    inp = random_gne_market(1)
    res = best_response_iteration(inp, backend=backend, scheme=scheme)
    assert res.status is Status.OPTIMAL
    d_ref, _ = solve_leontief(inp, method="dense")
    tol = 1e-5 if backend == "cvxpy" else 1e-9
    np.testing.assert_allclose(res.solution["d"], d_ref, rtol=tol, atol=tol)
    assert res.certificate.passed


def test_iteration_hits_limit_without_equilibrium():
    inp = random_gne_market(2, scale=40.0)
    res = best_response_iteration(inp, backend="closed", max_iter=50)
    assert res.status is Status.ITERATION_LIMIT
    assert solve_gne(inp).status is Status.NO_EQUILIBRIUM


def test_lemma1_program_minimiser_is_row_of_25():
    inp = random_gne_market(3)
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 2.0, (inp.K, inp.N))
    for k in range(inp.K):
        br = solve_best_response(inp, k, d, mode="lemma1")
        # (25) by loops: d_q^k = g_q^k + sum_{j!=k} sum_{l!=q} d_l^j xi^j_{l,q}
        want = [
            inp.gamma[k, q]
            + sum(d[j, l] * inp.xi[j, l, q] for j in range(inp.K) for l in range(inp.N) if j != k and l != q)
            for q in range(inp.N)
        ]
        np.testing.assert_allclose(br.d, want, rtol=1e-5)


@pytest.mark.parametrize("uses_p", [1.0, 0.7])
@pytest.mark.parametrize("mode", ["exact", "lemma1"])
def test_gap_is_zero_at_equilibrium_for_any_polytope_point(mode, uses_p):
    inp = random_gne_market(4, K=3, N=6, uses_p=uses_p)
    res = solve_gne(inp)
    assert res.certificate.passed
    d = res.solution["d"]
    poly = c_polytope(inp, d)
    # canonical point, and the vertex where the first user pays every source's whole effort
    first = np.zeros_like(d)
    first[np.argmax(inp.uses, axis=0), np.arange(inp.N)] = 1.0
    for c in (res.solution["c_point"], poly.point(first)):
        assert poly.residuals(c)["equality"] < 1e-9
        gaps, _values = best_response_gaps(inp, d, c, mode=mode)
        assert np.all(np.abs(gaps) < 1e-7), gaps


def test_gap_is_positive_at_a_perturbed_profile():
    inp = random_gne_market(5, K=3, N=5)
    d, _ = solve_leontief(inp)
    d_bad = d.copy()
    d_bad[0] *= 1.3  # buyer 0 overpays
    poly = c_polytope(inp, d_bad)
    c_bad = poly.point(d_bad / d_bad.sum(axis=0))
    gaps, _values = best_response_gaps(inp, d_bad, c_bad, mode="exact")
    assert gaps[0] > 1e-3
    assert np.all(gaps > -1e-8)
    # the best response is a real improvement: re-evaluate the cost at the buyer's best reply
    br = solve_best_response(inp, 0, d_bad, c_bad, mode="exact")
    assert br.value < buyer_cost(inp, d_bad, c_bad, 0) - 1e-3


def test_solve_gne_certifies_gaps():
    res = solve_gne(random_gne_market(6), best_response_gap=True)
    assert res.certificate.residuals["best_response_gap_rel_max"] < 1e-7
    assert res.solution["best_response_gap"].shape == (3,)


def test_lemma1_coefficients_include_own_column():
    inp = random_gne_market(7)
    d = np.ones((inp.K, inp.N))
    coef, D_minus = lemma1_coefficients(inp, d, 0)
    np.testing.assert_allclose(D_minus, inp.K - 1)
    assert np.all(coef >= D_minus + inp.gamma[0] - 1e-12)  # K_q >= D_q^{-k}


def test_errors():
    inp = random_gne_market(8)
    d = np.ones((inp.K, inp.N))
    with pytest.raises(InvalidInputError, match="needs the others' c"):
        build_best_response(inp, 0, d, mode="exact")
    with pytest.raises(InvalidInputError, match="d must have shape"):
        build_best_response(inp, 0, np.ones(3))
    with pytest.raises(InvalidInputError, match="c must have shape"):
        build_best_response(inp, 0, d, np.ones(3), mode="exact")
    with pytest.raises(InvalidInputError, match="out of range"):
        build_best_response(inp, 9, d)
    with pytest.raises(ValueError, match="unknown mode"):
        build_best_response(inp, 0, d, mode="bogus")
    with pytest.raises(ValueError, match="unknown mode"):
        best_response_gaps(inp, d, d, mode="bogus")
    with pytest.raises(ValueError, match="unknown backend"):
        best_response_iteration(inp, backend="bogus")
    with pytest.raises(ValueError, match="unknown scheme"):
        best_response_iteration(inp, scheme="bogus")
    with pytest.raises(SolverError):
        solve_best_response(inp, 0, d, solver="NO_SUCH_SOLVER")


def test_gap_zero_with_eta_not_one():
    """(19) divided by eta: the equilibrium and the exact programs both use gamma / eta."""
    base = random_gne_market(9, K=3, N=4)
    inp = GNEInputs.from_arrays(base.gamma, base.xi, base.alpha, eta=np.array([0.5, 1.0, 3.0]))
    res = solve_gne(inp, best_response_gap=True)
    assert res.certificate.passed, res.certificate.failures
    assert np.max(np.abs(res.solution["best_response_gap"])) < 1e-7
