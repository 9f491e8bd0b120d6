"""Declarative programs (Pyomo, cvxpy, highspy arrays) built from a graph and a model, solved with
HiGHS by default, each returning a :class:`~datamarkets.result.Result` with a certificate.

Modules are imported on demand: ``from datamarkets.formulations import chain_certificate``.
The main names (``__all__``) resolve
lazily from the package itself, without loading the solver stack until used.
"""

from __future__ import annotations

from datamarkets.lazy import lazy_exports

_LAZY = {
    "solve_welfare": "datamarkets.formulations.welfare",
    "solve_welfare_route": "datamarkets.formulations.welfare_solve",
    "solve_kkt": "datamarkets.formulations.kkt_mpec",
    "certify_allocation": "datamarkets.formulations.auction_certificate",
    "epsilon_nash_check": "datamarkets.formulations.auction_certificate",
    "certify_auction_optimum": "datamarkets.formulations.auction_optimum_certificate",
    "AuctionWelfareFormulation": "datamarkets.formulations.auction_formulation",
    "AuctionKKTFormulation": "datamarkets.formulations.auction_formulation",
    "AuctionPSPFormulation": "datamarkets.formulations.auction_formulation",
    "solve_gne": "datamarkets.formulations.gne_solve",
    "certify_gne": "datamarkets.formulations.gne_certificate",
    "solve_welfare_effort": "datamarkets.formulations.welfare_effort",
    "GNEFormulation": "datamarkets.formulations.gne_formulation",
    "certify_chain_solution": "datamarkets.formulations.chain_certificate",
    "certify_equilibrium": "datamarkets.formulations.chain_certificate",
    "certify_strategies": "datamarkets.formulations.chain_certificate",
    "ChainEquilibriumFormulation": "datamarkets.formulations.chain_formulation",
    "solve_game": "datamarkets.formulations.games",
    "certify_game": "datamarkets.formulations.games",
    "lq_game": "datamarkets.formulations.games",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)
