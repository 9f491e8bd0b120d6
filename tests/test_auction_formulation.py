"""The ``auction-welfare``, ``auction-kkt`` and ``auction-psp`` formulation plug-ins.

Oracles: closed forms on complete bipartite markets (every buyer reaches every seller, so supply
pools into one resource): water-filling on the price for quadratic valuations, greedy by unit
price for linear ones (both in tests/oracles.py), and for the draft's Example 1 (total demand =
total supply) Σ p_i D_i; every installed solver route against them and against each other; the KKT
MILP against the welfare optimum; the PSP ε-equilibrium welfare against the optimum (bounded by the
bid fees); verify round trips with tampered solutions and instances.
"""

from __future__ import annotations

import copy
import doctest
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.market import buyers as market_buyers
from datamarkets.graphs.market import sellers as market_sellers
from datamarkets.registry import get_formulation
from datamarkets.status import Status, StatusGroup

import oracles
from helpers import installed_solvers, need_solver, rel_err

EXACT = ("clarabel", "highs", "ecos")  # welfare within 1e-6 relative of the oracle
FIRST_ORDER = ("osqp", "scs")  # welfare within 1e-5 relative (observed ≤ 7e-8 on these sizes)
TOL = {**dict.fromkeys(EXACT, 1e-6), **dict.fromkeys(FIRST_ORDER, 1e-5), "glpk": 1e-6, "cbc": 1e-6}


@pytest.fixture(scope="module")
def welfare():
    return get_formulation("auction-welfare")


@pytest.fixture(scope="module")
def kkt():
    return get_formulation("auction-kkt")


@pytest.fixture(scope="module")
def psp():
    return get_formulation("auction-psp")


# ---------------------------------------------------------------------------------- oracles
def _supply(G) -> float:
    return float(sum(G.nodes[s]["supply"] for s in market_sellers(G)))


def _complete(G) -> bool:
    return G.number_of_edges() == len(market_buyers(G)) * len(market_sellers(G))


def water_filling_welfare(G) -> float:
    """Optimum of Σ a_i x_i − b_i x_i²/2 (flat past a_i/b_i), Σ x_i ≤ S, on a complete bipartite
    market: x_i(λ) = max(0, (a_i − λ)/b_i), λ = 0 if Σ a_i/b_i ≤ S, else Σ x_i(λ) = S (bisection)."""
    assert _complete(G)
    v = [G.nodes[b]["valuation"] for b in market_buyers(G)]
    return oracles.quadratic_water_filling([x.a for x in v], [x.b for x in v], _supply(G))[0]


def greedy_linear_welfare(G) -> float:
    """Optimum of Σ p_i min(x_i, D_i), Σ x_i ≤ S on a complete bipartite market: serve the highest
    unit prices first."""
    assert _complete(G)
    return oracles.greedy_linear_welfare([G.nodes[b]["valuation"] for b in market_buyers(G)], _supply(G))


def _check_feasible(G, allocation, tol: float = 1e-7) -> None:
    """Allocation on existing edges, non-negative, within every seller's supply."""
    used: dict = {}
    for row in allocation:
        assert G.has_edge(row["buyer"], row["seller"]), row
        assert row["amount"] >= -tol
        used[row["seller"]] = used.get(row["seller"], 0.0) + row["amount"]
    for s, q in used.items():
        assert q <= G.nodes[s]["supply"] * (1 + tol) + tol, (s, q)


# ------------------------------------------------------------------------- example 1 anchor
EXAMPLE1_WELFARE = 50 * 1.0 + 40 * 1.2 + 26 * 1.5 + 20 * 2.0 + 14 * 2.2  # = 207.8, see below


def test_example1_closed_form_from_the_market(welfare):
    """Example 1 has total demand 150 = total supply 65 + 85 on a complete bipartite graph, so the
    optimum serves every buyer its whole demand: W = Σ p_i D_i = 207.8."""
    G = welfare.instance({"market": "example1"})
    assert _complete(G)
    assert sum(G.nodes[b]["valuation"].demand for b in market_buyers(G)) == pytest.approx(_supply(G))
    assert greedy_linear_welfare(G) == pytest.approx(EXAMPLE1_WELFARE, rel=1e-15)


