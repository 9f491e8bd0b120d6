"""Market topologies as networkx graphs, with validation and node-link JSON I/O.

Modules are imported on demand: ``from datamarkets.graphs import chain``.
"""
