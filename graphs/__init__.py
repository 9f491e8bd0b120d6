"""Market data: topologies as networkx graphs, with validation and node-link JSON I/O, and the
primitives their nodes carry (buyer valuations, estimators and distributions of the estimation
market).

Modules are imported on demand: ``from datamarkets.graphs import market``.
"""
