"""The formulation protocol and the entry-point registry (core/formulation.py, core/registry.py)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError, SolverError
from datamarkets.formulation import DIRECT, Formulation, check_params
from datamarkets.io import instance_hash
from datamarkets.registry import (
    PluginWarning,
    broken_plugins,
    formulation_for_kind,
    get_formulation,
    list_formulations,
    register,
    unregister,
)
from datamarkets.result import Certificate, Result
from datamarkets.solvers import SOLVER_NAMES, available_solvers, require_solver
from datamarkets.status import Status

BUILT_INS = ("auction-kkt", "auction-psp", "auction-welfare", "chain-equilibrium", "gne")


class BoxProjection(Formulation):
    """Project y onto the box [0, 1]^n: min ½‖x − y‖² s.t. 0 ≤ x ≤ 1 — closed form clip(y, 0, 1).

    Route "direct" clips; route "highs" solves the QP with highspy. The certificate checks the KKT
    conditions of the projection from (y, x) alone: x − y + λ_hi − λ_lo = 0 with the multipliers
    recovered as the positive/negative parts of y − x, each zero off its bound.
    """

    name = "test-box-projection"
    summary = "projection onto the unit box"
    kinds = ("box-projection",)
    solvers = (DIRECT, "highs")
    parameters = {"size": 5, "seed": 0}  # noqa: RUF012

    def instance(self, params: Mapping[str, Any]) -> Any:
        p = check_params(self.name, params, self.parameters)
        return np.random.default_rng(int(p["seed"])).normal(0.5, 1.0, int(p["size"]))

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        return {"y": [float(v) for v in instance]}

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        if "y" not in d:
            raise InvalidInputError("no 'y'")
        return np.asarray(d["y"], dtype=float)

    def build(self, instance: Any, solver: str) -> Any:
        if solver == DIRECT:
            return instance
        import highspy

        from datamarkets.solvers import new_highs

        n = instance.size
        h = new_highs()
        inf = highspy.kHighsInf
        h.addVars(n, np.zeros(n), np.ones(n))
        h.changeColsCost(n, np.arange(n, dtype=np.int32), -instance)
        h.passHessian(n, n, 1, np.arange(n + 1, dtype=np.int32), np.arange(n, dtype=np.int32), np.ones(n))
        assert inf > 0
        return h

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        if solver == DIRECT:
            x = np.clip(program, 0.0, 1.0)
        else:
            program.run()
            x = np.asarray(program.getSolution().col_value)
        return Result(self.kinds[0], Status.OPTIMAL, solver, {"x": x, "objective": float(np.sum(x))})

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        y = instance
        x = np.asarray(solution["x"], dtype=float)
        g = y - x  # = λ_hi − λ_lo at a KKT point
        cert = Certificate()
        cert.add("bounds", float(np.max(np.maximum(-x, 0) + np.maximum(x - 1, 0))), 1e-9)
        interior = (x > 1e-9) & (x < 1 - 1e-9)
        cert.add("stationarity_interior", float(np.max(np.abs(g[interior]), initial=0.0)), 1e-7)
        cert.add("sign_at_lower", float(np.max(np.maximum(g[x <= 1e-9], 0), initial=0.0)), 1e-7)
        cert.add("sign_at_upper", float(np.max(np.maximum(-g[x >= 1 - 1e-9], 0), initial=0.0)), 1e-7)
        return cert


@pytest.fixture
def box():
    f = register(BoxProjection)
    yield f
    unregister(f.name)


def test_check_params_merges_and_rejects():
    assert check_params("x", {"a": 2}, {"a": 1, "b": 3}) == {"a": 2, "b": 3}
    with pytest.raises(InvalidInputError, match=r"unknown parameter.*'c'"):
        check_params("x", {"c": 1}, {"a": 1})
    with pytest.raises(InvalidInputError, match=r"missing parameter.*'a'"):
        check_params("x", {}, {"a": None}, required=("a",))


@pytest.mark.parametrize("solver", [DIRECT, "highs"])
def test_solve_matches_closed_form_and_embeds_instance(box, solver):
    y = box.instance({"size": 40, "seed": 3})
    r = box.solve(y, solver)
    np.testing.assert_allclose(r.solution["x"], np.clip(y, 0, 1), atol=1e-7)
    assert r.certified
    assert set(r.timings) >= {"build_seconds", "solve_seconds", "certify_seconds"}
    assert r.meta["formulation"] == box.name and r.meta["solver"] == solver
    assert r.meta["instance_hash"] == instance_hash(box.instance_to_dict(y))
    assert r.instance == box.instance_to_dict(y)
    assert "version" in r.meta and "python" in r.meta


def test_verify_round_trip_and_tampering(box, tmp_path):
    y = box.instance({"size": 30, "seed": 1})
    path = box.solve(y).save(tmp_path / "r.json")
    saved = json.loads(path.read_text())
    v = box.verify(saved)
    assert v.kind == "verification" and v.certificate.passed
    assert v.solution["verified_kind"] == "box-projection"
    # a wrong solution fails a named residual
    bad = json.loads(path.read_text())
    k = int(np.argmax((np.asarray(bad["x"]) > 0.1) & (np.asarray(bad["x"]) < 0.9)))
    bad["x"][k] += 0.05
    assert "stationarity_interior" in box.verify(bad).certificate.failures
    # a changed instance no longer matches its recorded hash
    bad = json.loads(path.read_text())
    bad["instance"]["y"][0] += 1.0
    with pytest.raises(InvalidInputError, match="hash mismatch"):
        box.verify(bad)
    # no embedded instance: an error unless the right instance is given
    bare = json.loads(path.read_text())
    del bare["instance"]
    with pytest.raises(InvalidInputError, match="embeds no instance"):
        box.verify(bare)
    assert box.verify(bare, instance=y).certificate.passed
    with pytest.raises(InvalidInputError, match="does not match"):
        box.verify(bare, instance=y + 1.0)


def test_unknown_solver_is_bad_input(box):
    with pytest.raises(InvalidInputError, match="cannot use solver 'clarabel'"):
        box.solve(box.instance({}), "clarabel")


def test_registry_lists_built_ins_from_entry_points():
    found = list_formulations()
    for name in BUILT_INS:
        assert name in found and found[name].name == name
    assert formulation_for_kind("gne").name == "gne"
    assert formulation_for_kind("auction-optimum", "auction-kkt").name == "auction-kkt"
    with pytest.raises(InvalidInputError, match="no registered formulation"):
        formulation_for_kind("no-such-kind")
    with pytest.raises(InvalidInputError, match=r"unknown formulation 'nope'; available: .*gne"):
        get_formulation("nope")


def test_register_rejects_duplicates_and_non_formulations(box):
    with pytest.raises(InvalidInputError, match="already registered"):
        register(BoxProjection)
    assert register(BoxProjection, replace=True).name == box.name
    with pytest.raises(TypeError, match="not a Formulation"):
        register(object)  # type: ignore[arg-type]
    assert get_formulation(box.name) is not None


def _fake_distribution(root, dist: str, entry: str, module: str, source: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[datamarkets.formulations]\n{entry}\n")


def test_third_party_plugins_are_discovered_and_broken_ones_reported(tmp_path, monkeypatch):
    _fake_distribution(
        tmp_path,
        "goodplug",
        "test-good-plugin = goodplug_mod:Good",
        "goodplug_mod",
        """
        from tests_box_import import BoxProjection

        class Good(BoxProjection):
            name = "test-good-plugin"
        """,
    )
    _fake_distribution(tmp_path, "badplug", "test-bad-plugin = badplug_mod:Missing", "badplug_mod", "x = 1\n")
    _fake_distribution(
        tmp_path,
        "misnamed",
        "test-misnamed = misnamed_mod:Good",
        "misnamed_mod",
        "from goodplug_mod import Good\n",
    )
    # the plug-in module imports the test's BoxProjection under a stable name
    monkeypatch.setitem(sys.modules, "tests_box_import", sys.modules[__name__])
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.warns(PluginWarning) as record:
            found = list_formulations(reload=True)
        assert "test-good-plugin" in found
        y = found["test-good-plugin"].instance({"size": 4})
        assert found["test-good-plugin"].solve(y).certified
        assert "test-bad-plugin" not in found and "test-misnamed" not in found
        broken = broken_plugins()
        assert "has no attribute 'Missing'" in broken["test-bad-plugin"]
        assert "named 'test-good-plugin'" in broken["test-misnamed"]
        assert any("test-bad-plugin" in str(w.message) for w in record)
        with pytest.raises(InvalidInputError, match="plug-in failed to load"):
            get_formulation("test-bad-plugin")
        for name in BUILT_INS:  # one broken package never hides the others
            assert name in found
    finally:
        monkeypatch.undo()
        list_formulations(reload=True)
    assert "test-good-plugin" not in list_formulations()


def test_available_solvers_and_require_solver(monkeypatch):
    avail = available_solvers()
    assert set(avail) == set(SOLVER_NAMES)
    assert avail["highs"] is not None
    assert require_solver("highs") == avail["highs"]
    with pytest.raises(SolverError, match="unknown solver"):
        require_solver("gurobi")
    monkeypatch.setitem(sys.modules, "scs", None)  # `import scs` fails: as if SCS were not installed
    try:
        assert available_solvers(refresh=True)["scs"] is None
        with pytest.raises(SolverError, match="'scs' is not installed"):
            require_solver("scs")
    finally:
        monkeypatch.undo()
        assert available_solvers(refresh=True) == avail  # the cache is the real one again
