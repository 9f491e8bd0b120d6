"""LP certificate of chain equilibria (formulations/chain_certificate.py).

Oracles: (1) a brute-force equilibrium that evaluates Eq. (8) by enumerating every future value
path (exponential, tiny games only) — independent of both the LP and the package's DP; (2) the
package's fast DP on the paper's models. The certificate must pass on true equilibria and must
FAIL when a price or a threshold is perturbed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.chain_certificate import (
    ChainStrategyData,
    build_certificate_lp,
    certify_equilibrium,
    certify_strategies,
)
from datamarkets.models.chain_game import ChainGame

# ----------------------------------------------------------------------------------------------
# brute-force oracle: Eq. (8) by path enumeration, Eq. (9) with "lowest maximiser" ties
# ----------------------------------------------------------------------------------------------


def brute_gain(W, Q, t, s, p, i, k, c):
    """g_i(w_k, c) by enumerating all paths v_{i+1..n} (Eq. 8)."""
    n, L = Q.shape[0], W.size
    total = W[k]
    for path in itertools.product(range(L), repeat=n - i):
        prob, prev = 1.0, k
        for step, l in enumerate(path):
            prob *= Q[i + step, prev, l]
            prev = l
        if prob == 0:
            continue
        price, acc = c, 0.0
        for step, l in enumerate(path):
            j = i + 1 + step
            if not s[j, l] >= price:
                break
            acc += t[j - 1, i] * price
            if j < n:
                price = p[j, l]
        total += prob * acc
    return total


def brute_equilibrium(W, Q, t, tol=1e-12):
    n, L = Q.shape[0], W.size
    s, p = np.zeros((n + 1, L)), np.zeros((n, L))
    s[n] = W
    for i in range(n - 1, -1, -1):
        # issue-2 tie rules: candidates = next player's non-negative thresholds (0 if none)
        cands = sorted({float(x) for x in s[i + 1] if x >= 0}) or [0.0]
        for k in range(L):
            g = [brute_gain(W, Q, t, s, p, i, k, c) for c in cands]
            best = max(g)
            size = abs(W[k]) + max(abs(gc - W[k]) for gc in g)  # documented scale-invariant tie rule
            p[i, k] = min(c for c, gc in zip(cands, g, strict=True) if best - gc <= tol * size)
            s[i, k] = best
    return s, p


@st.composite
def tiny_games(draw):
    n = draw(st.integers(1, 3))
    L = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    W = np.sort(rng.normal(size=L)) + np.arange(L) * 1e-3
    Q = rng.dirichlet(np.ones(L), size=(n, L))
    if draw(st.booleans()):  # sparse rows, like the paper's walks
        Q = Q * (rng.random((n, L, L)) < 0.6)
        Q[..., 0] += 1e-3
        Q /= Q.sum(axis=2, keepdims=True)
    t = np.zeros((n, n + 1))
    for i in range(n):
        t[i, : i + 1] = rng.dirichlet(np.ones(i + 1)) * draw(st.sampled_from([1.0, 0.7]))
    return W, Q, t


def _data(W, Q, t, s, p):
    return ChainStrategyData(W=np.asarray(W), Q=np.asarray(Q), t=np.asarray(t), s=s, p=p)


@given(tiny_games())
def test_certifies_brute_force_equilibrium(g):
    W, Q, t = g
    s, p = brute_equilibrium(W, Q, t)
    res = certify_strategies(_data(W, Q, t, s, p))
    assert res.certificate.passed, res.certificate.failures
    assert res.solution["certified"] is True
    # the LP's optimum IS the threshold, computed independently (relative 1e-7)
    assert np.allclose(res.solution["lp_thresholds"], s, rtol=1e-7, atol=1e-7)


@given(tiny_games(), st.data())
def test_fails_on_perturbed_threshold(g, data):
    W, Q, t = g
    s, p = brute_equilibrium(W, Q, t)
    i = data.draw(st.integers(0, Q.shape[0]))
    k = data.draw(st.integers(0, W.size - 1))
    s_bad = s.copy()
    s_bad[i, k] += 1e-4 * max(1.0, abs(s[i, k]))
    res = certify_strategies(_data(W, Q, t, s_bad, p))
    assert not res.certificate.passed
    assert res.solution["max_gap"] > 1e-7


@given(tiny_games(), st.data())
def test_fails_on_strictly_worse_price(g, data):
    W, Q, t = g
    n, L = Q.shape[0], W.size
    s, p = brute_equilibrium(W, Q, t)
    # find a (player, value, candidate) whose gain is strictly below the optimum
    bad = []
    for i in range(n):
        for k in range(L):
            for c in sorted({0.0, *(float(x) for x in s[i + 1] if x >= 0)}):
                gap = s[i, k] - brute_gain(W, Q, t, s, p, i, k, c)
                if gap > 1e-5 * max(1.0, abs(s[i, k])):
                    bad.append((i, k, c))
    if not bad:
        return  # every price ties: nothing to perturb in this game
    i, k, c = data.draw(st.sampled_from(bad))
    p_bad = p.copy()
    p_bad[i, k] = c
    res = certify_strategies(_data(W, Q, t, s, p_bad))
    assert not res.certificate.passed
    assert res.certificate.residuals["dp_price_vs_lp_optimum_rel_max"] > 1e-7


def test_prune_is_exact():
    rng = np.random.default_rng(3)
    n, L = 3, 4
    W = np.sort(rng.normal(size=L))
    Q = rng.dirichlet(np.ones(L), size=(n, L))
    t = np.zeros((n, n + 1))
    for i in range(n):
        t[i, : i + 1] = rng.dirichlet(np.ones(i + 1))
    s, p = brute_equilibrium(W, Q, t)
    a = certify_strategies(_data(W, Q, t, s, p), prune=True)
    b = certify_strategies(_data(W, Q, t, s, p), prune=False)
    assert a.certificate.passed and b.certificate.passed
    np.testing.assert_allclose(
        a.solution["lp_thresholds"], b.solution["lp_thresholds"], rtol=1e-9, atol=1e-12
    )


def test_hand_solved_one_trade_game():
    # n = 1, seller value 0, buyer value 1 or 3 with prob 1/2: price 1 earns 1, price 3 earns 1.5
    W = np.array([0.0, 1.0, 3.0])
    Q = np.array([[[0.0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]]], dtype=float)
    t = np.array([[1.0, 0.0]])
    # row 0: player 0's gain per own value (value 1 → buyer surely 1 → price 1; value 3 → price 3)
    s = np.array([[1.5, 2.0, 6.0], W])
    p = np.array([[3.0, 1.0, 3.0]])
    res = certify_strategies(_data(W, Q, t, s, p))
    assert res.certificate.passed, res.certificate.failures
    np.testing.assert_allclose(res.solution["lp_thresholds"][0], [1.5, 2.0, 6.0], rtol=1e-9)
    p_bad = p.copy()
    p_bad[0, 0] = 1.0  # earns 1 < 1.5
    bad = certify_strategies(_data(W, Q, t, s, p_bad))
    assert not bad.certificate.passed
    assert bad.certificate.residuals["dp_price_vs_lp_optimum_rel_max"] == pytest.approx(0.5 / 1.5, rel=1e-7)


def test_build_certificate_lp_structure():
    pyo = pytest.importorskip("pyomo.environ")
    rng = np.random.default_rng(0)
    n, L = 3, 3
    W = np.array([0.5, 1.0, 2.0])
    Q = rng.dirichlet(np.ones(L), size=(n, L))
    t = np.array([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0]], dtype=float)
    game = ChainGame(W, 0, Q, t)
    s, p = brute_equilibrium(W, Q, t)
    eq = type("Eq", (), {"thresholds": s, "prices": p})()
    m = build_certificate_lp(game, eq, 0)
    assert len(list(m.V)) == (n - 1) * L  # V_j(l), j = 1..n-1
    assert len(m.future_profit) == (n - 1) * L
    assert len(list(m.z)) == L
    assert isinstance(m.objective, pyo.Objective)
    m_last = build_certificate_lp(game, eq, n)
    assert len(list(m_last.V)) == 0 and len(m_last.epigraph) == L


@pytest.mark.parametrize(
    ("field", "value", "msg"),
    [
        ("prices", lambda p: -np.abs(p) - 1, "negative"),
        ("thresholds", lambda s: np.where(True, np.nan, s), "non-finite"),
        ("prices", lambda p: p[:, :-1], "shape"),
    ],
)
def test_invalid_strategies_raise(field, value, msg):
    W = np.array([0.0, 1.0])
    Q = np.array([[[0.5, 0.5], [0.5, 0.5]]])
    t = np.array([[1.0, 0.0]])
    game = ChainGame(W, 0, Q, t)
    claim = {"thresholds": np.array([[0.5, 1.5], [0.0, 1.0]]), "prices": np.array([[1.0, 1.0]])}
    claim[field] = value(claim[field])
    with pytest.raises(InvalidInputError, match=msg):
        certify_equilibrium(game, claim)


def test_player_out_of_range():
    W = np.array([0.0, 1.0])
    game = ChainGame(W, 0, np.array([[[0.5, 0.5], [0.5, 0.5]]]), np.array([[1.0, 0.0]]))
    claim = {"thresholds": np.array([[0.5, 1.5], [0.0, 1.0]]), "prices": np.array([[1.0, 1.0]])}
    with pytest.raises(InvalidInputError, match="player 2"):
        build_certificate_lp(game, claim, 2)


# ----------------------------------------------------------------------------------------------
# the package's DP on the paper's models
# ----------------------------------------------------------------------------------------------

chain_eq = pytest.importorskip("datamarkets.models.chain_equilibrium")
chain_val = pytest.importorskip("datamarkets.models.chain_valuations")


@pytest.mark.parametrize("model", ["paper-1", "paper-2", "paper-4"])
@pytest.mark.parametrize("mechanism", ["raw", "ave", {"tbds": 0.5}])
def test_certifies_paper_models(model, mechanism):
    game = chain_val.paper_model(model, 5, mechanism)
    eq = chain_eq.solve_equilibrium(game, method="fast")
    res = certify_equilibrium(game, eq)
    assert res.certificate.passed, res.certificate.failures
    assert res.solution["max_gap"] <= 1e-7
    assert len(res.certificate.details["per_player"]) == game.n + 1


def test_certifies_model1_n12_and_fails_when_perturbed():
    game = chain_val.paper_model("paper-1", 12, "ave")
    eq = chain_eq.solve_equilibrium(game, method="fast")
    res = certify_equilibrium(game, eq)
    assert res.certificate.passed, res.certificate.failures
    claim = {"thresholds": np.array(eq.thresholds, dtype=float), "prices": np.array(eq.prices, dtype=float)}
    # perturb the threshold of player 6 at the start value's index: player 5's LP and player 6's LP see it
    k0 = int(np.argmax(game.start))
    claim["thresholds"][6, k0] *= 1 + 1e-6
    bad = certify_equilibrium(game, claim)
    assert not bad.certificate.passed
    per = {d["player"]: d for d in bad.certificate.details["per_player"]}
    assert per[6]["threshold_gap_rel"] > 1e-7


def test_fails_when_dp_price_replaced_by_zero():
    game = chain_val.paper_model("paper-1", 5, "raw")
    eq = chain_eq.solve_equilibrium(game, method="fast")
    prices = np.array(eq.prices, dtype=float)
    k0 = int(np.argmax(game.start))
    assert prices[0, k0] > 0  # RAW: the first seller charges
    prices[0, k0] = 0.0
    bad = certify_equilibrium(game, {"thresholds": np.array(eq.thresholds), "prices": prices})
    assert not bad.certificate.passed
    assert bad.certificate.details["per_player"][0]["price_gap_rel"] > 1e-7


@pytest.mark.parametrize(
    ("claimed", "true"), [("raw", "ave"), ("ave", {"tbds": 0.5}), ({"tbds": 0.5}, "raw")]
)
def test_fails_on_equilibrium_of_another_mechanism(claimed, true):
    """The LP evaluates future reallocated profit from (Q, t, claimed strategies) itself: strategies
    that are an equilibrium for another mechanism t' must fail under t (their thresholds embed the
    future profit under t', which the LP recomputes under t)."""
    game = chain_val.paper_model("paper-1", 4, true)
    eq_other = chain_eq.solve_equilibrium(chain_val.paper_model("paper-1", 4, claimed))
    claim = {"thresholds": np.array(eq_other.thresholds), "prices": np.array(eq_other.prices)}
    assert certify_equilibrium(chain_val.paper_model("paper-1", 4, claimed), claim).certificate.passed
    bad = certify_equilibrium(game, claim)
    assert not bad.certificate.passed
    assert bad.certificate.residuals["lp_vs_dp_threshold_rel_max"] > 1e-3


