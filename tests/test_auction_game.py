"""The auction market as a generic LQ game (formulations/games/auction_game.py) against the welfare
KKT MILP (``auction-kkt``, formulations/kkt_mpec.py): allocations and welfare agree to 1e-6, and the
game's shared multipliers are market-clearing prices (the welfare KKT residuals vanish)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games import solve_game
from datamarkets.formulations.games.auction_game import auction_game_solution, auction_lq_game
from datamarkets.formulations.kkt_mpec import solve_kkt
from datamarkets.formulations.welfare_kkt import kkt_residuals
from datamarkets.graphs.market import random_bipartite_market
from datamarkets.graphs.market_data import market_arrays

TOL = 1e-6


def _buyer_totals(M, r) -> np.ndarray:
    x = np.zeros(M.n_buyers)
    for row in r.solution["buyers"]:
        x[M.buyers.index(row["buyer"])] = row["total"]
    return x


def _agree(G: nx.Graph, routes=("auto",)) -> None:
    M = market_arrays(G)
    kkt = solve_kkt(G)
    assert kkt.certified, kkt.certificate.failures
    x_kkt = _buyer_totals(M, kkt)
    _, a, b = M.quad_params()
    game = auction_lq_game(G)
    assert game.is_potential and game.monotonicity_min_eig >= -1e-12
    for route in routes:
        r = solve_game(game, route)
        assert r.certified, (route, r.certificate.failures)
        sol = auction_game_solution(G, r.solution)
        # allocations: the welfare optimum's totals, clipped to the valuations' peaks a/b
        assert np.max(np.abs(sol["x"] - np.minimum(x_kkt, a / b))) <= TOL * max(1.0, M.supply.max()), route
        assert sol["welfare"] == pytest.approx(kkt.solution["welfare"], rel=TOL, abs=TOL), route
        # the shared multipliers support the allocation as market prices: welfare KKT (36)–(38)
        res = kkt_residuals(M, sol["flows"], sol["price_vector"], sol["mu"])
        for key in ("stationarity", "dual_feasibility", "complementarity", "primal_feasibility"):
            assert res[key] <= TOL, (route, key, res[key])
        assert abs(res["duality_gap"]) <= TOL * max(1.0, abs(res["welfare"])), route
        if route == "vi":  # with the variational equilibrium, prices are common to all buyers
            assert r.solution["variational"]


def test_one_buyer_one_seller_closed_form() -> None:
    G = nx.Graph()
    G.add_node("s", role="seller", supply=1.0)
    G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
    G.add_edge("b", "s")
    sol = auction_game_solution(G, solve_game(auction_lq_game(G)).solution)
    # supply binds: x = 1, price = θ'(1) = a − b = 3, welfare = a − b/2 = 3.5
    assert sol["x"][0] == pytest.approx(1.0, abs=1e-9)
    assert sol["prices"]["s"] == pytest.approx(3.0, abs=1e-8)
    assert sol["welfare"] == pytest.approx(3.5, abs=1e-9)
    _agree(G, ("vi", "milp"))


def test_demand_cap_and_abundant_supply() -> None:
    """A capped buyer (μ > 0) and a buyer whose supply exceeds its peak (price 0, x = a/b)."""
    G = nx.Graph()
    G.add_node("s1", role="seller", supply=5.0)
    G.add_node("s2", role="seller", supply=1.0)
    G.add_node("capped", role="buyer", valuation={"kind": "quadratic", "a": 3.0, "b": 1.0}, demand=0.5)
    G.add_node("free", role="buyer", valuation={"kind": "quadratic", "a": 2.0, "b": 1.0})
    G.add_node("tight", role="buyer", valuation={"kind": "quadratic", "a": 5.0, "b": 2.0})
    G.add_edges_from([("capped", "s1"), ("free", "s1"), ("tight", "s2"), ("capped", "s2")])
    _agree(G, ("vi", "milp"))
    sol = auction_game_solution(G, solve_game(auction_lq_game(G)).solution)
    i = {b: k for k, b in enumerate(market_arrays(G).buyers)}
    assert sol["x"][i["capped"]] == pytest.approx(0.5, abs=1e-7) and sol["prices"]["s1"] == pytest.approx(
        0, abs=1e-8
    )
    assert sol["x"][i["free"]] == pytest.approx(2.0, abs=1e-7)  # its peak a/b
    assert sol["mu"][i["capped"]] == pytest.approx(3.0 - 0.5 - sol["prices"]["s1"], abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_size_random_markets_all_routes(seed: int) -> None:
    _agree(random_bipartite_market(6, 3, 2, seed=seed), ("auto", "vi", "milp"))


@settings(max_examples=15, deadline=None)
@given(
    buyers=st.integers(1, 8),
    sellers=st.integers(1, 4),
    links=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.3, 1.0, 4.0]),
)
def test_random_markets_agree_with_welfare_kkt(buyers, sellers, links, seed, scale) -> None:
    _agree(random_bipartite_market(buyers, sellers, links, seed=seed, supply_scale=scale))


def test_non_quadratic_valuations_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="quadratic"):
        auction_lq_game(random_bipartite_market(3, 2, 1, seed=0, valuation="linear"))