@pytest.mark.parametrize("solver", ["clarabel", "highs", "osqp", "scs", "ecos", "glpk", "cbc"])
def test_example1_every_route_attains_the_closed_form(welfare, solver):
    need_solver(solver)
    G = welfare.instance({"market": "example1"})
    r = welfare.solve(G, solver)
    assert r.certified, r.certificate.failures
    assert rel_err(welfare.objective(r), EXAMPLE1_WELFARE) <= TOL[solver]
    _check_feasible(G, r.solution["allocation"])


@pytest.mark.parametrize("solver", ["highs", "cbc", "glpk"])
def test_example1_kkt_milp_attains_the_closed_form(kkt, solver):
    need_solver(solver)
    r = kkt.solve(kkt.instance({"market": "example1"}), solver)
    assert r.certified, r.certificate.failures
    assert rel_err(kkt.objective(r), EXAMPLE1_WELFARE) <= 1e-6


@pytest.mark.parametrize("cls", ["AuctionWelfareFormulation", "AuctionKKTFormulation"])
def test_docstring_examples_hold(cls):
    import datamarkets.formulations.auction_formulation as mod

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder(recurse=False).find(getattr(mod, cls), cls, globs=vars(mod).copy()):
        runner.run(test, out=lambda s: None)
    assert runner.failures == 0


