"""datamarkets — compute and verify equilibria in data markets.

Subpackages
-----------
graphs
    Market topologies as networkx graphs (chain, bipartite buyer–seller, routes, source–buyer).
models
    Economic primitives and direct algorithms (dynamic programs, auction dynamics, closed forms).
formulations
    Declarative programs (Pyomo / cvxpy / highspy) with certificates, and the built-in plug-ins.
examples
    The tutorial's Cournot plug-in (``docs/writing-a-formulation.md``).
cli
    The application: the ``datamarkets`` command line, sweeps, solver benches, paper reproductions.

Every formulation is a :class:`Formulation` found by :func:`get_formulation` (entry points in the
``datamarkets.formulations`` group); ``datamarkets.cli.sweep``, ``datamarkets.cli.bench_solvers`` and
``datamarkets.conformance`` work with any of them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("datamarkets")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from datamarkets.errors import (
    AlgorithmError,
    ConvergenceError,
    DataMarketsError,
    GraphError,
    InfeasibleError,
    InvalidInputError,
    MechanismError,
    SolverError,
    SolverLimitError,
    UnboundedError,
)
from datamarkets.formulation import Formulation
from datamarkets.lazy import lazy_exports
from datamarkets.registry import get_formulation, list_formulations, register, verify
from datamarkets.result import Certificate, Result
from datamarkets.status import Status, StatusGroup

# the main solve / certify entry points of every layer, imported on first use (``import datamarkets``
# loads no solver): solve_* return a Result, certify_* a Result or the Certificate of a solution
_LAZY = {
    "solve_welfare": "datamarkets.formulations.welfare",
    "solve_kkt": "datamarkets.formulations.kkt_mpec",
    "certify_allocation": "datamarkets.formulations.auction_certificate",
    "certify_auction_optimum": "datamarkets.formulations.auction_optimum_certificate",
    "solve_gne": "datamarkets.formulations.gne_solve",
    "certify_gne": "datamarkets.formulations.gne_certificate",
    "certify_chain_solution": "datamarkets.formulations.chain_certificate",
    "solve_game": "datamarkets.formulations.games",
    "certify_game": "datamarkets.formulations.games",
    "solve_equilibrium": "datamarkets.models.chain_equilibrium",
    "solve_leontief": "datamarkets.models.gne_leontief",
    "psp_dynamics": "datamarkets.models.psp_dynamics",
    "certify_psp": "datamarkets.models.psp_certificate",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    *_LAZY,
    "AlgorithmError",
    "Certificate",
    "ConvergenceError",
    "DataMarketsError",
    "Formulation",
    "GraphError",
    "InfeasibleError",
    "InvalidInputError",
    "MechanismError",
    "Result",
    "SolverError",
    "SolverLimitError",
    "Status",
    "StatusGroup",
    "UnboundedError",
    "__version__",
    "get_formulation",
    "list_formulations",
    "register",
    "verify",
]
