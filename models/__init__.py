"""Economic models (chain games, mechanisms, auction dynamics, GNE primitives) and the direct
algorithms that solve them (dynamic programs, closed forms, Leontief systems).

Modules are imported on demand: ``from datamarkets.models import chain_equilibrium``.
The main names (``__all__``) resolve
lazily from the package itself, without loading the solver stack until used.
"""

from __future__ import annotations

from datamarkets.lazy import lazy_exports

_LAZY = {
    "ChainGame": "datamarkets.models.chain_game",
    "game_from_graph": "datamarkets.models.chain_graph",
    "ChainEquilibrium": "datamarkets.models.chain_equilibrium",
    "solve_equilibrium": "datamarkets.models.chain_equilibrium",
    "solve_reference": "datamarkets.models.chain_reference",
    "allocate": "datamarkets.models.psp",
    "best_reply": "datamarkets.models.psp",
    "certify_psp": "datamarkets.models.psp_certificate",
    "GNEInputs": "datamarkets.models.gne_inputs",
    "solve_leontief": "datamarkets.models.gne_leontief",
    "solve_example1": "datamarkets.models.data_share",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)
