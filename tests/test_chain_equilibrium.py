"""Chain equilibrium (Eq. 8–9): closed forms, brute-force enumeration, fast vs literal Algorithms 1–3,
exact expectations, and Theorem 4.4 as a property."""

from __future__ import annotations

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

from oracles import (
    chain_brute_force_equilibrium,
    chain_brute_force_expectations,
    chain_path_gain,
    lowest_argmax,
)

TOL = 1e-9


# ------------------------------------------------------------------ instances
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


def test_model1_n1_raw_and_ave_closed_form():
    """Model 1, n = 1: v0 = 1, v1 uniform on e^{d/2}, d = -2..2. Player 0 earns p·P(v1 >= p):
    e^{-1}·1, e^{-1/2}·4/5, 1·3/5, e^{1/2}·2/5, e·1/5; the maximum is e^{1/2}·2/5 (p* = e^{1/2}),
    so TV = 2/5 and SW = 1 + (e^{1/2} + e)/5 (budget balanced). With n = 1, AVE = RAW."""
    e = np.exp
    earn = [e(d / 2) * (5 - (d + 2)) / 5 for d in range(-2, 3)]
    assert int(np.argmax(earn)) == 3
    for mech in ("raw", "ave"):
        eq = solve_equilibrium(paper_model("paper-1", 1, mech))
        k0 = int(np.argmax(eq.game.start))
        assert eq.prices[0, k0] == pytest.approx(e(0.5), rel=1e-15)
        assert eq.transaction_volume == pytest.approx(0.4, rel=1e-15)
        assert eq.social_welfare == pytest.approx(1 + (e(0.5) + e(1.0)) / 5, rel=1e-14)
        assert eq.player_utility[1] == pytest.approx((e(1.0) - e(0.5)) / 5, rel=1e-14)


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_single_value_grid_closed_form(method):
    """L = 1, value 2 everywhere, RAW, n = 3: player 3 buys at 2; player 2 at 2 + 2 = 4; player 1 at
    2 + 4 = 6; player 0's gain is 2 + 6 = 8. Every trade occurs: TV = 3, SW = 4·2 = 8."""
    g = ChainGame([2.0], 0, [[[1.0]]] * 3, raw_mechanism(3))
    eq = solve_equilibrium(g, method)
    assert eq.thresholds[:, 0].tolist() == [8.0, 6.0, 4.0, 2.0]
    assert eq.prices[:, 0].tolist() == [6.0, 4.0, 2.0]
    assert eq.transaction_volume == 3.0 and eq.social_welfare == 8.0
    assert eq.player_utility.tolist() == [8.0, 0.0, 0.0, 0.0]  # each buyer pays its whole threshold


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
        p1[l] = lowest_argmax(gains, cands, W[l])
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
        p0[k] = lowest_argmax(gains, cands, W[k])
        u0[k] = gains[cands.index(p0[k])]
    for method in ("fast", "reference"):
        eq = solve_equilibrium(g, method)
        np.testing.assert_allclose(eq.thresholds, np.stack([u0, u1, W]), atol=TOL, rtol=0)
        np.testing.assert_allclose(eq.prices, np.stack([p0, p1]), atol=TOL, rtol=0)


# ------------------------------------------------------------------ brute force (third oracle)
@pytest.mark.parametrize(("seed", "n", "L", "ties"), [(s, 1 + s % 3, 2 + s % 2, s >= 6) for s in range(10)])
def test_brute_force_enumeration(seed, n, L, ties):
    g = random_game(seed, n, L, ties)
    T, P = chain_brute_force_equilibrium(g)
    U, succ = chain_brute_force_expectations(g, T, P)
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
                    chain_path_gain(g, eq.thresholds, eq.prices, i, k, p)
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


def test_reference_is_literal_and_independent(monkeypatch):
    """Algorithm 2 calls Algorithm 3 once per (player i, value k, k' in script-L), where script-L
    = {l : u*(i+1, l) >= 0} with duplicates kept; and the reference imports nothing from the fast
    route (it used to borrow its argmax, choose_price)."""
    import ast
    import inspect

    from datamarkets.models import chain_reference

    tree = ast.parse(inspect.getsource(chain_reference))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "datamarkets.models.chain_equilibrium" not in imported
    calls = []
    real = chain_reference.expected_utility
    monkeypatch.setattr(
        chain_reference,
        "expected_utility",
        lambda g, i, k, kp, *a: calls.append((i, k, kp)) or real(g, i, k, kp, *a),
    )
    g = paper_model("paper-4", 3, "ave")
    u, *_ = chain_reference.solve_reference(g)
    expected = [
        (i, k, kp)
        for i in range(g.n - 1, -1, -1)
        for k in range(g.L)
        for kp in range(g.L)
        if u[i + 1, kp] >= 0
    ]
    assert calls == expected