@pytest.mark.parametrize("scale", [1e-15, 1e22])
def test_certifies_extreme_magnitudes(scale):
    """Values spanning e^{±25}·scale (Model 1's range at n = 50, where thresholds pass HiGHS's
    infinity 1e20). Without per-variable scaling HiGHS reported these LPs "unbounded"; the scaled LP
    certifies them and still fails on a 1e-6 perturbation."""
    n = 5
    k = np.arange(-2 * n, 2 * n + 1)
    base = chain_val.paper_model("paper-1", n, "ave")
    game = ChainGame(scale * np.exp(2.5 * k), base.start, base.Q, base.t)
    eq = chain_eq.solve_equilibrium(game)
    res = certify_equilibrium(game, eq)
    assert res.status.has_solution and res.certificate.passed, res.certificate.failures
    # the LP optimum is the threshold, relative 1e-7 at every value (not only the large ones)
    rel = np.abs(res.solution["lp_thresholds"] - eq.thresholds) / np.abs(eq.thresholds)
    assert rel.max() <= 1e-7
    claim = {"thresholds": np.array(eq.thresholds), "prices": np.array(eq.prices)}
    claim["thresholds"][2, int(np.argmax(game.start))] *= 1 + 1e-6
    assert not certify_equilibrium(game, claim).certificate.passed


