"""Market graphs: builders, validation errors (each a minimal input), JSON/GraphML round trips."""

from __future__ import annotations

import doctest
import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import datamarkets.graphs.market as M
from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.graphs import market_data, market_io, market_validation
from datamarkets.graphs.market import (
    data_share_market,
    example1_market,
    market_arrays,
    random_bipartite_market,
    read_market_graphml,
    read_market_json,
    route_network,
    single_resource,
    validate_market,
    write_market_graphml,
    write_market_json,
)
from datamarkets.graphs.valuations import LinearValuation, QuadraticValuation

Q = {"kind": "quadratic", "a": 2.0, "b": 1.0}


@pytest.mark.parametrize("mod", [M, market_data, market_validation, market_io], ids=lambda m: m.__name__)
def test_doctests(mod):
    assert doctest.testmod(mod).failed == 0


def test_example1_is_table1():
    G = example1_market()
    m = market_arrays(G)
    assert m.sellers == ["S1", "S2"] and m.supply.tolist() == [65.0, 85.0]
    got = {b: (v.demand, v.unit_price) for b, v in zip(m.buyers, m.valuations, strict=True)}
    assert got == {"A": (50, 1.0), "B": (40, 1.2), "C": (26, 1.5), "D": (20, 2.0), "E": (14, 2.2)}
    assert G.number_of_edges() == 10  # complete bipartite 5 × 2
    assert sum(d for d, _ in got.values()) == 150 == 65 + 85


def test_market_arrays_csr():
    G = random_bipartite_market(30, 7, edges_per_buyer=3, seed=3)
    m = market_arrays(G)
    assert m.n_edges == 90 and np.all(np.diff(m.buyer_ptr) == 3)
    for i, b in enumerate(m.buyers):
        nbrs = {m.sellers[j] for j in m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]}
        assert nbrs == set(G.neighbors(b))
    a, bb = m.quadratic_params()
    assert np.all((a >= 1) & (a <= 3) & (bb >= 0.5) & (bb <= 2))
    assert np.all(np.isinf(m.demand)) and np.all(np.isinf(m.budget))


@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 6), st.integers(0, 10**6))
def test_random_market_structure(nb, ns, k, seed):
    G = random_bipartite_market(nb, ns, edges_per_buyer=k, seed=seed)
    validate_market(G)
    assert all(G.degree(f"b{i}") == min(k, ns) for i in range(nb))
    assert nx.is_bipartite(G)


@pytest.mark.parametrize("family", ["quadratic", "alpha_fair", "linear"])
def test_random_market_families_round_trip(tmp_path, family):
    G = random_bipartite_market(12, 4, seed=1, valuation=family)
    G2 = read_market_json(write_market_json(G, tmp_path / "m.json"))
    assert nx.utils.graphs_equal(G, G2)
    G3 = read_market_graphml(write_market_graphml(G, tmp_path / "m.graphml"))
    assert nx.utils.graphs_equal(G, G3)


def test_round_trip_with_optional_attributes(tmp_path):
    G = data_share_market(
        {"x": {"valuation": Q, "demand": 1.5, "budget": 3.0}, "y": LinearValuation(1, 2)},
        {"s": 2.0, "t": 0.0},
        edges=[("x", "s"), ("y", "s"), ("y", "t")],
    )
    for G2 in (
        read_market_json(write_market_json(G, tmp_path / "a.json")),
        read_market_graphml(write_market_graphml(G, tmp_path / "a.graphml")),
    ):
        assert nx.utils.graphs_equal(G, G2)
        assert G2.nodes["x"]["budget"] == 3.0 and isinstance(G2.nodes["x"]["valuation"], QuadraticValuation)


def _network():
    N = nx.Graph()
    N.add_edge("a", "b", capacity=1.0)
    N.add_edge("b", "c", capacity=2.0)
    N.add_edge("c", "d", capacity=0.5)
    return N


def test_route_network_and_round_trip(tmp_path):
    G = route_network(_network(), {"u": (["a", "b", "c"], Q), "v": (["d", "c", "b"], Q)})
    assert set(G.neighbors("u")) == {"a~b", "b~c"} and set(G.neighbors("v")) == {"c~d", "b~c"}
    assert G.nodes["b~c"]["supply"] == 2.0 and G.graph["kind"] == "routes"
    for G2 in (
        read_market_json(write_market_json(G, tmp_path / "r.json")),
        read_market_graphml(write_market_graphml(G, tmp_path / "r.graphml")),
    ):
        assert nx.utils.graphs_equal(G, G2)
        assert G2.nodes["v"]["route"] == ["d", "c", "b"]


