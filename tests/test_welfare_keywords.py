"""``solve_welfare(method=, solver=)``: the route and the solver named apart (issue 10).

The old spellings ``method="highs"`` / ``"clarabel"`` must warn and give exactly what the new pair
gives (same program, same solver: 1e-8 is room for nothing but float noise); every valid pair keeps
the result label that saved results carry; bad pairs raise InvalidInputError listing the choices.
"""

from __future__ import annotations

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.welfare import ROUTE_SOLVERS, resolve_route, solve_welfare
from datamarkets.formulations.welfare_solve import solve_welfare_route
from datamarkets.graphs.market import random_bipartite_market

# (method, solver) → the label of ``Result.method`` for quadratic / linear valuations (unchanged)
LABELS = {
    ("arrays", "clarabel"): ("qp-clarabel", "qp-clarabel"),
    ("arrays", "highs"): ("qp-highs", "lp-highs-ipx"),
    ("cvxpy", "clarabel"): ("cvxpy-clarabel", "cvxpy-clarabel"),
    ("pyomo", "highs"): ("pyomo-highs", "pyomo-highs"),
}


def _same(r, q, tol=1e-8):
    assert r.method == q.method
    assert r.status == q.status and r.certificate.passed, r.certificate.failures
    W = r.solution["welfare"]
    assert abs(W - q.solution["welfare"]) <= tol * max(1.0, abs(W))
    assert r.solution["prices"].keys() == q.solution["prices"].keys()
    for k, p in r.solution["prices"].items():
        assert abs(p - q.solution["prices"][k]) <= tol * max(1.0, abs(p)), k


def test_route_solvers_cover_exactly_the_labelled_pairs():
    assert {(m, s) for m, ss in ROUTE_SOLVERS.items() for s in ss} == set(LABELS)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("valuation", ["quadratic", "linear"])
@pytest.mark.parametrize("solver", ["clarabel", "highs"])
@pytest.mark.parametrize("entry", [solve_welfare, solve_welfare_route])
def test_deprecated_spelling_warns_and_equals_the_new_pair(entry, solver, valuation, seed):
    G = random_bipartite_market(12, 4, seed=seed, valuation=valuation)
    new = entry(G, method="arrays", solver=solver)
    with pytest.warns(DeprecationWarning, match=f"method='arrays', solver='{solver}'"):
        old = entry(G, solver)
    _same(new, old)
    assert new.method == LABELS["arrays", solver][valuation == "linear"]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("valuation", ["quadratic", "linear"])
@pytest.mark.parametrize("pair", sorted(LABELS))
def test_every_pair_agrees_with_its_default_and_keeps_its_label(pair, valuation, seed):
    """solver=None is the route's default: the explicit default gives the same answer (1e-8), and
    every pair reaches the same optimum as the vertex solver (arrays/HiGHS) to 1e-6."""
    method, solver = pair
    G = random_bipartite_market(10, 3, seed=10 + seed, valuation=valuation)
    r = solve_welfare(G, method=method, solver=solver)
    assert r.method == LABELS[pair][valuation == "linear"]
    _, default = resolve_route(method, None, {valuation})
    if default == solver:
        _same(r, solve_welfare(G, method=method))
    ref = solve_welfare(G, method="arrays", solver="highs")
    W = ref.solution["welfare"]
    assert abs(r.solution["welfare"] - W) <= 1e-6 * max(1.0, abs(W)), pair


@pytest.mark.parametrize("valuation", ["quadratic", "linear"])
def test_auto_is_the_arrays_default(valuation):
    G = random_bipartite_market(10, 3, seed=3, valuation=valuation)
    solver = "clarabel" if valuation == "quadratic" else "highs"
    _same(solve_welfare(G), solve_welfare(G, method="arrays", solver=solver))


@pytest.mark.parametrize(
    ("method", "solver", "match"),
    [
        ("gurobi", None, "unknown method 'gurobi'"),
        ("arrays", "gurobi", "solver 'gurobi' does not apply to method 'arrays'"),
        ("cvxpy", "highs", "solver 'highs' does not apply to method 'cvxpy'"),
        ("pyomo", "clarabel", "solver 'clarabel' does not apply to method 'pyomo'"),
        ("highs", "clarabel", "contradicts solver='clarabel'"),
    ],
)
def test_bad_pairs_raise_with_the_choices(method, solver, match):
    G = random_bipartite_market(4, 2, seed=0)
    for entry in (solve_welfare, solve_welfare_route):
        with pytest.raises(InvalidInputError, match=match) as err:
            entry(G, method=method, solver=solver)
        msg = str(err.value)
        assert "auto, arrays, cvxpy, pyomo" in msg and "arrays: clarabel, highs" in msg, msg


def test_alpha_fair_takes_cvxpy_only():
    A = random_bipartite_market(4, 2, seed=0, valuation="alpha_fair")
    assert solve_welfare(A).method == "cvxpy-clarabel"
    for kw in ({"method": "arrays"}, {"method": "pyomo"}, {"solver": "highs"}):
        with pytest.raises(InvalidInputError, match="cvxpy"):
            solve_welfare(A, **kw)
    assert resolve_route("auto", None, {"alpha_fair"}) == ("cvxpy", "clarabel")
    assert np.isfinite(solve_welfare(A, method="cvxpy", solver="clarabel").solution["welfare"])
