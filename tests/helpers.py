"""Shared test helpers: running the CLI (in process and as a subprocess), solver skips, small instances.

Import from a test file as ``from helpers import ...`` (``tests/`` has no ``__init__.py``: pytest puts
it on ``sys.path``, as for ``conftest.py``). The ``cli`` fixture of ``conftest.py`` wraps
:func:`run_main`. Reference implementations the tests compare against live in ``oracles.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

__all__ = [
    "cli_env",
    "exit_code",
    "installed_solvers",
    "need_solver",
    "random_gne_market",
    "rel_err",
    "run_cli",
    "run_main",
]


# ---------------------------------------------------------------------------- the CLI
def exit_code(exc: SystemExit) -> int:
    """The process exit status a ``SystemExit`` gives: its int code, 0 for ``None``, 1 otherwise."""
    code = exc.code
    return code if isinstance(code, int) else (0 if code is None else 1)


def run_main(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """Run ``datamarkets ARGS...`` in process through ``datamarkets.cli.main`` (the console script's
    error handling, no fork); return (exit code, stdout, stderr) as captured by ``capsys``.

    Arguments are passed through ``str`` (paths allowed). A foreign exception is not caught here: it
    fails the test, as a traceback would fail a user.
    """
    from datamarkets.cli import main

    old = sys.argv
    sys.argv = ["datamarkets", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    finally:
        sys.argv = old
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: ours, no progress bars, the Agg backend, plus ``extra``."""
    return {**os.environ, "DATAMARKETS_NO_PROGRESS": "1", "MPLBACKEND": "Agg", **extra}


def run_cli(
    *args: Any, timeout: float = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m datamarkets.cli ARGS...`` in a real subprocess (exit codes, pure stdout).

    Parameters
    ----------
    *args
        Command-line arguments (passed through ``str``).
    timeout : float
        Seconds before the run is killed (the test then fails).
    cwd : pathlib.Path, optional
        Working directory.
    env : dict, optional
        Extra environment variables on top of :func:`cli_env`.
    """
    return subprocess.run(
        [sys.executable, "-m", "datamarkets.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**(env or {})),
        cwd=cwd,
    )


# ---------------------------------------------------------------------------- solvers
def installed_solvers(solvers: Iterable[str]) -> list[str]:
    """The solvers among ``solvers`` that are installed, in order."""
    from datamarkets.solvers import available_solvers

    avail = available_solvers()
    return [s for s in solvers if avail.get(s) is not None]


def need_solver(solver: str) -> None:
    """Skip the calling test when ``solver`` is not installed."""
    if not installed_solvers([solver]):
        pytest.skip(f"solver {solver!r} is not installed")


def rel_err(a: float, b: float) -> float:
    """``|a − b| / max(1, |b|)``: relative error, absolute near zero."""
    return abs(a - b) / max(1.0, abs(b))


# ---------------------------------------------------------------------------- small instances
def random_gne_market(
    seed: int = 0, K: int = 3, N: int = 5, scale: float = 0.5, uses_p: float = 1.0, gamma_scale: float = 5.0
) -> Any:
    """A random GNE market (``GNEInputs``): K buyers, N sources, ξ off-diagonal uniform in
    ``[0, scale/N)`` (so ρ(A) is small for ``scale < 1``), γ uniform in ``[0.5, 1) · gamma_scale``
    on the sources each buyer uses (each with probability ``uses_p``; buyer 0 uses all)."""
    from datamarkets.models.gne_inputs import GNEInputs

    rng = np.random.default_rng(seed)
    xi = rng.uniform(0, 1, (K, N, N)) * scale / N
    for k in range(K):
        np.fill_diagonal(xi[k], 1.0)
    uses = rng.uniform(size=(K, N)) < uses_p
    uses[0] = True
    gamma = np.where(uses, rng.uniform(0.5, 1.0, (K, N)) * gamma_scale, 0.0)
    return GNEInputs.from_arrays(gamma, xi, rng.uniform(0.5, 2.0, N), uses=uses)


WELFARE_ROUTES: dict[str, dict[str, str]] = {
    "auto": {"method": "auto"},
    "clarabel": {"method": "arrays", "solver": "clarabel"},
    "highs": {"method": "arrays", "solver": "highs"},
    "cvxpy": {"method": "cvxpy"},
    "pyomo": {"method": "pyomo"},
}
"""Route name → ``solve_welfare`` keywords (method = how the program is built, solver = who solves it)."""
