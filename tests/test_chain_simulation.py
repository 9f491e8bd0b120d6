"""Monte Carlo play of the chain equilibrium agrees with the exact expectations (4 standard errors)."""

from __future__ import annotations

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError
from datamarkets.models.chain_equilibrium import solve_equilibrium
from datamarkets.models.chain_game import ChainGame
from datamarkets.models.chain_simulation import paper_protocol, sample_paths, simulate
from datamarkets.models.chain_valuations import paper_model


def within(exact, mc, se, k=4.0):
    exact, mc, se = np.atleast_1d(exact), np.atleast_1d(mc), np.atleast_1d(se)
    # a metric with zero variance must match exactly
    return np.all(np.abs(exact - mc) <= k * se + 1e-12)


@pytest.mark.parametrize(
    ("name", "mech"), [("paper-1", "ave"), ("paper-2", "raw"), ("paper-4", {"tbds": 0.5})]
)
def test_simulation_agrees_with_exact(name, mech):
    g = paper_model(name, 5, mech)
    eq = solve_equilibrium(g)
    out = simulate(g, eq, samples=20_000, seed=7)
    assert within(eq.social_welfare, out["social_welfare"], out["social_welfare_se"])
    assert within(eq.transaction_volume, out["transaction_volume"], out["transaction_volume_se"])
    assert within(eq.trade_success, out["trade_success"], out["trade_success_se"])
    assert within(eq.player_utility, out["player_utility"], out["player_utility_se"])


def test_simulation_random_game_with_start_distribution():
    rng = np.random.default_rng(3)
    L, n = 4, 3
    Q = rng.dirichlet(np.ones(L), size=(n, L))
    t = np.array([[0.7, 0, 0, 0], [0.2, 0.5, 0, 0], [0.1, 0.1, 0.6, 0]])
    g = ChainGame(np.array([-0.5, 0.2, 0.9, 1.7]), rng.dirichlet(np.ones(L)), Q, t)
    eq = solve_equilibrium(g)
    out = simulate(g, eq, samples=30_000, seed=11)
    assert within(eq.player_utility, out["player_utility"], out["player_utility_se"])
    assert within(eq.trade_success, out["trade_success"], out["trade_success_se"])


def test_sampled_paths_follow_the_chain():
    g = paper_model("paper-1", 3)
    K = sample_paths(g, 5000, np.random.default_rng(0))
    assert np.all(K[:, 0] == 6) and np.all(np.abs(np.diff(K, axis=1)) <= 2)
    # first step uniform over 5 neighbours
    freq = np.bincount(K[:, 1] - 4, minlength=5) / 5000
    assert np.all(np.abs(freq - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 5000))


def test_seeded_and_reproducible():
    g = paper_model("paper-4", 3, "ave")
    eq = solve_equilibrium(g)
    a, b = simulate(g, eq, 500, seed=1), simulate(g, eq, 500, seed=1)
    c = simulate(g, eq, 500, seed=2)
    assert a["social_welfare"] == b["social_welfare"] and a["social_welfare"] != c["social_welfare"]


def test_paper_protocol():
    g = paper_model("paper-1", 4, "ave")
    eq = solve_equilibrium(g)
    out = paper_protocol(g, seeds=5, samples=2000, eq=eq)
    assert out["seeds"] == 5 and out["samples"] == 2000
    runs = [simulate(g, eq, 2000, s)["social_welfare"] for s in range(5)]
    assert out["social_welfare_mean"] == pytest.approx(np.mean(runs))
    assert out["social_welfare_sd"] == pytest.approx(np.std(runs, ddof=1))
    assert out["trade_success_mean"].shape == (4,) and out["player_utility_sd"].shape == (5,)
    one = paper_protocol(g, seeds=1, samples=100)
    assert one["social_welfare_sd"] == 0.0


def test_errors():
    g = paper_model("paper-1", 2)
    eq = solve_equilibrium(g)
    with pytest.raises(InvalidInputError, match="samples"):
        simulate(g, eq, samples=1)
    with pytest.raises(InvalidInputError, match="shape"):
        simulate(paper_model("paper-1", 3), eq, samples=10)
    with pytest.raises(InvalidInputError, match="seeds"):
        paper_protocol(g, seeds=0)


class _TopRng:
    """A generator whose uniform draws are all the largest double below 1."""

    def random(self, size):
        return np.full(size, 1.0 - 2.0**-53)


def test_never_samples_a_zero_probability_value():
    # ten times 0.1 sums to 0.9999999999999999 (within PROB_ATOL); the 11th value has probability 0
    row = [0.1] * 10 + [0.0]
    g = ChainGame(np.arange(11.0), row, [[row] * 11], [[1.0, 0.0]])
    K = sample_paths(g, 3, _TopRng())
    assert np.all(K == 9), K  # the largest value with positive probability, never index 10