def test_reference_tuple_shapes():
    g = paper_model("paper-1", 2)
    u, p, l, r, A = solve_reference(g)
    assert u.shape == (3, 9) and p.shape == l.shape == r.shape == (2, 9) and A.shape == (3, 9, 3)


# ------------------------------------------------------------------ identities and API
@pytest.mark.parametrize("name", ["paper-1", "paper-2", "paper-4"])
@pytest.mark.parametrize("a", [1e-15, 1e15])
@pytest.mark.parametrize("method", ["fast", "reference"])
def test_scale_invariance(name, a, method):
    """Multiplying every value by a > 0 multiplies thresholds, prices, utilities and SW by a and
    keeps every choice (the tie rule must be relative; with a max(1, |g|) floor all prices tied at
    a = 1e-15 and the lowest won)."""
    base = paper_model(name, 3 if method == "reference" else 5, "ave")
    scaled = ChainGame(a * base.values, base.start, base.Q, base.t)
    e1, ea = solve_equilibrium(base, method), solve_equilibrium(scaled, method)
    np.testing.assert_array_equal(ea.price_index, e1.price_index)
    np.testing.assert_allclose(ea.thresholds, a * e1.thresholds, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ea.prices, a * e1.prices, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ea.player_utility, a * e1.player_utility, rtol=1e-9, atol=1e-12 * a)
    np.testing.assert_allclose(ea.trade_success, e1.trade_success, rtol=0, atol=1e-14)
    cert = ea.certificate()  # internal identities, tolerances relative to (n+1)·max|w|
    assert cert.passed, cert.failures


def test_lemma_c2_homogeneity_model1_n50_all_reachable_states():
    """Lemma C.2: u*(i, k+1) = e^{1/2} u*(i, k) on every reachable state, including Model 1's lowest
    values (e^{-25} at n = 50), where an absolute tie floor used to flip 4,292 prices."""
    g = paper_model("paper-1", 50, "ave")
    eq = solve_equilibrium(g)
    c = 2 * g.n
    for i in range(1, g.n + 1):
        ks = np.arange(c - 2 * i, c + 2 * i)
        np.testing.assert_allclose(eq.thresholds[i, ks + 1] / eq.thresholds[i, ks], np.exp(0.5), rtol=1e-12)
        ks = np.arange(c - 2 * i, c + 2 * i + 1)
        if i < g.n:
            np.testing.assert_allclose(eq.prices[i, ks[1:]] / eq.prices[i, ks[:-1]], np.exp(0.5), rtol=1e-12)


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
def trade_events(game, eq):
    """E_i on the support (Theorem 4.3/4.4): boolean (L, L) per trade i, True at (k, l) when
    v_{i-1}=w_k, v_i=w_l is possible and buyer i accepts, u*(i, l) >= p*(i-1, k)."""
    reach = np.asarray(game.start, dtype=float)
    events = []
    for i in range(1, game.n + 1):
        support = (reach[:, None] > 0) & (game.Q[i - 1] > 0)
        accept = eq.thresholds[i][None, :] >= eq.prices[i - 1][:, None]
        events.append((support, accept))
        reach = reach @ game.Q[i - 1]  # unconditional marginal of v_i: independent of strategies
    return events


