"""Valuations: Definition 2 properties, demand = argmax (dense grid), JSON round trip, errors."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import datamarkets.graphs.valuations as V
from datamarkets.errors import InvalidInputError
from datamarkets.graphs.valuations import (
    AlphaFairValuation,
    LinearValuation,
    PiecewiseLinearValuation,
    QuadraticValuation,
    as_valuation,
    quadratic_demand,
    quadratic_marginal,
    quadratic_value,
    stack_quadratic,
    valuation_from_dict,
)

pos = st.floats(0.1, 10.0, allow_nan=False)


@st.composite
def piecewise(draw):
    k = draw(st.integers(1, 4))
    widths = draw(st.lists(st.floats(0.1, 5.0), min_size=k, max_size=k))
    slopes = sorted(draw(st.lists(st.floats(0.0, 5.0), min_size=k, max_size=k)), reverse=True)
    return PiecewiseLinearValuation(np.cumsum(widths), slopes)


valuations = st.one_of(
    st.builds(QuadraticValuation, pos, pos),
    st.builds(AlphaFairValuation, pos, st.floats(0.2, 3.0), st.floats(0.2, 3.0)),
    st.builds(LinearValuation, pos, pos),
    piecewise(),
)


def test_doctests():
    assert doctest.testmod(V).failed == 0


@given(valuations)
def test_definition2_shape(v):
    """θ(0)=0, non-decreasing, concave (midpoint), θ' non-increasing, θ' = difference quotient."""
    hi = max(v.peak * 1.5, 1.0) if math.isfinite(v.peak) else 20.0
    z = np.linspace(0.0, hi, 301)
    th = v.value(z)
    assert v.value(0.0) == 0.0
    assert np.all(np.diff(th) >= -1e-12)
    assert np.all(th[1:-1] >= 0.5 * (th[:-2] + th[2:]) - 1e-9)  # concave on the grid
    m = v.marginal(z)
    assert np.all(np.diff(m) <= 1e-12)
    # derivative check: right derivative vs forward difference (exact for piecewise-linear off kinks)
    h = 1e-6
    if isinstance(v, PiecewiseLinearValuation):  # keep difference quotients off the kinks
        z = z[np.min(np.abs(z[:, None] - v.breakpoints[None, :]), axis=1) > 2 * h]
    fd = (v.value(z + h) - v.value(z)) / h
    assert np.allclose(fd, v.marginal(z), atol=1e-4 * (1 + v.marginal_at_zero))
    fdl = (v.value(z[1:]) - v.value(z[1:] - h)) / h
    assert np.allclose(fdl, v.marginal(z[1:], side="left"), atol=1e-4 * (1 + v.marginal_at_zero))


@given(
    st.one_of(
        st.builds(QuadraticValuation, pos, pos), st.builds(AlphaFairValuation, pos, st.floats(0.2, 3.0))
    )
)
def test_elastic_gamma(v):
    """Definition 2's fourth condition with the reported γ on [0, D]."""
    D = v.peak if math.isfinite(v.peak) else 10.0
    g = v.elastic_gamma(D)
    assert g > 0 and v.is_elastic
    z = np.linspace(0, D, 60)
    Z, E = np.meshgrid(z, z, indexing="ij")
    mask = (E < Z) & (v.marginal(Z) > 0)
    assert np.all(v.marginal(Z)[mask] <= v.marginal(E)[mask] - g * (Z - E)[mask] + 1e-9)


def test_piecewise_not_elastic():
    v = LinearValuation(2.0, 3.0)
    assert not v.is_elastic and v.elastic_gamma(3.0) == 0.0


@given(valuations, st.floats(0.0, 12.0))
def test_inverse_marginal_is_argmax(v, p):
    """Both demand choices maximise θ(z) − p z over a dense grid of [0, peak]; smallest ≤ largest."""
    if math.isinf(v.inverse_marginal(p)):
        # α-fair only: at p = 0 θ − 0·z increases for ever; at a tiny p > 0 the demand
        # (σ/p)^{1/α} − δ exceeds the largest float, and inf is the honest answer.
        assert isinstance(v, AlphaFairValuation) and not math.isfinite(v.peak)
        assert p == 0 or math.log(v.sigma / p) / v.alpha > math.log(np.finfo(float).max)
        return
    hi = v.peak if math.isfinite(v.peak) else max(50.0, float(v.inverse_marginal(p)) * 1.1 + 1)
    grid = np.linspace(0.0, hi, 4001)
    best = np.max(v.value(grid) - p * grid)
    for side in ("largest", "smallest"):
        z = v.inverse_marginal(p, side=side)
        if math.isinf(z):
            continue
        assert v.value(z) - p * z >= best - 1e-9 * (1 + abs(best))
    assert v.inverse_marginal(p, side="smallest") <= v.inverse_marginal(p, side="largest") + 1e-12


def test_inverse_marginal_ties_and_zero_price():
    v = LinearValuation(1.2, 40.0)
    assert v.inverse_marginal(1.2, side="largest") == 40.0
    assert v.inverse_marginal(1.2, side="smallest") == 0.0
    assert v.inverse_marginal(0.0) == 40.0 and v.inverse_marginal(2.0) == 0.0
    q = QuadraticValuation(2.0, 0.5)
    assert (
        q.inverse_marginal(0.0) == 4.0 and q.inverse_marginal(-1.0) == 4.0 and q.inverse_marginal(3.0) == 0.0
    )
    a = AlphaFairValuation(2.0, 0.5, offset=1.0)
    assert a.inverse_marginal(0.0) == math.inf
    # θ'(z) = 2 (z+1)^{-1/2} = 1  ⇔  z = 3
    assert a.inverse_marginal(1.0) == pytest.approx(3.0)
    assert a.marginal_at_zero == 2.0


