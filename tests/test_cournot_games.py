"""The Cournot tutorial on the games layer (examples/cournot_games.py) against the hand-derived
potential QP of examples/cournot_sellers.py and the textbook closed form."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets import registry
from datamarkets.conformance import check_formulation
from datamarkets.examples.cournot_games import CournotGame, cournot_game
from datamarkets.examples.cournot_sellers import (
    CournotSellers,
    cournot_arrays,
    cournot_solution,
    random_cournot_graph,
    seller_profits,
    symmetric_cournot_equilibrium,
    symmetric_cournot_graph,
)
from datamarkets.formulations.games import certify_game, solve_game

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6  # agreement in quantities (× quantity scale) and in welfare / profits (relative)
HAND = CournotSellers()


def _hand_q(G: nx.Graph) -> np.ndarray:
    """Quantities per edge from the hand-derived potential QP (Clarabel), in cournot_arrays order."""
    r = HAND.solve(G, "clarabel")
    assert r.certified, r.certificate.failures
    return np.array([row["quantity"] for row in r.solution["quantities"]])


def _agree(G: nx.Graph, routes: tuple[str, ...]) -> None:
    A = cournot_arrays(G)
    q_hand = _hand_q(G)
    ref = cournot_solution(A, q_hand)
    game = cournot_game(G)
    for route in routes:
        r = solve_game(game, route, max_iter=5000)
        assert r.status.has_solution and r.certified, (route, r.status, r.certificate.failures)
        x = np.asarray(r.solution["x"])
        assert np.max(np.abs(x - q_hand)) <= TOL * A.quantity_scale, route
        mine = cournot_solution(A, x)
        scale = max(1.0, abs(ref["welfare"]))
        assert abs(mine["welfare"] - ref["welfare"]) <= TOL * scale, route
        profits = seller_profits(A, x)
        assert np.max(np.abs(profits - seller_profits(A, q_hand))) <= TOL * scale, route
        # the game's own costs are the sellers' negative profits (sellers with edges, in order)
        active = np.diff(A.seller_ptr) > 0
        assert np.allclose(r.solution["costs"], -profits[active], atol=1e-9 * scale), route


def _two_market_graph() -> nx.Graph:
    """The worked example of tests/test_cournot_sellers.py: a capacitated seller in two markets."""
    G = nx.Graph()
    G.add_node("rich", role="buyer", intercept=20.0, slope=1.0)
    G.add_node("poor", role="buyer", intercept=12.0, slope=2.0)
    G.add_node("big", role="seller", cost=1.0, capacity=3.0)
    G.add_node("local", role="seller", cost=2.0)
    G.add_edges_from([("big", "rich"), ("big", "poor"), ("local", "rich")])
    return G


def test_worked_example_all_routes_agree_with_hand_qp() -> None:
    G = _two_market_graph()
    _agree(G, ("auto", "vi", "milp", "best_response", "jacobi"))
    r = solve_game(cournot_game(G))
    assert r.solution["route"] == "vi" and r.certified
    # the capacity row's multiplier is the hand-derived capacity price λ of seller "big"
    hand = HAND.solve(G, "clarabel").solution["sellers"]
    big = next(row for row in hand if row["seller"] == "big")
    assert r.solution["lambda"][0] == pytest.approx(big["capacity_price"], abs=1e-6)
    assert big["capacity_price"] > 0.1


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_symmetric_closed_form_textbook(n: int) -> None:
    a, b, c = 10.0, 2.0, 1.5
    r = solve_game(cournot_game(symmetric_cournot_graph(n, a=a, b=b, c=c)))
    assert r.certified
    q_star = (a - c) / (b * (n + 1))  # textbook q* = (a − c)/(b(n + 1)), no capacity binding
    assert np.allclose(r.solution["x"], q_star, rtol=1e-7, atol=1e-9)
    profit = symmetric_cournot_equilibrium(n, a=a, b=b, c=c)["profit"]
    assert np.allclose(r.solution["costs"], -profit, rtol=1e-7)


def test_symmetric_capacity_binds_with_shadow_price() -> None:
    n, a, b, c, d, k = 3, 10.0, 1.0, 1.0, 0.5, 1.0  # unconstrained q* = 2 > k
    r = solve_game(cournot_game(symmetric_cournot_graph(n, a=a, b=b, c=c, d=d, capacity=k)))
    assert r.certified and np.allclose(r.solution["x"], k, atol=1e-7)
    assert np.allclose(r.solution["lambda"], a - b * (n + 1) * k - c - d * k, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    size=st.integers(1, 7),
    seed=st.integers(0, 10_000),
    share=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_random_instances_agree_with_hand_qp(size: int, seed: int, share: float) -> None:
    G = random_cournot_graph(size, seed, capacity_share=share)
    _agree(G, ("auto", "best_response", "milp"))


def test_milp_on_uncapacitated_sellers_seed_164() -> None:
    # regression (issue 9): quantities have no upper bound; a seller selling 0 sits at its own
    # lower bound, which the MILP once took for an unproven big-M bound and "retried" until it gave up
    G = random_cournot_graph(3, 164, capacity_share=0.0)
    _agree(G, ("milp",))
    r = solve_game(cournot_game(G), "milp")
    assert r.solution["bounds_proven"] is True and r.solution["big_m_retries"] == 0


def test_certificate_rejects_a_perturbed_profile() -> None:
    G = _two_market_graph()
    game = cournot_game(G)
    x = _hand_q(G)
    assert certify_game(game, x).passed
    assert not certify_game(game, x + np.array([0.0, 0.0, 0.05])).passed


def test_isolated_seller_is_left_out() -> None:
    G = _two_market_graph()
    G.add_node("idle", role="seller", cost=0.0)
    game = cournot_game(G)
    assert list(game.names) == ["big", "local"] and game.n == 3


def test_plugin_is_registered_and_conforms() -> None:
    f = registry.get_formulation("cournot-game")
    assert isinstance(f, CournotGame)
    report = check_formulation(f, sizes=(8,), seeds=(0, 1))
    assert report.runs and all(r["certified"] and r["verified"] for r in report.runs)
    # same equilibrium as the hand-derived plug-in on the same generated market
    G = random_cournot_graph(8, 1, capacity_share=0.3)
    r = f.solve(f.instance({"size": 8, "seed": 1}))
    assert np.max(np.abs(np.asarray(r.solution["x"]) - _hand_q(G))) <= TOL * cournot_arrays(G).quantity_scale
