"""β, ξ, γ from the estimator's definition, against independent oracles and the paper's §IV print.

Oracles used here never call the vectorised routes under test:
* hat weights by solving least squares for each unit response ``y = e_i`` with ``np.linalg.lstsq``
  (minimum-norm, SVD), then integrating their squares over ``F`` on a fine midpoint grid / exact sum;
* leave-one-out weights by an explicit refit without source ``i`` (a loop, ``lstsq``);
* closed forms derived by hand (degree 0; the two-point line of §IV; Gaussian moments via erf).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import erf

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.estimation_market import estimation_market, source_positions, two_firm_example
from datamarkets.graphs.estimators import (
    DiscreteDistribution,
    KernelLeastSquares,
    PolynomialLeastSquares,
    UniformDistribution,
    as_positions,
    distribution_from_spec,
    estimator_coefficients,
    estimator_from_spec,
    polynomial_exponents,
)
from datamarkets.models.estimators import gamma_from_beta, market_coefficients, random_estimation_market

U11 = UniformDistribution((-1.0,), (1.0,))


# ------------------------------------------------------------------------------------------ oracles
def vandermonde(x, degree):
    x = np.asarray(x, float)
    return np.stack([x**p for p in range(degree + 1)], axis=1)


def lstsq_weights(Phi_src, Phi_eval):
    """w[m, i] = prediction at eval point m of the min-norm LS fit to y = e_i."""
    n = Phi_src.shape[0]
    theta = np.linalg.lstsq(Phi_src, np.eye(n), rcond=None)[0]
    return Phi_eval @ theta


def grid_beta_1d(x, degree, lo, hi, m=200_001):
    """β by the composite midpoint rule on m cells (error O(m^-2))."""
    t = lo + (np.arange(m) + 0.5) * (hi - lo) / m
    w = lstsq_weights(vandermonde(x, degree), vandermonde(t, degree))
    return (w**2).mean(axis=0)


def loo_xi(Phi):
    """ξ by explicit refits without source i (minimum-norm lstsq)."""
    n = Phi.shape[0]
    xi = np.eye(n)
    for i in range(n):
        keep = np.arange(n) != i
        w = lstsq_weights(Phi[keep], Phi[i : i + 1])[0]
        xi[i, keep] = w**2
    return xi


# ------------------------------------------------------------------------------------ §IV example
X1 = [-1.0, -0.75, -0.5, -0.1, 0.0, 0.3, 0.6, 0.9, 0.99]


def beta_two_point(x1, x2):
    """By hand: w_1(x*) = (x* − x2)/(x1 − x2), E_{U[−1,1]} (x* − c)² = 1/3 + c²."""
    d2 = (x1 - x2) ** 2
    return np.array([(1 / 3 + x2**2) / d2, (1 / 3 + x1**2) / d2])


def printed_gamma(x1, x2, i):
    """§IV as printed: γ_i = ((x1 − x2)²/3 + (x_i² − x1 x2)²) / (x1² + x2² − 2 x1 x2)²."""
    xi_ = (x1, x2)[i - 1]
    return ((x1 - x2) ** 2 / 3 + (xi_**2 - x1 * x2) ** 2) / (x1**2 + x2**2 - 2 * x1 * x2) ** 2


def printed_xi(x1, x2):
    """§IV as printed: ξ_{1,2} = (x1 x2 + 1)²/(x2² + 1)², ξ_{2,1} = (x1 x2 + 1)²/(x1² + 1)²."""
    return (x1 * x2 + 1) ** 2 / (x2**2 + 1) ** 2, (x1 * x2 + 1) ** 2 / (x1**2 + 1) ** 2


@pytest.mark.parametrize("x1", X1)
def test_two_firm_beta_matches_hand_derivation_and_grid(x1):
    C = market_coefficients(two_firm_example(x1))
    expected = beta_two_point(x1, 1.0)
    for k in range(2):
        np.testing.assert_allclose(C.beta[k], expected, rtol=1e-12)
        np.testing.assert_allclose(C.gamma[k], expected, rtol=1e-12)  # δ = 0 ⇒ γ = β
    np.testing.assert_allclose(C.beta[0], grid_beta_1d([x1, 1.0], 1, -1, 1), rtol=1e-8)


@pytest.mark.parametrize("x1", X1)
def test_printed_gamma_is_source_index_swapped(x1):
    """The printed γ_i equals the definition's γ of the *other* source (disagreement, see docs)."""
    C = market_coefficients(two_firm_example(x1))
    np.testing.assert_allclose([printed_gamma(x1, 1.0, 2), printed_gamma(x1, 1.0, 1)], C.gamma[0], rtol=1e-12)
    # ... and the printed assignment itself is wrong wherever x1² ≠ x2²:
    if not math.isclose(x1**2, 1.0):
        assert not np.isclose(printed_gamma(x1, 1.0, 1), C.gamma[0, 0], rtol=1e-6)
    # the sum over sources (which is all that symmetric quantities see) agrees
    assert math.isclose(
        printed_gamma(x1, 1.0, 1) + printed_gamma(x1, 1.0, 2), C.gamma[0].sum(), rel_tol=1e-12
    )


