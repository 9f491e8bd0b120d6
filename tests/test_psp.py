"""PSP rules on hand-worked instances, the cost/integral identity, and ε-best-reply optimality."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datamarkets.models.psp as P
from datamarkets.errors import InvalidInputError
from datamarkets.graphs.valuations import LinearValuation, QuadraticValuation
from datamarkets.models.psp import (
    allocate,
    available_quantity,
    best_reply,
    exclusion_cost,
    exclusion_costs,
    market_price,
    price_curve,
    price_integral,
)


def test_doctests():
    assert doctest.testmod(P).failed == 0


def test_allocation_with_ties_by_hand():
    # Q = 10; bids (3,4), (2,6), (2,3), (1,5). Bidder 0: nobody above, gets 4. Bidders 1, 2 tie at
    # price 2: 10 − 4 = 6 left, split 6:3 → 4 and 2. Bidder 3: 4 + 9 = 13 above → nothing.
    assert allocate(10.0, [3, 2, 2, 1], [4, 6, 3, 5]).tolist() == [4.0, 4.0, 2.0, 0.0]
    # Ties within capacity get their full quantities.
    assert allocate(10.0, [2, 2], [3, 4]).tolist() == [3.0, 4.0]
    assert allocate(5.0, [], []).size == 0


def test_exclusion_cost_by_hand():
    # Q = 10; bids 0:(3,4), 1:(2,6), 2:(1,5) → a = (4, 6, 0).
    Q, p, d = 10.0, [3.0, 2.0, 1.0], [4.0, 6.0, 5.0]
    assert allocate(Q, p, d).tolist() == [4.0, 6.0, 0.0]
    # without 0: a1 = 6, a2 = min(5, 10 − 6) = 4 → c0 = 2·0 + 1·(4 − 0) = 4
    # without 1: a0 = 4, a2 = 5 → c1 = 3·0 + 1·5 = 5;  c2 = 0 (it gets nothing)
    assert exclusion_costs(Q, p, d).tolist() == [4.0, 5.0, 0.0]
    # the same charges as integrals of the market price functions:
    # P_0 = 1 on (0,4], 2 on (4,10] → ∫_0^4 = 4;  P_1 = 0 on (0,1], 1 on (1,6] → ∫_0^6 = 5
    assert price_integral(4.0, Q, [2.0, 1.0], [6.0, 5.0]) == pytest.approx(4.0)
    assert price_integral(6.0, Q, [3.0, 1.0], [4.0, 5.0]) == pytest.approx(5.0)
    assert market_price([0.0, 0.5, 4.0, 4.01, 10.0, 10.5], Q, [2.0, 1.0], [6.0, 5.0]).tolist() == [
        0.0,
        1.0,
        1.0,
        2.0,
        2.0,
        np.inf,
    ]
    assert available_quantity([0.0, 1.0, 1.5, 2.0], Q, [2.0, 1.0], [6.0, 5.0]).tolist() == [
        0.0,
        4.0,
        4.0,
        10.0,
    ]


def test_market_price_is_inverse_of_available_quantity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(1, 6)
        p, d, Q = rng.uniform(0, 3, n).round(1), rng.uniform(0, 4, n), rng.uniform(1, 10)
        z = rng.uniform(0, Q, 30)
        Pz = market_price(z, Q, p, d)
        # P(z) = inf{y ≥ 0 : D̄(y) ≥ z}: D̄(P(z)) ≥ z and D̄(y) < z just below P(z)
        assert np.all(available_quantity(Pz, Q, p, d) >= z - 1e-12)
        below = Pz[Pz > 0] - 1e-9
        assert np.all(available_quantity(below, Q, p, d) < z[Pz > 0])


bids = st.lists(st.tuples(st.floats(0.01, 5.0), st.floats(0.01, 5.0)), min_size=1, max_size=6)


@given(bids, st.floats(0.5, 15.0))
def test_cost_equals_price_integral_without_ties(bl, Q):
    """Lazar–Semret: c_i = ∫_0^{a_i} P_i(z) dz when no other bid ties with p_i."""
    p = np.array([b[0] for b in bl])
    d = np.array([b[1] for b in bl])
    a = allocate(Q, p, d)
    assert a.sum() <= Q + 1e-9 and np.all(a <= d + 1e-12)
    for i in range(p.size):
        if np.sum(p == p[i]) > 1:
            continue
        others = np.arange(p.size) != i
        c = exclusion_cost(Q, p, d, i)
        assert c == pytest.approx(float(price_integral(a[i], Q, p[others], d[others])), abs=1e-9)


def test_best_reply_by_hand():
    v = QuadraticValuation(4.0, 1.0)  # θ'(z) = 4 − z
    c = price_curve(3.0, [2.0], [2.0])  # 1 free unit at 0, then 2 units at price 2
    r = best_reply(v, [c], 0.0)
    assert (r.sup, r.quantity, r.price) == (2.0, 2.0, 2.0)  # θ' > 2 ⇔ z < 2
    assert r.predicted_utility == pytest.approx((8 - 2) - 2 * 1)
    r = best_reply(v, [c], 0.4)  # step back ε/θ'(0) = 0.1
    assert r.quantity == pytest.approx(1.9) and r.price == pytest.approx(2.1)
    r = best_reply(v, [c], 0.0, budget=1.0)  # ∫ = 2(z − 1) ≤ 1 ⇔ z ≤ 1.5
    assert r.quantity == pytest.approx(1.5)
    r = best_reply(v, [c], 0.0, demand=1.2)
    assert r.quantity == pytest.approx(1.2)
    # a linear bidder 2 units @ 1.5 facing units at price 2 takes only the free one
    r = best_reply(LinearValuation(1.5, 2.0), [c], 0.0)
    assert r.quantity == 1.0 and r.price == 1.5
    # nothing on offer
    r = best_reply(v, [price_curve(0.0, [], [])], 0.0)
    assert r.quantity == 0.0


def test_bipartite_merge_by_hand():
    # seller A: 1 free unit; seller B (Q = 2) fully claimed by a bid at price 1
    cA = price_curve(1.0, [], [])
    cB = price_curve(2.0, [1.0], [2.0])
    r = best_reply(QuadraticValuation(3.0, 1.0), [cA, cB], 0.0)  # θ' = 3 − z > 1 ⇔ z < 2
    assert r.quantity == 2.0 and r.quantities.tolist() == [1.0, 1.0] and r.prices.tolist() == [1.0, 1.0]


def test_route_price_is_summed_by_hand():
    c1 = price_curve(2.0, [1.0], [2.0])  # P1 = 1 on (0, 2]
    c2 = price_curve(3.0, [0.5], [2.0])  # P2 = 0 on (0, 1], 0.5 on (1, 3]
    rc = P.route_curve([c1, c2])
    assert rc.levels.tolist() == [1.0, 1.5] and rc.widths.tolist() == [1.0, 1.0]  # defined up to min Q = 2
    r = best_reply(QuadraticValuation(3.0, 1.0), [c1, c2], 0.0, route=True)  # 3 − z > 1.5 ⇔ z < 1.5
    assert r.quantity == 1.5 and r.quantities.tolist() == [1.5, 1.5]
    assert r.prices.tolist() == [1.0, 0.5]  # P^l(v) + (θ'(v) − Σ P^l(v))/L, margin 0 here
    assert r.predicted_utility == pytest.approx((4.5 - 1.125) - (1.0 + 0.75))


def _utility(v, Q, p_o, d_o, bid):
    p = np.append(p_o, bid[0])
    d = np.append(d_o, bid[1])
    a = allocate(Q, p, d)
    return float(v.value(a[-1])) - exclusion_cost(Q, p, d, p.size - 1)


@settings(max_examples=30)
@given(bids, st.floats(1.0, 10.0), st.floats(1.0, 5.0), st.floats(0.2, 2.0), st.floats(0.001, 0.1))
def test_epsilon_best_reply_is_within_epsilon_of_any_bid(bl, Q, a, b, eps):
    """u(t_i) ≥ u(s_i) − ε for random alternative bids s_i (Lazar–Semret Prop. 2)."""
    v = QuadraticValuation(a, b)
    p_o = np.array([x[0] for x in bl])
    d_o = np.array([x[1] for x in bl])
    r = best_reply(v, [price_curve(Q, p_o, d_o)], eps)
    u_t = _utility(v, Q, p_o, d_o, (r.price, r.quantity))
    assert u_t == pytest.approx(r.predicted_utility, abs=1e-9) or np.any(p_o == r.price)
    rng = np.random.default_rng(0)
    for _ in range(40):
        alt = (rng.uniform(0, a * 1.2), rng.uniform(0, Q))
        assert u_t >= _utility(v, Q, p_o, d_o, alt) - eps - 1e-9


def test_errors():
    with pytest.raises(InvalidInputError, match="differ in length"):
        allocate(1.0, [1.0], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="Q must be"):
        allocate(-1.0, [1.0], [1.0])
    with pytest.raises(InvalidInputError, match="finite prices"):
        allocate(1.0, [-1.0], [1.0])
    with pytest.raises(InvalidInputError, match="epsilon and budget"):
        best_reply(QuadraticValuation(1, 1), [price_curve(1.0, [], [])], -0.1)


@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.5]), st.sampled_from([0.0, 1.0, 2.5])), max_size=7),
    st.floats(0.0, 10.0),
)
def test_sorted_price_curve_matches_price_curve(bl, Q):
    """The dynamics' cached-sort curve equals price_curve (ties, zero prices and quantities)."""
    p = np.array([b[0] for b in bl])
    d = np.array([b[1] for b in bl])
    order = np.argsort(p, kind="stable")
    c1 = price_curve(Q, p, d)
    c2 = P.price_curve_sorted(Q, p[order], d[order])
    assert np.allclose(c1.levels, c2.levels) and np.allclose(c1.widths, c2.widths)