@settings(max_examples=150)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5),
    D=st.integers(1, 2),
    r=st.floats(1.05, 3.0),
)
def test_theorem_4_4_reallocation_expands_trade_events(seed, n, D, r):
    """Homogeneous positive model (Assumptions 4.1–4.2): w_k = r^k > 0 and, for trade i, the ratio
    v_i/v_{i-1} = r^d with d ~ q_i (its own law per trade) independent of v_{i-1}, so
    F_i(a v | a w) = F_i(v | w) for every a = r^m. The grid half-width nD keeps the walk from
    w_0 = 1 off the boundary. Theorem 4.4: every feasible mechanism's trade events contain RAW's
    (E_i^RAW ⊆ E_i^t on the support), hence per-trade success is never lower."""
    rng = np.random.default_rng(seed)
    H = n * D
    k = np.arange(-H, H + 1)
    L = k.size
    Q = np.zeros((n, L, L))
    for i in range(n):
        q = rng.dirichlet(np.ones(2 * D + 1)) * (rng.random(2 * D + 1) < 0.8)
        q[D] += 1e-3 if q.sum() == 0 else 0.0
        q /= q.sum()
        for a in range(L):
            for d in range(-D, D + 1):
                Q[i, a, min(max(a + d, 0), L - 1)] += q[d + D]
    W = r**k
    assert np.all(W > 0)  # Assumption 4.1
    # Assumption 4.2 on the reachable interior: row a's ratio law does not depend on a
    for i in range(n):
        for a in range(D, L - D):
            np.testing.assert_allclose(Q[i, a, a - D : a + D + 1], Q[i, H, H - D : H + D + 1])
    t = np.zeros((n, n + 1))
    for i in range(1, n + 1):
        x = rng.random(i) * (rng.random(i) < 0.7)
        if x.sum() > 0:
            t[i - 1, :i] = x / x.sum() * (1.0 if rng.random() < 0.5 else rng.uniform(0.2, 1.0))
    game, game_raw = ChainGame(W, H, Q, t), ChainGame(W, H, Q, raw_mechanism(n))
    eq, eq_raw = solve_equilibrium(game), solve_equilibrium(game_raw)
    for i, ((support, acc), (_, acc_raw)) in enumerate(
        zip(trade_events(game, eq), trade_events(game_raw, eq_raw), strict=True), start=1
    ):
        lost = support & acc_raw & ~acc
        assert not lost.any(), (
            f"trade {i}: RAW trades at (k, l) = {np.argwhere(lost)[0].tolist()}, t does not"
        )
    assert np.all(eq.trade_success >= eq_raw.trade_success - 1e-12)


def test_trade_events_detects_a_shrunk_event():
    """The containment check can fail. One trade, buyer value 1, 2, 4 w.p. 0.2, 0.3, 0.5: under RAW the
    seller earns 1, 1.6, 2.0 at prices 1, 2, 4 and posts 4 (E_1 = {l = 2}); with t = 0 every price
    ties at gain w_k and the lowest, 1, wins (E_1 = everything). So E^{t=0} is not inside E^RAW."""
    W, Q = [1.0, 2.0, 4.0], [[[0.2, 0.3, 0.5]] * 3]
    raw, zero = ChainGame(W, 1, Q, raw_mechanism(1)), ChainGame(W, 1, Q, [[0.0, 0.0]])
    eq_raw, eq_zero = solve_equilibrium(raw), solve_equilibrium(zero)
    assert eq_raw.prices[0, 1] == 4.0 and eq_zero.prices[0, 1] == 1.0
    ((support, acc_raw),) = trade_events(raw, eq_raw)
    ((_, acc_zero),) = trade_events(zero, eq_zero)
    assert (support & acc_raw & ~acc_zero).sum() == 0  # RAW ⊆ t=0 (the theorem's direction)
    assert (support & acc_zero & ~acc_raw).sum() == 2  # the reverse containment fails at l = 0, 1


@pytest.mark.parametrize("mech", ["ave", {"tbds": 0.3}, {"tbds": 0.9}])
def test_theorem_4_4_on_model1(mech):
    for n in (2, 5):
        s = solve_equilibrium(paper_model("paper-1", n, mech)).trade_success
        s_raw = solve_equilibrium(paper_model("paper-1", n, "raw")).trade_success
        assert np.all(s >= s_raw - 1e-12)


