"""Data-share market strategies: Example 1 of the paper, pools (16), progressive allocation (20)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import datamarkets.models.data_share as DS
from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.graphs.market import data_share_market, example1_market, route_network
from datamarkets.graphs.valuations import AlphaFairValuation, LinearValuation, QuadraticValuation
from datamarkets.models.data_share import (
    data_share_auction,
    opt_out_pool,
    progressive_allocation,
    solve_example1,
)

TABLE1 = {"A": (50, 1.0), "B": (40, 1.2), "C": (26, 1.5), "D": (20, 2.0), "E": (14, 2.2)}


def test_doctests():
    assert doctest.testmod(DS).failed == 0


@pytest.mark.parametrize("eps", [0.01, 0.05, 0.1])
def test_example1(eps):
    """Hand derivation from rules (16), (17), (20) — independent of the code:

    t=1: every buyer's demand ≤ 85, so (16) gives n = 1 at the larger seller S2 for all. S2 ranks
         E 14 @ 2.2, D 20 @ 2, C 26 @ 1.5 (60 units, full), B 40 @ 1.2 is the marginal bidder
         (offered 25, withdraws), A 50 @ 1 lies outside the covering set (17): reserve of S2
         = 1 + ε (20). S2 has 25 left.
    t=2: A (needs 50) and B (needs 40) see S1 = 65, S2 = 25 → n = 1 at S1 for both. S1 ranks
         B 40 @ 1.2 (full), A marginal (offered 25, withdraws); nobody loses: reserve stays ε.
    t=3: A sees 25 and 25 → n = 2, bids 25 at each at price max(1, ε, 1 + ε) = 1 + ε ≤ 1 + ε
         (eligible). Both fill. Nobody bids at t = 4.
    """
    r = solve_example1(eps)
    s = r.solution
    alloc = {(x["buyer"], x["seller"]): x["amount"] for x in s["allocation"]}
    expected = {
        ("A", "S1"): 25,
        ("A", "S2"): 25,
        ("B", "S1"): 40,
        ("C", "S2"): 26,
        ("D", "S2"): 20,
        ("E", "S2"): 14,
    }
    for key, amount in alloc.items():
        assert amount == pytest.approx(expected.get(key, 0.0), abs=1e-9), key
    # every buyer's demand met, both sellers sold out
    for b, (d, _) in TABLE1.items():
        assert sum(v for (bb, _), v in alloc.items() if bb == b) == pytest.approx(d)
    assert s["unmet"] == dict.fromkeys(TABLE1, 0.0)
    assert sum(v for (_, ss), v in alloc.items() if ss == "S1") == pytest.approx(65)
    assert sum(v for (_, ss), v in alloc.items() if ss == "S2") == pytest.approx(85)
    # prices from the reserve rule: clearing prices (lowest accepted bid) 1 + ε at both sellers
    assert s["prices"] == {"S1": pytest.approx(1 + eps), "S2": pytest.approx(1 + eps)}
    assert s["reserve_prices"] == {"S1": pytest.approx(eps), "S2": pytest.approx(1 + eps)}
    assert s["rounds"] == 3
    # welfare: everybody served, Σ D_i p_i
    assert s["welfare"] == pytest.approx(sum(d * p for d, p in TABLE1.values()))
    assert r.certified and r.kind == "auction-data-share"
    assert [len(h) for h in s["history"]] == [5, 2, 2]


def test_opt_out_pool_rule16():
    assert opt_out_pool(50, [65, 85]) == ([1], 50.0)
    assert opt_out_pool(90, [65, 85, 40]) == ([1, 0], 45.0)  # n = 2: 2·65 ≥ 90
    assert opt_out_pool(130, [65, 85, 40]) == ([1, 0], 65.0)  # n = 2: 2·65 = 130
    assert opt_out_pool(150, [65, 85, 40]) == ([1, 0], 65.0)  # no n covers: max n·R_(n) = 130 at n = 2
    assert opt_out_pool(10, []) == ([], 0.0)
    assert opt_out_pool(0, [5]) == ([], 0.0)


def test_progressive_allocation_tie_group_keeps_proportional_split():
    alloc, withdrawn, reserve = progressive_allocation(
        10, [("x", 6, 2.0), ("y", 6, 1.0), ("z", 2, 1.0), ("w", 5, 0.5)], 0.1
    )
    # x full (6); y and z tie at the margin: 4 left split 6:2 → 3 and 1; w loses → reserve 0.6
    assert alloc == {"x": 6.0, "y": 3.0, "z": 1.0} and withdrawn == [] and reserve == pytest.approx(0.6)
    alloc, withdrawn, reserve = progressive_allocation(10, [("x", 4, 2.0), ("y", 6, 1.0)], 0.1)
    assert alloc == {"x": 4.0, "y": 6.0} and reserve is None


@st.composite
def linear_markets(draw):
    nb = draw(st.integers(1, 6))
    ns = draw(st.integers(1, 3))
    buyers = {
        f"b{i}": LinearValuation(draw(st.floats(0.5, 3.0)), draw(st.floats(1.0, 30.0))) for i in range(nb)
    }
    sellers = {f"s{j}": draw(st.floats(0.0, 60.0)) for j in range(ns)}
    return buyers, sellers


@given(linear_markets(), st.floats(0.001, 0.2))
def test_random_markets_feasible_and_below_optimum(market, eps):
    buyers, sellers = market
    G = data_share_market(buyers, sellers)
    r = data_share_auction(G, eps)
    s = r.solution
    assert r.certified, r.certificate.failures
    got = {b: 0.0 for b in buyers}
    for x in s["allocation"]:
        assert x["amount"] >= -1e-12
        got[x["buyer"]] += x["amount"]
    for b, v in buyers.items():
        assert got[b] <= v.demand + 1e-9
        assert got[b] + s["unmet"][b] == pytest.approx(v.demand)
    # independent optimum of a complete bipartite linear market: serve highest unit prices first
    total, W = sum(sellers.values()), 0.0
    for v in sorted(buyers.values(), key=lambda v: -v.unit_price):
        q = min(v.demand, total)
        W += q * v.unit_price
        total -= q
    assert s["welfare"] <= W + 1e-7


def test_general_valuations_use_demand_attribute():
    G = data_share_market(
        {"x": {"valuation": QuadraticValuation(3, 1), "demand": 2.0}, "y": QuadraticValuation(2, 1)},
        {"s": 3.0},
    )
    r = data_share_auction(G, 0.01)
    q = {x["buyer"]: x["amount"] for x in r.solution["allocation"]}
    assert q == {"x": pytest.approx(2.0), "y": pytest.approx(1.0)}  # y's bid: peak 2 @ θ'(2) = 0
    assert r.solution["bid_prices"]["x"] == pytest.approx(1.0)  # θ'_x(2) = 3 − 2


def test_errors():
    with pytest.raises(InvalidInputError, match="epsilon"):
        data_share_auction(example1_market(), 0.0)
    with pytest.raises(InvalidInputError, match="no finite demand"):
        data_share_auction(data_share_market({"x": AlphaFairValuation(1, 0.5)}, {"s": 1.0}))
    import networkx as nx

    N = nx.path_graph(2)
    nx.set_edge_attributes(N, 1.0, "capacity")
    with pytest.raises(InvalidInputError, match="bipartite"):
        data_share_auction(route_network(N, {"u": ([0, 1], QuadraticValuation(1, 1))}))
    with pytest.raises(ConvergenceError):
        data_share_auction(example1_market(), 0.01, max_rounds=2)
