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


def _views(bids, runs, seed=0):
    """Shares every party receives in the first comparison sum of Algorithm 1, over many runs:
    array (runs, n, n − 1), ``[:, k]`` being party k's received shares."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        r = private_max_bid(bids, max_level=15, seed=int(rng.integers(2**32)), record=True)
        out.append(r.transcripts[0].received)
    return np.array(out)


def _joint_counts(view, M):
    """Counts of the joint value of a party's n − 1 received shares (base-M code)."""
    code = np.zeros(view.shape[0], dtype=np.int64)
    for col in range(view.shape[1]):
        code = code * M + view[:, col]
    return np.bincount(code, minlength=M ** view.shape[1])


def _homogeneity_pvalues(bids_a, bids_b, runs=4000):
    """Per party: chi-square homogeneity p-value of its joint received shares under two profiles."""
    M = len(bids_a) + 1
    a, b = _views(bids_a, runs, seed=1), _views(bids_b, runs, seed=2)
    out = []
    for k in range(len(bids_a)):
        table = np.stack([_joint_counts(a[:, k], M), _joint_counts(b[:, k], M)])
        out.append(stats.chi2_contingency(table[:, table.sum(axis=0) > 0]).pvalue)  # drop empty cells
    return out


@pytest.mark.parametrize("bids", [[0, 0, 0], [15, 2, 9], [3, 15, 15]])
def test_received_shares_are_uniform(bids):
    """Chi-square goodness of fit to the uniform law on Z_{n+1}, for EVERY party (the last one
    receives the balancing shares), each sender separately and the senders jointly, 4000 runs,
    significance 0.001."""
    views = _views(bids, 4000)
    M = len(bids) + 1
    for k in range(len(bids)):
        for col in range(views.shape[2]):
            assert stats.chisquare(np.bincount(views[:, k, col], minlength=M)).pvalue > ALPHA, (k, col)
        assert stats.chisquare(_joint_counts(views[:, k], M)).pvalue > ALPHA, k


# Two profiles in which party 0 has the same bid (4) but the others differ, so that the first
# comparison (ω = 8) has bits [0, 1, 0] in one and [0, 0, 0] in the other.
PROFILE_A, PROFILE_B = [4, 15, 0], [4, 0, 1]


def test_view_does_not_depend_on_bids():
    """Chi-square test of homogeneity: each party's joint received shares have the same law under
    the two profiles (4000 runs each, significance 0.001)."""
    for k, pv in enumerate(_homogeneity_pvalues(PROFILE_A, PROFILE_B)):
        assert pv > ALPHA, (k, pv)


def _leaky_split(value, n, modulus, rng):
    """A broken sharing: the share for party 0 is the input itself (the others still sum up)."""
    r = rng.integers(0, modulus, size=n)
    r[0] = value % modulus
    r[-1] = (value - int(r[:-1].sum())) % modulus
    return r


def test_test_has_power(monkeypatch):
    """The same pipeline (protocol → views → homogeneity test) rejects a leaky protocol: with the
    inputs sent in the clear to party 0, party 0's view depends on the others' bids. The sum stays
    correct, so only the privacy test can catch it."""
    monkeypatch.setattr(SS, "split_shares", _leaky_split)
    r = private_max_bid([3, 7, 5], max_level=15, seed=0)
    assert r.max_bid == 7 and r.winner == 1  # still correct
    pvals = _homogeneity_pvalues(PROFILE_A, PROFILE_B, runs=1000)
    assert pvals[0] < ALPHA


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
