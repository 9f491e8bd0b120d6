"""Algorithm 1 by secret sharing: correct winner always; a party's view does not depend on the bids."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import datamarkets.models.secure_sum as SS
from datamarkets.errors import InvalidInputError
from datamarkets.models.secure_sum import private_max_bid, quantize, secure_sum, split_shares

ALPHA = 0.001  # significance of each chi-square test (fixed seeds: deterministic outcome)


def test_doctests():
    assert doctest.testmod(SS).failed == 0


@given(st.lists(st.integers(0, 40), min_size=2, max_size=8), st.integers(0, 2**32 - 1))
def test_winner_and_max_bid_are_correct(bids, seed):
    r = private_max_bid(bids, max_level=63, seed=seed)
    assert r.max_bid == max(bids)
    assert r.winner == bids.index(max(bids))  # first bidder at the maximum (line 12)
    assert r.winners == [i for i, b in enumerate(bids) if b == max(bids)]
    n = len(bids)
    assert r.sums == math.ceil(math.log2(64)) and r.messages == r.sums * 2 * n * (n - 1)
    # only threshold counts are revealed, and they are the true counts
    for omega, e in r.counts.items():
        assert e == sum(b >= omega for b in bids)


@given(st.lists(st.integers(0, 6), min_size=2, max_size=6), st.integers(2, 50), st.integers(0, 10**6))
def test_secure_sum_is_the_sum(values, M, seed):
    values = [v % M for v in values]
    s = secure_sum(values, M, np.random.default_rng(seed))
    assert s.total == sum(values) % M
    assert int(s.partials.sum()) % M == s.total


def _views(bids, runs, party=0, seed=0):
    """Shares party ``party`` receives in the first comparison sum of Algorithm 1, over many runs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        r = private_max_bid(bids, max_level=15, seed=int(rng.integers(2**32)), record=True)
        out.append(r.transcripts[0].received[party])
    return np.array(out)


@pytest.mark.parametrize("bids", [[0, 0, 0], [15, 2, 9], [3, 15, 15]])
def test_received_shares_are_uniform(bids):
    """Chi-square goodness of fit to the uniform law on Z_{n+1}, each sender separately and the pair
    jointly, 4000 runs, significance 0.001."""
    views = _views(bids, 4000)
    M = len(bids) + 1
    for col in range(views.shape[1]):
        counts = np.bincount(views[:, col], minlength=M)
        assert stats.chisquare(counts).pvalue > ALPHA
    joint = np.bincount(views[:, 0] * M + views[:, 1], minlength=M * M)
    assert stats.chisquare(joint).pvalue > ALPHA


def test_view_does_not_depend_on_bids():
    """Chi-square test of homogeneity: party 0's joint view under two bid profiles (party 0's own bid
    fixed at 4) is the same distribution (4000 runs each, significance 0.001)."""
    M = 4
    a = _views([4, 15, 0], 4000, seed=1)
    b = _views([4, 0, 1], 4000, seed=2)
    ca = np.bincount(a[:, 0] * M + a[:, 1], minlength=M * M)
    cb = np.bincount(b[:, 0] * M + b[:, 1], minlength=M * M)
    assert stats.chi2_contingency(np.stack([ca, cb])).pvalue > ALPHA


def test_test_has_power():
    """The same test rejects a leaky protocol (shares = bits + noise on half the range)."""
    rng = np.random.default_rng(0)
    leaky = (np.array([1] * 4000) + rng.integers(0, 2, 4000)) % 4
    assert stats.chisquare(np.bincount(leaky, minlength=4)).pvalue < ALPHA


def test_split_shares_sum():
    rng = np.random.default_rng(3)
    for v in range(7):
        assert int(split_shares(v, 5, 7, rng).sum()) % 7 == v


def test_quantize_and_errors():
    assert quantize([0.0, 1.04, 2.2], 0.1).tolist() == [0, 10, 22]
    with pytest.raises(InvalidInputError, match="resolution"):
        quantize([1.0], 0.0)
    with pytest.raises(InvalidInputError, match="at least two"):
        private_max_bid([3])
    with pytest.raises(InvalidInputError, match="integer"):
        private_max_bid([1.5, 2.0])
    with pytest.raises(InvalidInputError, match=r"0\.\.3"):
        private_max_bid([1, 5], max_level=3)
    with pytest.raises(InvalidInputError, match="Z_4"):
        secure_sum([1, 4], 4, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match=">= 2 parties"):
        secure_sum([1], 4, np.random.default_rng(0))
