"""The public surface: every package lists its main names in ``__all__``, each resolves (lazily),
none is also a submodule, and ``import datamarkets`` loads no solver stack."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import pytest

PACKAGES = [
    "datamarkets",
    "datamarkets.graphs",
    "datamarkets.models",
    "datamarkets.formulations",
    "datamarkets.cli",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_and_is_no_submodule(name):
    pkg = importlib.import_module(name)
    assert pkg.__all__, name
    assert set(pkg.__all__) <= set(dir(pkg)), sorted(set(pkg.__all__) - set(dir(pkg)))
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    clash = sorted(set(pkg.__all__) & submodules)
    assert not clash, f"{name}: both an exported name and a submodule: {clash}"
    for attr in pkg.__all__:
        value = getattr(pkg, attr)
        assert value is not None, attr
        if attr != "__version__":
            assert not isinstance(value, types.ModuleType), attr
    with pytest.raises(AttributeError):
        pkg.no_such_name  # noqa: B018


def test_main_entry_points_from_the_top():
    import datamarkets as dm
    from datamarkets.formulations.welfare import solve_welfare
    from datamarkets.models.psp_dynamics import psp_dynamics

    assert dm.solve_welfare is solve_welfare and dm.psp_dynamics is psp_dynamics
    for verb in ("solve_welfare", "solve_kkt", "solve_gne", "solve_equilibrium", "solve_game", "verify"):
        assert callable(getattr(dm, verb)) and inspect.isfunction(getattr(dm, verb)), verb
    assert len(dir(importlib.import_module("datamarkets.models"))) > 0
    # a function stays a function after its package's submodules are imported
    import datamarkets.formulations.welfare  # noqa: F401

    assert inspect.isfunction(importlib.import_module("datamarkets.formulations").solve_welfare)


def test_top_level_verify_matches_the_formulation():
    import datamarkets as dm

    f = dm.get_formulation("auction-welfare")
    r = f.solve(f.instance({"market": "example1"}), "highs")
    v = dm.verify(r.to_dict())
    assert v.certificate.passed
    assert set(v.certificate.residuals) == set(r.certificate.residuals)
    bad = r.to_dict()
    bad["welfare"] *= 1.01
    assert not dm.verify(bad).certificate.passed


def test_import_datamarkets_loads_no_solver():
    code = (
        "import sys, datamarkets, datamarkets.graphs, datamarkets.models, datamarkets.formulations\n"
        "heavy = [m for m in ('cvxpy', 'pyomo', 'highspy', 'clarabel', 'scipy.optimize', "
        "'datamarkets.formulations.welfare') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
