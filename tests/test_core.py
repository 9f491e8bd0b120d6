"""Foundation: exception hierarchy, status groups, results, atomic files, CLI error exits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import datamarkets as dm
from datamarkets.io import atomic_path, atomic_write_json, instance_hash, read_json, to_jsonable
from datamarkets.result import Certificate, Result
from datamarkets.status import (
    InaccurateSolutionWarning,
    Status,
    StatusGroup,
    status_from_cvxpy,
    status_from_pyomo,
)

from helpers import run_cli


def test_hierarchy():
    assert issubclass(dm.InvalidInputError, ValueError)
    for exc in (dm.GraphError, dm.MechanismError):
        assert issubclass(exc, dm.InvalidInputError)
    for exc in (
        dm.InfeasibleError,
        dm.UnboundedError,
        dm.SolverLimitError,
        dm.SolverError,
        dm.ConvergenceError,
    ):
        assert issubclass(exc, dm.AlgorithmError) and issubclass(exc, dm.DataMarketsError)
    e = dm.ConvergenceError("no fixed point", iterations=7)
    assert e.iterations == 7 and "7 iterations" in str(e)


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (Status.INFEASIBLE, dm.InfeasibleError),
        (Status.UNBOUNDED, dm.UnboundedError),
        (Status.TIME_LIMIT, dm.SolverLimitError),
        (Status.ERROR, dm.SolverError),
        (Status.NO_EQUILIBRIUM, dm.InfeasibleError),
    ],
)
def test_raise_for_status(status, exc):
    with pytest.raises(exc):
        status.raise_for_status()
    assert not status.has_solution


def test_inaccurate_warns_but_has_solution():
    assert Status.OPTIMAL_INACCURATE.group is StatusGroup.INACCURATE
    with pytest.warns(InaccurateSolutionWarning):
        Status.OPTIMAL_INACCURATE.raise_for_status()
    Status.OPTIMAL.raise_for_status()


def test_native_status_maps():
    import highspy
    import pyomo.environ as pyo

    from datamarkets.status import status_from_highs

    assert status_from_highs(highspy.HighsModelStatus.kOptimal) is Status.OPTIMAL
    assert status_from_highs(highspy.HighsModelStatus.kInfeasible) is Status.INFEASIBLE
    assert status_from_highs(highspy.HighsModelStatus.kTimeLimit) is Status.TIME_LIMIT
    assert status_from_pyomo(pyo.TerminationCondition.infeasible) is Status.INFEASIBLE
    assert status_from_pyomo(pyo.TerminationCondition.optimal) is Status.OPTIMAL
    assert status_from_cvxpy("optimal_inaccurate") is Status.OPTIMAL_INACCURATE
    assert status_from_cvxpy("solver_error") is Status.ERROR


def test_pyomo_infeasible_is_a_result():
    import pyomo.environ as pyo

    from datamarkets.solvers import solve_pyomo

    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1))
    m.c = pyo.Constraint(expr=m.x >= 2)
    m.o = pyo.Objective(expr=m.x)
    info = solve_pyomo(m)
    assert info.status.group is StatusGroup.INFEASIBLE_OR_UNBOUNDED
    m.c.deactivate()
    info = solve_pyomo(m)
    assert info.status is Status.OPTIMAL and pyo.value(m.x) == pytest.approx(0.0)


def test_certificate_and_result_roundtrip(tmp_path):
    cert = Certificate()
    cert.add("stationarity", 1e-9, 1e-7)
    cert.add("gap", float("nan"), 1e-7)
    assert not cert.passed and set(cert.failures) == {"gap"}
    cert.residuals["gap"] = 0.0
    assert cert.passed and cert.max_residual == pytest.approx(1e-2)
    res = Result("demo", Status.OPTIMAL, "direct", {"x": np.arange(3.0)}, cert, {"solve_seconds": 0.1})
    path = res.save(tmp_path / "r.json")
    back = Result.from_dict(read_json(path))
    assert back.solution["x"] == [0.0, 1.0, 2.0] and back.certified and back.status is Status.OPTIMAL


def test_to_jsonable_and_hash():
    d = {"a": np.float64(1.5), "b": np.array([[1, 2]]), "c": (np.int64(3), math.inf), "s": Status.OPTIMAL}
    assert to_jsonable(d) == {"a": 1.5, "b": [[1, 2]], "c": [3, None], "s": "optimal"}
    assert instance_hash({"x": 1, "y": 2}) == instance_hash({"y": 2, "x": 1})
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_read_json_errors(tmp_path):
    with pytest.raises(dm.InvalidInputError, match="does not exist"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(dm.InvalidInputError, match="not valid JSON"):
        read_json(bad)
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(dm.InvalidInputError, match="not UTF-8"):
        read_json(bad)
    bad.write_text('{"x": NaN}')
    with pytest.raises(dm.InvalidInputError, match="non-finite"):
        read_json(bad)


def test_cli_version_and_help():
    out = run_cli("version")
    assert out.returncode == 0 and out.stdout.strip() == dm.__version__
    out = run_cli("--help")
    assert out.returncode == 0 and "chain" in out.stdout and "auction" in out.stdout and "gne" in out.stdout


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "p.json", {"v": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)
