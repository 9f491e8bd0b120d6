"""Continuous walks and Algorithm 4 (discretisation for a requested ε, Theorem 3.8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from datamarkets.errors import InvalidInputError, MechanismError
from datamarkets.models.chain_continuous import (
    LogNormalWalk,
    TruncatedNormalWalk,
    discretize,
    grid_step,
    lift,
)
from datamarkets.models.chain_equilibrium import solve_equilibrium

TN = TruncatedNormalWalk(0.05, 0.4, -0.5, 2.0)
LN = LogNormalWalk(0.02, 0.3, 0.25, 4.0)


def scipy_cdf(walk, v, a):
    if isinstance(walk, TruncatedNormalWalk):
        loc = a + walk.mu
        lo, hi, x = walk.low, walk.high, v
    else:
        loc = math.log(a) + walk.mu
        lo, hi, x = math.log(walk.low), math.log(walk.high), math.log(v)
    return stats.truncnorm.cdf(x, (lo - loc) / walk.sigma, (hi - loc) / walk.sigma, loc=loc, scale=walk.sigma)


@pytest.mark.parametrize("walk", [TN, LN])
def test_cdf_matches_scipy_truncnorm(walk):
    rng = np.random.default_rng(0)
    for _ in range(20):
        v, a = rng.uniform(walk.low, walk.high, 2)
        assert float(walk.cdf(v, a)) == pytest.approx(scipy_cdf(walk, v, a), abs=1e-12)
    assert float(walk.cdf(walk.low, 1.0)) == 0.0 and float(walk.cdf(walk.high, 1.0)) == pytest.approx(1.0)


@pytest.mark.parametrize("walk", [TN, LN])
def test_dlogf_and_K0(walk):
    """∂_a ln f by central differences of scipy's log-pdf; K0 bounds it on random (v, a)."""
    rng = np.random.default_rng(1)

    def logpdf(v, a):
        if isinstance(walk, TruncatedNormalWalk):
            loc = a + walk.mu
            lo, hi = walk.low, walk.high
            return stats.truncnorm.logpdf(
                v, (lo - loc) / walk.sigma, (hi - loc) / walk.sigma, loc, walk.sigma
            )
        loc = math.log(a) + walk.mu
        lo, hi = math.log(walk.low), math.log(walk.high)
        z = stats.truncnorm.logpdf(
            math.log(v), (lo - loc) / walk.sigma, (hi - loc) / walk.sigma, loc, walk.sigma
        )
        return z - math.log(v)

    K0 = walk.log_lipschitz()
    h = 1e-6
    for _ in range(20):
        v, a = rng.uniform(walk.low, walk.high, 2)
        fd = (logpdf(v, a + h) - logpdf(v, a - h)) / (2 * h)
        assert float(walk.dlogf_da(v, a)) == pytest.approx(fd, rel=1e-5, abs=1e-6)
        assert abs(fd) <= K0 * (1 + 1e-6)


def test_grid_size_follows_theorem_3_8():
    n, eps = 3, 0.8
    d = discretize(TN, n, 1.0, eps=eps, mechanism="ave")
    K0 = TN.log_lipschitz()
    eps0 = min(eps, 1) / (4 * (1 + n * K0) * (1 + max(0.0, -TN.low)))
    assert d.eps0 == pytest.approx(eps0) and d.K0 == pytest.approx(K0)
    # Appendix C.4: L = floor(4(1+nK0)(1+max(0,-L0))(H0-L0)/min(eps,1)) + 1
    L_paper = math.floor(4 * (1 + n * K0) * (1 + max(0.0, -TN.low)) * (TN.high - TN.low) / min(eps, 1)) + 1
    assert abs(d.L - L_paper) <= 1 and d.eps == eps
    np.testing.assert_allclose(d.grid, TN.low + d.eps0 * np.arange(d.L))
    assert d.grid[-1] <= TN.high
    # H0 <= 0 branch of Algorithm 4
    assert grid_step(0.3, 5, 2.0, -3.0, -1.0) == pytest.approx(0.15)
    assert grid_step(3.0, 1, 0.0, 0.0, 1.0) == pytest.approx(0.25)  # min(eps, 1) = 1


