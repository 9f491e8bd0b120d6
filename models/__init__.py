"""Economic models (chain games, mechanisms, auction dynamics, GNE primitives) and the direct
algorithms that solve them (dynamic programs, closed forms, Leontief systems).

Modules are imported on demand: ``from datamarkets.models import chain_equilibrium``.
"""
