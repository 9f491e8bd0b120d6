"""Tests of the worked-example plug-in ``cournot-sellers`` (examples/cournot_sellers.py).

Oracles: the closed form of symmetric Cournot; three independent routes (QP, KKT MILP, Gauss–Seidel
best responses) agreeing on random instances; the closed-form best response against a generic QP;
the certificate failing on perturbed solutions; the entry point and third-party discovery.
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets import registry
from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.examples import cournot_sellers as cs
from datamarkets.examples.cournot_sellers import (
    CournotResult,
    CournotSellers,
    CournotSellersKKT,
    best_response,
    certify_cournot,
    cournot_arrays,
    random_cournot_graph,
    symmetric_cournot_equilibrium,
    symmetric_cournot_graph,
    validate_cournot_graph,
)
from datamarkets.io import read_json
from datamarkets.solvers import available_solvers

ROOT = Path(__file__).resolve().parents[1]
F = CournotSellers()
FK = CournotSellersKKT()
QP_SOLVERS = [s for s in ("clarabel", "highs", "osqp", "scs") if available_solvers().get(s)]
ROUTE_TOL = 1e-6  # agreement of quantities between routes, relative to the quantity scale q̄


def _q(result: CournotResult) -> np.ndarray:
    return np.array([r["quantity"] for r in result.solution["quantities"]])


def _all_routes() -> list[tuple[CournotSellers, str]]:
    return [(F, s) for s in (*QP_SOLVERS, "direct")] + [(FK, "highs")]


# ------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize(("formulation", "solver"), _all_routes())
def test_symmetric_closed_form(formulation: CournotSellers, solver: str, n: int) -> None:
    a, b, c = 10.0, 2.0, 1.5
    r = formulation.solve(F.instance({"model": "symmetric", "sellers": n, "a": a, "b": b, "c": c}), solver)
    assert r.certified, r.certificate.failures
    q_star = (a - c) / (b * (n + 1))  # textbook Cournot
    assert np.allclose(_q(r), q_star, rtol=1e-6, atol=1e-8)
    assert r.solution["markets"][0]["price"] == pytest.approx((a + n * c) / (n + 1), rel=1e-6)
    closed = symmetric_cournot_equilibrium(n, a=a, b=b, c=c)
    for row in r.solution["sellers"]:
        assert row["profit"] == pytest.approx(closed["profit"], rel=1e-6)


@pytest.mark.parametrize(("formulation", "solver"), _all_routes())
def test_symmetric_capacity_binds(formulation: CournotSellers, solver: str) -> None:
    n, a, b, c, d, k = 3, 10.0, 1.0, 1.0, 0.5, 1.0  # unconstrained q* = 9 / 4.5 = 2 > k
    G = F.instance({"model": "symmetric", "sellers": n, "a": a, "b": b, "c": c, "d": d, "capacity": k})
    r = formulation.solve(G, solver)
    assert r.certified, r.certificate.failures
    assert np.allclose(_q(r), k, atol=1e-7)
    assert symmetric_cournot_equilibrium(n, a=a, b=b, c=c, d=d, capacity=k)["quantity"] == k
    assert r.certificate.details["binding_capacities"] == n
    lam = a - b * (n + 1) * k - c - d * k  # marginal profit at the capacity = its shadow price
    for row in r.solution["sellers"]:
        assert row["capacity_price"] == pytest.approx(lam, rel=1e-6)


def test_capacity_reallocates_across_markets() -> None:
    """A capacitated seller in two markets equalises marginal profits (= λ) across them."""
    G = nx.Graph()
    G.add_node("rich", role="buyer", intercept=20.0, slope=1.0)
    G.add_node("poor", role="buyer", intercept=12.0, slope=2.0)
    G.add_node("big", role="seller", cost=1.0, capacity=3.0)
    G.add_node("local", role="seller", cost=2.0)
    G.add_edges_from([("big", "rich"), ("big", "poor"), ("local", "rich")])
    results = [f.solve(G, s) for f, s in _all_routes()]
    q0 = _q(results[0])
    for r in results:
        assert r.certified, (r.method, r.certificate.failures)
        assert np.allclose(_q(r), q0, atol=ROUTE_TOL * cournot_arrays(G).quantity_scale)
    big = next(row for row in results[0].solution["sellers"] if row["seller"] == "big")
    assert big["output"] == pytest.approx(3.0, abs=1e-7) and big["capacity_price"] > 0.1
    A = cournot_arrays(G)
    m = cs.marginal_profits(A, q0)
    assert np.allclose(m[A.seller_of == 0], big["capacity_price"], atol=1e-6)


# -------------------------------------------------------------------- routes agree (property)
@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    markets=st.integers(1, 3),
    links=st.integers(1, 3),
    share=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_routes_agree_on_random_instances(
    size: int, seed: int, markets: int, links: int, share: float
) -> None:
    G = F.instance({"size": size, "seed": seed, "markets": markets, "links": links, "capacity_share": share})
    scale = cournot_arrays(G).quantity_scale
    qp, direct, kkt = F.solve(G, "clarabel"), F.solve(G, "direct"), FK.solve(G, "highs")
    for r in (qp, direct, kkt):
        assert r.certified, (r.method, r.certificate.failures)
    assert np.max(np.abs(_q(qp) - _q(direct))) <= ROUTE_TOL * scale
    assert np.max(np.abs(_q(qp) - _q(kkt))) <= ROUTE_TOL * scale
    assert qp.solution["objective"] == pytest.approx(kkt.solution["objective"], rel=1e-9, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    alpha=st.lists(st.floats(-5, 20), min_size=1, max_size=5),
    data=st.data(),
    d=st.sampled_from([0.0, 0.3, 2.0]),
    k=st.sampled_from([0.0, 0.5, 2.0, math.inf]),
)
def test_best_response_matches_generic_qp(
    alpha: list[float], data: st.DataObject, d: float, k: float
) -> None:
    import cvxpy as cp

    al = np.array(alpha)
    slope = np.array(data.draw(st.lists(st.floats(0.2, 3), min_size=al.size, max_size=al.size)))
    x = best_response(al, slope, d, k)
    y = cp.Variable(al.size, nonneg=True)
    cons = [cp.sum(y) <= k] if math.isfinite(k) else []
    obj = al @ y - cp.sum(cp.multiply(slope, cp.square(y))) - d / 2 * cp.square(cp.sum(y))
    cp.Problem(cp.Maximize(obj), cons).solve(
        solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10
    )

    def profit(z: np.ndarray) -> float:
        return float(al @ z - slope @ (z * z) - d / 2 * z.sum() ** 2)

    assert np.all(x >= 0) and x.sum() <= k + 1e-12
    y_feas = np.maximum(y.value, 0)
    if math.isfinite(k) and y_feas.sum() > k:  # the IPM's point may exceed the cap by ~1e-10
        y_feas *= k / y_feas.sum()
    # the closed form is at least as good as any feasible point (CI: an infeasible IPM point beat it by 1e-9)
    assert profit(x) >= profit(y_feas) - 1e-12 * max(1.0, abs(profit(x)))
    # unique maximiser: the profit is μ-strongly concave (μ = 2 min slope) and x maximises it over a
    # convex set, so profit(x) − profit(y) ≥ μ/2 ‖x − y‖² for every feasible y — whatever the IPM's
    # accuracy (CI: alpha=[0, 14] left y_0 = 1.2e-4 where x_0 = 0, a profit gap of ~3e-9)
    mu = 2 * slope.min()
    gap = max(profit(x) - profit(y_feas), 0.0)
    assert np.linalg.norm(x - y_feas) <= np.sqrt(2 * gap / mu) + 1e-9 * max(1.0, np.abs(x).max())


# ------------------------------------------------------------------------------- certificate
def test_certificate_catches_perturbations() -> None:
    G = F.generate(10, 4)
    r = F.solve(G, "clarabel")
    assert r.certified
    scale = cournot_arrays(G).quantity_scale
    sol = json.loads(json.dumps(r.to_dict()))
    bumped = json.loads(json.dumps(sol))
    bumped["quantities"][0]["quantity"] += 1e-3 * scale
    failures = F.certify(G, bumped).failures
    assert "complementarity_quantity" in failures or "dual_feasibility" in failures
    zeroed = json.loads(json.dumps(sol))
    for row in zeroed["quantities"]:
        row["quantity"] = 0.0
    assert "dual_feasibility" in F.certify(G, {"quantities": zeroed["quantities"]}).failures
    lied = json.loads(json.dumps(sol))
    lied["markets"][0]["price"] += 1e-3
    assert set(F.certify(G, lied).failures) == {"claimed_prices"}
    lied = json.loads(json.dumps(sol))
    lied["objective"] *= 1.001
    assert set(F.certify(G, lied).failures) == {"claimed_objective"}


def test_certificate_catches_capacity_violation_and_negative_quantities() -> None:
    G = symmetric_cournot_graph(2, a=10, b=1, c=1, capacity=1.0)
    over = [{"seller": s, "buyer": "m0", "quantity": 1.5} for s in ("s0", "s1")]
    assert "capacity" in certify_cournot(G, {"quantities": over}).failures
    neg = [
        {"seller": "s0", "buyer": "m0", "quantity": -0.1},
        {"seller": "s1", "buyer": "m0", "quantity": 1.0},
    ]
    assert "nonnegativity" in certify_cournot(G, {"quantities": neg}).failures


def test_certificate_rejects_malformed_quantities() -> None:
    G = symmetric_cournot_graph(2, a=10, b=1, c=1)
    with pytest.raises(InvalidInputError, match="not a seller–buyer edge"):
        certify_cournot(G, {"quantities": [{"seller": "s0", "buyer": "zz", "quantity": 1.0}]})
    row = {"seller": "s0", "buyer": "m0", "quantity": 1.0}
    with pytest.raises(InvalidInputError, match="duplicate"):
        certify_cournot(G, {"quantities": [row, dict(row)]})
    with pytest.raises(InvalidInputError, match="finite number"):
        certify_cournot(G, {"quantities": [{**row, "quantity": None}]})
    with pytest.raises(InvalidInputError, match="'quantities' list"):
        certify_cournot(G, {})


# ---------------------------------------------------------------------------------- bad input
def _market() -> nx.Graph:
    G = nx.Graph()
    G.add_node("s", role="seller", cost=1.0)
    G.add_node("m", role="buyer", intercept=10.0, slope=1.0)
    G.add_edge("s", "m")
    return G


def _mutate(fn):  # type: ignore[no-untyped-def]
    G = _market()
    fn(G)
    return G


@pytest.mark.parametrize(
    ("graph", "match"),
    [
        (nx.Graph(), "empty"),
        (nx.DiGraph(_market()), "undirected"),
        (_mutate(lambda G: G.nodes["s"].pop("role")), r"node 's' has role None"),
        (_mutate(lambda G: G.nodes["s"].update(role="broker")), "'broker'"),
        (_mutate(lambda G: G.nodes["s"].update(cost=-1.0)), r"seller 's' has invalid cost"),
        (_mutate(lambda G: G.nodes["s"].update(cost=float("nan"))), r"seller 's' has invalid cost"),
        (_mutate(lambda G: G.nodes["s"].update(capacity=-2)), r"seller 's' has invalid capacity"),
        (_mutate(lambda G: G.nodes["s"].update(cost="cheap")), "must be a number"),
        (_mutate(lambda G: G.nodes["m"].update(slope=0.0)), r"buyer 'm' has invalid slope"),
        (_mutate(lambda G: G.nodes["m"].update(slope=-1.0)), r"buyer 'm' has invalid slope"),
        (_mutate(lambda G: G.nodes["m"].pop("intercept")), r"buyer 'm' has no 'intercept'"),
        (
            _mutate(lambda G: G.nodes["s"].update(colour="red")),
            r"seller 's' has unknown attribute\(s\) 'colour'",
        ),
        (_mutate(lambda G: G.add_node("t", role="seller") or G.add_edge("s", "t")), "joins two sellers"),
        (_mutate(lambda G: G.edges["s", "m"].update(weight=1)), "edges carry none"),
        (_mutate(lambda G: G.remove_edge("s", "m")), "no seller–buyer edge"),
        (_mutate(lambda G: G.add_node(("x", 1), role="buyer", intercept=1, slope=1)), "str or int"),
    ],
)
def test_bad_graphs_raise_graph_error(graph: nx.Graph, match: str) -> None:
    with pytest.raises(GraphError, match=match):
        validate_cournot_graph(graph)
    with pytest.raises(GraphError):
        F.solve(graph, "direct")


def test_isolated_nodes_are_allowed() -> None:
    G = _market()
    G.add_node("idle", role="seller", cost=0.0)
    G.add_node("desert", role="buyer", intercept=7.0, slope=1.0)
    r = F.solve(G, "clarabel")
    assert r.certified
    idle = next(row for row in r.solution["sellers"] if row["seller"] == "idle")
    desert = next(row for row in r.solution["markets"] if row["buyer"] == "desert")
    assert idle["output"] == 0 and idle["profit"] == 0 and desert["price"] == 7.0
    assert r.solution["quantities"] == [
        {"seller": "s", "buyer": "m", "quantity": pytest.approx(4.5, rel=1e-7)}
    ]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "bertrand"}, "unknown model"),
        ({"model": "symmetric", "size": 4}, "'size' do not apply to model 'symmetric'"),
        ({"size": 5, "a": 3.0}, "'a' do not apply to model 'random'"),
        ({"size": 5, "colour": 1}, "unknown parameter"),
        ({"size": "many"}, "'size' must be int"),
        ({"size": 0}, "sellers ≥ 1"),
        ({"size": 5, "capacity_share": 2}, "capacity_share"),
        ({"model": "graph"}, "needs a 'graph'"),
        ({"model": "graph", "graph": {"nodes": []}}, "node-link"),
    ],
)
def test_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        F.instance(params)


def test_bad_instance_dicts_and_solver() -> None:
    d = F.instance_to_dict(_market())
    with pytest.raises(GraphError, match="unknown node 'zz'"):
        F.instance_from_dict({**d, "edges": [{"source": "s", "target": "zz"}]})
    with pytest.raises(GraphError, match="undirected"):
        F.instance_from_dict({**d, "directed": True})
    with pytest.raises(InvalidInputError, match="no 'id'"):
        F.instance_from_dict({**d, "nodes": [{"role": "buyer"}]})
    with pytest.raises(InvalidInputError, match="cannot use solver 'glpk'"):
        F.solve(_market(), "glpk")
    with pytest.raises(InvalidInputError, match="cannot use solver 'clarabel'"):
        FK.solve(_market(), "clarabel")


# ------------------------------------------------------------------------- data and results
def test_instance_dict_round_trip_and_generator() -> None:
    G = F.generate(25, 7)
    d = json.loads(json.dumps(F.instance_to_dict(G)))  # through JSON: inf capacity is left out
    H = F.instance_from_dict(d)
    assert dict(H.nodes(data=True)) == dict(G.nodes(data=True))
    assert {frozenset(e) for e in H.edges} == {frozenset(e) for e in G.edges}
    assert F.instance_to_dict(H) == d
    roles = [r for _, r in G.nodes(data="role")]
    assert roles.count("seller") == 25 and roles.count("buyer") == 5 and G.number_of_edges() == 50
    assert any(math.isinf(c) for _, c in G.nodes(data="capacity", default=0.0))
    assert F.instance({"graph": G}).number_of_edges() == 50
    assert F.instance({"model": "graph", "graph": d}).number_of_nodes() == 30
    # older networkx wrote "links" for "edges"
    legacy = {k: v for k, v in d.items() if k != "edges"} | {"links": d["edges"]}
    assert F.instance_from_dict(legacy).number_of_edges() == 50
    assert nx.is_isomorphic(random_cournot_graph(25, 7), G)


def test_to_frame_and_summary_row() -> None:
    r = F.solve(F.instance({"model": "symmetric", "sellers": 4}), "clarabel")
    assert list(r.to_frame().columns) == ["seller", "buyer", "quantity"]
    assert len(r.to_frame("sellers")) == 4 and list(r.to_frame("markets")["buyer"]) == ["m0"]
    with pytest.raises(InvalidInputError):
        r.to_frame("edges")
    row = F.summary_row(r)
    assert row["certified"] and row["objective"] == pytest.approx(r.solution["objective"])
    closed = symmetric_cournot_equilibrium(4, a=10, b=1, c=1)
    assert row["total_profit"] == pytest.approx(4 * closed["profit"], rel=1e-7)
    assert row["welfare"] == pytest.approx(row["total_profit"] + row["consumer_surplus"])


def test_solve_save_verify_round_trip(tmp_path: Path) -> None:
    r = F.solve(F.generate(15, 2), "direct")
    assert r.certified and r.meta["formulation"] == "cournot-sellers"
    saved = read_json(r.save(tmp_path / "result.json"))
    v = F.verify(saved)
    assert v.certificate.passed and v.solution["claimed_passed"]
    assert registry.formulation_for_kind(saved["kind"]).verify(saved).certificate.passed
    tampered = json.loads(json.dumps(saved))
    tampered["quantities"][3]["quantity"] *= 1.01
    assert not F.verify(tampered).certificate.passed
    tampered = json.loads(json.dumps(saved))
    tampered["instance"]["nodes"][0]["intercept"] += 1.0
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        F.verify(tampered)


# ---------------------------------------------------------------------------- registration
def test_entry_point_resolves_to_this_class() -> None:
    found = registry.list_formulations(reload=True)
    assert "cournot-sellers" in found, (
        f"entry point not found (broken plug-ins: {registry.broken_plugins()}); "
        "the editable install's metadata may be stale: ask the lead to reinstall"
    )
    assert type(registry.get_formulation("cournot-sellers")) is CournotSellers


def test_third_party_plugin_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mypkg_cournot.py").write_text(
        textwrap.dedent(
            """
            from datamarkets.examples.cournot_sellers import CournotSellers

            class MyCournot(CournotSellers):
                name = "my-cournot"
                summary = "a third party's copy"
            """
        )
    )
    dist = tmp_path / "mypkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[datamarkets.formulations]\nmy-cournot = mypkg_cournot:MyCournot\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = registry.list_formulations(reload=True)
        assert "my-cournot" in found and "my-cournot" not in registry.broken_plugins()
        f = registry.get_formulation("my-cournot")
        assert f.solve(f.instance({"model": "symmetric", "sellers": 2}), "direct").certified
        sys.path.remove(str(tmp_path))
        assert "my-cournot" not in registry.list_formulations(reload=True)
    finally:
        sys.modules.pop("mypkg_cournot", None)
        registry.list_formulations(reload=True)


def test_kkt_variant_registers_at_run_time() -> None:
    try:
        registry.register(CournotSellersKKT)
        assert isinstance(registry.get_formulation("cournot-sellers-kkt"), CournotSellersKKT)
    except InvalidInputError:  # already declared as an entry point
        assert isinstance(registry.get_formulation("cournot-sellers-kkt"), CournotSellersKKT)
    finally:
        registry.unregister("cournot-sellers-kkt")


# ------------------------------------------------------------------------------------ tutorial
def test_tutorial_excerpts_match_the_shipped_file() -> None:
    doc = (ROOT / "docs" / "writing-a-formulation.md").read_text()
    files = sorted((ROOT / "examples").glob("cournot_sellers*.py"))  # the entry point and its parts
    assert len(files) == 4
    sources = [f.read_text() for f in files]
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 6
    for block in blocks:
        assert any(block in source for source in sources), (
            f"tutorial excerpt not found verbatim in examples/cournot_sellers*.py:\n{block}"
        )


def test_tutorial_python_session_runs() -> None:
    import doctest

    doc = ROOT / "docs" / "writing-a-formulation.md"
    outcome = doctest.testfile(str(doc), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.failed == 0 and outcome.attempted >= 4
