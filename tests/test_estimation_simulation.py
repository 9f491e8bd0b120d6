"""Simulation cross-check: measured MSE and contract penalties vs g_j = Σ β σ² and Σ ξ σ² (fixed seeds).

Each assertion is a z-test: the analytic value must lie within 4 standard errors of the Monte Carlo
mean; power checks show the same test rejects a 10 % error in β and the paper's bias-free penalty.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.estimation_market import estimation_market, two_firm_example
from datamarkets.models.estimation_simulation import simulate_estimation_market
from datamarkets.models.estimators import market_coefficients, random_estimation_market

Z = 4.0


def line(X):
    return 2.0 * X[:, 0] - 0.5


@pytest.mark.parametrize("x1", [-0.6, 0.0, 0.5])
def test_two_firm_loss_matches_beta(x1):
    e = np.array([0.3, -0.2])
    sim = simulate_estimation_market(two_firm_example(x1), e, f=line, n_rep=20_000, seed=11)
    C = market_coefficients(two_firm_example(x1))
    sigma2 = np.exp(-2 * e)
    np.testing.assert_allclose(sim.sigma2, sigma2)
    np.testing.assert_allclose(sim.g_variance, C.beta @ sigma2)
    np.testing.assert_allclose(sim.g_bias2, 0.0, atol=1e-20)  # f in span ⇒ unbiased
    assert np.all(np.abs(sim.g_mean - sim.g_analytic) <= Z * sim.g_stderr)
    # reported 95 % CI = mean ± 1.959964·stderr
    np.testing.assert_allclose(sim.g_ci[:, 1] - sim.g_ci[:, 0], 2 * 1.959964 * sim.g_stderr, rtol=1e-6)
    assert sim.certificate.residuals["g_z_max"] <= Z
    # power: a 10 % error in β would be detected
    assert np.all(np.abs(sim.g_mean - 1.1 * sim.g_analytic) > Z * sim.g_stderr)


def test_two_firm_penalty_needs_bias_term_paper_formula_rejected():
    """Minimum-norm leave-one-out lines are biased unless f is in their span: measured penalty
    = Σ ξ σ² + bias², and the paper's Σ ξ σ² alone is rejected."""
    sim = simulate_estimation_market(two_firm_example(0.0), [0.3, -0.2], f=line, n_rep=20_000, seed=3)
    # bias by hand, f(x) = 2x − 0.5, features (1, x):
    #  s1 (x=0) left out: min-norm line through (1, f(1)=1.5) is θ = (1, 1)·1.5/2, predicts 0.75 at 0;
    #    f(0) = −0.5 ⇒ bias² = 1.25² = 1.5625;
    #  s2 (x=1) left out: line through (0, −0.5) is θ = (−0.5, 0), predicts −0.5 at 1; f(1) = 1.5 ⇒ 4.
    np.testing.assert_allclose(sim.penalty_bias2, [[1.5625, 4.0], [1.5625, 4.0]], rtol=1e-12)
    assert sim.passed
    assert np.all(np.abs(sim.penalty_mean - sim.penalty_analytic) <= Z * sim.penalty_stderr)
    assert np.all(np.abs(sim.penalty_mean - sim.penalty_variance) > 20 * sim.penalty_stderr)


def test_two_firm_penalty_bias_free_for_zero_f():
    sim = simulate_estimation_market(two_firm_example(0.4), [0.1, 0.5], n_rep=20_000, seed=5)
    np.testing.assert_array_equal(sim.penalty_bias2, 0.0)
    assert sim.passed
    assert np.all(np.abs(sim.penalty_mean - sim.penalty_variance) <= Z * sim.penalty_stderr)


def test_random_market_with_competition_and_subsets():
    G = random_estimation_market(3, 9, degree=2, seed=4, delta=0.3, density=0.8)
    e = np.linspace(-0.5, 0.5, 9)
    sim = simulate_estimation_market(G, e, f=lambda X: 1 + X[:, 0] - X[:, 0] ** 2, n_rep=8000, seed=2)
    assert sim.passed, sim.certificate.failures
    C = market_coefficients(G)
    assert np.array_equal(np.isnan(sim.penalty_mean), ~C.uses)
    np.testing.assert_allclose(sim.g_bias2, 0.0, atol=1e-20)
    np.testing.assert_allclose(sim.penalty_bias2[C.uses], 0.0, atol=1e-20)  # every LOO fit identified
    json.dumps(sim.to_dict())


def test_f_outside_span_bias_is_measured():
    """sin is not a quadratic: the loss is Σ β σ² + E_F bias², and Σ β σ² alone is rejected."""
    G = random_estimation_market(2, 7, degree=2, seed=9)
    sim = simulate_estimation_market(G, None, f=lambda X: np.sin(3 * X[:, 0]), n_rep=20_000, seed=8)
    assert np.all(sim.g_bias2 > 1e-3)
    assert sim.passed, sim.certificate.failures
    assert np.all(np.abs(sim.g_mean - sim.g_variance) > Z * sim.g_stderr)


def test_kernel_buyer_discrete_F_and_single_source_buyer():
    sources = {f"s{i}": {"x": float(v), "alpha": 1.0} for i, v in enumerate([-0.8, -0.3, 0.1, 0.6, 0.9])}
    buyers = {
        "kern": {
            "estimator": {"kind": "kernel", "bandwidth": 0.6, "centers": [-0.5, 0.0, 0.5]},
            "F": {"kind": "uniform", "low": -1, "high": 1},
        },
        "pts": {
            "estimator": {"kind": "polynomial", "degree": 1},
            "F": {"kind": "discrete", "points": [-0.5, 0.2, 0.7], "weights": [1, 1, 2]},
        },
        "solo": {
            "estimator": {"kind": "polynomial", "degree": 0},
            "F": {"kind": "uniform", "low": 0, "high": 1},
        },
    }
    G = estimation_market(sources, buyers, delta=0.2, uses={"solo": ["s2"]})
    sim = simulate_estimation_market(
        G, {"s0": 0.2, "s4": -0.3}, f=lambda X: 0.5 - X[:, 0], n_rep=10_000, seed=4
    )
    assert sim.passed, sim.certificate.failures
    # solo: constant fit on one source, nothing left when it is removed ⇒ penalty = y² = f(x)² + σ²
    assert sim.penalty_bias2[2, 2] == pytest.approx((0.5 - 0.1) ** 2)
    assert sim.penalty_variance[2, 2] == pytest.approx(1.0)
    np.testing.assert_allclose(sim.efforts, [0.2, 0, 0, 0, -0.3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"efforts": [0.0]}, r"efforts must have shape \(2,\)"),
        ({"efforts": {"s9": 1.0}}, "unknown sources"),
        ({"efforts": [0.0, np.inf]}, "effort of source 's2' is not finite"),
        ({"f": lambda X: X}, "f must map"),
        ({"f": lambda X: np.full(len(X), np.nan)}, "non-finite"),
        ({"n_rep": 1}, "n_rep must be an integer ≥ 2"),
        ({"confidence": 1.0}, "confidence must lie in"),
        ({"z_tol": 0.0}, "z_tol must be > 0"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        simulate_estimation_market(two_firm_example(0.0), **kwargs)
