"""The repository layout maps onto one package, for editable and wheel installs alike."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = {"graphs": "graphs", "models": "models", "formulations": "formulations"}


def test_layout_is_what_users_asked_for():
    for name in [
        "pyproject.toml",
        "README.md",
        "core",
        "graphs",
        "models",
        "formulations",
        "tests",
        "benchmarks",
    ]:
        assert (ROOT / name).exists(), name
    assert (ROOT / ".ci" / "run").is_file()


def test_installed_package_maps_directories():
    import datamarkets
    import datamarkets.formulations
    import datamarkets.graphs
    import datamarkets.models

    # Either an editable install (files live in the repo) or a regular one (site-packages); in
    # both cases each subpackage must come from the directory pyproject maps it from.
    core_dir = Path(datamarkets.__file__).parent
    for sub, mod in [
        ("graphs", datamarkets.graphs),
        ("models", datamarkets.models),
        ("formulations", datamarkets.formulations),
    ]:
        sub_dir = Path(mod.__file__).parent
        if core_dir == ROOT / "core":
            assert sub_dir == ROOT / SUBPACKAGES[sub]
        else:
            assert sub_dir == core_dir / sub


def test_wheel_installs_and_imports(tmp_path):
    """Build a wheel, install it into a fresh venv (dependencies from this interpreter), import it
    from outside the source tree and run the console script."""
    pytest.importorskip("setuptools")
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheels = list(dist.glob("datamarkets-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    _inherit_site_packages(py)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--no-index",
            str(wheels[0]),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    code = (
        "import datamarkets, datamarkets.graphs, datamarkets.models, datamarkets.formulations, pathlib;"
        "p = pathlib.Path(datamarkets.__file__).parent;"
        "assert 'site-packages' in str(p), p;"
        "assert pathlib.Path(datamarkets.models.__file__).parent == p / 'models';"
        "assert (p / 'py.typed').exists();"
        "print(datamarkets.__version__)"
    )
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "0.1.0"
    cli = subprocess.run(
        [str(env_dir / "bin" / "datamarkets"), "version"], capture_output=True, text=True, cwd=tmp_path
    )
    assert cli.returncode == 0 and cli.stdout.strip() == "0.1.0"


def _inherit_site_packages(py: Path) -> None:
    """Let the venv at ``py`` see the dependencies of the environment running the tests.

    ``venv`` always builds from the *base* interpreter, so ``system_site_packages=True`` alone
    exposes the base installation's packages, not those of the virtualenv a user runs pytest from
    (a fresh ``python -m venv`` + ``pip install -e ".[test]"`` has typer, numpy, … only there).
    A ``.pth`` file appends this environment's site-packages *after* the new venv's own, so the
    installed wheel still wins over an editable install of the source tree (``.pth`` lines that
    are plain paths do not run the editable finder hooks of the directories they add).
    """
    import site

    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    child = subprocess.run(
        [str(py), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(child) / "_datamarkets_test_parent_env.pth").write_text("\n".join(parents) + "\n")