# ---------------------------------------------------------------- routes vs closed forms
@settings(max_examples=6, deadline=None)
@given(nb=st.integers(2, 15), ns=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_quadratic_complete_markets_match_water_filling(nb, ns, seed):
    f = get_formulation("auction-welfare")
    G = f.instance({"buyers": nb, "sellers": ns, "edges_per_buyer": 5, "seed": seed})
    W = water_filling_welfare(G)
    for solver in installed_solvers(f.applicable_solvers(G)):
        r = f.solve(G, solver)
        if solver in FIRST_ORDER and r.status.group is StatusGroup.LIMIT:
            continue  # a typed "ran out of iterations" (OSQP, ~1 in 50 LP markets), not a wrong answer
        assert r.status.has_solution, (solver, r.status)
        if solver in ("clarabel", "highs"):  # ECOS misses the KKT tolerance marginally on ~2 % (see report)
            assert r.certified, (solver, r.certificate.failures)
        assert rel_err(f.objective(r), W) <= TOL[solver], solver
        _check_feasible(G, r.solution["allocation"])


@settings(max_examples=6, deadline=None)
@given(nb=st.integers(2, 15), ns=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_linear_complete_markets_match_greedy(nb, ns, seed):
    f = get_formulation("auction-welfare")
    G = f.instance({"buyers": nb, "sellers": ns, "edges_per_buyer": 5, "seed": seed, "valuation": "linear"})
    assert set(f.applicable_solvers(G)) >= {"glpk", "cbc"}
    W = greedy_linear_welfare(G)
    for solver in installed_solvers(f.applicable_solvers(G)):
        r = f.solve(G, solver)
        if solver in FIRST_ORDER and r.status.group is StatusGroup.LIMIT:
            continue  # a typed "ran out of iterations" (OSQP, ~1 in 50 LP markets), not a wrong answer
        assert r.status.has_solution, (solver, r.status)
        assert rel_err(f.objective(r), W) <= TOL[solver], solver


@settings(max_examples=6, deadline=None)
@given(
    nb=st.integers(4, 20),
    ns=st.integers(2, 4),
    k=st.integers(1, 2),
    seed=st.integers(0, 10_000),
    valuation=st.sampled_from(["quadratic", "linear"]),
)
def test_routes_agree_with_the_default_route_on_sparse_markets(nb, ns, k, seed, valuation):
    """Not complete bipartite: no closed form, so every route against Clarabel (the default)."""
    f = get_formulation("auction-welfare")
    G = f.instance({"buyers": nb, "sellers": ns, "edges_per_buyer": k, "seed": seed, "valuation": valuation})
    ref = f.solve(G)
    assert ref.meta["solver"] == "clarabel" and ref.certified, ref.certificate.failures
    for solver in installed_solvers(f.applicable_solvers(G)):
        r = f.solve(G, solver)
        if solver in FIRST_ORDER and r.status.group is StatusGroup.LIMIT:
            continue  # a typed "ran out of iterations" (OSQP, ~1 in 50 LP markets), not a wrong answer
        assert r.status.has_solution, (solver, r.status)
        assert rel_err(f.objective(r), f.objective(ref)) <= TOL[solver], solver


# --------------------------------------------------------------------------------- KKT MILP
@settings(max_examples=5, deadline=None)
@given(nb=st.integers(3, 12), seed=st.integers(0, 10_000))
def test_kkt_milp_matches_the_welfare_optimum(nb, seed):
    k = get_formulation("auction-kkt")
    G = k.instance({"buyers": nb, "sellers": 2, "edges_per_buyer": 1, "seed": seed})
    opt = get_formulation("auction-welfare").solve(G, "clarabel")
    r = k.solve(G, "highs")
    assert r.status is Status.OPTIMAL and r.certified, r.certificate.failures
    assert rel_err(k.objective(r), k.objective(opt)) <= 1e-6
    _check_feasible(G, r.solution["allocation"])


@pytest.mark.parametrize("solver", ["cbc", "glpk"])
@pytest.mark.parametrize(("nb", "seed"), [(5, 1), (9, 3), (12, 7)])
def test_kkt_milp_other_solvers_match_the_welfare_optimum(solver, nb, seed):
    need_solver(solver)
    k = get_formulation("auction-kkt")
    G = k.instance({"buyers": nb, "sellers": 2, "edges_per_buyer": 1, "seed": seed})
    r = k.solve(G, solver)
    assert r.certified, r.certificate.failures
    assert rel_err(k.objective(r), k.objective(get_formulation("auction-welfare").solve(G))) <= 1e-6


def test_kkt_cbc_solves_a_market_with_a_zero_price_seller():
    need_solver("cbc")
    k = get_formulation("auction-kkt")
    G = k.instance({"buyers": 11, "sellers": 2, "edges_per_buyer": 1, "seed": 30})
    r = k.solve(G, "cbc")
    assert r.certified and rel_err(k.objective(r), 12.023163152294522) <= 1e-6


def test_kkt_glpk_on_a_small_market(kkt):
    need_solver("glpk")
    G = kkt.instance({"buyers": 10, "seed": 1})
    r = kkt.solve(G, "glpk")
    assert r.certified, r.certificate.failures
    assert rel_err(kkt.objective(r), kkt.objective(kkt.solve(G, "highs"))) <= 1e-6


def test_kkt_time_limit_is_a_typed_result(kkt):
    """GLPK does not solve the 30-buyer KKT MILP within 20 s (measured); with a 1 s limit the
    formulation returns a TIME_LIMIT result (no solution, no certificate), not an exception."""
    need_solver("glpk")
    r = kkt.solve(kkt.instance({"buyers": 30, "seed": 1}), "glpk", time_limit=1.0)
    assert r.status is Status.TIME_LIMIT
    assert not r.certified and kkt.objective(r) is None
    assert r.meta["formulation"] == "auction-kkt" and r.instance is not None


# -------------------------------------------------------------------------------------- PSP
@settings(max_examples=4, deadline=None)
@given(
    nb=st.integers(4, 12),
    ns=st.integers(1, 2),
    seed=st.integers(0, 10_000),
    eps=st.sampled_from([1e-2, 3e-3]),
)
def test_psp_welfare_is_within_the_bid_fees_of_the_optimum(nb, ns, seed, eps):
    """At an ε-Nash point each buyer i steps back by at most ε_i/θ_i'(0) units below its demand at
    the market price, which costs at most ε_i of value, so 0 ≤ W* − W_psp ≤ Σ_i ε_i (ε_i = the bid
    fees the auction reports; observed ratio ≤ 0.3)."""
    p = get_formulation("auction-psp")
    inst = p.instance({"buyers": nb, "sellers": ns, "seed": seed, "epsilon": eps, "scaling": 2})
    r = p.solve(inst)
    assert r.status.has_solution and r.certified, r.certificate.failures
    W_opt = get_formulation("auction-welfare").objective(
        get_formulation("auction-welfare").solve(inst["market"], "clarabel")
    )
    gap = W_opt - p.objective(r)
    fees = sum(r.solution["epsilons"].values())
    assert gap >= -1e-7 * max(1.0, W_opt)
    assert gap <= fees
    _check_feasible(inst["market"], r.solution["allocation"])


def test_psp_plain_dynamics_without_scaling(psp):
    inst = psp.instance({"buyers": 6, "sellers": 1, "seed": 4, "epsilon": 1e-2, "scaling": 0})
    r = psp.solve(inst)
    assert r.certified and r.solution["stage_rounds"] and len(r.solution["stage_rounds"]) == 1


# ----------------------------------------------------------------------------------- verify
@pytest.fixture(scope="module")
def binding(welfare):
    """A market whose supply binds (positive prices): every buyer on one of two sellers."""
    G = welfare.instance({"buyers": 10, "sellers": 2, "edges_per_buyer": 1, "seed": 5})
    r = welfare.solve(G, "highs")
    assert r.certified and min(r.solution["prices"].values()) > 0
    return G, json.loads(r.to_json())


def test_welfare_verify_round_trip_through_a_file(welfare, binding, tmp_path):
    from datamarkets.io import read_json

    G, _ = binding
    path = welfare.solve(G, "clarabel").save(tmp_path / "w.json")
    ver = welfare.verify(read_json(path))
    assert ver.certificate.passed, ver.certificate.failures
    assert ver.solution["verified_kind"] == "auction-optimum"


def test_welfare_verify_rejects_tampered_solutions(welfare, binding):
    _, saved = binding
    short = copy.deepcopy(saved)
    short["allocation"][0]["amount"] *= 0.5  # supply left unsold at a positive price
    fails = welfare.verify(short).certificate.failures
    assert "welfare_gap_rel" in fails and "claimed_welfare_rel" in fails
    over = copy.deepcopy(saved)
    over["allocation"][0]["amount"] += 1.0  # more than the seller has
    assert "primal_feasibility_max" in welfare.verify(over).certificate.failures
    claim = copy.deepcopy(saved)
    claim["welfare"] *= 1.001
    assert set(welfare.verify(claim).certificate.failures) == {"claimed_welfare_rel"}


def test_welfare_verify_instance_checks(welfare, binding):
    from datamarkets.io import instance_hash

    G, saved = binding
    tampered = copy.deepcopy(saved)
    seller = next(n for n in tampered["instance"]["nodes"] if n["role"] == "seller")
    seller["supply"] *= 2
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        welfare.verify(tampered)
    tampered["meta"]["instance_hash"] = instance_hash(tampered["instance"])  # consistent new claim
    assert not welfare.verify(tampered).certificate.passed  # the allocation is not optimal there
    bare = copy.deepcopy(saved)
    del bare["instance"]
    with pytest.raises(InvalidInputError, match="embeds no instance"):
        welfare.verify(bare)
    assert welfare.verify(bare, instance=G).certificate.passed
    with pytest.raises(InvalidInputError, match="does not match"):
        welfare.verify(bare, instance=welfare.instance({"buyers": 10, "sellers": 2, "seed": 6}))


def test_kkt_verify_round_trip_and_tampering(kkt, binding):
    G, _ = binding
    saved = json.loads(kkt.solve(G).to_json())
    assert kkt.verify(saved).certificate.passed
    bad = copy.deepcopy(saved)
    bad["allocation"][0]["amount"] *= 0.5
    assert "welfare_gap_rel" in kkt.verify(bad).certificate.failures


def test_psp_verify_round_trip_and_tampering(psp):
    from datamarkets.io import instance_hash

    inst = psp.instance({"buyers": 10, "sellers": 1, "seed": 2, "epsilon": 1e-2})
    saved = json.loads(psp.solve(inst).to_json())
    ver = psp.verify(saved)
    assert ver.certificate.passed and ver.solution["verified_kind"] == "auction-psp"
    bad = copy.deepcopy(saved)
    bad["allocation"][0]["amount"] *= 0.5
    assert "claimed_allocation_rel" in psp.verify(bad).certificate.failures  # the PSP rule re-applied
    bad = copy.deepcopy(saved)
    bad["bids"][0]["quantity"] *= 0.5  # the buyer now forgoes more than its fee: a profitable reply exists
    assert not psp.verify(bad).certificate.passed
    smaller = copy.deepcopy(saved)
    smaller["instance"]["epsilon"] = 1e-5
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        psp.verify(smaller)
    smaller["meta"]["instance_hash"] = instance_hash(smaller["instance"])
    assert not psp.verify(smaller).certificate.passed  # an ε=1e-2 point is no ε=1e-5 point
    bare = copy.deepcopy(saved)
    del bare["instance"]
    with pytest.raises(InvalidInputError, match="embeds no instance"):
        psp.verify(bare)
    assert psp.verify(bare, instance=inst).certificate.passed


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", ["auction-welfare", "auction-kkt", "auction-psp"])
def test_unknown_parameter_is_named(name):
    with pytest.raises(InvalidInputError, match="'bidders'"):
        get_formulation(name).instance({"bidders": 5})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"market": "example9"}, "unknown auction market"),
        ({"size": 5, "valuation": "cubic"}, "valuation"),
        ({"buyers": -3}, "'buyers' must be ≥ 1"),
        ({"size": 5, "edges_per_buyer": 0}, "edges_per_buyer"),
    ],
)
def test_bad_market_parameters(welfare, params, match):
    with pytest.raises(InvalidInputError, match=match):
        welfare.instance(params)


