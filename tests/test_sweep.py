"""Dask sweeps (datamarkets.cli.sweep, `datamarkets sweep`): expansion, store, resume, worker death.

Oracles: a test formulation whose answer is known in closed form (objective = 10 i + j) is run on a
real 2-worker LocalCluster (processes); the store must end with exactly one row per grid point,
each with the closed-form objective, after a worker is SIGKILLed mid-sweep, after a task kills its
own worker, after an interrupted run is resumed. The built-in chain formulation is checked against
an in-process solve of the same instance (a second route).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from datamarkets.cli.sweep import (
    SweepStoreWarning,
    compact_store,
    expand,
    finished_keys,
    load_spec,
    parse_spec,
    read_store,
    run_sweep,
    run_task,
    task_key,
)
from datamarkets.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "sweeps"
REF = "sweep_test_plugin:Grid"

PLUGIN = textwrap.dedent(
    '''
    """A formulation with a closed-form answer, importable on the workers (module:Class form)."""
    import os
    import time

    from datamarkets.errors import ConvergenceError, InvalidInputError
    from datamarkets.formulation import Formulation, check_params
    from datamarkets.result import Certificate, Result
    from datamarkets.status import Status


    class Grid(Formulation):
        name = "sweep-test-grid"
        summary = "objective = 10 i + j"
        kinds = ("sweep-test",)
        solvers = ("direct", "alt")
        parameters = {
            "i": 0, "j": 0, "sleep": 0.0, "fail": "", "die_marker": "", "tag": "", "gate": "", "gate_from": 0
        }

        def instance(self, params):
            p = check_params(self.name, params, self.parameters)
            if p["fail"] == "input":
                raise InvalidInputError(f"point i={p['i']!r} is invalid on purpose")
            return p

        def instance_to_dict(self, instance):
            return dict(instance)

        def instance_from_dict(self, d):
            return dict(d)

        def build(self, instance, solver):
            return dict(instance)

        def solve_program(self, program, solver, *, time_limit=None):
            marker = program["die_marker"]
            if marker and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # this worker process dies in the middle of the task
            time.sleep(program["sleep"])
            if program["gate"] and program["i"] >= program["gate_from"]:
                waited = time.monotonic()
                while not os.path.exists(program["gate"]) and time.monotonic() - waited < 60:
                    time.sleep(0.02)  # held until the test opens the gate
            if program["fail"] == "algorithm":
                raise ConvergenceError("no convergence on purpose", 7)
            if program["fail"] == "crash":
                raise RuntimeError("boom on purpose")
            objective = 10 * program["i"] + program["j"]
            return Result(
                kind="sweep-test",
                status=Status.OPTIMAL,
                method=solver,
                solution={"objective": objective, "pid": os.getpid()},
            )

        def certify(self, instance, solution):
            cert = Certificate()
            cert.add("objective_abs", abs(solution["objective"] - (10 * instance["i"] + instance["j"])), 0.0)
            return cert
    '''
)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("plugin")
    (d / "sweep_test_plugin.py").write_text(PLUGIN)
    sys.path.insert(0, str(d))  # spawned worker processes inherit the parent's sys.path
    yield REF
    sys.path.remove(str(d))
    sys.modules.pop("sweep_test_plugin", None)


@pytest.fixture(scope="module")
def client(plugin: str):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # a free port: never collide on :8787
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture
def healthy(client):
    """The shared client with both workers up (a previous test may have killed one)."""
    client.wait_for_workers(2, timeout=30)
    return client


def grid_spec(i: int = 6, j: int = 3, **fixed) -> dict:
    return {"formulation": REF, "grid": {"i": list(range(i)), "j": list(range(j))}, "fixed": fixed}


def assert_closed_form(df, n: int) -> None:
    assert len(df) == n
    assert df["key"].is_unique
    assert (df["status"] == "optimal").all() and df["certified"].all()
    assert (df["objective"] == 10 * df["i"] + df["j"]).all()


# -------------------------------------------------------------------------------- spec and keys
@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=4), min_size=1))
def test_task_key_ignores_parameter_order_but_not_values(params):
    reordered = dict(reversed(list(params.items())))
    assert task_key("f", "s", params) == task_key("f", "s", reordered)
    k = next(iter(params))
    changed = {**params, k: [params[k]]}
    assert task_key("f", "s", params) != task_key("f", "s", changed)
    assert task_key("f", "s", params) != task_key("f", "t", params)
    assert task_key("f", "s", params, rep=0) != task_key("f", "s", params, rep=1)


def test_expand_product_order_and_keys(plugin):
    tasks = expand(
        {"formulation": REF, "grid": {"i": [0, 1, 2], "j": {"range": [0, 2]}}, "fixed": {"sleep": 0}}
    )
    assert [(t.params["i"], t.params["j"]) for t in tasks] == [(i, j) for i in range(3) for j in range(2)]
    assert all(t.solver == "direct" and t.params["sleep"] == 0 for t in tasks)
    assert len({t.key for t in tasks}) == 6
    # the key does not depend on whether a parameter is in [grid] or [fixed], nor on the spec's order
    moved = expand({"formulation": REF, "grid": {"j": [0, 1], "i": [0, 1, 2], "sleep": [0]}})
    assert {t.key for t in moved} == {t.key for t in tasks}
    # solver lists and repeats multiply; rep is part of the key
    more = expand({"formulation": REF, "solver": ["direct", "ALT"], "repeat": 2, "grid": {"i": [0, 1]}})
    assert (
        len(more) == 8 and {t.solver for t in more} == {"direct", "alt"} and {t.rep for t in more} == {0, 1}
    )
    # the same point in two [[sweep]] tables is one task
    two = expand({"formulation": REF, "sweep": [{"grid": {"i": [0, 1]}}, {"grid": {"i": [1, 2]}}]})
    assert sorted(t.params["i"] for t in two) == [0, 1, 2]
    assert [t.sweep for t in two] == ["sweep[0]", "sweep[0]", "sweep[1]"]


def test_axis_columns_have_one_type(plugin):
    tasks = expand({"formulation": REF, "grid": {"i": [0], "j": [1, 2.5], "tag": ["a", 3, [1, 2]]}})
    assert {type(t.columns["j"]) for t in tasks} == {float}
    assert [t.columns["tag"] for t in tasks[:3]] == ["a", "3", "[1, 2]"]
    assert tasks[2].params["tag"] == [1, 2]  # the formulation gets the value itself


def test_seeds_and_linspace(plugin):
    [s] = parse_spec(
        {"formulation": REF, "seeds": {"range": [0, 3]}, "grid": {"x": {"linspace": [-1, 0.9, 20]}}}
    )
    assert s.grid["seed"] == [0, 1, 2]
    assert len(s.grid["x"]) == 20 and s.grid["x"][0] == -1.0 and s.grid["x"][-1] == 0.9
    assert all(math.isclose(b - a, 0.1) for a, b in zip(s.grid["x"], s.grid["x"][1:], strict=False))
    assert s.size == 60


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"formulation": "no-such-formulation", "grid": {"i": [1]}}, "unknown formulation"),
        ({"formulation": "sweep_test_plugin:Nope", "grid": {"i": [1]}}, "cannot load formulation"),
        ({"formulation": "json:dumps", "grid": {"i": [1]}}, "not a Formulation"),
        ({"formulation": REF, "grid": {}}, "grid] is empty"),
        ({"formulation": REF}, "needs a [grid]"),
        ({"formulation": REF, "grid": {"i": 3}}, "must be a list"),
        ({"formulation": REF, "grid": {"i": []}}, "is empty"),
        ({"formulation": REF, "grid": {"k": [1]}}, "no parameter(s) 'k'"),
        ({"formulation": REF, "grid": {"i": [1]}, "fixed": {"bogus": 1}}, "no parameter(s) 'bogus'"),
        ({"formulation": REF, "solver": "gurobi", "grid": {"i": [1]}}, "cannot use solver 'gurobi'"),
        ({"formulation": REF, "grid": {"i": [1]}, "fixed": {"i": 2}}, "in both [grid] and [fixed]"),
        ({"formulation": REF, "grdi": {"i": [1]}}, "unknown key(s) 'grdi'"),
        ({"formulation": REF, "grid": {"i": [1]}, "retries": -1}, "'retries'"),
        ({"formulation": REF, "grid": {"i": [1]}, "repeat": 0}, "'repeat'"),
        ({"formulation": REF, "grid": {"i": [1]}, "time_limit": 0}, "'time_limit'"),
        ({"formulation": REF, "grid": {"i": [float("nan")]}}, "not finite"),
        ({"formulation": REF, "grid": {"i": {"range": [0, 5, 0]}}}, "range"),
        ({"formulation": REF, "grid": {"i": {"linspace": [0, 1]}}}, "linspace"),
        ({"formulation": REF, "seeds": [0], "grid": {"seed": [1]}}, "not both"),
        ({"formulation": REF, "seeds": [0.5], "grid": {"i": [1]}}, "integers"),
        ({"formulation": REF, "sweep": []}, "array of tables"),
    ],
)
def test_bad_specs_fail_before_anything_runs(plugin, tmp_path, doc, message):
    with pytest.raises(InvalidInputError) as info:
        run_sweep(doc, tmp_path / "store", scheduler="tcp://never-contacted:1", progress=False)
    assert message in str(info.value)
    assert not (tmp_path / "store").exists()


def test_load_spec_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("formulation = \n")
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        load_spec(bad)


EXAMPLE_SIZES = {
    "chain_mechanisms.toml": 27,
    "two_firm.toml": 20,
    "auction_epsilon.toml": 27,
    "cournot_sellers.toml": 60,
}


def test_example_specs_parse():
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == sorted(EXAMPLE_SIZES)
    for name, size in EXAMPLE_SIZES.items():
        assert sum(s.size for s in load_spec(EXAMPLES / name)) == size


@pytest.mark.parametrize("name", sorted(EXAMPLE_SIZES))
def test_example_specs_expand(name):
    from datamarkets.registry import list_formulations

    [spec] = load_spec(EXAMPLES / name)
    assert spec.formulation in list_formulations()  # every example names an installed formulation
    tasks = expand(EXAMPLES / name)
    assert len(tasks) == EXAMPLE_SIZES[name] and len({t.key for t in tasks}) == len(tasks)


# --------------------------------------------------------------------------- runs on a cluster
def test_worker_killed_mid_sweep_loses_nothing(healthy, tmp_path):
    store = tmp_path / "store"
    pids = healthy.run(os.getpid)  # {worker address: pid}
    victim = sorted(pids.values())[0]
    killed_at: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            n = len(list(store.glob("part-*.parquet"))) if store.is_dir() else 0
            if n >= 4:
                os.kill(victim, signal.SIGKILL)
                killed_at.append(n)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    report = run_sweep(grid_spec(sleep=0.25), store, healthy, progress=False)
    thread.join()

    assert killed_at and 4 <= killed_at[0] < 18  # the kill happened mid-sweep
    assert (report.done, report.failed, report.lost, report.skipped) == (18, 0, 0, 0) and report.complete
    raw = read_store(store, dedupe=False)  # every stored row: no duplicates even before de-duplication
    assert_closed_form(raw, 18)
    assert set(raw["key"]) == {t.key for t in expand(grid_spec(sleep=0.25))}
    assert victim in set(raw["pid"])  # the victim did finish tasks before dying

    again = run_sweep(grid_spec(sleep=0.25), store, "tcp://never-contacted:1", progress=False)
    assert (again.skipped, again.done) == (18, 0)  # nothing submitted: no scheduler was needed


def test_task_that_kills_its_worker_is_retried(healthy, tmp_path):
    marker = tmp_path / "died"
    report = run_sweep(grid_spec(4, 1, die_marker=str(marker)), tmp_path / "store", healthy, progress=False)
    assert marker.exists()  # one attempt did kill its worker process
    assert (report.done, report.lost) == (4, 0)
    assert_closed_form(read_store(tmp_path / "store"), 4)


def test_interrupted_run_resumes_with_the_rest(healthy, tmp_path):
    store = tmp_path / "store"
    first = run_sweep(grid_spec(), store, healthy, progress=False, max_tasks=5)
    assert (first.done, first.remaining, first.complete) == (5, 13, False)
    before = read_store(store).set_index("key")["finished_at"]
    second = run_sweep(grid_spec(), store, healthy, progress=False)
    assert (second.skipped, second.done, second.complete) == (5, 13, True)
    df = read_store(store)
    assert_closed_form(df, 18)
    assert (df.set_index("key").loc[before.index, "finished_at"] == before).all()  # not recomputed


def test_temporary_and_corrupt_files_are_ignored(healthy, tmp_path):
    store = tmp_path / "store"
    run_sweep(grid_spec(), store, healthy, progress=False, max_tasks=3)
    part = next(store.glob("part-*.parquet")).read_bytes()
    (store / ".part-0123.parquet.tmpabc.parquet").write_bytes(part[: len(part) // 2])  # a torn write
    (store / "part-garbage.parquet").write_bytes(b"not parquet at all")
    (store / "notes.txt").write_text("hello")
    with pytest.warns(SweepStoreWarning, match="part-garbage"):
        assert len(read_store(store)) == 3
    with pytest.warns(SweepStoreWarning):
        report = run_sweep(grid_spec(), store, healthy, progress=False)
    assert (report.skipped, report.done) == (3, 15)
    with pytest.warns(SweepStoreWarning):
        assert_closed_form(read_store(store), 18)


def test_failed_tasks_are_recorded_and_crashes_retried(healthy, tmp_path):
    store = tmp_path / "store"
    spec = {"formulation": REF, "retries": 1, "grid": {"i": [1], "fail": ["", "input", "algorithm", "crash"]}}
    report = run_sweep(spec, store, healthy, progress=False)
    assert (report.done, report.failed, report.lost, report.complete) == (1, 2, 1, False)
    assert any("RuntimeError: boom on purpose" in e for e in report.errors)
    df = read_store(store).set_index("fail")
    assert len(df) == 3 and "crash" not in df.index  # a crash is not a result
    assert df.loc["", "objective"] == 10 and pd.isna(df.loc["", "error_type"])
    assert df.loc["input", "status"] == "error" and df.loc["input", "error_type"] == "InvalidInputError"
    assert "invalid on purpose" in df.loc["input", "error"]
    assert df.loc["algorithm", "error_type"] == "ConvergenceError"
    assert "after 7 iterations" in df.loc["algorithm", "error"]

    again = run_sweep(spec, store, healthy, progress=False)
    assert (again.skipped, again.lost) == (3, 1)  # only the crash is tried again
    retried = run_sweep(spec, store, healthy, progress=False, retry_failed=True)
    assert (retried.skipped, retried.failed, retried.lost) == (1, 2, 1)
    assert len(read_store(store, dedupe=False)) == 3
    assert finished_keys(store, include_failed=False) == set(df.loc[[""], "key"])


def test_compact_store_keeps_one_row_per_key(healthy, tmp_path):
    store = tmp_path / "store"
    spec = {
        "formulation": REF,
        "sweep": [{"grid": {"i": [0, 1], "tag": ["a", "b"]}}, {"grid": {"i": [2], "tag": [1, 2]}}],
    }
    run_sweep(spec, store, healthy, progress=False)
    before = read_store(store).sort_values("key").reset_index(drop=True)
    assert set(before["tag"]) == {"a", "b", "1", "2"}  # parts with text and integer tags: text wins
    merged = compact_store(store)
    assert [p.name for p in store.glob("*.parquet")] == [merged.name]
    after = read_store(store).sort_values("key").reset_index(drop=True)
    assert list(after["key"]) == list(before["key"])
    assert list(after["objective"]) == list(before["objective"])
    assert run_sweep(spec, store, healthy, progress=False).skipped == 6


def test_builtin_chain_formulation_matches_an_in_process_solve(healthy, tmp_path):
    from datamarkets.registry import get_formulation

    spec = {"formulation": "chain-equilibrium", "grid": {"model": ["paper-1", "paper-2"], "n": [3]}}
    report = run_sweep(spec, tmp_path / "store", healthy, progress=False)
    assert (report.done, report.lost) == (2, 0)
    df = read_store(tmp_path / "store")
    assert len(df) == 2 and df["certified"].all() and set(df["solver"]) == {"direct"}
    f = get_formulation("chain-equilibrium")
    for row in df.itertuples():
        direct = f.solve(f.instance({"model": row.model, "n": row.n}))
        assert math.isclose(row.objective, direct.solution["objective"], rel_tol=1e-12)
        assert math.isclose(row.social_welfare, direct.solution["social_welfare"], rel_tol=1e-12)


def test_default_scheduler_starts_and_closes_a_local_cluster(plugin, tmp_path):
    report = run_sweep(grid_spec(2, 2), tmp_path / "store", n_workers=1, progress=False)
    assert (report.done, report.lost, report.complete) == (4, 0, True)
    df = read_store(tmp_path / "store")
    assert_closed_form(df, 4)
    assert df["worker"].nunique() == 1  # the one local worker
    with pytest.raises(InvalidInputError, match="workers must be"):
        run_sweep(grid_spec(3, 3), tmp_path / "store", n_workers=0, progress=False)


# ------------------------------------------------------------------------------------------ CLI
def cli_app() -> typer.Typer:
    from datamarkets.cli.sweep_command import sweep

    app = typer.Typer()
    app.command("sweep")(sweep)
    app.command("other")(lambda: None)  # two commands: `sweep` is a sub-command, as in datamarkets
    return app


def write_spec(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    tomllib.loads(path.read_text())
    return path


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ('formulation = "nope"\n[grid]\nn = [1]\n', [], "unknown formulation 'nope'"),
        ('formulation = "chain-equilibrium"\n[grid]\nn = 3\n', [], "must be a list"),
        (
            'formulation = "chain-equilibrium"\n[grid]\nn = [3]\n',
            ["--scheduler", "nowhere"],
            "scheduler must be",
        ),
    ],
)
def test_cli_bad_input_one_line_exit_2(tmp_path, text, extra, message):
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    r = CliRunner().invoke(cli_app(), ["sweep", str(spec), "--out", str(tmp_path / "st"), *extra])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datamarkets: error:") and message in lines[0]


def test_cli_unreachable_scheduler_exit_2(tmp_path):
    spec = write_spec(tmp_path / "s.toml", 'formulation = "chain-equilibrium"\n[grid]\nn = [3]\n')
    args = ["sweep", str(spec), "--out", str(tmp_path / "st"), "--scheduler", "tcp://127.0.0.1:9"]
    r = CliRunner().invoke(cli_app(), [*args, "--connect-timeout", "1"])
    assert r.exit_code == 2 and "cannot connect to the Dask scheduler" in r.stderr


def test_cli_runs_on_a_scheduler_address(healthy, tmp_path):
    spec = write_spec(
        tmp_path / "s.toml",
        f"""
        formulation = "{REF}"
        retries = 0
        [grid]
        i = [0, 1, 2]
        fail = ["", "crash"]
        """,
    )
    args = ["sweep", str(spec), "--out", str(tmp_path / "st"), "--scheduler", healthy.scheduler.address]
    dry = CliRunner().invoke(cli_app(), [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0 and len(json.loads(dry.stdout)["to_run"]) == 6
    r = CliRunner().invoke(cli_app(), [*args, "--json"])
    assert r.exit_code == 3, r.output  # the crashing tasks are lost: re-run to retry
    report = json.loads(r.stdout)
    assert (report["done"], report["lost"], report["complete"]) == (3, 3, False)
    assert "3 task(s) did not finish" in r.stderr
    df = read_store(tmp_path / "st")
    assert sorted(df["objective"]) == [0, 10, 20] and df["certified"].all()
    dry = CliRunner().invoke(cli_app(), [*args, "--dry-run", "--json"])
    assert [t["params"]["fail"] for t in json.loads(dry.stdout)["to_run"]] == ["crash"] * 3


def test_cournot_example_rows_match_the_closed_form():
    """Rows of the tutorial's sweep (run in-process, n ≤ 10) against symmetric Cournot:
    q* = (a − c)/(b(n + 1)), price (a + n c)/(n + 1), total profit n q* (price − c)."""
    tasks = [t for t in expand(EXAMPLES / "cournot_sellers.toml") if t.params["sellers"] <= 10]
    assert len(tasks) == 3 * 3 * 5
    for t in tasks:
        row = run_task(t)
        n, a, b, c = t.params["sellers"], t.params["a"], t.params["b"], t.params["c"]
        q = (a - c) / (b * (n + 1))
        price = (a + n * c) / (n + 1)
        assert row["status"] == "optimal" and row["certified"], row
        assert row["total_profit"] == pytest.approx(n * q * (price - c), rel=1e-6)


def sweep_env(plugin_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATAMARKETS_SOLVER_OUTPUT"}
    env["PYTHONPATH"] = os.pathsep.join([plugin_dir, os.environ.get("PYTHONPATH", "")])
    return env


def test_ctrl_c_keeps_finished_tasks_and_a_rerun_resumes(plugin, tmp_path):
    """Ctrl-C on a real `datamarkets sweep` process with a local cluster of 2 worker processes:
    SIGINT goes to the whole process group, as a terminal sends it. Exit 130 with one line and no
    traceback from the driver or any worker; every finished task is in the store (no temporary
    files), and the same command finishes the rest."""
    spec = tmp_path / "spec.toml"
    gate = tmp_path / "gate"  # tasks i >= 2 wait for it: Ctrl-C always lands mid-sweep, however loaded
    spec.write_text(
        f'formulation = "{plugin}"\n[grid]\ni = {{range = [0, 12]}}\n'
        f'[fixed]\nsleep = 0.1\ngate = "{gate}"\ngate_from = 2\n'
    )
    store = tmp_path / "store"
    plugin_dir = next(p for p in sys.path if (Path(p) / "sweep_test_plugin.py").exists())
    env = sweep_env(plugin_dir) | {"PYTHONFAULTHANDLER": "1"}
    env.pop("DATAMARKETS_NO_PROGRESS", None)  # the display on, as for a user
    cmd = [sys.executable, "-m", "datamarkets.cli", "sweep", str(spec), "--out", str(store), "--workers", "2"]
    # no --json: the progress display is on, and on a stderr that is not a terminal it must draw
    # nothing (its last frame was a second line before the error)
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: a test run started in the background (`pytest &`) ignores SIGINT, and
        # the child would inherit that and never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(store.glob("part-*.parquet"))) < 2:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # the driver and its workers, as Ctrl-C in a terminal
    t_int = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # show where it hangs: faulthandler dumps every thread on SIGABRT
        os.killpg(proc.pid, signal.SIGABRT)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"no exit 60 s after Ctrl-C; stacks:\n{err[-6000:]}")
    exit_seconds = time.monotonic() - t_int
    # ≈ 2 s measured; 12.5 s when distributed's atexit hook closed the cluster a second time
    assert exit_seconds < 10.0, f"{exit_seconds:.1f} s from Ctrl-C to exit: running tasks were waited for"
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    [line] = err.strip().splitlines()
    assert line.startswith("datamarkets: error: interrupted:") and "re-run the same command to resume" in line
    assert out == ""
    first = read_store(store, dedupe=False)
    assert 2 <= len(first) < 12 and first["key"].is_unique
    assert not [p.name for p in store.iterdir() if p.name.startswith(".")]  # no torn temp files
    gate.touch()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    rows = read_store(store, dedupe=False)
    assert len(rows) == 12 and rows["key"].is_unique
    assert sorted(rows["objective"]) == [10 * i for i in range(12)]


def test_successful_sweeps_end_without_a_traceback(plugin, tmp_path):
    """Three real `datamarkets sweep --json` runs on 2 local worker processes: each prints its
    JSON report only, and nothing at all on stderr (no CommClosedError or other traceback from
    Dask's shutdown)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(f'formulation = "{plugin}"\n[grid]\ni = {{range = [0, 4]}}\n')
    plugin_dir = next(p for p in sys.path if (Path(p) / "sweep_test_plugin.py").exists())
    for run in range(3):
        store = tmp_path / f"store{run}"
        cmd = [sys.executable, "-m", "datamarkets.cli", "sweep", str(spec), "--out", str(store)]
        proc = subprocess.run(
            [*cmd, "--workers", "2", "--json"],
            env=sweep_env(plugin_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["done"] == 4
        assert proc.stderr == "", proc.stderr
