"""datamarkets — compute and verify equilibria in data markets.

Subpackages
-----------
graphs
    Market topologies as networkx graphs (chain, bipartite buyer–seller, routes, source–buyer).
models
    Economic primitives and direct algorithms (dynamic programs, auction dynamics, closed forms).
formulations
    Declarative programs (Pyomo / cvxpy / highspy) with certificates.
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
from datamarkets.result import Certificate, Result
from datamarkets.status import Status, StatusGroup

__all__ = [
    "AlgorithmError",
    "Certificate",
    "ConvergenceError",
    "DataMarketsError",
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
]