@pytest.mark.parametrize("params", [{"buyers": 0}, {"size": 0}, {"size": 5, "sellers": 0}])
def test_zero_sizes_are_rejected(welfare, params):
    with pytest.raises(InvalidInputError):
        welfare.instance(params)


@pytest.mark.parametrize(
    ("name", "params"), [("auction-welfare", {"buyers": "x"}), ("auction-psp", {"epsilon": "abc"})]
)
def test_non_numeric_parameters_are_invalid_input(name, params):
    with pytest.raises(InvalidInputError):
        get_formulation(name).instance(params)


def test_unknown_and_inapplicable_solvers(welfare, kkt, psp):
    G = welfare.instance({"buyers": 5, "seed": 0})  # quadratic valuations
    with pytest.raises(InvalidInputError, match="cannot use solver 'gurobi'"):
        welfare.solve(G, "gurobi")
    for lp_only in ("glpk", "cbc"):
        assert lp_only not in welfare.applicable_solvers(G)
        with pytest.raises(InvalidInputError, match="does not apply"):
            welfare.solve(G, lp_only)
    with pytest.raises(InvalidInputError, match="cannot use solver 'clarabel'"):
        kkt.solve(G, "clarabel")
    with pytest.raises(InvalidInputError, match="cannot use solver 'highs'"):
        psp.solve(psp.instance({"buyers": 5}), "highs")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": -1e-3}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"scaling": 0.5}, "scaling"),
        ({"scaling": 1}, "scaling"),
        ({"scaling": -2}, "scaling"),
    ],
)
def test_psp_parameters(psp, params, match):
    with pytest.raises(InvalidInputError, match=match):
        psp.instance({"buyers": 5, **params})


def test_psp_infinite_epsilon_is_rejected_at_solve(psp):
    with pytest.raises(InvalidInputError, match="epsilon"):
        psp.solve(psp.instance({"buyers": 5, "epsilon": float("inf")}))


def test_certify_rejects_solutions_without_their_fields(welfare, psp):
    G = welfare.instance({"market": "example1"})
    with pytest.raises(InvalidInputError, match="allocation"):
        welfare.certify(G, {"welfare": 1.0})
    with pytest.raises(InvalidInputError, match="bids"):
        psp.certify(psp.instance({"market": "example1"}), {"allocation": []})