# ----------------------------------------------------------------------------------------------
# the two builds of the same LPs: sparse arrays to highspy (default) vs Pyomo (issue 11)
# ----------------------------------------------------------------------------------------------


def _assert_routes_agree(data, **kw):
    a = certify_strategies(data, route="highspy", **kw)
    b = certify_strategies(data, route="pyomo", **kw)
    assert a.method == "lp-highspy-highs" and b.method == "lp-pyomo-highs"
    assert a.status == b.status
    scale = np.maximum(np.abs(data.W)[None, :], np.abs(data.s))
    scale[scale == 0] = float(np.abs(data.W).max()) or 1.0
    # LP optima (thresholds) to 1e-9 relative, optimal prices and all gaps alike
    za, zb = a.solution["lp_thresholds"], b.solution["lp_thresholds"]
    assert np.max(np.abs(za - zb) / scale) <= 1e-9
    np.testing.assert_array_equal(a.solution["lp_prices"], b.solution["lp_prices"])
    for name, v in a.certificate.residuals.items():
        assert v == pytest.approx(b.certificate.residuals[name], rel=1e-6, abs=1e-9), name
    assert a.certificate.passed == b.certificate.passed
    for key in ("prices_off_tie_rule", "prices_equal_lp_argmax", "prices_tied_with_lp_argmax"):
        assert a.certificate.details[key] == b.certificate.details[key], key
    return a


