"""HiGHS LPs: existence as feasibility of (I - A) d = gamma, d >= 0 (iff rho(A) < 1), and who pays."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import datamarkets.formulations.gne_lp as gne_lp
from datamarkets.errors import InvalidInputError
from datamarkets.formulations.gne_lp import leontief_feasibility, payment_range
from datamarkets.formulations.gne_solve import solve_gne
from datamarkets.models.gne_inputs import GNEInputs
from datamarkets.models.gne_leontief import solve_leontief
from datamarkets.models.gne_polytope import c_polytope
from datamarkets.status import Status

from oracles import leontief_matrix_by_loops


def scaled_market(seed, K, N, rho, uses_p=1.0):
    """Random market whose A has spectral radius exactly ``rho`` (scaling xi scales A)."""
    rng = np.random.default_rng(seed)
    xi = rng.uniform(0, 1, (K, N, N))
    uses = rng.uniform(size=(K, N)) < uses_p
    uses[0] = True
    gamma = np.where(uses, rng.uniform(0.2, 2.0, (K, N)), 0.0)
    base = GNEInputs.from_arrays(gamma, xi, np.ones(N), uses=uses)
    r0 = max(abs(np.linalg.eigvals(leontief_matrix_by_loops(base.gamma, base.xi, base.uses))))
    xi = xi * rho / r0
    for k in range(K):
        np.fill_diagonal(xi[k], 1.0)
    return GNEInputs.from_arrays(gamma, xi, rng.uniform(0.5, 2.0, N), uses=uses)


@given(
    seed=st.integers(0, 10_000),
    K=st.integers(2, 4),
    N=st.integers(2, 5),
    rho=st.one_of(st.floats(0.05, 0.95), st.floats(1.05, 3.0)),
)
def test_lp_feasible_iff_spectral_radius_below_one(seed, K, N, rho):
    inp = scaled_market(seed, K, N, rho)
    lp = leontief_feasibility(inp)
    direct = solve_gne(inp, welfare=False)
    if rho < 1:
        assert lp.status is Status.OPTIMAL and lp.certificate.passed
        # the Leontief d is a GNE iff every effort (17) is >= 0 (else typed no_equilibrium)
        interior = bool(np.all(2 * inp.alpha * lp.solution["d"].sum(axis=0) >= 1))
        assert direct.status is (Status.OPTIMAL if interior else Status.NO_EQUILIBRIUM)
        d_direct = direct.solution["d"] if interior else direct.solution["d_candidate"]
        np.testing.assert_allclose(lp.solution["d"], d_direct, rtol=1e-6, atol=1e-8)
    else:
        assert lp.status is Status.NO_EQUILIBRIUM
        assert direct.status is Status.NO_EQUILIBRIUM


def brute_force_range(poly, k):
    """Enumerate the polytope's vertices: at each source one user carries the whole slack e_i."""
    K, N = poly.lower.shape
    users = [[j for j in range(K) if poly.uses[j, i]] for i in range(N)]
    vals = []
    for choice in itertools.product(*users):
        share = np.zeros((K, N))
        for i, j in enumerate(choice):
            share[j, i] = 1.0
        vals.append(poly.point(share)[k].sum())
    return min(vals), max(vals)


@pytest.mark.parametrize("uses_p", [1.0, 0.6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_payment_range_lp_vs_vertex_enumeration(seed, uses_p):
    inp = scaled_market(seed, 3, 4, 0.5, uses_p)
    inp = GNEInputs.from_arrays(inp.gamma * 5, inp.xi, inp.alpha, uses=inp.uses)  # efforts >= 0
    d, _ = solve_leontief(inp)
    res = payment_range(inp, d)
    assert res.status is Status.OPTIMAL and res.certificate.passed
    poly = c_polytope(inp, d)
    for k in range(inp.K):
        lo, hi = brute_force_range(poly, k)
        got = res.solution["payment_range"][str(k)]
        assert got["c_least"] == pytest.approx(lo, rel=1e-9)
        assert got["c_most"] == pytest.approx(hi, rel=1e-9)
        assert got["least"] >= -1e-9 and got["most"] <= poly.effort.sum() + 1e-9


def test_one_buyer_can_pay_everything():
    """The paper's extreme case: one firm bears the whole expected compensation sum_i e_i*."""
    inp = scaled_market(3, 2, 3, 0.4)
    inp = GNEInputs.from_arrays(inp.gamma * 5, inp.xi, inp.alpha)
    res = solve_gne(inp, lp_check=True)
    e_total = res.solution["effort_equilibrium"].sum()
    for b in ("0", "1"):
        assert res.solution["payment_range"][b]["most"] == pytest.approx(e_total, rel=1e-12)
        assert res.solution["payment_range"][b]["least"] == 0.0
    assert res.certificate.residuals["payment_range_lp_vs_closed_form_rel"] < 1e-9


def test_empty_polytope_is_infeasible():
    inp = scaled_market(4, 2, 3, 0.3)
    tiny = GNEInputs.from_arrays(inp.gamma * 1e-4, inp.xi, inp.alpha)
    d, _ = solve_leontief(tiny)
    res = payment_range(tiny, d)
    assert res.status is Status.INFEASIBLE
    assert res.solution["payment_range"] is None and "empty" in res.solution["reason"]


def test_existence_lp_size_limit(monkeypatch):
    monkeypatch.setattr(gne_lp, "MAX_EXISTENCE_PAIRS", 3)
    with pytest.raises(InvalidInputError, match="matrix-free"):
        leontief_feasibility(scaled_market(0, 2, 2, 0.5))
