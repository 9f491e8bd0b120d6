"""The chain as a networkx DiGraph: round trip and validation at the door."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from datamarkets.errors import GraphError, InvalidInputError, MechanismError
from datamarkets.models.chain_equilibrium import solve_equilibrium
from datamarkets.models.chain_graph import chain_graph, game_from_graph
from datamarkets.models.chain_valuations import paper_model


def graph():
    return chain_graph(paper_model("paper-4", 3, {"tbds": 0.5}))


def test_round_trip_and_attributes():
    g = paper_model("paper-4", 3, {"tbds": 0.5})
    G = chain_graph(g)
    assert sorted(G.nodes) == [0, 1, 2, 3] and sorted(G.edges) == [(0, 1), (1, 2), (2, 3)]
    assert G.edges[1, 2]["trade"] == 2 and G.edges[1, 2]["trans"].shape == (g.L, g.L)
    assert G.nodes[0]["shares"] == {(0, 1): 1.0, (1, 2): 0.5, (2, 3): 0.25}
    assert "start" in G.nodes[0] and "start" not in G.nodes[1]
    g2 = game_from_graph(G)
    for a, b in ((g.values, g2.values), (g.start, g2.start), (g.Q, g2.Q), (g.t, g2.t)):
        np.testing.assert_array_equal(a, b)
    assert solve_equilibrium(g2).social_welfare == solve_equilibrium(g).social_welfare
    # custom attribute names
    H = chain_graph(g, values="W", trans="Q")
    assert game_from_graph(H, values="W", trans="Q").n == 3


def test_missing_shares_means_nothing():
    G = graph()
    del G.nodes[2]["shares"]
    assert game_from_graph(G).t[:, 2].sum() == 0.0


def mutate(fn):
    G = graph()
    out = fn(G)
    return out if isinstance(out, nx.Graph) else G


@pytest.mark.parametrize(
    ("fn", "msg"),
    [
        (lambda G: nx.Graph(G), "DiGraph"),
        (lambda G: nx.DiGraph(), "empty"),
        (lambda G: G.add_node(7, values=G.nodes[0]["values"]), "disconnected"),
        (lambda G: nx.relabel_nodes(G, {3: "c"}), "players 0..3"),
        (lambda G: G.subgraph([0]).copy(), "at least one trade"),
        (lambda G: G.add_edge(0, 2, trans=G.edges[0, 1]["trans"]), "unexpected edges"),
        (lambda G: G.nodes[1].update(colour="red"), "node 1 has unknown attributes"),
        (lambda G: G.nodes[2].pop("values"), "node 2 is missing"),
        (lambda G: G.nodes[1].update(start=G.nodes[0]["start"]), "only the root"),
        (lambda G: G.nodes[0].pop("start"), "root node 0 is missing"),
        (lambda G: G.edges[0, 1].update(weight=1), r"edge \(0, 1\) has unknown"),
        (lambda G: G.edges[1, 2].pop("trans"), r"edge \(1, 2\) is missing"),
        (lambda G: G.edges[1, 2].update(trade=5), "trade index 5"),
        (lambda G: G.nodes[2].update(values=G.nodes[2]["values"] + 1), "node 2 has a value grid"),
        (lambda G: G.nodes[1].update(values=["a"]), "numeric"),
        (lambda G: G.nodes[1].update(shares=[0.5]), "must be a dict"),
        (lambda G: G.nodes[0].update(shares={(0, 2): 0.5}), r"\(0, 2\), which is not an edge"),
    ],
)
def test_graph_errors(fn, msg):
    G = mutate(fn)
    with pytest.raises(GraphError, match=msg):
        game_from_graph(G)


def test_numeric_errors_pass_through():
    G = graph()
    G.nodes[2]["shares"] = {(0, 1): 0.5}  # trade 1 paying player 2 breaks Def. 2.6
    with pytest.raises(MechanismError, match=r"Def\. 2\.6"):
        game_from_graph(G)
    G = graph()
    Q = G.edges[0, 1]["trans"].copy()
    Q[0, 0] += 0.5
    G.edges[0, 1]["trans"] = Q
    with pytest.raises(InvalidInputError, match="trade 1: row 0"):
        game_from_graph(G)


def test_non_numeric_share_is_a_graph_error():
    G = graph()
    G.nodes[1]["shares"] = {(1, 2): "half"}  # used to escape as numpy's bare ValueError
    with pytest.raises(GraphError, match="non-numeric share 'half'"):
        game_from_graph(G)
