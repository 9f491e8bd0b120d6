"""Market data: topologies as networkx graphs, with validation and node-link JSON I/O, and the
primitives their nodes carry (buyer valuations, estimators and distributions of the estimation
market).

Modules are imported on demand: ``from datamarkets.graphs import market``.
The main names (``__all__``) resolve
lazily from the package itself, without loading the solver stack until used.
"""

from __future__ import annotations

from datamarkets.lazy import lazy_exports

_LAZY = {
    "validate_market": "datamarkets.graphs.market",
    "MarketArrays": "datamarkets.graphs.market_data",
    "market_arrays": "datamarkets.graphs.market_data",
    "data_share_market": "datamarkets.graphs.market",
    "single_resource": "datamarkets.graphs.market",
    "example1_market": "datamarkets.graphs.market",
    "random_bipartite_market": "datamarkets.graphs.market",
    "route_network": "datamarkets.graphs.market",
    "market_to_dict": "datamarkets.graphs.market",
    "market_from_dict": "datamarkets.graphs.market",
    "read_market_json": "datamarkets.graphs.market",
    "write_market_json": "datamarkets.graphs.market",
    "read_market_graphml": "datamarkets.graphs.market",
    "write_market_graphml": "datamarkets.graphs.market",
    "two_firm_example": "datamarkets.graphs.estimation_market",
    "validate_estimation_market": "datamarkets.graphs.estimation_market",
    "read_estimation_market": "datamarkets.graphs.estimation_market",
    "write_estimation_market": "datamarkets.graphs.estimation_market",
    "estimation_market_to_dict": "datamarkets.graphs.estimation_market",
    "estimation_market_from_dict": "datamarkets.graphs.estimation_market",
    "Valuation": "datamarkets.graphs.valuations",
    "QuadraticValuation": "datamarkets.graphs.valuations",
    "AlphaFairValuation": "datamarkets.graphs.valuations",
    "PiecewiseLinearValuation": "datamarkets.graphs.valuations",
    "LinearValuation": "datamarkets.graphs.valuations",
    "valuation_from_dict": "datamarkets.graphs.valuations",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)
