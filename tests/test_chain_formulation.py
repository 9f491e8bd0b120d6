"""The ``chain-equilibrium`` formulation plug-in (formulations/chain_formulation.py).

Oracles: a one-trade game solved by hand; the paper's reference algorithms (Algorithms 1–3,
``solve_equilibrium(method="reference")``) as a second algorithm for the social welfare; every
installed LP solver route against the DP (threshold sums to 1e-7 relative); OPT dominating the
baselines it starts from; verify round trips with tampered solutions and instances.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.registry import get_formulation
from datamarkets.status import Status

from helpers import need_solver, rel_err

LP_SOLVERS = ("highs", "glpk", "cbc")
RTOL = 1e-7  # threshold sums of the LP routes vs the DP (the certificate's own RTOL)


@pytest.fixture(scope="module")
def f():
    return get_formulation("chain-equilibrium")


def _saved(f, game, solver="direct"):
    r = f.solve(game, solver)
    assert r.certified, r.certificate.failures
    return json.loads(r.to_json())


# ------------------------------------------------------------------------------ closed form
ONE_TRADE = {
    # player 0 holds value 0; the buyer's value is 1 or 3 with probability 1/2 each (then stays):
    # price 3 sells with probability 1/2 (gain 1.5), price 1 surely (gain 1) -> price 3, gain 1.5
    "values": [0.0, 1.0, 3.0],
    "start": 0,
    "n": 1,
    "transitions": [[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    "mechanism": [[1.0, 0.0]],
}


@pytest.mark.parametrize("solver", ("direct", *LP_SOLVERS))
def test_one_trade_game_closed_form(f, solver):
    if solver != "direct":
        need_solver(solver)
    game = f.instance_from_dict(ONE_TRADE)
    r = f.solve(game, solver)
    assert r.status is Status.OPTIMAL and r.certified, r.certificate.failures
    s = np.asarray(r.solution["thresholds"])
    p = np.asarray(r.solution["prices"])
    # seller's threshold = own value + best gain: value 0 -> 0 + 1.5; value 1 -> 1 + 1; value 3 -> 3 + 3
    np.testing.assert_allclose(s[0], [1.5, 2.0, 6.0], rtol=1e-12)
    np.testing.assert_allclose(s[1], [0.0, 1.0, 3.0], rtol=1e-12)  # last player: its value
    assert p[0, 0] == pytest.approx(3.0)
    assert r.solution["transaction_volume"] == pytest.approx(0.5, abs=1e-12)  # buyer accepts iff value 3
    assert r.solution["player_utility"][0] == pytest.approx(1.5, abs=1e-12)
    assert r.solution["player_utility"][1] == pytest.approx(0.0, abs=1e-12)  # pays exactly its value
    assert f.objective(r) == pytest.approx(1.5 + 2 + 6 + 0 + 1 + 3, rel=1e-9)


# ------------------------------------------------------------------- second algorithm (SW)
@pytest.mark.parametrize("n", [3, 4, 5])
def test_paper1_ave_welfare_matches_reference_algorithms(f, n):
    from datamarkets.models.chain_equilibrium import solve_equilibrium

    game = f.instance({"model": "paper-1", "n": n, "mechanism": "ave"})
    r = f.solve(game)
    assert r.certified
    ref = solve_equilibrium(game, method="reference")  # the paper's Algorithms 1-3
    fast = solve_equilibrium(game)
    assert r.solution["social_welfare"] == pytest.approx(ref.social_welfare, rel=1e-10)
    assert r.solution["social_welfare"] == pytest.approx(fast.social_welfare, rel=1e-12)
    assert r.solution["transaction_volume"] == pytest.approx(ref.transaction_volume, rel=1e-10)
    np.testing.assert_allclose(r.solution["thresholds"], ref.thresholds, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------- solver route agreement
PAPER_CASES = [
    ("paper-1", 3, "ave"),
    ("paper-1", 4, "raw"),
    ("paper-2", 3, "tbds:0.5"),
    ("paper-2", 5, "ave"),
    ("paper-4", 4, "ave"),
    ("paper-4", 5, "tbds:0.5"),
]


@pytest.mark.parametrize("solver", ["highs", "cbc"])
@pytest.mark.parametrize(("model", "n", "mech"), PAPER_CASES)
def test_paper_models_lp_routes_agree_with_dp(f, model, n, mech, solver):
    need_solver(solver)
    game = f.instance({"model": model, "n": n, "mechanism": mech})
    direct = f.solve(game)
    r = f.solve(game, solver)
    assert r.status is Status.OPTIMAL and r.certified, r.certificate.failures
    assert r.certificate.details["lp_route"]["passed"]
    assert rel_err(f.objective(r), f.objective(direct)) <= RTOL
    lp = np.asarray(r.solution["lp_thresholds"])
    dp = np.asarray(direct.solution["thresholds"])
    assert np.max(np.abs(lp - dp) / np.maximum(1.0, np.abs(dp))) <= RTOL
    assert r.meta["solver"] == solver and r.meta["formulation"] == "chain-equilibrium"


mechanisms = st.sampled_from(["raw", "ave", "tbds:0.25", "tbds:0.5", "tbds:0.75"])


@settings(max_examples=8, deadline=None)
@given(
    L=st.integers(2, 9),
    n=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    mech=mechanisms,
    solver=st.sampled_from(["highs", "cbc"]),
)
def test_random_games_lp_routes_agree_with_dp(L, n, seed, mech, solver):
    need_solver(solver)
    f = get_formulation("chain-equilibrium")
    game = f.instance({"model": "random", "size": L, "n": n, "seed": seed, "mechanism": mech})
    direct = f.solve(game)
    assert direct.certified, direct.certificate.failures
    r = f.solve(game, solver)
    assert r.certified, r.certificate.failures
    assert rel_err(f.objective(r), f.objective(direct)) <= RTOL
    assert f.objective(direct) == pytest.approx(float(np.sum(direct.solution["thresholds"])), rel=1e-15)


def test_glpk_route_agrees_on_an_easy_game(f):
    need_solver("glpk")
    game = f.instance({"model": "paper-1", "n": 3, "mechanism": "ave"})
    r = f.solve(game, "glpk")
    assert r.certified and r.certificate.details["lp_route"]["passed"]
    assert rel_err(f.objective(r), f.objective(f.solve(game))) <= RTOL


def test_glpk_route_threshold_sum_matches_dp_paper2(f):
    need_solver("glpk")
    game = f.instance({"model": "paper-2", "n": 4, "mechanism": "raw"})
    r = f.solve(game, "glpk")
    assert rel_err(f.objective(r), f.objective(f.solve(game))) <= RTOL


def test_a_failed_lp_route_is_not_certified(f):
    need_solver("glpk")
    game = f.instance({"model": "paper-2", "n": 4, "mechanism": "raw"})
    r = f.solve(game, "glpk")
    assert r.certified == r.certificate.details["lp_route"]["passed"]


@pytest.mark.parametrize("model", ["paper-1", "paper-2", "paper-4"])
def test_opt_mechanism_dominates_the_baselines_it_starts_from(f, model):
    sw = {
        m: f.solve(f.instance({"model": model, "n": 3, "mechanism": m})).solution["social_welfare"]
        for m in ("raw", "ave", "tbds:0.5", "opt")
    }
    assert sw["opt"] >= max(sw["raw"], sw["ave"], sw["tbds:0.5"]) - 1e-12
    r = f.solve(f.instance({"model": model, "n": 3, "mechanism": "opt"}))
    assert r.certified, r.certificate.failures


# -------------------------------------------------------------------------------- verify
@pytest.fixture(scope="module")
def paper1(f):
    game = f.instance({"model": "paper-1", "n": 3, "mechanism": "ave"})
    return game, _saved(f, game)


def test_verify_round_trip_through_a_file(f, paper1, tmp_path):
    from datamarkets.io import read_json

    game, _ = paper1
    path = f.solve(game, "highs").save(tmp_path / "chain.json")
    ver = f.verify(read_json(path))
    assert ver.certificate.passed, ver.certificate.failures
    assert ver.solution["verified_kind"] == "chain-equilibrium" and ver.solution["claimed_passed"]
    assert ver.meta["instance_hash"] == read_json(path)["meta"]["instance_hash"]


def test_verify_rejects_a_shifted_price(f, paper1):
    game, saved = paper1
    k = int(np.argmax(game.start))  # the value player 0 surely holds: on the equilibrium path
    bad = copy.deepcopy(saved)
    bad["prices"][0][k] *= 0.5
    fails = f.verify(bad).certificate.failures
    assert "dp_price_vs_lp_optimum_rel_max" in fails
    assert "social_welfare_rel" in fails  # the claimed SW no longer follows from the strategies


def test_verify_rejects_a_shifted_threshold(f, paper1):
    _, saved = paper1
    bad = copy.deepcopy(saved)
    bad["thresholds"][2][3] += 0.01
    assert "lp_vs_dp_threshold_rel_max" in f.verify(bad).certificate.failures


def test_verify_rejects_a_wrong_welfare_claim(f, paper1):
    _, saved = paper1
    bad = copy.deepcopy(saved)
    bad["social_welfare"] *= 1 + 1e-6
    assert set(f.verify(bad).certificate.failures) == {"social_welfare_rel"}


def test_verify_instance_checks(f, paper1):
    game, saved = paper1
    tampered = copy.deepcopy(saved)
    tampered["instance"]["values"][0] -= 1e-3
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        f.verify(tampered)
    bare = copy.deepcopy(saved)
    del bare["instance"]
    with pytest.raises(InvalidInputError, match="embeds no instance"):
        f.verify(bare)
    assert f.verify(bare, instance=game).certificate.passed
    other = f.instance({"model": "paper-1", "n": 3, "mechanism": "raw"})
    with pytest.raises(InvalidInputError, match="does not match"):
        f.verify(bare, instance=other)


def test_verify_does_not_trust_a_rehashed_instance(f, paper1):
    """An instance edited *and* re-hashed is a new claim: the strategies no longer fit it."""
    from datamarkets.io import instance_hash

    _, saved = paper1
    bad = copy.deepcopy(saved)
    bad["instance"]["mechanism"] = f.instance({"model": "paper-1", "n": 3, "mechanism": "raw"}).t.tolist()
    bad["meta"]["instance_hash"] = instance_hash(bad["instance"])
    assert not f.verify(bad).certificate.passed


# ------------------------------------------------------------------------------ bad input
def test_unknown_parameter_is_named(f):
    with pytest.raises(InvalidInputError, match="'trades'"):
        f.instance({"trades": 3})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "paper-9"}, "unknown chain model"),
        ({"mechanism": "bogus"}, "mechanism"),
        ({"mechanism": "tbds:2"}, "alpha"),
        ({"n": 0}, "n ≥ 1"),
        ({"size": 1}, "L ≥ 2"),
    ],
)
def test_bad_parameters(f, params, match):
    with pytest.raises(InvalidInputError, match=match):
        f.instance(params)


def test_non_numeric_n_is_invalid_input(f):
    with pytest.raises(InvalidInputError):
        f.instance({"model": "paper-1", "n": "abc"})


def test_fractional_n_is_invalid_input(f):
    with pytest.raises(InvalidInputError):
        f.instance({"model": "paper-1", "n": 2.5})


def test_unknown_and_inapplicable_solvers(f):
    game = f.instance({"model": "paper-1", "n": 2})
    with pytest.raises(InvalidInputError, match="cannot use solver 'gurobi'"):
        f.solve(game, "gurobi")
    with pytest.raises(InvalidInputError, match="cannot use solver 'clarabel'"):
        f.solve(game, "clarabel")


def test_certify_rejects_a_solution_without_strategies(f, paper1):
    game, _ = paper1
    with pytest.raises(InvalidInputError, match="thresholds"):
        f.certify(game, {"prices": [[0.0]]})


# ------------------------------------------------------------------------------ time limits, no solution
@pytest.mark.parametrize("solver", ["direct", "highs"])
def test_time_limit_is_honoured_and_reported(f, solver):
    """A tiny limit on a larger game: the route stops (DP between players, HiGHS via its option)
    within a small multiple of the limit, reports time_limit and never a passing certificate."""
    import time

    game = f.instance({"model": "paper-1", "n": 150, "mechanism": "ave"})
    t0 = time.perf_counter()
    r = f.solve(game, solver, time_limit=0.05)
    elapsed = time.perf_counter() - t0
    assert r.status is Status.TIME_LIMIT
    assert not r.certified and not r.certificate.passed
    assert r.certificate.residuals["no_solution"] == 1.0
    assert elapsed < 5.0, elapsed  # the full DP + LPs take far longer at n = 150
    d = json.loads(r.to_json())
    assert d["certificate"]["passed"] is False
    ver = f.verify(d)  # a saved no-solution result is not verified either
    assert not ver.certificate.passed


@pytest.mark.parametrize("status", ["error", "time_limit"])
def test_tampered_no_solution_result_never_passes(f, status):
    game = f.instance({"model": "paper-2", "n": 3})
    d = _saved(f, game)
    d["status"] = status
    d["certificate"]["passed"] = True
    assert not f.verify(d).certificate.passed


def test_tie_rule_parameter(f):
    lo = f.solve(f.instance({"model": "paper-2", "n": 5, "mechanism": "raw"}))
    hi = f.solve(f.instance({"model": "paper-2", "n": 5, "mechanism": "raw", "tie_rule": "highest"}))
    assert lo.certified and hi.certified, (lo.certificate.failures, hi.certificate.failures)
    assert round(lo.solution["social_welfare"], 4) == 0.2437
    assert round(hi.solution["social_welfare"], 4) == 0.2010
    assert lo.solution["sw_tie_range"] == pytest.approx(hi.solution["sw_tie_range"], abs=1e-12)
    assert lo.meta["instance_hash"] != hi.meta["instance_hash"]
    # a result claiming the other rule's selection for this game fails
    d = json.loads(lo.to_json())
    d["prices"], d["thresholds"] = hi.solution["prices"].tolist(), hi.solution["thresholds"].tolist()
    assert not f.verify(d).certificate.passed
    with pytest.raises(InvalidInputError, match="tie_rule"):
        f.instance({"model": "paper-2", "tie_rule": "random"})
