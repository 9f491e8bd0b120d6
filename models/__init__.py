"""Economic primitives (valuations, mechanisms, distributions, estimators) and the direct
algorithms that solve a model (dynamic programs, auction dynamics, closed forms).

Modules are imported on demand: ``from datamarkets.models import chain_equilibrium``.
"""
