"""Every registered formulation passes the protocol's conformance checks; broken ones are caught."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from test_formulation import BoxProjection

from datamarkets.conformance import ConformanceError, check_formulation
from datamarkets.registry import list_formulations
from datamarkets.result import Certificate, Result

BUILT_IN = (
    "auction-kkt",
    "auction-psp",
    "auction-welfare",
    "chain-equilibrium",
    "cournot-game",
    "cournot-sellers",
    "cournot-sellers-kkt",
    "gne",
    "lq-game",
)


@pytest.mark.parametrize("name", BUILT_IN)
def test_registered_formulations_conform(name):
    f = list_formulations()[name]
    # every installed solver runs; inexact routes (SCS, OSQP) may be uncertified, but what verify
    # re-derives must agree with the saved verdict, and the default route must be certified
    report = check_formulation(f, sizes=(8,), seeds=(0, 1), require_certified=False)
    default = [r for r in report.runs if r["solver"] == f.solvers[0]]
    assert default and all(r["certified"] and r["verified"] for r in default), default
    assert all(r["certified"] == r["verified"] for r in report.runs if r["status"] == "optimal")


def test_the_test_formulation_conforms():
    rep = check_formulation(BoxProjection(), sizes=(5, 20))
    assert len(rep.runs) == 2 * 2 * 2 and all(r["verified"] for r in rep.runs)


class _BadName(BoxProjection):
    name = "Bad Name"


class _UnknownSolver(BoxProjection):
    name = "test-unknown-solver"
    solvers = ("direct", "gurobi")


class _LossyInstance(BoxProjection):
    name = "test-lossy-instance"

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        return np.round(np.asarray(d["y"], dtype=float), 1)  # loses digits


class _WrongKind(BoxProjection):
    name = "test-wrong-kind"

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        res = super().solve_program(program, solver, time_limit=time_limit)
        res.kind = "something-else"
        return res


class _Wrong(BoxProjection):
    name = "test-wrong-answer"

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        res = super().solve_program(program, solver, time_limit=time_limit)
        res.solution["x"] = np.full_like(res.solution["x"], 0.5)  # not the projection
        return res


class _TrustingVerify(BoxProjection):
    """certify() reads a flag the solver wrote instead of checking: verify disagrees once saved."""

    name = "test-trusting-certificate"

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        cert = Certificate()
        cert.add("claimed", 0.0 if isinstance(solution["x"], np.ndarray) else 1.0, 0.0)
        return cert


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (_BadName, "lower-case"),
        (_UnknownSolver, "unknown solver name"),
        (_LossyInstance, "changes the instance"),
        (_WrongKind, "not in kinds"),
        (_Wrong, "not certified"),
        (_TrustingVerify, "verify\\(\\) says passed=False"),
    ],
)
def test_broken_formulations_are_caught(cls, match):
    with pytest.raises(ConformanceError, match=match):
        check_formulation(cls(), sizes=(6,), seeds=(0,))