# ------------------------------------------------------------------ tie rules (issue 11)
@pytest.mark.parametrize("rule", ["lowest", "highest"])
@pytest.mark.parametrize("seed", range(6, 10))  # games with integer values/weights: ties
def test_brute_force_enumeration_both_tie_rules(seed, rule):
    g = random_game(seed, 1 + seed % 3, 2 + seed % 2, ties=True)
    T, P = chain_brute_force_equilibrium(g, rule)
    for method in ("fast", "reference"):
        eq = solve_equilibrium(g, method, tie_rule=rule)
        np.testing.assert_allclose(eq.thresholds, T, atol=TOL, rtol=0)
        np.testing.assert_allclose(eq.prices, P, atol=TOL, rtol=0)


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), L=st.integers(2, 6), ties=st.booleans())
def test_fast_matches_reference_both_tie_rules(seed, n, L, ties):
    g = random_game(seed, n, L, ties)
    out = {}
    for rule in ("lowest", "highest"):
        fast = solve_equilibrium(g, "fast", tie_rule=rule)
        ref = solve_equilibrium(g, "reference", tie_rule=rule)
        assert_same(fast, ref)
        assert fast.tie_rule == ref.tie_rule == rule
        assert fast.tie_count == ref.tie_count
        np.testing.assert_allclose(fast.sw_tie_range, ref.sw_tie_range, rtol=0, atol=TOL)
        out[rule] = fast
    lo, hi = out["lowest"], out["highest"]
    # the range is the same from either side and spans both selections' welfare
    np.testing.assert_allclose(lo.sw_tie_range, hi.sw_tie_range, rtol=0, atol=TOL)
    sws = sorted([lo.social_welfare, hi.social_welfare])
    np.testing.assert_allclose(lo.sw_tie_range, sws, rtol=0, atol=TOL)
    if lo.tie_count == 0:  # no tie: both rules make the same choices at every stage
        assert hi.tie_count == 0
        assert_same(lo, hi, tol=0.0)
    else:  # the highest rule never posts a lower price than the lowest rule at a first tie
        assert hi.tie_count > 0


def test_paper_model2_tie_range():
    """Paper Model 2, n = 5, RAW: the values measured independently in issue 11 (4 decimals)."""
    g = paper_model("paper-2", 5, "raw")
    lo = solve_equilibrium(g, tie_rule="lowest")
    hi = solve_equilibrium(g, tie_rule="highest")
    assert round(lo.social_welfare, 4) == 0.2437
    assert round(hi.social_welfare, 4) == 0.2010
    assert lo.tie_count > 0 and hi.tie_count > 0
    for eq in (lo, hi):
        assert [round(x, 4) for x in eq.sw_tie_range] == [0.2010, 0.2437]
    assert solve_equilibrium(g).tie_rule == "lowest"  # the default
    assert solve_equilibrium(g.with_tie_rule("highest")).social_welfare == hi.social_welfare
    ref = solve_equilibrium(g, "reference", tie_rule="highest")
    assert ref.social_welfare == pytest.approx(hi.social_welfare, abs=TOL)
    d = lo.to_result().to_dict()
    assert d["tie_rule"] == "lowest" and d["tie_count"] == lo.tie_count
    assert d["sw_tie_range"] == [hi.social_welfare, lo.social_welfare]


def dense_raw_game(seed, n=4, L=5):
    """Continuous values, every transition positive, RAW: every price moves the gain (no tie)."""
    rng = np.random.default_rng(seed)
    Q = rng.dirichlet(np.ones(L), size=(n, L))
    return ChainGame(np.sort(rng.uniform(0, 3, L)), rng.dirichlet(np.ones(L)), Q, raw_mechanism(n))


def test_no_ties_zero_width_range():
    # (sparse walks tie often: prices no reachable buyer accepts all give w_k)
    for g in (paper_model("paper-1", 5, "ave"), paper_model("paper-1", 5, "raw"), dense_raw_game(1)):
        eq = solve_equilibrium(g)
        assert eq.tie_count == 0
        assert eq.sw_tie_range[0] == eq.sw_tie_range[1] == eq.social_welfare
        assert_same(eq, solve_equilibrium(g, tie_rule="highest"), tol=0.0)


def test_tie_range_off_and_bad_rule():
    g = paper_model("paper-2", 4, "raw")
    eq = solve_equilibrium(g, tie_range=False)
    assert eq.tie_count > 0 and eq.sw_tie_range is None
    with pytest.raises(InvalidInputError, match="tie_rule"):
        solve_equilibrium(g, tie_rule="middle")
    with pytest.raises(InvalidInputError, match="tie_rule"):
        g.with_tie_rule("Lowest")
    d = g.with_tie_rule("highest").to_dict()
    assert d["tie_rule"] == "highest" and "tie_rule" not in g.to_dict()
    assert ChainGame.from_dict(d).tie_rule == "highest"


def test_time_limit_dp():
    from datamarkets.errors import SolverLimitError

    g = paper_model("paper-1", 60, "ave")
    with pytest.raises(SolverLimitError, match="time limit"):
        solve_equilibrium(g, time_limit=0.0)
    with pytest.raises(SolverLimitError, match="time limit"):
        solve_equilibrium(paper_model("paper-1", 6, "ave"), "reference", time_limit=0.0)
    for bad in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(InvalidInputError, match="time_limit"):
            solve_equilibrium(g, time_limit=bad)
    assert solve_equilibrium(paper_model("paper-1", 3), time_limit=60.0).n == 3
