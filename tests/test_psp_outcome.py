"""PSP outcome of a bid profile at market scale: the per-seller charges equal the rules' one
allocation per bidder, and the dynamics run without a numpy warning or a stray byte on stderr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.graphs.market import market_arrays, random_bipartite_market
from datamarkets.models.psp import allocate, exclusion_cost
from datamarkets.models.psp_certificate import psp_outcome
from datamarkets.models.psp_dynamics import psp_dynamics

# few distinct prices, some equal only up to rounding (0.1 + 0.2 vs 0.3): ties at every seller
PRICES = [0.0, 0.3, 0.1 + 0.2, 1.0, 2.0, 2.0 * (1 + 1e-15)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    buyers=st.integers(2, 30),
    sellers=st.integers(1, 6),
    zero_share=st.sampled_from([0.0, 0.3]),
)
def test_charges_equal_one_allocation_per_bidder(seed, buyers, sellers, zero_share):
    """c_e from psp_outcome equals exclusion_cost (each bidder removed, the seller re-allocated)."""
    G = random_bipartite_market(buyers, sellers, seed=seed, edges_per_buyer=min(2, sellers))
    m = market_arrays(G)
    rng = np.random.default_rng(seed)
    price = rng.choice(PRICES, m.n_edges)
    qty = rng.choice([1.0, 2.5, 4.0], m.n_edges) * (rng.random(m.n_edges) >= zero_share)
    a_e, c_e, A, U = psp_outcome(m, price, qty)
    for j in range(m.n_sellers):
        idx = np.flatnonzero(m.edge_seller == j)
        if idx.size == 0:
            continue
        Q, p, d = float(m.supply[j]), price[idx], qty[idx]
        assert a_e[idx] == pytest.approx(allocate(Q, p, d), abs=1e-12)
        for k in range(idx.size):
            want = exclusion_cost(Q, p, d, k) if d[k] > 0 else 0.0
            assert c_e[idx[k]] == pytest.approx(want, rel=1e-12, abs=1e-12)
    for i in range(m.n_buyers):
        sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
        assert A[i] == pytest.approx(a_e[sl].sum(), abs=1e-12)
        assert U[i] == pytest.approx(float(m.valuations[i].value(A[i])) - c_e[sl].sum(), abs=1e-12)


def test_charges_at_a_seller_with_thousands_of_bids():
    """One seller with 4,000 bids: the charge matrix (16 M pairs) is computed in row blocks; spot
    checks against the rules' one allocation per bidder, and Σ_k c_k is finite and ≥ 0."""
    G = random_bipartite_market(4000, 1, seed=0, edges_per_buyer=1)
    m = market_arrays(G)
    rng = np.random.default_rng(0)
    price, qty = rng.choice(PRICES, m.n_edges), rng.uniform(0.5, 2.0, m.n_edges)
    _, c_e, _, _ = psp_outcome(m, price, qty)
    assert np.all(np.isfinite(c_e)) and np.all(c_e >= -1e-9)
    for k in [0, 1, *rng.choice(m.n_edges, 6, replace=False), m.n_edges - 1]:
        want = exclusion_cost(float(m.supply[0]), price, qty, int(k))
        assert c_e[k] == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_dynamics_write_no_warning_and_nothing_on_a_captured_stderr(capsys):
    """Padding sentinels (∞ − ∞) raised 'invalid value encountered in subtract' and the hidden
    progress display wrote a blank line on a non-terminal stderr (one per task in a sweep)."""
    G = random_bipartite_market(100, 10, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = psp_dynamics(G, 1e-3, scaling=2)
        psp_dynamics(G, 1e-3, scaling=2, progress=True)
    assert res.status.has_solution
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
