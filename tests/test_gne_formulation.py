"""The ``gne`` formulation plug-in (formulations/gne_formulation.py).

Oracles: the Leontief system (26) assembled entry by entry from eq. (25) and solved densely; the
closed-form best-response iteration; ``solve_gne`` (the two-firm §IV example); every installed cone
solver route (Clarabel, ECOS; SCS with a looser stated tolerance) against the direct route; verify
round trips, including saved "no equilibrium" answers and false claims of one.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.models.gne_inputs import as_gne_inputs
from datamarkets.registry import get_formulation
from datamarkets.solvers import available_solvers
from datamarkets.status import Status

from helpers import need_solver
from oracles import leontief_solution_dense

D_RTOL = 1e-5  # cone routes vs direct, max |Δd| / max |d| (their best responses are ≈ 1e-6 accurate)
SCS_RTOL = 1e-4  # SCS (first order): observed 3e-5


@pytest.fixture(scope="module")
def f():
    return get_formulation("gne")


def _d_rel(r, ref) -> float:
    d, d0 = np.asarray(r.solution["d"], float), np.asarray(ref.solution["d"], float)
    return float(np.abs(d - d0).max() / np.abs(d0).max())


def dense_leontief_d(instance) -> np.ndarray:
    """d = (I − A)⁻¹ γ̃ with A built entry by entry from (25) (tests/oracles.py), on a complete market
    (every buyer uses every source)."""
    inp = as_gne_inputs(instance)
    assert inp.uses.all()
    return leontief_solution_dense(inp.gamma_tilde, inp.xi)


TWO_FIRM = [
    {"market": "two-firm", "x1": 0.5},
    {"market": "two-firm", "x1": -0.3, "delta": 0.2},
    {"market": "two-firm", "x1": 0.2, "x2": 0.9, "alpha": 2.0},
]


# ----------------------------------------------------------------------------- direct route
@pytest.mark.parametrize("params", TWO_FIRM)
def test_two_firm_direct_route_matches_solve_gne_and_the_dense_system(f, params):
    from datamarkets.formulations.gne_solve import solve_gne

    G = f.instance(params)
    r = f.solve(G)
    assert r.status is Status.OPTIMAL and r.certified, r.certificate.failures
    ref = solve_gne(G)
    np.testing.assert_allclose(r.solution["d"], ref.solution["d"], rtol=1e-12)
    np.testing.assert_allclose(r.solution["d"], dense_leontief_d(G), rtol=1e-9)
    assert f.objective(r) == pytest.approx(float(np.sum(dense_leontief_d(G))), rel=1e-9)


@settings(max_examples=6, deadline=None)
@given(size=st.integers(8, 12), seed=st.integers(0, 10_000))
def test_random_markets_direct_route_matches_two_other_algorithms(size, seed):
    from datamarkets.formulations.gne_best_response import best_response_iteration

    f = get_formulation("gne")
    G = f.instance({"market": "random", "size": size, "buyers": 2, "seed": seed})
    r = f.solve(G)
    if (
        r.status is Status.NO_EQUILIBRIUM
    ):  # typed answer: re-derivable, and ρ(A) ≥ 1 means I − A is not an M-matrix
        assert f.verify(json.loads(r.to_json())).certificate.passed
        assume(False)
    assert r.certified, r.certificate.failures
    d = np.asarray(r.solution["d"])
    np.testing.assert_allclose(d, dense_leontief_d(G), rtol=1e-8, atol=1e-10 * np.abs(d).max())
    closed = best_response_iteration(G, backend="closed", tol=1e-12, max_iter=5000)
    assert closed.status is Status.OPTIMAL
    assert np.abs(np.asarray(closed.solution["d"]) - d).max() <= 1e-8 * np.abs(d).max()


# ------------------------------------------------------------------------------ cone routes
@pytest.mark.parametrize("solver", ["clarabel", "ecos"])
@pytest.mark.parametrize("params", TWO_FIRM[:2])
def test_two_firm_cone_routes_agree_with_direct(f, params, solver):
    need_solver(solver)
    G = f.instance(params)
    r = f.solve(G, solver)
    assert r.status.has_solution and r.kind == "gne-best-response"
    assert _d_rel(r, f.solve(G)) <= D_RTOL
    assert r.meta["solver"] == solver


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), solver=st.sampled_from(["clarabel", "ecos"]))
def test_random_markets_cone_routes_agree_with_direct(seed, solver):
    """For ρ(A) ≤ 0.9 the iteration's stopping step 1e-6 leaves d within ≈ 1e-6·ρ/(1 − ρ) ≤ 1e-5."""
    need_solver(solver)
    f = get_formulation("gne")
    G = f.instance({"market": "random", "size": 8, "buyers": 2, "seed": seed})
    direct = f.solve(G)
    assume(direct.status is Status.OPTIMAL and direct.solution["spectral_radius"] <= 0.9)
    r = f.solve(G, solver)
    assert r.status.has_solution, r.status
    assert _d_rel(r, direct) <= D_RTOL
    assert abs(f.objective(r) - f.objective(direct)) <= D_RTOL * f.objective(direct)


