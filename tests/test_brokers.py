"""Theorem 1 brokers: joining two markets closes the price gap to ε and approaches the joined optimum."""

from __future__ import annotations

import pytest

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.market import data_share_market
from datamarkets.graphs.valuations import LinearValuation, QuadraticValuation
from datamarkets.models.brokers import broker_experiment, market_price_of

from oracles import greedy_linear_welfare, quadratic_water_filling


def test_data_share_broker_joins_markets():
    A_b = {"a1": LinearValuation(1.0, 30), "a2": LinearValuation(0.5, 30)}
    B_b = {"b1": LinearValuation(3.0, 40), "b2": LinearValuation(2.0, 40), "b3": LinearValuation(1.5, 40)}
    A = data_share_market(A_b, {"SA": 100.0})
    B = data_share_market(B_b, {"SB": 50.0})
    eps = 0.05
    r = broker_experiment(A, B, "SA", "SB", eps)
    s = r.solution
    assert r.certified
    assert s["price_gap_before"] > eps and s["price_gap_after"] <= eps
    # joined optimum (oracle): 150 units to b1, b2, b3 (120) and a1 (30): 120 + 80 + 60 + 30 = 290
    W = greedy_linear_welfare([*A_b.values(), *B_b.values()], 150.0)
    assert W == 290.0
    assert s["welfare_before"] == pytest.approx(30 + 15 + 120 + 20)  # separate markets
    assert s["welfare_after"] == pytest.approx(W, rel=1e-5)
    assert s["traded"] == pytest.approx(70.0, rel=1e-5)  # all of B's demand: 120 − 50


def test_psp_broker_quadratic_close_to_joined_optimum():
    A_v = [QuadraticValuation(2, 1), QuadraticValuation(2, 2)]
    B_v = [QuadraticValuation(3, 1), QuadraticValuation(4, 2)]
    A = data_share_market({"a1": A_v[0], "a2": A_v[1]}, {"SA": 2.0})
    B = data_share_market({"b1": B_v[0], "b2": B_v[1]}, {"SB": 0.5})
    eps = 0.1
    r = broker_experiment(A, B, "SA", "SB", eps, auction="psp", auction_epsilon=0.01, quantity_tol=1e-3)
    s = r.solution
    assert r.certified and s["price_gap_after"] <= eps
    W, lam, _ = quadratic_water_filling([v.a for v in A_v + B_v], [v.b for v in A_v + B_v], 2.5)
    # λ = 11/6 by hand: 8 − 3λ = 2.5
    assert lam == pytest.approx(11 / 6, abs=1e-9)
    assert s["welfare_before"] < W - 1.0  # separate markets are far from it
    assert W - s["welfare_after"] <= 0.01 * W
    for p in s["prices_after"].values():
        assert abs(p - lam) <= eps + 0.1


def test_no_trade_when_prices_already_close():
    A = data_share_market({"a": LinearValuation(1.0, 10)}, {"SA": 5.0})
    B = data_share_market({"b": LinearValuation(1.0, 10)}, {"SB": 5.0})
    r = broker_experiment(A, B, "SA", "SB", 0.05)
    assert r.solution["traded"] == 0.0 and r.solution["evaluations"] == 2


def test_errors():
    A = data_share_market({"a": LinearValuation(1.0, 10)}, {"S": 5.0})
    with pytest.raises(GraphError, match="share node names"):
        broker_experiment(A, A.copy(), "S", "S")
    B = data_share_market({"b": LinearValuation(1.0, 10)}, {"T": 5.0})
    with pytest.raises(GraphError, match="not a seller of market B"):
        broker_experiment(A, B, "S", "b")
    with pytest.raises(InvalidInputError, match="epsilon"):
        broker_experiment(A, B, "S", "T", -1.0)
    with pytest.raises(InvalidInputError, match="unknown auction"):
        market_price_of(A, "S", "vickrey", 0.1)