@pytest.mark.parametrize("x1", X1)
@pytest.mark.parametrize("x2", [1.0, 0.4, -0.7])
def test_printed_xi_agrees_with_minimum_norm_definition(x1, x2):
    if x1 == x2:
        return
    C = market_coefficients(two_firm_example(x1, x2=x2))
    xi12, xi21 = printed_xi(x1, x2)
    for k in range(2):
        np.testing.assert_allclose(C.xi[k], [[1.0, xi12], [xi21, 1.0]], rtol=1e-12, atol=1e-15)
        assert C.loo_min_norm[k].all()  # a line through one point: under-determined
    # oracle: explicit min-norm refit
    np.testing.assert_allclose(C.xi[0], loo_xi(vandermonde([x1, x2], 1)), rtol=1e-12, atol=1e-15)


def test_two_firm_xi_limits_stated_in_paper():
    """Fig. 4 caption: ξ = 0 at x1 = −1; Fig. 2 caption: every ξ → 1 as x1 → 1."""
    C = market_coefficients(two_firm_example(-1.0))
    assert np.allclose(C.xi[:, 0, 1], 0) and np.allclose(C.xi[:, 1, 0], 0)
    C = market_coefficients(two_firm_example(1 - 1e-7))
    np.testing.assert_allclose(C.xi[:, 0, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(C.xi[:, 1, 0], 1.0, atol=1e-6)


# --------------------------------------------------------------------------------- closed forms
@given(
    n=st.integers(2, 9),
    seed=st.integers(0, 10_000),
    lo=st.floats(-3, 0.5),
    width=st.floats(0.1, 4),
)
def test_degree_zero_closed_form(n, seed, lo, width):
    """Constant fit = sample mean: w_i ≡ 1/n ⇒ β_i = 1/n² for every F; ξ_{i,l} = 1/(n−1)²."""
    x = np.random.default_rng(seed).uniform(-2, 2, n)
    est = PolynomialLeastSquares(degree=0)
    beta, xi, mn = estimator_coefficients(est, x, UniformDistribution((lo,), (lo + width,)))
    np.testing.assert_allclose(beta, 1 / n**2, rtol=1e-12)
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(xi[off], 1 / (n - 1) ** 2, rtol=1e-12)
    np.testing.assert_array_equal(np.diag(xi), 1.0)
    assert not mn.any()


def test_degree_zero_single_source():
    beta, xi, mn = estimator_coefficients(PolynomialLeastSquares(0), [0.3], U11)
    assert beta.tolist() == [1.0] and xi.tolist() == [[1.0]] and not mn.any()


def test_interpolation_loo_is_exact_for_line_through_three_points():
    """Degree 1 with 3 sources: leaving i out leaves two points ⇒ ξ_{i,l} = Lagrange weight²."""
    x = np.array([-0.8, 0.1, 0.7])
    _, xi, mn = estimator_coefficients(PolynomialLeastSquares(1), x, U11)
    for i in range(3):
        a, b = [l for l in range(3) if l != i]
        assert math.isclose(xi[i, a], ((x[i] - x[b]) / (x[a] - x[b])) ** 2, rel_tol=1e-12)
    assert mn.tolist() == [False, False, False]


def test_gauss_legendre_moments_are_exact():
    """M_F for monomials under U[a, b] equals (b^{r+s+1} − a^{r+s+1}) / ((r+s+1)(b − a)) exactly."""
    a, b = Fraction(-3, 4), Fraction(5, 2)
    for degree in range(0, 7):
        M = PolynomialLeastSquares(degree).second_moment(UniformDistribution((float(a),), (float(b),)))
        for r in range(degree + 1):
            for s in range(degree + 1):
                p = r + s + 1
                exact = (b**p - a**p) / (p * (b - a))
                assert math.isclose(M[r, s], float(exact), rel_tol=1e-13, abs_tol=1e-14)


def test_second_moment_multid_box_exact():
    """dim 2, degree 2 on a box: E[x^a y^b] factorises into 1-d moments."""
    lo, hi = (-1.0, 0.0), (2.0, 0.5)
    est = PolynomialLeastSquares(2, dim=2)
    M = est.second_moment(UniformDistribution(lo, hi))
    E = polynomial_exponents(2, 2)

    def mom(p, a, b):
        return (b ** (p + 1) - a ** (p + 1)) / ((p + 1) * (b - a))

    for r, er in enumerate(E):
        for s, es in enumerate(E):
            e = er + es
            assert math.isclose(M[r, s], mom(e[0], lo[0], hi[0]) * mom(e[1], lo[1], hi[1]), rel_tol=1e-13)


# ---------------------------------------------------------------------------- property tests
@given(
    degree=st.integers(0, 3),
    extra=st.integers(0, 6),
    seed=st.integers(0, 10_000),
)
def test_beta_against_grid_integral_of_squared_lstsq_weights(degree, extra, seed):
    rng = np.random.default_rng(seed)
    n = degree + 1 + extra
    x = rng.uniform(-1, 1, n)
    if n > 1 and np.min(np.diff(np.sort(x))) < 1e-2:
        x = np.linspace(-1, 1, n) + rng.uniform(-0.01, 0.01, n)
    lo, hi = sorted(rng.uniform(-1.5, 1.5, 2))
    hi = max(hi, lo + 0.2)
    beta = PolynomialLeastSquares(degree).beta(x, UniformDistribution((lo,), (hi,)))
    oracle = grid_beta_1d(x, degree, lo, hi, m=20_001)
    np.testing.assert_allclose(beta, oracle, rtol=1e-6, atol=1e-12)


@given(
    degree=st.integers(0, 3),
    extra=st.integers(-1, 5),
    seed=st.integers(0, 10_000),
)
def test_xi_against_explicit_refits(degree, extra, seed):
    """Leave-one-out identity route and min-norm SVD route vs explicit refits (extra = −1: every
    leave-one-out design is under-determined)."""
    rng = np.random.default_rng(seed)
    n = max(degree + 1 + extra, 1)
    x = np.linspace(-1, 1, n) + rng.uniform(-0.1, 0.1, n) / max(n, 1)
    est = PolynomialLeastSquares(degree, underdetermined="min_norm")
    xi, mn = est.xi(x)
    np.testing.assert_allclose(xi, loo_xi(vandermonde(x, degree)), rtol=1e-9, atol=1e-12)
    if n > 1:
        assert mn.all() if n - 1 < degree + 1 else not mn.any()


def test_xi_mixed_rows_source_needed_for_identifiability():
    """Quadratic on sources 0, 0, 0.5, 1: the last two are each needed (h_ii = 1) → min-norm rows;
    the duplicated ones are not → leave-one-out identity rows."""
    x = np.array([0.0, 0.0, 0.5, 1.0])
    xi, mn = PolynomialLeastSquares(2).xi(x)
    assert mn.tolist() == [False, False, True, True]
    np.testing.assert_allclose(xi, loo_xi(vandermonde(x, 2)), rtol=1e-10, atol=1e-12)


def test_xi_meaning_expected_payment_penalty():
    """ξ_{i,·} is the law of y_i − f̂_{−i}(x_i): its variance is Σ_l ξ_{i,l} σ_l² (computed as the
    variance of an explicit linear combination of independent noises)."""
    x = np.array([-0.9, -0.4, 0.2, 0.5, 0.95])
    sigma2 = np.array([0.5, 1.0, 2.0, 0.3, 1.7])
    xi, _ = PolynomialLeastSquares(2).xi(x)
    Phi = vandermonde(x, 2)
    for i in range(5):
        keep = np.arange(5) != i
        coef = -lstsq_weights(Phi[keep], Phi[i : i + 1])[0]
        full = np.zeros(5)
        full[i] = 1.0
        full[keep] = coef
        assert math.isclose((full**2 * sigma2).sum(), xi[i] @ sigma2, rel_tol=1e-12)


def test_min_norm_full_design():
    """Coincident sources with underdetermined='min_norm': β from the pseudo-inverse equals the
    grid integral of squared minimum-norm lstsq weights."""
    x = np.array([0.5, 0.5, -0.5])
    est = PolynomialLeastSquares(2, underdetermined="min_norm")
    np.testing.assert_allclose(est.beta(x, U11), grid_beta_1d(x, 2, -1, 1, m=20_001), rtol=1e-6)
    xi, mn = est.xi(x)
    assert mn.all()
    np.testing.assert_allclose(xi, loo_xi(vandermonde(x, 2)), rtol=1e-10, atol=1e-12)
    with pytest.raises(GraphError, match="rank 2 < 3"):
        PolynomialLeastSquares(2).beta(x, U11)


def test_discrete_F_exact_sum():
    x = np.array([-0.7, 0.0, 0.4, 0.9])
    pts, w = np.array([-1.0, -0.2, 0.3, 1.0, 2.0]), np.array([1.0, 3.0, 0.0, 2.0, 4.0])
    F = DiscreteDistribution(pts, w)
    beta = PolynomialLeastSquares(2).beta(x, F)
    W = lstsq_weights(vandermonde(x, 2), vandermonde(pts, 2))
    np.testing.assert_allclose(beta, (w[:, None] * W**2).sum(axis=0) / w.sum(), rtol=1e-12)
    # a point mass at x_i: F = δ_{x_j} gives h(x_l, x, δ_{x_j}) = w_l(x_j)²
    beta_pt = PolynomialLeastSquares(2).beta(x, DiscreteDistribution([0.25]))
    np.testing.assert_allclose(beta_pt, lstsq_weights(vandermonde(x, 2), vandermonde([0.25], 2))[0] ** 2)


def test_multid_beta_against_fine_grid():
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (9, 2))
    lo, hi = (-1.0, -0.5), (1.0, 1.0)
    est = PolynomialLeastSquares(2, dim=2)
    beta = est.beta(X, UniformDistribution(lo, hi))
    m = 600
    g = [lo[a] + (np.arange(m) + 0.5) * (hi[a] - lo[a]) / m for a in range(2)]
    T = np.stack([v.ravel() for v in np.meshgrid(*g, indexing="ij")], axis=1)

    def feats(P):
        return np.stack(
            [np.ones(len(P)), P[:, 0], P[:, 1], P[:, 0] ** 2, P[:, 0] * P[:, 1], P[:, 1] ** 2], axis=1
        )

    W = lstsq_weights(feats(X), feats(T))
    np.testing.assert_allclose(beta, (W**2).mean(axis=0), rtol=1e-5)


def test_kernel_second_moment_against_erf_closed_form():
    """∫ exp(−((t−a)² + (t−b)²)/(2h²)) dt = exp(−(a−b)²/(4h²)) · h√π [erf((t−c)/h)]/2, c = (a+b)/2."""
    Z = np.array([-0.6, 0.1, 0.8])
    h, lo, hi = 0.4, -1.0, 1.5
    est = KernelLeastSquares(centers=Z, bandwidth=h)
    M = est.second_moment(UniformDistribution((lo,), (hi,)))
    a, b = Z[:, None], Z[None, :]
    c = (a + b) / 2
    closed = (
        np.exp(-((a - b) ** 2) / (4 * h**2))
        * h
        * np.sqrt(np.pi)
        / 2
        * (erf((hi - c) / h) - erf((lo - c) / h))
    )
    np.testing.assert_allclose(M, closed / (hi - lo), rtol=1e-10)


def test_kernel_beta_and_xi_against_grid_and_refits():
    Z = np.array([[-0.5, 0.0], [0.5, 0.2], [0.0, -0.6]])
    est = KernelLeastSquares(centers=Z, bandwidth=0.7, dim=2)
    X = np.random.default_rng(2).uniform(-1, 1, (6, 2))
    lo, hi = (-1.0, -1.0), (1.0, 1.0)
    beta = est.beta(X, UniformDistribution(lo, hi))
    m = 500
    g = [lo[a] + (np.arange(m) + 0.5) * (hi[a] - lo[a]) / m for a in range(2)]
    T = np.stack([v.ravel() for v in np.meshgrid(*g, indexing="ij")], axis=1)

    def feats(P):
        return np.exp(-((P[:, None, :] - Z[None]) ** 2).sum(2) / (2 * 0.49))

    W = lstsq_weights(feats(X), feats(T))
    np.testing.assert_allclose(beta, (W**2).mean(axis=0), rtol=1e-5)
    xi, _ = est.xi(X)
    np.testing.assert_allclose(xi, loo_xi(feats(X)), rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------------------ market level
def test_market_gamma_definition_and_uses_subset():
    sources = {f"s{i}": {"x": float(v), "alpha": 1.0 + i} for i, v in enumerate([-0.9, -0.3, 0.2, 0.6, 0.95])}
    buyers = {
        "lin": {
            "estimator": {"kind": "polynomial", "degree": 1},
            "F": {"kind": "uniform", "low": -1, "high": 1},
        },
        "quad": {
            "estimator": {"kind": "polynomial", "degree": 2},
            "F": {"kind": "uniform", "low": 0, "high": 1},
        },
        "pts": {
            "estimator": {"kind": "polynomial", "degree": 1},
            "F": {"kind": "discrete", "points": [0.0, 0.5]},
            "eta": 2.0,
        },
    }
    delta = np.array([[0, 0.2, 0.5], [0.2, 0, 0.1], [0.5, 0.1, 0]])
    G = estimation_market(sources, buyers, delta=delta, uses={"quad": ["s1", "s2", "s3", "s4"]})
    C = market_coefficients(G)
    assert C.buyers == ["lin", "quad", "pts"] and C.sources == ["s0", "s1", "s2", "s3", "s4"]
    np.testing.assert_array_equal(C.alpha, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(C.eta, [1, 1, 2])
    np.testing.assert_array_equal(C.delta, delta)
    assert C.uses.tolist() == [[True] * 5, [False, True, True, True, True], [True] * 5]
    x = np.array([-0.9, -0.3, 0.2, 0.6, 0.95])
    np.testing.assert_allclose(C.beta[0], grid_beta_1d(x, 1, -1, 1, m=20_001), rtol=1e-6)
    np.testing.assert_allclose(C.beta[1, 1:], grid_beta_1d(x[1:], 2, 0, 1, m=20_001), rtol=1e-6)
    assert C.beta[1, 0] == 0.0
    assert np.all(C.xi[1, 0, :] == 0) and np.all(C.xi[1, :, 0] == 0)
    np.testing.assert_allclose(C.xi[1][1:, 1:], loo_xi(vandermonde(x[1:], 2)), rtol=1e-10)
    W = lstsq_weights(vandermonde(x, 1), vandermonde([0.0, 0.5], 1))
    np.testing.assert_allclose(C.beta[2], (W**2).mean(axis=0), rtol=1e-12)
    for k in range(3):  # γ_i^k = β_i^k − Σ_{j≠k} δ_j^k β_i^j, written as a loop
        g = C.beta[k] - sum(delta[k, j] * C.beta[j] for j in range(3) if j != k)
        np.testing.assert_allclose(C.gamma[k], g, rtol=1e-14)
    d = C.to_dict()
    assert d["buyers"] == C.buyers and np.allclose(d["xi"], C.xi)
    assert C.n_buyers == 3 and C.n_sources == 5


def test_gamma_from_beta_ignores_diagonal():
    beta = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(gamma_from_beta(beta, [[0.7, 0.5], [0.5, 0.9]]), [[-0.5, 0.0], [2.5, 3.0]])


def test_large_market_shapes_and_invariants():
    G = random_estimation_market(20, 500, degree=2, seed=0)
    C = market_coefficients(G)
    assert C.beta.shape == (20, 500) and C.xi.shape == (20, 500, 500) and C.gamma.shape == (20, 500)
    assert np.all(C.beta >= 0) and np.all(C.xi >= 0)  # Assumption 3: h ≥ 0
    assert np.all(np.diagonal(C.xi, axis1=1, axis2=2) == 1)
    _check_trace_identity(G, C)


def _check_trace_identity(G, C):
    """Σ_i β_i^k = E_F ‖w(x*)‖² = tr(M_F (ΦᵀΦ)⁻¹): M_F from closed-form monomial moments, a
    different formula from the diagonal the code computes."""
    X = source_positions(G)[:, 0]
    for k, b in enumerate(C.buyers):
        F, p = G.nodes[b]["F"], G.nodes[b]["estimator"]["degree"]
        lo, hi = F["low"], F["high"]
        M = np.array(
            [
                [(hi ** (r + s + 1) - lo ** (r + s + 1)) / ((r + s + 1) * (hi - lo)) for s in range(p + 1)]
                for r in range(p + 1)
            ]
        )
        Phi = vandermonde(X[C.uses[k]], p)
        assert math.isclose(C.beta[k].sum(), np.trace(M @ np.linalg.inv(Phi.T @ Phi)), rel_tol=1e-9)


@given(
    n_buyers=st.integers(1, 4),
    extra=st.integers(1, 12),
    degree=st.integers(0, 3),
    seed=st.integers(0, 10_000),
    delta=st.floats(0, 1),
    density=st.floats(0.3, 1.0),
)
def test_random_markets_invariants(n_buyers, extra, degree, seed, delta, density):
    G = random_estimation_market(n_buyers, degree + 1 + extra, degree, seed, delta=delta, density=density)
    C = market_coefficients(G)
    assert np.all(C.beta >= 0) and np.all(C.xi >= 0)
    assert np.all(C.beta[~C.uses] == 0)
    np.testing.assert_array_equal(np.diagonal(C.xi, axis1=1, axis2=2), C.uses.astype(float))
    np.testing.assert_allclose(C.delta, C.delta.T)
    np.testing.assert_allclose(C.gamma, C.beta - C.delta @ C.beta, rtol=1e-12, atol=1e-15)
    _check_trace_identity(G, C)


# ---------------------------------------------------------------------------------- errors
def test_estimator_and_distribution_errors():
    with pytest.raises(InvalidInputError, match="degree must be an integer"):
        PolynomialLeastSquares(-1)
    with pytest.raises(InvalidInputError, match="dimension must be an integer"):
        PolynomialLeastSquares(1, dim=0)
    with pytest.raises(GraphError, match="'underdetermined' must be"):
        PolynomialLeastSquares(1, underdetermined="sometimes")
    with pytest.raises(InvalidInputError, match="bandwidth must be > 0"):
        KernelLeastSquares(centers=[0.0], bandwidth=-1)
    with pytest.raises(InvalidInputError, match="must match"):
        UniformDistribution((0.0, 0.0), (1.0,))
    with pytest.raises(InvalidInputError, match="finite low < high"):
        UniformDistribution((1.0,), (0.0,))
    with pytest.raises(InvalidInputError, match="shape"):
        as_positions(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidInputError, match="dimension 1, expected 2"):
        as_positions([[0.0], [1.0]], 2)
    with pytest.raises(InvalidInputError, match="non-finite"):
        as_positions([0.0, np.nan])
    with pytest.raises(GraphError, match="buyer 'z': uniform F needs"):
        distribution_from_spec({"kind": "uniform", "high": 1}, 1, node="z")
    with pytest.raises(GraphError, match="buyer 'z': polynomial estimator needs 'degree'"):
        estimator_from_spec({"kind": "polynomial"}, 1, node="z")
    with pytest.raises(GraphError, match="rank 1 < 2"):
        PolynomialLeastSquares(1).xi([0.3, 0.3])
    with pytest.raises(GraphError, match="rank 1 < 2"):
        PolynomialLeastSquares(1).hat_weights([0.3, 0.3], [0.0])


def test_hat_weights_and_fit_predict_agree():
    x = np.array([-0.9, -0.2, 0.4, 0.8])
    est = PolynomialLeastSquares(2)
    y = np.array([1.0, -2.0, 0.5, 3.0])
    ts = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(est.hat_weights(x, ts) @ y, est.fit_predict(x, y, ts), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ exact rational oracle
def _solve_exact(A, B):
    """Solve A X = B over the rationals by Gauss–Jordan (A square, non-singular)."""
    n = len(A)
    M = [list(A[r]) + list(B[r]) for r in range(n)]
    for c in range(n):
        p = next(r for r in range(c, n) if M[r][c] != 0)
        M[c], M[p] = M[p], M[c]
        piv = M[c][c]
        M[c] = [v / piv for v in M[c]]
        for r in range(n):
            if r != c and M[r][c] != 0:
                f = M[r][c]
                M[r] = [a - f * b for a, b in zip(M[r], M[c], strict=True)]
    return [row[n:] for row in M]


def _matT(A):
    return [list(r) for r in zip(*A, strict=True)]


def _matmul(A, B):
    return [[sum(a * b for a, b in zip(r, c, strict=True)) for c in zip(*B, strict=True)] for r in A]


def _exact_hat_rows(xs_fit, xs_eval, degree):
    """Exact hat weights: full column rank → φᵀ(ΦᵀΦ)⁻¹Φᵀ; full row rank → φᵀΦᵀ(ΦΦᵀ)⁻¹ (min-norm)."""
    Phi = [[x**p for p in range(degree + 1)] for x in xs_fit]
    E = [[x**p for p in range(degree + 1)] for x in xs_eval]
    if len(xs_fit) >= degree + 1:
        G = _matmul(_matT(Phi), Phi)
        return _matmul(E, _solve_exact(G, _matT(Phi)))  # E (ΦᵀΦ)⁻¹ Φᵀ
    GG = _matmul(Phi, _matT(Phi))
    return _matmul(
        _matmul(E, _matT(Phi)),
        _solve_exact(GG, [[int(r == c) for c in range(len(xs_fit))] for r in range(len(xs_fit))]),
    )


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("n_extra", [0, 1])
def test_xi_near_singular_against_exact_rationals(k, n_extra):
    """Quadratic with two sources 10^-k apart (with n_extra = 0 some leave-one-out fits are nearly
    singular interpolations): ξ against exact rational arithmetic, to 1e-12 + 10·eps·κ(X_{−i})."""
    eps = Fraction(1, 10**k)
    # the oracle works on the exact binary values of the float inputs (no representation error)
    xs = [Fraction(float(v)) for v in (0, Fraction(1, 2), 1, 1 + eps, Fraction(-1, 3))][: 4 + n_extra]
    n = len(xs)
    exact = np.eye(n)
    for i in range(n):
        keep = [l for l in range(n) if l != i]
        w = _exact_hat_rows([xs[l] for l in keep], [xs[i]], 2)[0]
        for r, l in enumerate(keep):
            exact[i, l] = float(w[r] ** 2)
    x = np.array([float(v) for v in xs])
    xi, _ = PolynomialLeastSquares(2).xi(x)
    Phi = vandermonde(x, 2)
    for i in range(n):
        # normwise forward-error bound of a backward-stable solve on the weights |w| = √ξ:
        # ‖w − w_exact‖ ≤ (1e-12 + 10·eps·κ(X_{−i})) ‖w_exact‖
        kappa = np.linalg.cond(np.delete(Phi, i, axis=0))
        w, w_exact = np.sqrt(np.delete(xi[i], i)), np.sqrt(np.delete(exact[i], i))
        tol = (1e-12 + 10 * np.finfo(float).eps * kappa) * np.linalg.norm(w_exact)
        assert np.max(np.abs(w - w_exact)) <= tol
    np.testing.assert_array_equal(np.diag(xi), 1.0)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_beta_against_exact_rationals(degree):
    xs = [Fraction(v, 7) for v in (-6, -2, 1, 3, 5, 7)][: degree + 3]
    a, b = Fraction(-1, 2), Fraction(1)
    exact = []
    # E_F[w_i(x*)²] = ∫ (Σ_p c_ip x^p)² dx / (b − a), c = rows of (ΦᵀΦ)⁻¹Φᵀ transposed
    Phi = [[x**p for p in range(degree + 1)] for x in xs]
    C = _solve_exact(_matmul(_matT(Phi), Phi), _matT(Phi))  # (P, n)
    for i in range(len(xs)):
        c = [C[p][i] for p in range(degree + 1)]
        tot = Fraction(0)
        for p in range(degree + 1):
            for q in range(degree + 1):
                m = p + q + 1
                tot += c[p] * c[q] * (b**m - a**m) / m
        exact.append(float(tot / (b - a)))
    beta = PolynomialLeastSquares(degree).beta([float(x) for x in xs], UniformDistribution((-0.5,), (1.0,)))
    np.testing.assert_allclose(beta, exact, rtol=1e-12)