@pytest.mark.parametrize("solver", ["clarabel", "ecos"])
def test_cone_route_error_grows_like_one_over_one_minus_rho(f, solver):
    """Seed 448: ρ(A) = 0.957. The route stops at a Leontief residual r ≤ 1e-6 (relative), which
    only bounds the error by ≈ r/(1 − ρ) ≈ 2e-5: measured 1.02e-5 (> D_RTOL), and still certified."""
    need_solver(solver)
    G = f.instance({"market": "random", "size": 8, "buyers": 2, "seed": 448})
    direct = f.solve(G)
    rho = direct.solution["spectral_radius"]
    assert 0.95 < rho < 0.96
    r = f.solve(G, solver)
    assert r.certified, r.certificate.failures
    assert _d_rel(r, direct) <= 2 * f.tol / (1 - rho)


def test_scs_route_is_within_its_stated_tolerance_or_a_typed_limit(f):
    need_solver("scs")
    G = f.instance({"market": "random", "size": 8, "buyers": 2, "seed": 3})
    r = f.solve(G, "scs")
    if r.status.has_solution:
        assert _d_rel(r, f.solve(G)) <= SCS_RTOL
    else:
        assert r.status is Status.ITERATION_LIMIT


def test_clarabel_route_is_certified_on_the_two_firm_example(f):
    need_solver("clarabel")
    r = f.solve(f.instance({"market": "two-firm", "x1": 0.5}), "clarabel")
    assert r.certified, r.certificate.failures


# ----------------------------------------------------------------------------------- verify
@pytest.fixture(scope="module")
def two_firm(f):
    G = f.instance({"market": "two-firm", "x1": 0.5})
    r = f.solve(G)
    assert r.certified
    return G, json.loads(r.to_json())


def test_verify_round_trip_through_a_file(f, tmp_path):
    from datamarkets.io import read_json

    G = f.instance({"market": "two-firm", "x1": -0.3, "delta": 0.2})
    for solver in ("direct", "ecos"):
        if solver != "direct" and available_solvers().get(solver) is None:
            continue
        path = f.solve(G, solver).save(tmp_path / f"{solver}.json")
        ver = f.verify(read_json(path))
        assert ver.certificate.passed, (solver, ver.certificate.failures)
        assert ver.solution["claimed_passed"]


def test_verify_rejects_a_shifted_d_entry(f, two_firm):
    _, saved = two_firm
    bad = copy.deepcopy(saved)
    bad["d"][0][1] *= 1.001
    fails = f.verify(bad).certificate.failures
    assert "leontief_backward_error" in fails


def test_verify_rejects_a_c_point_off_the_polytope(f, two_firm):
    _, saved = two_firm
    bad = copy.deepcopy(saved)
    bad["c_point"][0][0] += 1.0
    fails = f.verify(bad).certificate.failures
    assert "c_point_equality" in fails


