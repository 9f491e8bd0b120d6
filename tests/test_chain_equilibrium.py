"""Chain equilibrium (Eq. 8–9): closed forms, brute-force enumeration, fast vs literal Algorithms 1–3,
exact expectations, and Theorem 4.4 as a property."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.models.chain_equilibrium import (
    acceptance_matrix,
    candidate_prices,
    expectations,
    gain_for_prices,
    solve_equilibrium,
)
from datamarkets.models.chain_game import ChainGame, raw_mechanism
from datamarkets.models.chain_reference import solve_reference
from datamarkets.models.chain_valuations import paper_model
from datamarkets.result import Result

TOL = 1e-9


# ------------------------------------------------------------------ independent oracles
def lowest_argmax(gains, prices):
    m = max(gains)
    tol = 1e-12 * max(1.0, abs(m))
    return min(p for g, p in zip(gains, prices, strict=True) if g >= m - tol)


def path_gain(game, T, P, i, k, p):
    """Eq. 8 by enumerating every path v_{i+1..n}; downstream plays (T, P)."""
    n, L, W, Q, t = game.n, game.L, game.values, game.Q, game.t
    total = float(W[k])
    for path in itertools.product(range(L), repeat=n - i):
        prob, prev, alive, price, ret = 1.0, k, True, p, 0.0
        for step, l in enumerate(path):
            j = i + 1 + step  # buyer of trade j
            prob *= Q[j - 1, prev, l]
            alive = alive and T[j, l] >= price
            if alive:
                ret += t[j - 1, i] * price
            if j < n:
                price = P[j, l]
            prev = l
        total += prob * ret
    return total


def brute_solve(game):
    """Backward induction with Eq. 8 evaluated by path enumeration (third oracle)."""
    n, L = game.n, game.L
    T = np.zeros((n + 1, L))
    P = np.zeros((n, L))
    T[n] = game.values
    for i in range(n - 1, -1, -1):
        nxt = T[i + 1]
        cands = sorted({float(x) for x in nxt if x >= 0}) or [0.0]
        for k in range(L):
            gains = [path_gain(game, T, P, i, k, p) for p in cands]
            P[i, k] = lowest_argmax(gains, cands)
            T[i, k] = gains[cands.index(P[i, k])]
    return T, P


def brute_expectations(game, T, P):
    """E[U_i] (Eq. 2), SW, TV, per-trade success by enumerating full paths v_0..v_n."""
    n, L, W, Q, t = game.n, game.L, game.values, game.Q, game.t
    U = np.zeros(n + 1)
    succ = np.zeros(n)
    for path in itertools.product(range(L), repeat=n + 1):
        prob = game.start[path[0]]
        for j in range(1, n + 1):
            prob *= Q[j - 1, path[j - 1], path[j]]
        if prob == 0:
            continue
        y = [True]
        pay = [0.0]
        for j in range(1, n + 1):
            price = P[j - 1, path[j - 1]]
            y.append(y[-1] and T[j, path[j]] >= price)
            pay.append(price if y[-1] else 0.0)
        for i in range(n + 1):
            u = (W[path[i]] - pay[i]) * y[i] + sum(t[j - 1, i] * pay[j] for j in range(i + 1, n + 1))
            U[i] += prob * u
        succ += prob * np.array(y[1:], dtype=float)
    return U, succ


def random_game(seed, n, L, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        W = np.arange(L, dtype=float) - rng.integers(0, L)
    else:
        W = rng.uniform(-2, 1) + np.cumsum(rng.uniform(0.05, 1.0, L))
    Q = np.empty((n, L, L))
    for i in range(n):
        for k in range(L):
            mask = rng.random(L) < 0.7
            mask[rng.integers(L)] = True
            w = rng.integers(1, 4, L) * mask if ties else rng.random(L) * mask
            Q[i, k] = w / w.sum()
    t = np.zeros((n, n + 1))
    for i in range(1, n + 1):
        x = rng.integers(0, 3, i).astype(float) if ties else rng.random(i) * (rng.random(i) < 0.8)
        if x.sum() > 0:
            t[i - 1, :i] = x / x.sum() * (1.0 if rng.random() < 0.5 else rng.uniform(0.1, 1))
    start = int(rng.integers(L)) if rng.random() < 0.5 else rng.dirichlet(np.ones(L))
    return ChainGame(W, start, Q, t)


def assert_same(a, b, tol=TOL):
    np.testing.assert_allclose(a.thresholds, b.thresholds, rtol=0, atol=tol)
    np.testing.assert_allclose(a.prices, b.prices, rtol=0, atol=tol)
    np.testing.assert_array_equal(a.price_index, b.price_index)
    np.testing.assert_allclose(a.trade_success, b.trade_success, rtol=0, atol=tol)
    np.testing.assert_allclose(a.player_utility, b.player_utility, rtol=0, atol=tol)
    np.testing.assert_allclose(a.downstream_profit, b.downstream_profit, rtol=0, atol=tol)
    assert abs(a.social_welfare - b.social_welfare) <= tol
    assert abs(a.transaction_volume - b.transaction_volume) <= tol


# ------------------------------------------------------------------ closed forms
def test_n1_hand_derived():
    # W = (-1, 1, 3), v0 = 1, v1 | v0=1 ~ (0.2, 0.5, 0.3). Player 1 buys iff w >= p.
    W = [-1.0, 1.0, 3.0]
    Q = [[[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.0, 1.0]]]
    # RAW: g(1) = 1 + 1·0.8 = 1.8, g(3) = 1 + 3·0.3 = 1.9 → p* = 3, u* = 1.9; U1 = 0; SW = 1.9; TV = 0.3
    eq = solve_equilibrium(ChainGame(W, 1, Q, [[1.0, 0.0]]))
    assert eq.prices[0, 1] == 3.0 and eq.thresholds[0, 1] == pytest.approx(1.9)
    assert eq.social_welfare == pytest.approx(1.9) and eq.transaction_volume == pytest.approx(0.3)
    assert eq.player_utility.tolist() == pytest.approx([1.9, 0.0])
    # half the price leaks (Def. 2.5 with slack): g(1) = 1.4, g(3) = 1.45 → p* = 3, SW = 1.45
    eq = solve_equilibrium(ChainGame(W, 1, Q, [[0.5, 0.0]]))
    assert eq.prices[0, 1] == 3.0 and eq.social_welfare == pytest.approx(1.45)
    # nothing for the seller: every price ties at g = 1, the lowest (1) wins; U1 = 0.3·2 = 0.6, TV = 0.8
    eq = solve_equilibrium(ChainGame(W, 1, Q, [[0.0, 0.0]]))
    assert eq.prices[0, 1] == 1.0 and eq.thresholds[0, 1] == 1.0
    assert eq.player_utility.tolist() == pytest.approx([1.0, 0.6]) and eq.transaction_volume == pytest.approx(
        0.8
    )


def test_n1_no_nonnegative_threshold_price_zero():
    eq = solve_equilibrium(ChainGame([-2.0, -1.0], 0, [[[0.5, 0.5], [0.5, 0.5]]], [[1.0, 0.0]]))
    assert eq.prices.tolist() == [[0.0, 0.0]] and eq.price_index.tolist() == [[-1, -1]]
    assert eq.thresholds[0].tolist() == [-2.0, -1.0] and eq.transaction_volume == 0.0
    assert eq.social_welfare == -2.0


@pytest.mark.parametrize("seed", range(6))
def test_n2_closed_form(seed):
    """n = 2, Eq. 8 written out: u2 = W; g1(l,p) = w_l + t[1,1] p P(v2>=p|l);
    g0(k,p) = w_k + sum_l Q0[k,l] 1{u1(l) >= p} (t[0,0] p + t[1,0] p1(l) P(v2 >= p1(l) | l))."""
    g = random_game(100 + seed, 2, 4)
    W, Q, t = g.values, g.Q, g.t
    L = g.L
    u1, p1 = np.zeros(L), np.zeros(L)
    for l in range(L):
        cands = sorted(x for x in W if x >= 0) or [0.0]
        gains = [W[l] + t[1, 1] * p * Q[1, l][W >= p].sum() for p in cands]
        p1[l] = lowest_argmax(gains, cands)
        u1[l] = gains[cands.index(p1[l])]
    u0, p0 = np.zeros(L), np.zeros(L)
    for k in range(L):
        cands = sorted({x for x in u1 if x >= 0}) or [0.0]
        gains = [
            W[k]
            + sum(
                Q[0, k, l] * (u1[l] >= p) * (t[0, 0] * p + t[1, 0] * p1[l] * Q[1, l][W >= p1[l]].sum())
                for l in range(L)
            )
            for p in cands
        ]
        p0[k] = lowest_argmax(gains, cands)
        u0[k] = gains[cands.index(p0[k])]
    for method in ("fast", "reference"):
        eq = solve_equilibrium(g, method)
        np.testing.assert_allclose(eq.thresholds, np.stack([u0, u1, W]), atol=TOL, rtol=0)
        np.testing.assert_allclose(eq.prices, np.stack([p0, p1]), atol=TOL, rtol=0)


# ------------------------------------------------------------------ brute force (third oracle)
@pytest.mark.parametrize(("seed", "n", "L", "ties"), [(s, 1 + s % 3, 2 + s % 2, s >= 6) for s in range(10)])
def test_brute_force_enumeration(seed, n, L, ties):
    g = random_game(seed, n, L, ties)
    T, P = brute_solve(g)
    U, succ = brute_expectations(g, T, P)
    for method in ("fast", "reference"):
        eq = solve_equilibrium(g, method)
        np.testing.assert_allclose(eq.thresholds, T, atol=TOL, rtol=0)
        np.testing.assert_allclose(eq.prices, P, atol=TOL, rtol=0)
        np.testing.assert_allclose(eq.player_utility, U, atol=TOL, rtol=0)
        np.testing.assert_allclose(eq.trade_success, succ, atol=TOL, rtol=0)
        assert eq.social_welfare == pytest.approx(U.sum(), abs=TOL)
        assert eq.transaction_volume == pytest.approx(succ.sum(), abs=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_no_price_in_R_plus_beats_equilibrium(seed):
    """Optimality over all of R+: a dense price grid plus every threshold ± 1e-7 never beats u*."""
    g = random_game(50 + seed, 2, 3)
    eq = solve_equilibrium(g)
    for i in range(g.n):
        nxt = eq.thresholds[i + 1]
        grid = np.concatenate([np.linspace(0, max(1.0, nxt.max() + 1), 201), nxt, nxt + 1e-7, nxt - 1e-7])
        grid = grid[grid >= 0]
        _, gains = gain_for_prices(g, eq, i, grid)
        assert np.all(gains.max(axis=1) <= eq.thresholds[i] + TOL)
        for k in range(g.L):  # path enumeration agrees with gain_for_prices at a few prices
            for p in grid[::40]:
                assert gains[k, list(grid).index(p)] == pytest.approx(
                    path_gain(g, eq.thresholds, eq.prices, i, k, p)
                )


# ------------------------------------------------------------------ fast vs reference
@pytest.mark.parametrize("name", ["paper-1", "paper-2", "paper-4", "paper-3"])
@pytest.mark.parametrize("mech", ["raw", "ave", {"tbds": 0.5}, {"tbds": 1.0}])
def test_fast_matches_reference_on_paper_models(name, mech):
    g = paper_model(name, 4, mech)
    assert_same(solve_equilibrium(g, "fast"), solve_equilibrium(g, "reference"))


@settings(max_examples=150)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), L=st.integers(2, 6), ties=st.booleans())
def test_fast_matches_reference_random(seed, n, L, ties):
    g = random_game(seed, n, L, ties)
    fast, ref = solve_equilibrium(g, "fast"), solve_equilibrium(g, "reference")
    assert_same(fast, ref)
    assert fast.certificate().passed and ref.certificate().passed


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(5, 7), L=st.integers(7, 12))
def test_fast_matches_reference_random_larger(seed, n, L):
    g = random_game(seed, n, L)
    assert_same(solve_equilibrium(g, "fast"), solve_equilibrium(g, "reference"))


def test_reference_tuple_shapes():
    g = paper_model("paper-1", 2)
    u, p, l, r, A = solve_reference(g)
    assert u.shape == (3, 9) and p.shape == l.shape == r.shape == (2, 9) and A.shape == (3, 9, 3)


# ------------------------------------------------------------------ identities and API
def test_identities_model1():
    g = paper_model("paper-1", 5, "ave")
    eq = solve_equilibrium(g)
    W = g.values
    np.testing.assert_allclose(eq.future_profit, eq.thresholds - W[None, :], atol=1e-12)
    assert eq.player_utility[0] == pytest.approx(g.start @ eq.thresholds[0], abs=1e-12)
    assert eq.social_welfare == pytest.approx(eq.player_utility.sum())
    assert eq.transaction_volume == pytest.approx(eq.trade_success.sum())
    assert np.all(np.diff(eq.trade_success) <= 1e-15)  # trades need all earlier trades
    cond = eq.trade_success / np.concatenate(([1.0], eq.trade_success[:-1]))
    np.testing.assert_allclose(eq.trade_success_conditional, cond)
    # budget balanced: SW = E[sum_i v_i y_i]
    assert eq.social_welfare == pytest.approx(float(np.einsum("il,l->", eq.alive, W)), abs=1e-12)
    # Lemma C.2 (homogeneity): at states the walk reaches, u*(i, k+1) = e^{1/2} u*(i, k)
    c = 2 * g.n
    for i in range(1, g.n + 1):
        ks = np.arange(c - 2 * i, c + 2 * i)
        np.testing.assert_allclose(eq.thresholds[i, ks + 1] / eq.thresholds[i, ks], np.exp(0.5), rtol=1e-12)
    cert = eq.certificate()
    assert cert.passed, cert.failures


def test_expectations_any_profile_and_acceptance():
    g = paper_model("paper-4", 3, "ave")
    eq = solve_equilibrium(g)
    ex = expectations(g, eq.thresholds, eq.prices)
    assert ex["social_welfare"] == pytest.approx(eq.social_welfare)
    M = acceptance_matrix(g, eq.thresholds, eq.prices, 1)
    assert M.shape == (g.L, g.L) and np.all(M <= g.Q[0])
    # a profile where nobody ever buys: only player 0's value remains
    never = expectations(g, np.full_like(eq.thresholds, -1.0), np.ones_like(eq.prices))
    assert never["transaction_volume"] == 0.0 and never["social_welfare"] == pytest.approx(g.start @ g.values)


def test_gain_for_prices_default_candidates():
    g = paper_model("paper-2", 4, {"tbds": 0.3})
    eq = solve_equilibrium(g)
    for i in range(g.n):
        prices, gains = gain_for_prices(g, eq, i)
        np.testing.assert_array_equal(prices, candidate_prices(eq.thresholds[i + 1]))
        np.testing.assert_allclose(gains.max(axis=1), eq.thresholds[i], atol=1e-12)
    assert candidate_prices(np.array([-1.0, -2.0])).tolist() == [0.0]


def test_to_result_json():
    g = paper_model("paper-1", 3, "ave")
    res = solve_equilibrium(g).to_result()
    assert isinstance(res, Result) and res.kind == "chain-equilibrium" and res.method == "dp-fast"
    d = json.loads(res.to_json())
    for key in (
        "social_welfare",
        "transaction_volume",
        "trade_success",
        "player_utility",
        "thresholds",
        "prices",
    ):
        assert key in d
    assert np.asarray(d["thresholds"]).shape == (4, 13) and np.asarray(d["prices"]).shape == (3, 13)
    assert len(d["trade_success"]) == 3 and len(d["player_utility"]) == 4
    assert d["timings"]["solve_seconds"] >= 0 and d["certificate"]["passed"]
    assert Result.from_dict(d).solution["social_welfare"] == d["social_welfare"]


def test_errors():
    g = paper_model("paper-1", 2)
    with pytest.raises(ValueError, match="unknown method"):
        solve_equilibrium(g, "magic")
    with pytest.raises(InvalidInputError, match="ChainGame"):
        solve_equilibrium({"values": [1]})
    eq = solve_equilibrium(g)
    with pytest.raises(InvalidInputError, match="seller index"):
        gain_for_prices(g, eq, 2)
    with pytest.raises(InvalidInputError, match="trade index"):
        acceptance_matrix(g, eq.thresholds, eq.prices, 0)


# ------------------------------------------------------------------ Theorem 4.4
@settings(max_examples=150)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5),
    D=st.integers(1, 2),
    r=st.floats(1.05, 3.0),
)
def test_theorem_4_4_reallocation_never_lowers_trade_success(seed, n, D, r):
    """Homogeneous positive model (Assumptions 4.1–4.2): w_k = r^k, v'/v = r^d with d ~ q
    independent of v; grid half-width nD so the walk from w_0 = 1 never meets the boundary.
    Any feasible mechanism's per-trade success probability is >= RAW's."""
    rng = np.random.default_rng(seed)
    H = n * D
    k = np.arange(-H, H + 1)
    L = k.size
    q = rng.dirichlet(np.ones(2 * D + 1))
    Q = np.zeros((L, L))
    for a in range(L):
        for d in range(-D, D + 1):
            Q[a, min(max(a + d, 0), L - 1)] += q[d + D]
    t = np.zeros((n, n + 1))
    for i in range(1, n + 1):
        x = rng.random(i) * (rng.random(i) < 0.7)
        if x.sum() > 0:
            t[i - 1, :i] = x / x.sum() * (1.0 if rng.random() < 0.5 else rng.uniform(0.2, 1.0))
    Qn = np.broadcast_to(Q, (n, L, L))
    eq = solve_equilibrium(ChainGame(r**k, H, Qn, t))
    eq_raw = solve_equilibrium(ChainGame(r**k, H, Qn, raw_mechanism(n)))
    assert np.all(eq.trade_success >= eq_raw.trade_success - 1e-12)


@pytest.mark.parametrize("mech", ["ave", {"tbds": 0.3}, {"tbds": 0.9}])
def test_theorem_4_4_on_model1(mech):
    for n in (2, 5):
        s = solve_equilibrium(paper_model("paper-1", n, mech)).trade_success
        s_raw = solve_equilibrium(paper_model("paper-1", n, "raw")).trade_success
        assert np.all(s >= s_raw - 1e-12)
