"""Every ``Examples`` section in the package runs: doctests of each installed module.

Modules are imported by their package names (``datamarkets.…``), as users import them — running
``--doctest-modules`` on the source directories would import a second copy (``core.frames``) with
its own registries.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import datamarkets

SUBPACKAGES = ("graphs", "models", "formulations", "examples", "cli")


def _modules() -> list[str]:
    # an editable install maps each subpackage's directory separately (pyproject package-dir), so
    # the root package's __path__ does not contain them: walk each one from its own __path__
    names = [info.name for info in pkgutil.iter_modules(datamarkets.__path__, "datamarkets.")]
    for sub in SUBPACKAGES:
        pkg = importlib.import_module(f"datamarkets.{sub}")
        names.append(pkg.__name__)
        names += [info.name for info in pkgutil.iter_modules(pkg.__path__, f"{pkg.__name__}.")]
    return sorted(set(names))


MODULES = _modules()


def test_every_subpackage_is_walked():
    for sub in SUBPACKAGES:
        assert any(m.startswith(f"datamarkets.{sub}.") for m in MODULES), sub


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(mod, name, globs=vars(mod).copy()):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