@pytest.mark.parametrize("walk", [TN, LN])
def test_transition_cells(walk):
    d = discretize(walk, 2, 1.0, L=30)
    Q = d.game.Q[0]
    np.testing.assert_allclose(Q.sum(axis=1), 1.0)
    W = d.grid
    for k in (0, 7, 29):
        for l in (0, 5, 28):  # cells [w_l, w_{l+1})
            expected = scipy_cdf(walk, W[l + 1], W[k]) - scipy_cdf(walk, W[l], W[k])
            assert Q[k, l] == pytest.approx(expected, abs=1e-12)
        assert Q[k, 29] == pytest.approx(1.0 - scipy_cdf(walk, W[29], W[k]), abs=1e-12)
    assert d.game.start[int((1.0 - walk.low) // d.eps0)] == 1.0
    assert d.game.Q.strides[0] == 0  # one matrix shared by all trades


def test_L_override_reports_guaranteed_eps():
    walk = TruncatedNormalWalk(0.0, 1.0, 0.0, 2.0)
    d = discretize(walk, 2, 1.0, L=801)
    assert d.eps == pytest.approx(d.eps0 * 4 * (1 + 2 * d.K0))
    coarse = discretize(TN, 5, 1.0, L=5)
    assert coarse.eps is None  # the theorem's formula guarantees nothing on so coarse a grid
    neg = discretize(TruncatedNormalWalk(0.0, 1.0, -3.0, -1.0), 2, -2.0, L=21)
    assert neg.eps == pytest.approx(2 * neg.eps0)


def test_refinement_within_theorem_bound():
    """Both grids are ε-approximations (Def. 3.6 (b)) of the same s†: lifted thresholds differ by
    at most (ε₁ + ε₂)·max(1, s) at any value."""
    walk = TruncatedNormalWalk(0.0, 1.0, 0.0, 2.0)
    x = np.linspace(0.0, 2.0, 41)
    lifted = []
    for L in (401, 801):
        d = discretize(walk, 2, 1.0, L=L, mechanism="ave")
        eq = solve_equilibrium(d.game)
        lifted.append((d.eps, [lift(d, eq.thresholds[i], x) for i in range(3)]))
    (e1, s1), (e2, s2) = lifted
    for i in range(3):
        bound = (e1 + e2) * np.maximum(1.0, np.maximum(np.abs(s1[i]), np.abs(s2[i])) * (1 + e1 + e2))
        assert np.all(np.abs(s1[i] - s2[i]) <= bound)


def test_lift_eq26():
    d = discretize(TN, 2, 1.0, L=11)
    s = np.arange(d.L, dtype=float)
    v = np.array([TN.low, TN.low + 0.5 * d.eps0, TN.low + 1.0 * d.eps0 + 1e-12, TN.high])
    assert lift(d, s, v).tolist() == [0.0, 0.0, 1.0, 10.0]
    with pytest.raises(InvalidInputError, match="lie in"):
        lift(d, s, [TN.high + 1])
    with pytest.raises(InvalidInputError, match="shape"):
        lift(d, s[:-1], [1.0])


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ((0.0, 0.0, 0.0, 1.0), "sigma"),
        ((0.0, 1.0, 1.0, 1.0), "low < high"),
        ((float("nan"), 1.0, 0.0, 1.0), "finite"),
    ],
)
def test_walk_errors(args, msg):
    with pytest.raises(InvalidInputError, match=msg):
        TruncatedNormalWalk(*args)
    with pytest.raises(InvalidInputError):
        LogNormalWalk(*args)
    with pytest.raises(InvalidInputError, match="positive support"):
        LogNormalWalk(0.0, 1.0, 0.0, 2.0)


def test_discretize_errors():
    with pytest.raises(InvalidInputError, match="exactly one"):
        discretize(TN, 2, 1.0)
    with pytest.raises(InvalidInputError, match="exactly one"):
        discretize(TN, 2, 1.0, eps=0.1, L=10)
    with pytest.raises(InvalidInputError, match="L must"):
        discretize(TN, 2, 1.0, L=1)
    with pytest.raises(InvalidInputError, match="support"):
        discretize(TN, 2, 5.0, L=10)
    with pytest.raises(InvalidInputError, match="positive integer"):
        discretize(TN, 0, 1.0, L=10)
    with pytest.raises(InvalidInputError, match="max_grid"):
        discretize(TN, 20, 1.0, eps=0.01)
    with pytest.raises(InvalidInputError, match="eps must"):
        grid_step(-1.0, 2, 1.0, 0.0, 1.0)
    with pytest.raises(InvalidInputError, match="K0"):
        grid_step(0.1, 2, -1.0, 0.0, 1.0)
    with pytest.raises(MechanismError):
        discretize(TN, 2, 1.0, L=10, mechanism=[[1, 0, 0], [0, 1, 1]])
