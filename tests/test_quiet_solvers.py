"""Solvers are silent: nothing of HiGHS's reaches stdout or stderr, from library calls or sweep workers.

HiGHS prints its banner ("Running HiGHS x.y.z …") once per process, from the constructor of the first
``Highs`` object, before ``output_flag`` can be set — so an in-process check would pass vacuously once
any earlier test built one. Each route therefore runs in a fresh process: a subprocess imports the
stack once and forks one child per route (a forked child has never built a ``Highs``), with the
child's stdout and stderr captured at the file-descriptor level. A control child that builds a raw
``highspy.Highs()`` must show the banner, so the check can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from datamarkets.solvers import new_highs, silence_highs_banner, solver_output_requested

BANNER = "Running HiGHS"

ROUTES = textwrap.dedent(
    """
    import json, os, sys

    import highspy
    import numpy as np
    import pyomo.environ as pyo
    import cvxpy as cp

    from datamarkets.registry import get_formulation
    from datamarkets.solvers import new_highs, solve_highs, solve_pyomo


    def raw():  # the control: HiGHS's own behaviour
        highspy.Highs()


    def lp():  # min x0 + x1 s.t. x0 + x1 >= 1, x >= 0
        h = new_highs()
        h.addVars(2, np.zeros(2), np.full(2, highspy.kHighsInf))
        h.changeColsCost(2, np.arange(2, dtype=np.int32), np.ones(2))
        h.addRow(1.0, highspy.kHighsInf, 2, np.arange(2, dtype=np.int32), np.ones(2))
        info = solve_highs(h)
        assert info.status.value == "optimal" and abs(h.getInfo().objective_function_value - 1) < 1e-9


    def pyomo_highs(name):
        m = pyo.ConcreteModel()
        m.x = pyo.Var(bounds=(1, 5))
        m.o = pyo.Objective(expr=m.x)
        assert solve_pyomo(m, name).status.value == "optimal" and abs(pyo.value(m.x) - 1) < 1e-9


    def formulation(name, params, solver):
        f = get_formulation(name)
        r = f.solve(f.instance(params), solver)
        assert r.certified, (name, r.status)


    def opt_in():  # the user asks for solver output: the banner is theirs
        os.environ["DATAMARKETS_SOLVER_OUTPUT"] = "1"
        new_highs()


    CASES = {
        "raw": raw,
        "new_highs": lp,
        "appsi_highs": lambda: pyomo_highs("appsi_highs"),
        "contrib_highs": lambda: pyomo_highs("highs"),
        "auction-welfare/highs": lambda: formulation("auction-welfare", {"buyers": 3, "sellers": 2}, "highs"),
        "auction-kkt/highs": lambda: formulation("auction-kkt", {"buyers": 3, "sellers": 2}, "highs"),
        "chain-equilibrium/highs": lambda: formulation("chain-equilibrium", {"n": 3}, "highs"),
        "cournot-sellers/cvxpy-highs": lambda: formulation(
            "cournot-sellers", {"model": "symmetric", "sellers": 3}, "highs"
        ),
        "opt_in": opt_in,
    }

    out = {}
    for name, case in CASES.items():
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: stdout and stderr into the pipe, one route, exit
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            code = 0
            try:
                case()
            except BaseException as exc:
                print(f"FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            text = f.read()
        _, status = os.waitpid(pid, 0)
        out[name] = {"exit": os.waitstatus_to_exitcode(status), "output": text}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    script = tmp_path_factory.mktemp("routes") / "routes.py"
    script.write_text(ROUTES)
    env = {k: v for k, v in os.environ.items() if k != "DATAMARKETS_SOLVER_OUTPUT"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one fresh process per route")
def test_the_check_sees_the_banner_of_a_raw_highs(routes):
    """The control: HiGHS itself prints its banner on a first ``Highs()`` (else the tests below
    could not fail)."""
    assert routes["raw"]["exit"] == 0 and BANNER in routes["raw"]["output"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one fresh process per route")
@pytest.mark.parametrize(
    "route",
    [
        "new_highs",
        "appsi_highs",
        "contrib_highs",
        "auction-welfare/highs",
        "auction-kkt/highs",
        "chain-equilibrium/highs",
        "cournot-sellers/cvxpy-highs",
    ],
)
def test_no_route_prints_anything_of_highs(routes, route):
    r = routes[route]
    assert r["exit"] == 0, r["output"]
    assert "HiGHS" not in r["output"], r["output"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one fresh process per route")
def test_solver_output_is_printed_when_asked_for(routes):
    assert routes["opt_in"]["exit"] == 0 and BANNER in routes["opt_in"]["output"]


def test_new_highs_is_silent_unless_asked(monkeypatch):
    monkeypatch.delenv("DATAMARKETS_SOLVER_OUTPUT", raising=False)
    assert not solver_output_requested()
    assert new_highs().getOptions().output_flag is False
    assert new_highs(output_flag=True).getOptions().output_flag is True
    monkeypatch.setenv("DATAMARKETS_SOLVER_OUTPUT", "1")
    assert solver_output_requested() and new_highs().getOptions().output_flag is True
    monkeypatch.setenv("DATAMARKETS_SOLVER_OUTPUT", "0")
    assert not solver_output_requested()


def test_silencing_keeps_what_was_printed_before_and_restores_stdout(capfd):
    """The fd swap around the first ``Highs()`` must neither swallow earlier output nor leave
    stdout pointing at devnull."""
    print("before", flush=True)
    silence_highs_banner()
    import highspy

    highspy.Highs()
    print("after", flush=True)
    out, _ = capfd.readouterr()
    assert out == "before\nafter\n"


# ------------------------------------------------------------------------ a real sweep, --json
HIGHS_SPEC = """
[[sweep]]
name = "welfare"
formulation = "auction-welfare"
solver = "highs"
[sweep.grid]
buyers = [3, 4]
[sweep.fixed]
sellers = 2

[[sweep]]
name = "cournot"
formulation = "cournot-sellers"
solver = "highs"
[sweep.grid]
sellers = [2, 3]
[sweep.fixed]
model = "symmetric"
"""


def test_sweep_json_stdout_parses_and_stderr_is_empty(tmp_path):
    """`datamarkets sweep --json` on a local Dask cluster of 2 worker processes, every task on a
    HiGHS route (highspy arrays, cvxpy's HiGHS): stdout is exactly the JSON report, stderr is
    empty (no banner, no shutdown traceback)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(HIGHS_SPEC)
    env = {k: v for k, v in os.environ.items() if k != "DATAMARKETS_SOLVER_OUTPUT"}
    cmd = [sys.executable, "-m", "datamarkets.cli", "sweep", str(spec), "--out", str(tmp_path / "st")]
    proc = subprocess.run(
        [*cmd, "--workers", "2", "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # nothing but the report on stdout
    assert (report["done"], report["failed"], report["lost"]) == (4, 0, 0), report
    assert proc.stderr == ""
    assert Path(report["store"]) == tmp_path / "st"
