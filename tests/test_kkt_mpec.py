"""KKT system as a big-M MILP: agreement with the QP/LP, data-derived big-Ms, loud failures."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import AlgorithmError, InvalidInputError, SolverError
from datamarkets.formulations.kkt_mpec import (
    assert_transformed,
    build_kkt_model,
    derive_big_m,
    solve_kkt,
    transform_kkt_model,
)
from datamarkets.formulations.welfare import solve_welfare
from datamarkets.graphs.market import example1_market, random_bipartite_market, single_resource
from datamarkets.graphs.market_data import market_arrays
from datamarkets.graphs.valuations import AlphaFairValuation, QuadraticValuation

from helpers import WELFARE_ROUTES as ROUTE


def test_one_buyer_closed_form():
    # θ = 4z − z²/2 on supply 1: z = 1, price θ'(1) = 3, welfare 3.5
    G = single_resource(1.0, [QuadraticValuation(4, 1)])
    r = solve_kkt(G)
    assert r.method == "kkt-milp"
    assert r.solution["prices"]["s0"] == pytest.approx(3.0, abs=1e-9)
    assert r.solution["welfare"] == pytest.approx(3.5, abs=1e-9)
    assert r.certificate.passed


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), nb=st.integers(2, 5), ns=st.integers(1, 3), k=st.integers(1, 2))
def test_milp_agrees_with_qp_and_cvxpy(seed, nb, ns, k):
    G = random_bipartite_market(nb, ns, min(k, ns), seed=seed)
    M = market_arrays(G)
    kkt = solve_kkt(M)
    assert kkt.certificate.passed, kkt.certificate.failures
    W = kkt.solution["welfare"]
    x = np.array([row["total"] for row in kkt.solution["buyers"]])
    for method in ("highs", "cvxpy", "clarabel"):
        q = solve_welfare(M, **ROUTE[method])
        assert abs(q.solution["welfare"] - W) <= 1e-6 * max(1.0, abs(W)), method
        # allocations are unique (strictly concave θ): 1e-6 against the vertex solver; interior
        # points (Clarabel) reach ~1e-5 only on degenerate instances (see formulations.welfare)
        atol = 1e-6 if method == "highs" else 1e-5
        np.testing.assert_allclose([row["total"] for row in q.solution["buyers"]], x, atol=atol)


def test_example1_linear_kkt_meets_demands_and_prices_in_interval():
    G = example1_market()
    r = solve_kkt(G)
    assert r.certificate.passed
    D = {b: G.nodes[b]["valuation"].demand for b in "ABCDE"}
    for row in r.solution["buyers"]:
        assert row["total"] == pytest.approx(D[row["buyer"]], abs=1e-7)
    # every buyer is satiated, so a clearing price can be at most the smallest unit price (1.0)
    for p in r.solution["prices"].values():
        assert -1e-9 <= p <= 1.0 + 1e-9
    assert r.solution["welfare"] == pytest.approx(207.8, abs=1e-7)


def test_big_m_derived_from_data():
    G = single_resource(2.0, [QuadraticValuation(4, 1), QuadraticValuation(6, 2)])
    bm = derive_big_m(market_arrays(G))
    np.testing.assert_allclose(bm.p_bar, [6.0])  # largest θ'(0)
    np.testing.assert_allclose(bm.f_bar, [2.0, 2.0])  # min(supply, peak a/b = 4, 3)
    assert bm.m(bm.p_bar)[0] == pytest.approx(13.0)


def test_untransformed_model_is_refused():
    G = single_resource(1.0, [QuadraticValuation(4, 1)])
    m = build_kkt_model(market_arrays(G))
    with pytest.raises(SolverError, match="untransformed"):
        assert_transformed(m)
    with pytest.raises(SolverError, match="untransformed"):
        solve_kkt(G, transform=False)
    transform_kkt_model(m)
    assert_transformed(m)


def test_touched_big_m_is_an_error():
    # the unique price is 3: with M = 3 the solution sits on its big-M
    G = single_resource(1.0, [QuadraticValuation(4, 1)])
    with pytest.raises(AlgorithmError, match="big-M"):
        solve_kkt(G, big_m=3.0)


def test_too_small_big_m_is_not_a_quiet_infeasible():
    G = single_resource(1.0, [QuadraticValuation(4, 1)])
    with pytest.raises(SolverError, match="cut them off"):
        solve_kkt(G, big_m=0.5)


def test_alpha_fair_not_supported():
    G = single_resource(1.0, [AlphaFairValuation(1.0, 0.5)])
    with pytest.raises(InvalidInputError, match="linear stationarity"):
        solve_kkt(G)


@settings(max_examples=8)
@given(seed=st.integers(0, 10_000), nb=st.integers(2, 4), ns=st.integers(1, 2))
def test_milp_agrees_with_lp_on_linear_valuations(seed, nb, ns):
    G = random_bipartite_market(nb, ns, 1, seed=seed, valuation="linear")
    M = market_arrays(G)
    kkt = solve_kkt(M)
    lp = solve_welfare(M, "arrays", solver="highs")
    assert kkt.certificate.passed, kkt.certificate.failures
    assert abs(kkt.solution["welfare"] - lp.solution["welfare"]) <= 1e-6 * max(1.0, lp.solution["welfare"])


def test_isolated_seller_gets_zero_price():
    from datamarkets.graphs.market import data_share_market

    G = data_share_market(
        {"b": {"kind": "quadratic", "a": 4.0, "b": 1.0}}, {"s": 1.0, "lonely": 5.0}, edges=[("b", "s")]
    )
    r = solve_kkt(G)
    q = solve_welfare(G, "arrays", solver="highs")
    assert r.solution["prices"] == pytest.approx({"s": 3.0, "lonely": 0.0}, abs=1e-9)
    assert r.solution["welfare"] == pytest.approx(q.solution["welfare"], abs=1e-9)