@settings(max_examples=40, deadline=None)
@given(tiny_games(), st.data())
def test_routes_agree_on_random_games(g, data):
    W, Q, t = g
    s, p = brute_equilibrium(W, Q, t)
    _assert_routes_agree(_data(W, Q, t, s, p))
    # and on a claim that is not an equilibrium (gaps > 0), with and without pruning
    i = data.draw(st.integers(0, Q.shape[0]))
    s_bad = s.copy()
    s_bad[i] += 0.01 * np.maximum(1.0, np.abs(s[i]))
    for prune in (True, False):
        _assert_routes_agree(_data(W, Q, t, s_bad, p), prune=prune)


@pytest.mark.parametrize(("model", "mech"), [("paper-1", "ave"), ("paper-2", "raw"), ("paper-4", "ave")])
@pytest.mark.parametrize("rule", ["lowest", "highest"])
def test_routes_agree_on_paper_models_both_tie_rules(model, mech, rule):
    from datamarkets.formulations.chain_certificate import strategy_data

    game = chain_val.paper_model(model, 5, mech)
    eq = chain_eq.solve_equilibrium(game, tie_rule=rule)
    res = _assert_routes_agree(strategy_data(game, eq), tie_rule=rule)
    assert res.certificate.passed, res.certificate.failures
    # the DP's prices are its rule's pick among the LP's tight prices
    assert res.certificate.details["prices_off_tie_rule"] == 0
    assert res.certificate.details["tie_rule"] == rule


def test_tie_rule_mismatch_is_counted():
    game = chain_val.paper_model("paper-2", 5, "raw")
    eq = chain_eq.solve_equilibrium(game, tie_rule="highest")
    res = certify_equilibrium(game, eq, tie_rule="lowest")
    assert res.certificate.passed  # either selection is an equilibrium
    assert res.certificate.details["prices_off_tie_rule"] > 0
    assert certify_equilibrium(game, eq).certificate.details["prices_off_tie_rule"] == 0  # eq.tie_rule


def test_certificate_time_limit_is_reported():
    game = chain_val.paper_model("paper-1", 20, "ave")
    eq = chain_eq.solve_equilibrium(game)
    res = certify_equilibrium(game, eq, time_limit=0.0)
    assert res.status.value == "time_limit"
    assert not res.certificate.passed and res.solution["certified"] is False
    assert res.certificate.details["unchecked_players"] == list(range(game.n + 1))
    with pytest.raises(InvalidInputError, match="time_limit"):
        certify_equilibrium(game, eq, time_limit=-1.0)
    with pytest.raises(InvalidInputError, match="route"):
        certify_equilibrium(game, eq, route="cvxpy")
