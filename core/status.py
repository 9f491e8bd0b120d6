"""Solver statuses, defined once and grouped.

Every route (highspy, Pyomo, cvxpy, our own direct algorithms) maps its native status onto
:class:`Status`; code downstream only asks for the group:

- ``SOLUTION``: a solution is present and optimal to tolerance;
- ``INACCURATE``: a solution is present but the solver could not certify it (warning + flag);
- ``INFEASIBLE_OR_UNBOUNDED``: a result, not a crash;
- ``LIMIT``: a time or iteration limit stopped the solver;
- ``ERROR``: the solver failed.
"""

from __future__ import annotations

import enum
import warnings
from typing import Any

from datamarkets.errors import (
    InfeasibleError,
    SolverError,
    SolverLimitError,
    UnboundedError,
)

__all__ = [
    "InaccurateSolutionWarning",
    "Status",
    "StatusGroup",
    "status_from_cvxpy",
    "status_from_highs",
    "status_from_pyomo",
]


class InaccurateSolutionWarning(UserWarning):
    """A solver returned a solution it could not certify as optimal."""


class StatusGroup(enum.StrEnum):
    SOLUTION = "solution"
    INACCURATE = "inaccurate"
    INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"
    LIMIT = "limit"
    ERROR = "error"


class Status(enum.StrEnum):
    """Status of a solve, with its :attr:`group`."""

    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"
    NO_EQUILIBRIUM = "no_equilibrium"
    TIME_LIMIT = "time_limit"
    ITERATION_LIMIT = "iteration_limit"
    ERROR = "error"

    @property
    def group(self) -> StatusGroup:
        return _GROUPS[self]

    @property
    def has_solution(self) -> bool:
        """True when primal values are present (optimal or inaccurate)."""
        return self.group in (StatusGroup.SOLUTION, StatusGroup.INACCURATE)

    def raise_for_status(self, context: str = "") -> None:
        """Raise the matching exception unless a solution is present; warn if inaccurate.

        Raises
        ------
        InfeasibleError, UnboundedError, SolverLimitError, SolverError
        """
        where = f"{context}: " if context else ""
        if self is Status.OPTIMAL:
            return
        if self is Status.OPTIMAL_INACCURATE:
            warnings.warn(f"{where}solution is inaccurate", InaccurateSolutionWarning, stacklevel=2)
            return
        if self in (Status.INFEASIBLE, Status.INFEASIBLE_OR_UNBOUNDED, Status.NO_EQUILIBRIUM):
            raise InfeasibleError(f"{where}{self.value}")
        if self is Status.UNBOUNDED:
            raise UnboundedError(f"{where}unbounded")
        if self.group is StatusGroup.LIMIT:
            raise SolverLimitError(f"{where}{self.value}")
        raise SolverError(f"{where}solver error")


_GROUPS = {
    Status.OPTIMAL: StatusGroup.SOLUTION,
    Status.OPTIMAL_INACCURATE: StatusGroup.INACCURATE,
    Status.INFEASIBLE: StatusGroup.INFEASIBLE_OR_UNBOUNDED,
    Status.UNBOUNDED: StatusGroup.INFEASIBLE_OR_UNBOUNDED,
    Status.INFEASIBLE_OR_UNBOUNDED: StatusGroup.INFEASIBLE_OR_UNBOUNDED,
    Status.NO_EQUILIBRIUM: StatusGroup.INFEASIBLE_OR_UNBOUNDED,
    Status.TIME_LIMIT: StatusGroup.LIMIT,
    Status.ITERATION_LIMIT: StatusGroup.LIMIT,
    Status.ERROR: StatusGroup.ERROR,
}


def status_from_highs(model_status: Any) -> Status:
    """Map a ``highspy.HighsModelStatus`` onto :class:`Status`."""
    name = str(model_status).rsplit(".", 1)[-1].lower()
    return {
        "koptimal": Status.OPTIMAL,
        "kinfeasible": Status.INFEASIBLE,
        "kunbounded": Status.UNBOUNDED,
        "kunboundedorinfeasible": Status.INFEASIBLE_OR_UNBOUNDED,
        "ktimelimit": Status.TIME_LIMIT,
        "kiterationlimit": Status.ITERATION_LIMIT,
        "ksolutionlimit": Status.ITERATION_LIMIT,
        "kobjectivebound": Status.OPTIMAL_INACCURATE,
        "kobjectivetarget": Status.OPTIMAL_INACCURATE,
        "kinterrupt": Status.TIME_LIMIT,
    }.get(name, Status.ERROR)


def status_from_pyomo(results_or_condition: Any) -> Status:
    """Map a Pyomo ``SolverResults`` or ``TerminationCondition`` onto :class:`Status`."""
    cond = results_or_condition
    if hasattr(cond, "solver"):
        cond = cond.solver.termination_condition
    name = str(getattr(cond, "name", cond)).lower().rsplit(".", 1)[-1]
    return {
        "optimal": Status.OPTIMAL,
        "locallyoptimal": Status.OPTIMAL,
        "globallyoptimal": Status.OPTIMAL,
        "feasible": Status.OPTIMAL_INACCURATE,
        "infeasible": Status.INFEASIBLE,
        "unbounded": Status.UNBOUNDED,
        "infeasibleorunbounded": Status.INFEASIBLE_OR_UNBOUNDED,
        "maxtimelimit": Status.TIME_LIMIT,
        # CBC: "a limit was hit, however it had not found an integer solution yet"
        "intermediatenoninteger": Status.TIME_LIMIT,
        "maxiterations": Status.ITERATION_LIMIT,
    }.get(name, Status.ERROR)


def status_from_cvxpy(status: str) -> Status:
    """Map a cvxpy problem status string onto :class:`Status`."""
    return {
        "optimal": Status.OPTIMAL,
        "optimal_inaccurate": Status.OPTIMAL_INACCURATE,
        "infeasible": Status.INFEASIBLE,
        "infeasible_inaccurate": Status.INFEASIBLE,
        "unbounded": Status.UNBOUNDED,
        "unbounded_inaccurate": Status.UNBOUNDED,
        "user_limit": Status.TIME_LIMIT,
    }.get(str(status), Status.ERROR)