def test_route_network_directed():
    D = nx.DiGraph()
    D.add_edge(0, 1, capacity=1.0)
    D.add_edge(1, 2, capacity=1.0)
    G = route_network(D, {"u": ([0, 1, 2], Q)})
    assert G.graph["directed"] is True
    with pytest.raises(GraphError, match="not an edge"):
        route_network(D, {"u": ([2, 1], Q)})


def _bad(mutate):
    G = data_share_market({"x": Q}, {"s": 1.0})
    mutate(G)
    return G


@pytest.mark.parametrize(
    ("G", "match"),
    [
        (nx.Graph(), "empty"),
        (nx.DiGraph([(1, 2)]), "undirected"),
        (_bad(lambda G: G.nodes["s"].update(supply=-1.0)), "seller 's' has negative supply"),
        (_bad(lambda G: G.nodes["s"].pop("supply")), "seller 's' has no 'supply'"),
        (_bad(lambda G: G.nodes["s"].update(supply="lots")), "non-numeric"),
        (_bad(lambda G: G.nodes["s"].update(supply=float("inf"))), "non-finite"),
        (_bad(lambda G: G.nodes["x"].update(role="broker")), "node 'x' has unknown role 'broker'"),
        (_bad(lambda G: G.nodes["x"].update(colour="red")), "buyer 'x' has unknown attributes"),
        (_bad(lambda G: G.nodes["s"].update(colour="red")), "seller 's' has unknown attributes"),
        (_bad(lambda G: G.nodes["x"].pop("valuation")), "buyer 'x' has no 'valuation'"),
        (
            _bad(lambda G: G.nodes["x"].update(valuation={"kind": "quadratic", "a": 1, "b": 0})),
            "invalid valuation",
        ),
        (_bad(lambda G: G.nodes["x"].update(demand=0)), "invalid demand"),
        (_bad(lambda G: G.nodes["x"].update(budget=-1)), "invalid budget"),
        (_bad(lambda G: G.add_node("y", role="buyer", valuation=Q)), "buyer 'y' is isolated"),
        (
            _bad(lambda G: (G.add_node("y", role="buyer", valuation=Q), G.add_edge("x", "y"))),
            "joins two buyers",
        ),
        (
            _bad(lambda G: (G.add_node("t", role="seller", supply=1.0), G.add_edge("s", "t"))),
            "joins two sellers",
        ),
        (_bad(lambda G: G.edges["x", "s"].update(weight=1)), "edge .* unknown attributes"),
        (_bad(lambda G: G.graph.update(kind="tree")), "unknown kind 'tree'"),
        (_bad(lambda G: G.graph.update(colour=1)), "unknown graph attributes"),
        (_bad(lambda G: G.nodes["x"].update(route=["a", "b"])), "has a 'route'"),
        (_bad(lambda G: G.nodes["s"].update(link=["a", "b"])), "has a 'link'"),
        (
            _bad(lambda G: G.nodes["s"].update(role="buyer", valuation=Q) or G.nodes["s"].pop("supply")),
            "no seller",
        ),
    ],
)
def test_validation_errors(G, match):
    with pytest.raises(GraphError, match=match):
        validate_market(G)


def test_route_validation_errors():
    N = _network()
    with pytest.raises(GraphError, match="uses \\('a', 'c'\\)"):
        route_network(N, {"u": (["a", "c"], Q)})
    with pytest.raises(GraphError, match="not a simple path"):
        route_network(N, {"u": (["a", "b", "a"], Q)})
    with pytest.raises(GraphError, match="clashes"):
        route_network(N, {"a~b": (["a", "b"], Q)})
    bad = _network()
    bad.edges["a", "b"]["capacity"] = -1
    with pytest.raises(GraphError, match="invalid capacity"):
        route_network(bad, {"u": (["a", "b"], Q)})
    del bad.edges["a", "b"]["capacity"]
    with pytest.raises(GraphError, match="has no 'capacity'"):
        route_network(bad, {"u": (["a", "b"], Q)})
    # a loaded route market whose route does not match its edges
    G = route_network(N, {"u": (["a", "b", "c"], Q)})
    G.remove_edge("u", "b~c")
    with pytest.raises(GraphError, match="joined to resources"):
        validate_market(G)
    G = route_network(N, {"u": (["a", "b", "c"], Q)})
    G.nodes["u"]["route"] = ["a", "d"]
    with pytest.raises(GraphError, match="no link of the network"):
        validate_market(G)
    G.nodes["u"]["route"] = ["a"]
    with pytest.raises(GraphError, match="at least two"):
        validate_market(G)