def test_verify_instance_checks(f, two_firm):
    from datamarkets.io import instance_hash

    G, saved = two_firm
    tampered = copy.deepcopy(saved)
    src = next(n for n in tampered["instance"]["nodes"] if "alpha" in n)
    src["alpha"] *= 2
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        f.verify(tampered)
    tampered["meta"]["instance_hash"] = instance_hash(tampered["instance"])
    assert not f.verify(tampered).certificate.passed  # a consistent new claim that does not hold
    bare = copy.deepcopy(saved)
    del bare["instance"]
    with pytest.raises(InvalidInputError, match="embeds no instance"):
        f.verify(bare)
    assert f.verify(bare, instance=G).certificate.passed
    with pytest.raises(InvalidInputError, match="does not match"):
        f.verify(bare, instance=f.instance({"market": "two-firm", "x1": 0.4}))


# ------------------------------------------------------------------------ no equilibrium
NO_EQ = {"market": "random", "size": 10, "buyers": 4, "seed": 1}  # ρ(A) ≈ 2.3 (see generate())


def test_no_equilibrium_is_a_typed_answer_that_verifies(f, tmp_path):
    from datamarkets.io import read_json

    G = f.instance(NO_EQ)
    r = f.solve(G)
    assert r.status is Status.NO_EQUILIBRIUM and r.solution["no_equilibrium_cause"] == "spectral_radius"
    assert r.solution["spectral_radius_bounds"][0] >= 1.0
    assert f.objective(r) is None and r.instance is not None
    saved = read_json(r.save(tmp_path / "noeq.json"))
    ver = f.verify(saved)
    assert ver.certificate.passed
    assert ver.certificate.residuals == {"no_equilibrium_not_confirmed": 0.0}
    wrong = copy.deepcopy(saved)
    wrong["no_equilibrium_cause"] = "negative_effort"
    assert "no_equilibrium_not_confirmed" in f.verify(wrong).certificate.failures


def test_a_false_no_equilibrium_claim_fails(f, two_firm):
    _, saved = two_firm
    bad = copy.deepcopy(saved)
    bad.update(status="no_equilibrium", no_equilibrium_cause="spectral_radius", d=None)
    ver = f.verify(bad)
    assert "no_equilibrium_not_confirmed" in ver.certificate.failures
    assert ver.certificate.details["recomputed_status"] == "optimal"


def test_a_false_infeasible_claim_fails(f, two_firm):
    _, saved = two_firm
    bad = copy.deepcopy(saved)
    bad.update(status="infeasible", d=None)
    assert not f.verify(bad).certificate.passed


# -------------------------------------------------------------------------------- bad input
def test_unknown_parameter_is_named(f):
    with pytest.raises(InvalidInputError, match="'firms'"):
        f.instance({"firms": 2})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"market": "three-firm"}, "unknown gne market"),
        ({"buyers": 0}, "n_buyers"),
        ({"size": 0}, "n_sources"),
        ({"market": "two-firm", "x1": 1.0}, "rank"),  # coincident sources: not identified
        ({"market": "two-firm", "delta": 2.0}, "delta"),
        ({"market": "two-firm", "alpha": -1.0}, "alpha"),
    ],
)
def test_bad_parameters(f, params, match):
    with pytest.raises(InvalidInputError, match=match):
        f.instance(params)


def test_non_numeric_size_is_invalid_input(f):
    with pytest.raises(InvalidInputError):
        f.instance({"size": "x"})


def test_unknown_solver(f, two_firm):
    G, _ = two_firm
    for bad in ("highs", "gurobi"):
        with pytest.raises(InvalidInputError, match=f"cannot use solver '{bad}'"):
            f.solve(G, bad)


def test_certify_rejects_malformed_solutions(f, two_firm):
    G, saved = two_firm
    with pytest.raises(InvalidInputError, match="'d' and 'c_point'"):
        f.certify(G, {"d": saved["d"]})
    with pytest.raises(InvalidInputError, match="shape"):
        f.certify(G, {"d": [[1.0, 2.0, 3.0]], "c_point": saved["c_point"]})
