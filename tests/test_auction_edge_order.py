"""One edge order for every auction route: the graph's MarketArrays, the welfare program (every
backend), the KKT-MILP, the allocation/bid parsers and the plug-in agree on it.

The oracle is built here from ``G.nodes`` and ``G.edges`` alone: buyers and sellers numbered in node
order, each edge oriented buyer → seller, edges sorted by (buyer index, seller index). Markets are
random, with nodes and edges inserted in shuffled order (sellers may come first, so ``G.edges()``
is *not* grouped by buyer).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.formulations.auction_formulation import AuctionWelfareFormulation
from datamarkets.formulations.kkt_mpec import solve_kkt
from datamarkets.formulations.welfare import solve_welfare
from datamarkets.formulations.welfare_allocation import allocation_vector
from datamarkets.graphs.market import market_arrays
from datamarkets.graphs.valuations import LinearValuation, QuadraticValuation
from datamarkets.models.psp_certificate import bid_arrays

from helpers import WELFARE_ROUTES as ROUTE


def shuffled_market(n_buyers: int, n_sellers: int, seed: int, linear: bool = False) -> nx.Graph:
    """Random bipartite market whose node and edge insertion orders are shuffled."""
    rng = np.random.default_rng(seed)
    nodes = [("b", i) for i in range(n_buyers)] + [("s", j) for j in range(n_sellers)]
    G = nx.Graph(kind="bipartite")
    for r, k in (nodes[t] for t in rng.permutation(len(nodes))):
        if r == "b":
            a, b = rng.uniform(1, 3), rng.uniform(0.5, 2)
            v = LinearValuation(a, b) if linear else QuadraticValuation(a, b)
            G.add_node(f"b{k}", role="buyer", valuation=v)
        else:
            G.add_node(f"s{k}", role="seller", supply=float(rng.uniform(0.3, 1.5)))
    edges = []
    for i in range(n_buyers):
        k = int(rng.integers(1, n_sellers + 1))
        edges += [(f"b{i}", f"s{j}") for j in rng.choice(n_sellers, size=k, replace=False)]
    for t in rng.permutation(len(edges)):
        b, s = edges[t]
        G.add_edge(*((s, b) if rng.random() < 0.5 else (b, s)))
    return G


def oracle_edges(G: nx.Graph) -> list[tuple[str, str]]:
    """(buyer, seller) pairs in the documented order, from the graph alone."""
    buyers = [n for n in G.nodes if G.nodes[n]["role"] == "buyer"]
    sellers = [n for n in G.nodes if G.nodes[n]["role"] == "seller"]
    keyed = []
    for u, v in G.edges():
        b, s = (u, v) if G.nodes[u]["role"] == "buyer" else (v, u)
        keyed.append((buyers.index(b), sellers.index(s), b, s))
    return [(b, s) for _, _, b, s in sorted(keyed)]


def assert_rows_in_order(rows: list[dict], order: list[tuple[str, str]]) -> None:
    """Allocation rows name edges of the market, in strictly increasing oracle position."""
    pos = {e: k for k, e in enumerate(order)}
    got = [pos[(r["buyer"], r["seller"])] for r in rows]
    assert got == sorted(got) and len(set(got)) == len(got), got


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(1, 5), st.integers(0, 10**6))
def test_market_arrays_follow_the_oracle(nb, ns, seed):
    G = shuffled_market(nb, ns, seed)
    order = oracle_edges(G)
    M = market_arrays(G)
    assert M.columns == order
    assert [(M.buyers[i], M.sellers[j]) for i, j in zip(M.edge_buyer, M.edge_seller, strict=True)] == order
    # incidence matrices built by a loop over the oracle's edges
    B = np.zeros((nb, len(order)))
    R = np.zeros((ns, len(order)))
    for e, (b, s) in enumerate(order):
        B[M.buyers.index(b), e] = 1.0
        R[M.sellers.index(s), e] = 1.0
    assert np.array_equal(M.B.toarray(), B) and np.array_equal(M.R.toarray(), R)
    # buyer_ptr delimits each buyer's edges
    for i, b in enumerate(M.buyers):
        assert [order[e][0] for e in range(M.buyer_ptr[i], M.buyer_ptr[i + 1])] == [b] * G.degree(b)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["clarabel", "highs", "cvxpy", "pyomo"])
def test_welfare_routes_report_edges_in_oracle_order(seed, method):
    G = shuffled_market(6, 3, seed)
    order = oracle_edges(G)
    r = solve_welfare(G, **ROUTE[method])
    assert r.status.has_solution
    rows = r.solution["allocation"]
    assert rows, "no flow at all: the instance tests nothing"
    assert_rows_in_order(rows, order)
    # the rows parse back onto the same columns (one column per oracle edge)
    M = market_arrays(G)
    f = allocation_vector(M, rows)
    want = np.zeros(len(order))
    for row in rows:
        want[order.index((row["buyer"], row["seller"]))] = row["amount"]
    assert np.array_equal(f, want)


@pytest.mark.parametrize("seed", range(3))
def test_kkt_milp_and_plugin_report_edges_in_oracle_order(seed):
    G = shuffled_market(5, 3, seed, linear=True)
    order = oracle_edges(G)
    for rows in (
        solve_kkt(G).solution["allocation"],
        AuctionWelfareFormulation().solve(G, "highs").solution["allocation"],
    ):
        assert rows, "no flow at all: the instance tests nothing"
        assert_rows_in_order(rows, order)


def test_bid_rows_land_on_oracle_edges():
    G = shuffled_market(6, 4, 11)
    order = oracle_edges(G)
    bids = [
        {"buyer": b, "seller": s, "price": 1.0 + k, "quantity": 0.1 * k} for k, (b, s) in enumerate(order)
    ]
    price, qty = bid_arrays(market_arrays(G), bids[::-1])  # row order of the input does not matter
    assert np.array_equal(price, 1.0 + np.arange(len(order)))
    assert np.allclose(qty, 0.1 * np.arange(len(order)), rtol=0, atol=1e-15)
