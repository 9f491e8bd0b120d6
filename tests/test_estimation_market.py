"""Estimation-market graphs: builders, validation (every error path), node-link JSON round trip."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs.estimation_market import (
    buyer_nodes,
    delta_matrix,
    estimation_market,
    read_estimation_market,
    source_nodes,
    source_positions,
    two_firm_example,
    validate_estimation_market,
    write_estimation_market,
)
from datamarkets.models.estimators import market_coefficients, random_estimation_market

LIN = {"kind": "polynomial", "degree": 1}
UNI = {"kind": "uniform", "low": -1.0, "high": 1.0}


def small(**kw):
    sources = kw.pop("sources", {"s1": {"x": -0.5, "alpha": 1.0}, "s2": {"x": 0.5, "alpha": 2.0}})
    buyers = kw.pop(
        "buyers",
        {"b1": {"estimator": LIN, "F": UNI, "eta": 1.0}, "b2": {"estimator": LIN, "F": UNI, "eta": 2.0}},
    )
    return estimation_market(sources, buyers, **kw)


# ------------------------------------------------------------------------------------------ builders
def test_two_firm_example_roles_and_attributes():
    G = two_firm_example(x1=-0.3)
    assert source_nodes(G) == ["s1", "s2"]
    assert buyer_nodes(G) == ["b1", "b2"]
    assert G.nodes["s1"]["x"] == -0.3 and G.nodes["s2"]["x"] == 1.0
    assert G.nodes["s1"]["alpha"] == 1.0
    for b in ("b1", "b2"):
        assert G.nodes[b]["estimator"] == {"kind": "polynomial", "degree": 1}
        assert G.nodes[b]["F"] == {"kind": "uniform", "low": -1.0, "high": 1.0}
        assert set(G.neighbors(b)) == {"s1", "s2"}  # complete bipartite
    assert not G.has_edge("b1", "b2")  # δ = 0 ⇒ no competition edge
    assert two_firm_example(0.0, delta=0.25).edges["b1", "b2"]["delta"] == 0.25


def test_two_firm_example_singular_at_coincidence():
    with pytest.raises(GraphError, match=r"coincident sources \['s1', 's2'\]"):
        two_firm_example(x1=1.0)


def test_delta_forms_are_equivalent_and_symmetric():
    D = np.array([[0.0, 0.3], [0.3, 0.0]])
    G1 = small(delta=D)
    G2 = small(delta={("b2", "b1"): 0.3})
    G3 = small(delta=0.3)
    for G in (G1, G2, G3):
        np.testing.assert_array_equal(delta_matrix(G), D)
    G4 = small(delta={("b1", "b2"): 0.3, ("b2", "b1"): 0.3})
    np.testing.assert_array_equal(delta_matrix(G4), D)


def test_uses_subset_and_default_complete():
    G = estimation_market(
        {f"s{i}": {"x": float(i), "alpha": 1.0} for i in range(4)},
        {"a": {"estimator": LIN, "F": UNI}, "b": {"estimator": LIN, "F": UNI}},
        uses={"a": ["s0", "s1", "s2"]},
    )
    assert sorted(G.neighbors("a")) == ["s0", "s1", "s2"]
    assert sorted(G.neighbors("b")) == ["s0", "s1", "s2", "s3"]
    assert G.nodes["a"]["eta"] == 1.0


def test_vector_positions():
    G = estimation_market(
        {f"s{i}": {"x": [float(i), float(i * i % 3)], "alpha": 1.0} for i in range(4)},
        {"b": {"estimator": LIN, "F": {"kind": "uniform", "low": [-1, -1], "high": [1, 1]}}},
    )
    assert source_positions(G).shape == (4, 2)


def test_random_market_shapes_and_determinism():
    G = random_estimation_market(4, 12, degree=2, seed=3, delta=0.2)
    H = random_estimation_market(4, 12, degree=2, seed=3, delta=0.2)
    assert nx.utils.graphs_equal(G, H)
    D = delta_matrix(G)
    assert D.shape == (4, 4) and np.all((D >= 0) & (D <= 0.2)) and np.allclose(D, D.T)
    G2 = random_estimation_market(3, 20, degree=1, seed=1, dim=2, density=0.5)
    assert source_positions(G2).shape == (20, 2)
    assert all(any(G2.nodes[n]["role"] == "buyer" for n in G2.neighbors(s)) for s in source_nodes(G2))
    assert any(G2.degree(b) < 20 for b in buyer_nodes(G2))


# ------------------------------------------------------------------------------------ JSON round trip
@pytest.mark.parametrize(
    "G",
    [
        two_firm_example(0.25, delta=0.5),
        random_estimation_market(3, 9, degree=2, seed=7, delta=0.4, density=0.7),
        random_estimation_market(2, 8, degree=1, seed=2, dim=2),
        estimation_market(
            {"p": {"x": 0.0, "alpha": 1.5}, "q": {"x": 0.7, "alpha": 0.5}, "r": {"x": -0.9, "alpha": 1.0}},
            {
                "kern": {
                    "estimator": {
                        "kind": "kernel",
                        "kernel": "gaussian",
                        "bandwidth": 0.5,
                        "centers": [-0.5, 0.5],
                    },
                    "F": {"kind": "discrete", "points": [-1.0, 0.0, 0.5], "weights": [1, 2, 1]},
                    "eta": 3.0,
                }
            },
        ),
    ],
    ids=["two-firm", "random", "random-2d", "kernel-discrete"],
)
def test_node_link_round_trip(G, tmp_path):
    path = write_estimation_market(G, tmp_path / "m.json")
    H = read_estimation_market(path)
    assert nx.utils.graphs_equal(G, H)
    assert list(H.nodes) == list(G.nodes)  # order = index order
    C, D = market_coefficients(G), market_coefficients(H)
    np.testing.assert_array_equal(C.beta, D.beta)
    np.testing.assert_array_equal(C.xi, D.xi)
    np.testing.assert_array_equal(C.gamma, D.gamma)
    assert json.loads(path.read_text())["graph"]["kind"] == "estimation_market"


@given(
    n_buyers=st.integers(1, 4),
    n_sources=st.integers(4, 12),
    dim=st.integers(1, 2),
    seed=st.integers(0, 10_000),
    delta=st.floats(0, 1),
    density=st.floats(0.5, 1.0),
)
def test_round_trip_random_markets(tmp_path_factory, n_buyers, n_sources, dim, seed, delta, density):
    G = random_estimation_market(n_buyers, n_sources, 1, seed, dim=dim, delta=delta, density=density)
    path = write_estimation_market(G, tmp_path_factory.mktemp("rt") / "m.json")
    H = read_estimation_market(path)
    assert nx.utils.graphs_equal(G, H) and list(G) == list(H)
    np.testing.assert_array_equal(delta_matrix(G), delta_matrix(H))
    np.testing.assert_array_equal(source_positions(G), source_positions(H))


def test_read_accepts_links_key(tmp_path):
    data = nx.node_link_data(two_firm_example(0.0), edges="links")
    p = tmp_path / "links.json"
    p.write_text(json.dumps(data))
    assert nx.utils.graphs_equal(read_estimation_market(p), two_firm_example(0.0))


# ------------------------------------------------------------------------------------------- errors
def _graph(nodes, edges=()):
    G = nx.Graph()
    for n, d in nodes:
        G.add_node(n, **d)
    for e in edges:
        G.add_edge(e[0], e[1], **(e[2] if len(e) > 2 else {}))
    return G


SRC = {"role": "source", "x": 0.0, "alpha": 1.0}
SRC2 = {"role": "source", "x": 1.0, "alpha": 1.0}
BUY = {"role": "buyer", "estimator": {"kind": "polynomial", "degree": 0}, "F": UNI, "eta": 1.0}


def ok_nodes():
    return [("s", dict(SRC)), ("t", dict(SRC2)), ("b", dict(BUY)), ("c", dict(BUY))]


OK_EDGES = [("s", "b"), ("t", "b"), ("s", "c"), ("t", "c")]


def test_minimal_valid_graph_passes():
    validate_estimation_market(_graph(ok_nodes(), OK_EDGES))


def _with(node, **changes):
    nodes = ok_nodes()
    for n, d in nodes:
        if n == node:
            d.update(changes)
            for k, v in list(d.items()):
                if v is _DROP:
                    del d[k]
    return nodes


_DROP = object()


@pytest.mark.parametrize(
    ("G", "match"),
    [
        ({"not": "a graph"}, "must be a networkx.Graph"),
        (nx.DiGraph(), "simple undirected"),
        (nx.MultiGraph(), "simple undirected"),
        (nx.Graph(), "empty"),
        (_graph(_with("s", role="seller"), OK_EDGES), "node 's' has unknown role 'seller'"),
        (_graph(_with("s", role=_DROP), OK_EDGES), "node 's' has unknown role None"),
        (_graph(_with("s", colour="red"), OK_EDGES), r"source 's' has unknown attributes \['colour'\]"),
        (_graph(_with("b", alpha=1.0), OK_EDGES), r"buyer 'b' has unknown attributes \['alpha'\]"),
        (_graph(_with("s", alpha=_DROP), OK_EDGES), r"source 's' misses attributes \['alpha'\]"),
        (_graph(_with("b", eta=_DROP), OK_EDGES), r"buyer 'b' misses attributes \['eta'\]"),
        (_graph(_with("s", alpha=0.0), OK_EDGES), "node 's' needs alpha > 0"),
        (_graph(_with("s", alpha=-1.0), OK_EDGES), "node 's' needs alpha > 0"),
        (_graph(_with("s", alpha=float("nan")), OK_EDGES), "node 's' needs alpha > 0"),
        (_graph(_with("s", alpha="big"), OK_EDGES), "node 's' has a non-numeric alpha"),
        (_graph(_with("s", alpha=True), OK_EDGES), "node 's' needs alpha > 0"),
        (_graph(_with("b", eta=0), OK_EDGES), "node 'b' needs eta > 0"),
        (_graph(_with("s", x="left"), OK_EDGES), "source 's' has a non-numeric position"),
        (_graph(_with("s", x=float("inf")), OK_EDGES), "source 's' needs a finite"),
        (_graph(_with("s", x=[[0.0, 1.0]]), OK_EDGES), "source 's' needs a finite"),
        (_graph(_with("s", x=[]), OK_EDGES), "source 's' needs a finite"),
        (_graph(_with("s", x=[0.0, 1.0]), OK_EDGES), "differ in dimension"),
        (_graph([("s", dict(SRC))]), "no buyer"),
        (_graph([("b", dict(BUY))]), "no source"),
        (_graph(ok_nodes(), [*OK_EDGES, ("s", "s")]), "self-loop at node 's'"),
        (_graph(ok_nodes(), [*OK_EDGES, ("s", "t")]), r"edge \('s', 't'\) joins two sources"),
        (_graph(ok_nodes(), [*OK_EDGES, ("b", "c")]), r"buyer–buyer edge \('b', 'c'\) must carry exactly"),
        (_graph(ok_nodes(), [*OK_EDGES, ("b", "c", {"delta": 0.1, "w": 1})]), "must carry exactly 'delta'"),
        (_graph(ok_nodes(), [*OK_EDGES, ("b", "c", {"delta": 1.5})]), r"delta=1.5 outside \[0, 1\]"),
        (_graph(ok_nodes(), [*OK_EDGES, ("b", "c", {"delta": -0.1})]), r"outside \[0, 1\]"),
        (_graph(ok_nodes(), [*OK_EDGES, ("b", "c", {"delta": "hi"})]), "non-numeric delta"),
        (_graph(ok_nodes(), [("s", "b", {"w": 1}), ("t", "b"), ("s", "c"), ("t", "c")]), "carries unknown"),
        (_graph(ok_nodes(), [("s", "b"), ("s", "c"), ("t", "c")][:2]), "source 't' is used by no buyer"),
        (_graph(ok_nodes(), [("s", "b"), ("t", "b")]), "buyer 'c' uses no source"),
        (_graph(_with("b", estimator={"kind": "polynomial", "degree": 2}), OK_EDGES), "buyer 'b': design"),
        (_graph(_with("b", estimator="linear"), OK_EDGES), "buyer 'b': estimator must be a dict"),
        (_graph(_with("b", estimator={"kind": "spline"}), OK_EDGES), "unknown estimator kind 'spline'"),
        (_graph(_with("b", estimator={"kind": "polynomial"}), OK_EDGES), "needs 'degree'"),
        (_graph(_with("b", estimator={"kind": "polynomial", "degree": -1}), OK_EDGES), "integer ≥ 0"),
        (_graph(_with("b", estimator={"kind": "polynomial", "degree": 1.5}), OK_EDGES), "integer ≥ 0"),
        (_graph(_with("b", estimator={"kind": "polynomial", "degree": True}), OK_EDGES), "integer ≥ 0"),
        (
            _graph(_with("b", estimator={"kind": "polynomial", "degree": 1, "ridge": 1}), OK_EDGES),
            "unknown estimator keys",
        ),
        (
            _graph(
                _with("b", estimator={"kind": "polynomial", "degree": 1, "underdetermined": "ok"}), OK_EDGES
            ),
            "'underdetermined' must be",
        ),
        (_graph(_with("b", estimator={"kind": "kernel", "centers": [0.0]}), OK_EDGES), "needs 'bandwidth'"),
        (
            _graph(
                _with("b", estimator={"kind": "kernel", "kernel": "laplace", "bandwidth": 1, "centers": [0]}),
                OK_EDGES,
            ),
            "unknown kernel 'laplace'",
        ),
        (
            _graph(_with("b", estimator={"kind": "kernel", "bandwidth": 0, "centers": [0.0]}), OK_EDGES),
            "bandwidth must be > 0",
        ),
        (
            _graph(
                _with("b", estimator={"kind": "kernel", "bandwidth": 1, "centers": [[0.0, 1.0]]}), OK_EDGES
            ),
            "dimension 2, expected 1",
        ),
        (
            _graph(_with("b", estimator={"kind": "kernel", "bandwidth": 1, "centers": []}), OK_EDGES),
            "at least one center",
        ),
        (_graph(_with("b", F=[-1, 1]), OK_EDGES), "buyer 'b': F must be a dict"),
        (_graph(_with("b", F={"kind": "normal"}), OK_EDGES), "unknown F kind 'normal'"),
        (_graph(_with("b", F={"kind": "uniform", "low": 0, "high": 1, "n": 3}), OK_EDGES), "unknown F keys"),
        (_graph(_with("b", F={"kind": "uniform", "low": 0}), OK_EDGES), "needs 'low' and 'high'"),
        (_graph(_with("b", F={"kind": "uniform", "low": 1, "high": 1}), OK_EDGES), "finite low < high"),
        (_graph(_with("b", F={"kind": "uniform", "low": [0, 0], "high": [1, 1]}), OK_EDGES), "dimension 1"),
        (_graph(_with("b", F={"kind": "discrete"}), OK_EDGES), "needs 'points'"),
        (
            _graph(_with("b", F={"kind": "discrete", "points": [0, 1], "weights": [1]}), OK_EDGES),
            "1 weights for 2",
        ),
        (
            _graph(_with("b", F={"kind": "discrete", "points": [0, 1], "weights": [1, -1]}), OK_EDGES),
            "non-negative",
        ),
        (
            _graph(_with("b", F={"kind": "discrete", "points": [0, 1], "weights": [0, 0]}), OK_EDGES),
            "positive sum",
        ),
        (_graph(_with("b", F={"kind": "discrete", "points": [0, float("nan")]}), OK_EDGES), "non-finite"),
        (_graph(_with("b", F={"kind": "discrete", "points": "ab"}), OK_EDGES), "buyer 'b'"),
    ],
)
def test_validation_errors(G, match):
    with pytest.raises(GraphError, match=match):
        validate_estimation_market(G)


def test_singular_design_names_coincident_sources_and_min_norm_accepts():
    sources = {"a": {"x": 0.5, "alpha": 1.0}, "b": {"x": 0.5, "alpha": 1.0}, "c": {"x": -0.5, "alpha": 1.0}}
    quad = {"kind": "polynomial", "degree": 2}
    with pytest.raises(
        GraphError, match=r"buyer 'k': design has rank 2 < 3 .*coincident sources \['a', 'b'\]"
    ):
        estimation_market(sources, {"k": {"estimator": quad, "F": UNI}})
    G = estimation_market(sources, {"k": {"estimator": {**quad, "underdetermined": "min_norm"}, "F": UNI}})
    assert np.all(np.isfinite(market_coefficients(G).beta))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"delta": np.array([[0, 0.2], [0.3, 0]])}, InvalidInputError, r"asymmetric: δ\['b1', 'b2'\]"),
        (
            {"delta": np.array([[0.1, 0.2], [0.2, 0]])},
            InvalidInputError,
            r"buyer 'b1' with itself\) must be 0",
        ),
        ({"delta": np.zeros((3, 3))}, InvalidInputError, "2×2 matrix"),
        ({"delta": {("b1", "zz"): 0.1}}, InvalidInputError, "unknown buyer 'zz'"),
        ({"delta": {("b1", "b1"): 0.1}}, InvalidInputError, "buyer 'b1' with itself"),
        ({"delta": {("b1", "b2"): 0.1, ("b2", "b1"): 0.2}}, InvalidInputError, "asymmetric for buyers"),
        ({"delta": {("b1",): 0.1}}, InvalidInputError, "must be a pair of buyers"),
        ({"delta": 1.2}, GraphError, r"outside \[0, 1\]"),
        ({"delta": "much"}, InvalidInputError, "delta must be numeric, got 'much'"),
        (
            {"delta": {("b1", "b2"): "x"}},
            InvalidInputError,
            r"delta of buyers \('b1', 'b2'\) is not a number",
        ),
        ({"uses": {"b1": ["s1", "nope"]}}, InvalidInputError, "buyer 'b1' uses unknown source 'nope'"),
        ({"uses": {"b1": ["s1", "s2"], "ghost": ["s1"]}}, InvalidInputError, "unknown buyers"),
        ({"sources": {"s1": {"x": 0.0}}}, GraphError, "source 's1' needs 'x' and 'alpha'"),
        (
            {"sources": {"s1": {"x": 0.0, "alpha": 1, "y": 2}}},
            GraphError,
            "source 's1' has unknown attributes",
        ),
        ({"sources": {"s1": {"x": "here", "alpha": 1}}}, GraphError, "source 's1' has a non-numeric"),
        ({"buyers": {"b": {"estimator": LIN}}}, GraphError, "buyer 'b' needs 'estimator' and 'F'"),
        (
            {"buyers": {"b": {"estimator": LIN, "F": UNI, "w": 1}}},
            GraphError,
            "buyer 'b' has unknown attributes",
        ),
        ({"buyers": {"s1": {"estimator": LIN, "F": UNI}}}, InvalidInputError, "both a source and a buyer"),
    ],
)
def test_builder_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        small(**kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0, 5), {}, "n_buyers ≥ 1"),
        ((2, 0), {}, "n_sources ≥ 1"),
        ((2, 5), {"delta": 1.5}, r"delta bound must lie in \[0, 1\]"),
        ((2, 5), {"density": 0.0}, r"density must lie in \(0, 1\]"),
        ((2, 2, 2), {}, "2 sources cannot identify 3"),
    ],
)
def test_random_market_errors(args, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        random_estimation_market(*args, **kwargs)


def test_read_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_estimation_market(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_estimation_market(bad)
    notnl = tmp_path / "list.json"
    notnl.write_text("[1, 2]")
    with pytest.raises(GraphError, match="not a node-link JSON graph"):
        read_estimation_market(notnl)
    directed = tmp_path / "dir.json"
    directed.write_text(json.dumps(nx.node_link_data(nx.DiGraph(two_firm_example(0.0)), edges="edges")))
    with pytest.raises(GraphError, match="undirected and simple"):
        read_estimation_market(directed)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"nodes": [{"id": "a", "role": "source"}], "edges": [{"source": "a"}]}))
    with pytest.raises(GraphError, match="not a valid node-link graph"):
        read_estimation_market(broken)
    invalid = tmp_path / "invalid.json"
    data = nx.node_link_data(two_firm_example(0.0), edges="edges")
    data["nodes"][0]["alpha"] = -2.0
    invalid.write_text(json.dumps(data))
    with pytest.raises(GraphError, match="node 's1' needs alpha > 0"):
        read_estimation_market(invalid)


def test_write_validates_first(tmp_path):
    G = two_firm_example(0.0)
    G.nodes["s1"]["alpha"] = 0.0
    with pytest.raises(GraphError, match="node 's1' needs alpha > 0"):
        write_estimation_market(G, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("K", "N", "degree", "dim", "density"),
    [(1, 10, 2, 1, 1.0), (2, 8, 1, 1, 1.0), (4, 40, 3, 1, 0.5), (5, 60, 2, 2, 1.0), (20, 500, 2, 1, 1.0)],
)
def test_default_alpha_gives_interior_equilibria(K, N, degree, dim, density):
    """Default α scales like N²/K so that 2 α_i D_i ≥ 1 (e* ≥ 0); with the old fixed range
    α ∈ [0.5, 2] these markets had negative equilibrium efforts (empty c-polytope)."""
    from datamarkets.formulations.gne_solve import solve_gne
    from datamarkets.status import Status

    for seed in (0, 2):
        G = random_estimation_market(K, N, degree, seed=seed, dim=dim, density=density)
        C = market_coefficients(G)
        Gam = C.gamma.sum(axis=0)  # η = 1, δ = 0
        u = 2.0 * C.alpha * Gam
        assert np.all(u >= 1.0 - 1e-12) and np.all(u <= 4.0 + 1e-12)  # α_i = u_i / (2 Γ_i)
        res = solve_gne(G, welfare=False)
        if res.status is Status.NO_EQUILIBRIUM:  # ρ(A) ≥ 1 is possible and unrelated to α
            assert res.solution["no_equilibrium_cause"] == "spectral_radius"
            continue
        assert res.status is Status.OPTIMAL and res.certificate.passed
        D = res.solution["d"].sum(axis=0)
        assert np.all(2.0 * C.alpha * D >= 1.0 - 1e-12)  # (17): e* ≥ 0
        # positions and F do not depend on the α rule (same random stream)
        H = random_estimation_market(K, N, degree, seed=seed, dim=dim, density=density, alpha_range=(1, 2))
        np.testing.assert_array_equal(market_coefficients(H).beta, C.beta)


@pytest.mark.parametrize(
    "kwargs", [{"alpha_range": (0.0, 1.0)}, {"alpha_range": (2.0, 1.0)}, {"effort_margin": (0.5, 2.0)}]
)
def test_random_market_rejects_bad_alpha_options(kwargs):
    with pytest.raises(InvalidInputError):
        random_estimation_market(2, 5, 1, **kwargs)
