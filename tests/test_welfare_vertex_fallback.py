"""``solve_welfare(method="auto")``: an uncertified Clarabel answer is re-solved by HiGHS's
active-set QP (a vertex), and the certified answer is returned; an explicit route is never
replaced. Oracle: the certificate itself, and the two answers' welfare against each other."""

from __future__ import annotations

import pytest

from datamarkets.formulations.welfare import solve_welfare
from datamarkets.graphs.market import random_bipartite_market


@pytest.fixture(scope="module")
def degenerate_market():
    # found by search: of 8 seeds each at 100², 200², 300², 500² buyers × sellers, the only market
    # whose Clarabel answer fails the certificate (prices' stationarity 5e-6 against 1e-6)
    return random_bipartite_market(500, 500, seed=0)


def test_an_uncertified_clarabel_answer_is_replaced_by_the_highs_vertex(degenerate_market):
    G = degenerate_market
    clar = solve_welfare(G, method="arrays", solver="clarabel")
    assert clar.method == "qp-clarabel" and not clar.certificate.passed
    assert "vertex_fallback" not in clar.meta  # an explicit route is kept as asked
    auto = solve_welfare(G)
    assert auto.method == "qp-highs" and auto.certificate.passed
    assert "clarabel's answer failed the certificate" in auto.meta["vertex_fallback"]
    assert any(k.startswith("clarabel_") for k in auto.timings)
    w_auto, w_clar = auto.solution["welfare"], clar.solution["welfare"]
    assert abs(w_auto - w_clar) <= 1e-6 * (1.0 + abs(w_auto))  # both optimal: the same welfare


@pytest.mark.parametrize("seed", [0, 1])
def test_a_certified_clarabel_answer_is_kept(seed):
    r = solve_welfare(random_bipartite_market(100, 100, seed=seed))
    assert r.method == "qp-clarabel" and r.certificate.passed and "vertex_fallback" not in r.meta