def test_builder_errors():
    with pytest.raises(GraphError, match="both a buyer and a seller"):
        data_share_market({"x": Q}, {"x": 1.0})
    with pytest.raises(GraphError, match="known buyer"):
        data_share_market({"x": Q}, {"s": 1.0}, edges=[("x", "t")])
    with pytest.raises(GraphError, match="expected a valuation"):
        data_share_market({"x": 3}, {"s": 1.0})
    with pytest.raises(InvalidInputError, match="n_buyers"):
        random_bipartite_market(0, 1)
    with pytest.raises(InvalidInputError, match="unknown valuation family"):
        random_bipartite_market(1, 1, valuation="cobb-douglas")
    assert sorted(single_resource(1.0, {"p": Q}).nodes()) == ["p", "s0"]


def test_file_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_market_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_market_json(tmp_path / "bad.json")
    (tmp_path / "x.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(GraphError, match="not node-link"):
        read_market_json(tmp_path / "x.json")
    data = json.loads((write_market_json(example1_market(), tmp_path / "e.json")).read_text())
    data["nodes"][0]["role"] = "auctioneer"
    (tmp_path / "e2.json").write_text(json.dumps(data))
    with pytest.raises(GraphError, match="unknown role 'auctioneer'"):
        read_market_json(tmp_path / "e2.json")
    (tmp_path / "g.graphml").write_text("<graphml>")
    with pytest.raises(GraphError, match="not valid GraphML"):
        read_market_graphml(tmp_path / "g.graphml")
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_market_graphml(tmp_path / "none.graphml")


def test_hand_written_json_without_graph_flags_loads(tmp_path):
    """networkx reads a missing "multigraph" key as True; a minimal hand-written market file (the
    one in docs/auctions.md) must still load as a simple undirected market."""
    import json

    from datamarkets.errors import GraphError as _GraphError
    from datamarkets.graphs.market import read_market_json as _read

    doc = {
        "nodes": [
            {"id": "s1", "role": "seller", "supply": 65},
            {"id": "A", "role": "buyer", "valuation": {"kind": "linear", "unit_price": 1.0, "demand": 50}},
        ],
        "edges": [{"source": "A", "target": "s1"}],
    }
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    G = _read(p)
    assert not G.is_multigraph() and not G.is_directed()
    assert G.nodes["s1"]["supply"] == 65 and G.has_edge("A", "s1")
    doc["multigraph"] = True
    p.write_text(json.dumps(doc))
    with pytest.raises(_GraphError, match="multigraph=True"):
        _read(p)


@pytest.mark.parametrize(
    ("node", "attr", "value"),
    [("s", "supply", "65"), ("a", "demand", "3"), ("a", "budget", "1"), ("s", "supply", True)],
)
def test_string_or_boolean_numbers_are_rejected(node, attr, value):
    """A JSON string or boolean where a number belongs is bad input, named with the node."""
    from datamarkets.errors import GraphError as _GraphError
    from datamarkets.graphs.market import data_share_market as _dsm
    from datamarkets.graphs.market import validate_market as _validate

    H = _dsm({"a": {"kind": "quadratic", "a": 2, "b": 1}}, {"s": 1.0})
    H.nodes[node][attr] = value
    with pytest.raises(_GraphError, match=repr(node)):
        _validate(H)


def test_market_arrays_with_other_attribute_names():
    """Non-default attribute names skip validate_market; the arrays are the same, and bad numbers are
    still a GraphError naming the node."""
    G = random_bipartite_market(6, 3, edges_per_buyer=2, seed=5)
    H = nx.relabel_nodes(G, {}, copy=True)
    for _, d in H.nodes(data=True):
        if "supply" in d:
            d["cap"] = d.pop("supply")
    m, h = market_arrays(G), market_arrays(H, supply="cap")
    assert h.columns == m.columns and np.array_equal(h.supply, m.supply)
    assert np.array_equal(h.B.toarray(), m.B.toarray()) and np.array_equal(h.R.toarray(), m.R.toarray())
    H.nodes["s0"]["cap"] = -1.0
    with pytest.raises(GraphError, match="'s0'"):
        market_arrays(H, supply="cap")
    del H.nodes["s0"]["cap"]
    with pytest.raises(GraphError, match="'s0' has no 'cap'"):
        market_arrays(H, supply="cap")
