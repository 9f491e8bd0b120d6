"""One small exception hierarchy used everywhere in datamarkets.

::

    DataMarketsError
    ├── InvalidInputError (also ValueError)      bad data at the door
    │   ├── GraphError                            topology / attribute problems
    │   ├── MechanismError                        reallocation matrix breaks Def. 2.5 / 2.6
    │   └── NonConvexGameError                    a player's own program is not convex / VI not monotone
    └── AlgorithmError                            something went wrong while solving
        ├── InfeasibleError
        ├── UnboundedError
        ├── SolverLimitError                      time or iteration limit hit
        ├── ConvergenceError                      carries ``iterations``
        └── SolverError                           the solver crashed or misbehaved

An infeasible program is a *result* (``Status.INFEASIBLE``); these exceptions are raised when
the caller asked for a solution (``Result.raise_for_status()``) or when infeasibility can only mean
bad input. Messages name the offending node, edge or index with ``!r``.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmError",
    "ConvergenceError",
    "DataMarketsError",
    "GraphError",
    "InfeasibleError",
    "InvalidInputError",
    "MechanismError",
    "NonConvexGameError",
    "NotLinearQuadraticError",
    "SolverError",
    "SolverLimitError",
    "UnboundedError",
    "UnsupportedGameError",
]


class DataMarketsError(Exception):
    """Base class of every exception raised on purpose by datamarkets."""


class InvalidInputError(DataMarketsError, ValueError):
    """Input data is malformed: wrong shape, NaN, not stochastic, negative capacity, …"""


class GraphError(InvalidInputError):
    """A market graph is empty, disconnected, or has unknown/missing/invalid attributes."""


class MechanismError(InvalidInputError):
    """A reallocation matrix is not budget-feasible (Def. 2.5) or not past-only (Def. 2.6)."""


class NonConvexGameError(InvalidInputError):
    """A game's player program is not convex (own Hessian block not PSD), or a route needs a
    monotone game and the symmetrised pseudo-gradient has a negative eigenvalue."""


class NotLinearQuadraticError(InvalidInputError):
    """A game is not linear-quadratic, so a route that needs the matrix form cannot take it."""


class UnsupportedGameError(InvalidInputError):
    """The route cannot deliver what was asked for this game (e.g. a variational equilibrium of a
    non-LQ game with shared constraints)."""


class AlgorithmError(DataMarketsError):
    """An algorithm or solver could not deliver a solution."""


class InfeasibleError(AlgorithmError):
    """The program has no feasible point."""


class UnboundedError(AlgorithmError):
    """The program is unbounded."""


class SolverLimitError(AlgorithmError):
    """A time or iteration limit stopped the solver before it proved optimality."""


class SolverError(AlgorithmError):
    """The solver crashed, is unavailable, or returned something inconsistent."""


class ConvergenceError(AlgorithmError):
    """An iterative method did not converge.

    Parameters
    ----------
    message : str
        What did not converge.
    iterations : int
        How many iterations were run.
    """

    def __init__(self, message: str, iterations: int) -> None:
        super().__init__(f"{message} (after {iterations} iterations)")
        self.iterations = iterations