def test_alpha_fair_closed_forms_and_offset_bound():
    v = AlphaFairValuation(3.0, 1.0, offset=0.5)
    assert v.value(1.0) == pytest.approx(3.0 * math.log(1.5 / 0.5))
    w = AlphaFairValuation(1.0, 0.5, offset=1e-2)
    d = np.linspace(0, 100, 50)
    printed = d**0.5 / 0.5  # the draft's θ(d) = σ d^{1-α}/(1-α)
    gap = printed - w.value(d)
    assert np.all(gap >= -1e-12) and np.all(gap <= (1e-2) ** 0.5 / 0.5 + 1e-12)


def test_vectorised_quadratic_helpers():
    vs = [QuadraticValuation(a, b) for a, b in [(2, 1), (3, 0.5), (1, 2)]]
    a, b = stack_quadratic(vs)
    z = np.array([1.0, 10.0, 0.2])
    p = np.array([0.5, 0.0, 5.0])
    assert np.allclose(quadratic_value(a, b, z), [v.value(x) for v, x in zip(vs, z, strict=True)])
    assert np.allclose(quadratic_marginal(a, b, z), [v.marginal(x) for v, x in zip(vs, z, strict=True)])
    assert np.allclose(quadratic_demand(a, b, p), [v.inverse_marginal(x) for v, x in zip(vs, p, strict=True)])
    with pytest.raises(InvalidInputError, match="index 1"):
        stack_quadratic([vs[0], LinearValuation(1, 1)])


@given(valuations)
def test_json_round_trip(v):
    d = json.loads(json.dumps(v.to_dict()))
    w = valuation_from_dict(d)
    assert w == v and type(w) is type(v)
    z = np.linspace(0, 5, 7)
    assert np.array_equal(w.value(z), v.value(z))
    assert as_valuation(v) is v


def test_json_forms_of_the_issue():
    assert valuation_from_dict({"kind": "quadratic", "a": 2, "b": 1}) == QuadraticValuation(2, 1)
    af = valuation_from_dict({"kind": "alpha_fair", "sigma": 1, "alpha": 0.5})
    assert af.offset == 1.0
    assert valuation_from_dict({"kind": "linear", "unit_price": 1.5, "demand": 26}) == LinearValuation(
        1.5, 26
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: QuadraticValuation(1.0, 0.0), "'b' must be > 0"),
        (lambda: QuadraticValuation(-1.0, 1.0), "'a' must be > 0"),
        (lambda: QuadraticValuation(float("nan"), 1.0), "finite"),
        (lambda: QuadraticValuation("x", 1.0), "number"),
        (lambda: AlphaFairValuation(1.0, 0.0), "'alpha' must be > 0"),
        (lambda: AlphaFairValuation(1.0, 0.5, offset=0.0), "'offset' must be > 0"),
        (lambda: LinearValuation(1.0, -2.0), "'demand' must be > 0"),
        (lambda: PiecewiseLinearValuation([1, 2], [1, 2]), "not concave"),
        (lambda: PiecewiseLinearValuation([2, 1], [2, 1]), "strictly increasing"),
        (lambda: PiecewiseLinearValuation([1, 2], [1, -1]), ">= 0"),
        (lambda: PiecewiseLinearValuation([1], [1, 2]), "as many breakpoints"),
        (lambda: PiecewiseLinearValuation([1, float("inf")], [2, 1]), "finite"),
        (lambda: valuation_from_dict({"kind": "cubic"}), "unknown valuation kind"),
        (lambda: valuation_from_dict({"kind": "quadratic", "a": 1}), "missing"),
        (lambda: valuation_from_dict({"kind": "quadratic", "a": 1, "b": 1, "c": 2}), "unknown keys"),
        (lambda: valuation_from_dict([1, 2]), "must be a dict"),
        (lambda: QuadraticValuation(1, 1).value(-1.0), ">= 0"),
        (lambda: QuadraticValuation(1, 1).marginal(1.0, side="middle"), "side"),
        (lambda: QuadraticValuation(1, 1).inverse_marginal(float("nan")), "NaN"),
    ],
)
def test_errors(make, match):
    with pytest.raises(InvalidInputError, match=match):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: QuadraticValuation(True, 1.0),
        lambda: valuation_from_dict({"kind": "quadratic", "a": "1", "b": 1}),
        lambda: valuation_from_dict({"kind": "linear", "unit_price": 1.0, "demand": "50"}),
        lambda: valuation_from_dict({"kind": "alpha_fair", "sigma": 1.0, "alpha": False}),
        lambda: PiecewiseLinearValuation(["1", "2"], [2.0, 1.0]),
        lambda: PiecewiseLinearValuation([True, 2.0], [2.0, 1.0]),
        lambda: PiecewiseLinearValuation("12", [2.0, 1.0]),
    ],
)
def test_strings_and_booleans_are_not_numbers(make):
    """JSON "1" or true is bad input, never silently coerced to 1.0 (graph supplies already are)."""
    with pytest.raises(InvalidInputError, match="number"):
        make()


def test_numpy_scalars_and_arrays_are_numbers():
    assert QuadraticValuation(np.float64(2), np.int64(1)).peak == 2.0
    v = PiecewiseLinearValuation(np.array([1, 2]), [np.float32(2.0), 1])
    assert v.value(2.0) == pytest.approx(3.0)
