"""Bad files and arguments: one line on stderr, exit 2, never a traceback (issue 11).

Each test feeds one of the inputs that used to crash (RecursionError, AttributeError, ValueError
tracebacks, a traceback after the work was done) or was silently accepted (duplicate ids, numbers
as strings), through the same entry point a user calls: ``datamarkets.cli.main`` in process, or the
library function.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from datamarkets.errors import GraphError, InvalidInputError

from helpers import run_main

ENV = {**os.environ, "DATAMARKETS_NO_PROGRESS": "1"}

MARKET = {
    "nodes": [
        {"id": "b0", "role": "buyer", "valuation": {"kind": "quadratic", "a": 2.0, "b": 0.5}},
        {"id": "b1", "role": "buyer", "valuation": {"kind": "quadratic", "a": 1.5, "b": 1.0}},
        {"id": "s0", "role": "seller", "supply": 1.0},
        {"id": "s1", "role": "seller", "supply": 2.0},
    ],
    "edges": [
        {"source": "b0", "target": "s0"},
        {"source": "b0", "target": "s1"},
        {"source": "b1", "target": "s1"},
    ],
}

ESTIMATION = {
    "nodes": [
        {"id": "s1", "role": "source", "x": 0.3, "alpha": 1.0},
        {"id": "s2", "role": "source", "x": 1.0, "alpha": 1.0},
        {
            "id": "b1",
            "role": "buyer",
            "estimator": {"kind": "polynomial", "degree": 1},
            "F": {"kind": "uniform", "low": -1.0, "high": 1.0},
            "eta": 1.0,
        },
    ],
    "edges": [{"source": "s1", "target": "b1"}, {"source": "s2", "target": "b1"}],
}


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("Running HiGHS", "Includes"))]
    assert len(lines) == 1, err
    assert lines[0].startswith("datamarkets: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


def _write(path: Path, obj: object) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _mutated(base: dict, fn) -> dict:
    d = json.loads(json.dumps(base))
    fn(d)
    return d


# ------------------------------------------------------------------------------ loaders
@pytest.mark.parametrize(
    "args",
    [
        ("auction", "solve", "--graph", "{f}"),
        ("gne", "solve", "--graph", "{f}"),
        ("verify", "{f}"),
        ("solve", "auction-welfare", "-i", "{f}"),
        ("auction", "verify", "--graph", "{m}", "--allocation", "{f}"),
        ("chain", "solve", "--model-file", "{f}"),
    ],
)
def test_deeply_nested_json_is_one_line(capsys, tmp_path, args):
    deep = _write(tmp_path / "deep.json", "[" * 200_000)
    m = _write(tmp_path / "m.json", MARKET)
    argv = [a.format(f=deep, m=m) for a in args]
    code, _, err = run_main(capsys, *argv)
    assert_one_line(code, err, "deep.json", "nested too deeply")


def test_read_json_bounds_depth_below_the_recursion_limit(tmp_path):
    from datamarkets.io import MAX_JSON_DEPTH, read_json

    ok = _write(tmp_path / "ok.json", "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert read_json(ok) == eval("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    # parses (well under the recursion limit) but deeper than any datamarkets format: rejected
    deep = _write(tmp_path / "d.json", "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        read_json(deep)
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        read_json(tmp_path)


BAD_MARKETS = {
    "nodes_not_a_list": ({"nodes": "abc"}, "'nodes' must be a list"),
    "null_id": (_mutated(MARKET, lambda d: d["nodes"][0].update(id=None)), "has id None"),
    "duplicate_id": (_mutated(MARKET, lambda d: d["nodes"][1].update(id="b0")), "duplicate node id 'b0'"),
    "int_and_str_id": (
        {
            "nodes": [
                {"id": "b0", "role": "buyer", "valuation": {"kind": "quadratic", "a": 2.0, "b": 0.5}},
                {"id": 1, "role": "seller", "supply": 1.0},
                {"id": "1", "role": "seller", "supply": 1.0},
            ],
            "edges": [{"source": "b0", "target": 1}, {"source": "b0", "target": "1"}],
        },
        "node ids 1 and '1' collide",
    ),
    "edge_to_unknown_node": (
        _mutated(MARKET, lambda d: d["edges"].append({"source": "b1", "target": "s9"})),
        "'s9' is not the id of a listed node",
    ),
    "supply_as_string": (_mutated(MARKET, lambda d: d["nodes"][2].update(supply="0.5")), "supply '0.5'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MARKETS))
def test_bad_auction_market_is_one_line(capsys, tmp_path, case):
    data, fragment = BAD_MARKETS[case]
    f = _write(tmp_path / "market.json", data)
    code, _, err = run_main(capsys, "auction", "solve", "--graph", str(f))
    assert_one_line(code, err, fragment)
    # the same document through the generic loader of `solve -i`
    code, _, err = run_main(capsys, "solve", "auction-welfare", "-i", str(f))
    assert_one_line(code, err, fragment)


BAD_ESTIMATION = {
    "nodes_not_a_list": ({"nodes": "abc"}, "'nodes' must be a list"),
    "null_id": (_mutated(ESTIMATION, lambda d: d["nodes"][1].update(id=None)), "has id None"),
    "duplicate_id": (_mutated(ESTIMATION, lambda d: d["nodes"][1].update(id="s1")), "duplicate node id 's1'"),
    "alpha_as_string": (_mutated(ESTIMATION, lambda d: d["nodes"][0].update(alpha="0.5")), "alpha='0.5'"),
    "x_as_string": (_mutated(ESTIMATION, lambda d: d["nodes"][0].update(x="0.5")), "position x='0.5'"),
    "F_bound_as_string": (
        _mutated(ESTIMATION, lambda d: d["nodes"][2]["F"].update(low="-1")),
        "F low must be numeric",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ESTIMATION))
def test_bad_estimation_market_is_one_line(capsys, tmp_path, case):
    data, fragment = BAD_ESTIMATION[case]
    f = _write(tmp_path / "market.json", data)
    code, _, err = run_main(capsys, "gne", "solve", "--graph", str(f))
    assert_one_line(code, err, fragment)


def test_good_files_still_load(tmp_path):
    from datamarkets.graphs.estimation_market import read_estimation_market
    from datamarkets.graphs.market import read_market_json

    G = read_market_json(_write(tmp_path / "m.json", MARKET))
    assert sorted(G.nodes) == ["b0", "b1", "s0", "s1"] and G.number_of_edges() == 3
    H = read_estimation_market(_write(tmp_path / "e.json", ESTIMATION))
    assert sorted(H.nodes) == ["b1", "s1", "s2"]
    # integer ids that do not collide as text are fine
    ints = {
        "nodes": [
            {"id": 0, "role": "buyer", "valuation": {"kind": "quadratic", "a": 2.0, "b": 0.5}},
            {"id": 1, "role": "seller", "supply": 1.0},
        ],
        "edges": [{"source": 0, "target": 1}],
    }
    assert sorted(read_market_json(_write(tmp_path / "i.json", ints)).nodes) == [0, 1]


@pytest.mark.parametrize(
    "game",
    [
        {"values": ["0", "1"], "start": 0, "transitions": [[0.5, 0.5], [0, 1]], "n": 2},
        {"values": [0, 1], "start": 0, "transitions": [["0.5", 0.5], [0, 1]], "n": 2},
        {"values": [0, 1], "start": ["0.5", 0.5], "transitions": [[0.5, 0.5], [0, 1]], "n": 2},
        {"values": [0, True], "start": 0, "transitions": [[0.5, 0.5], [0, 1]], "n": 2},
    ],
)
def test_chain_loader_rejects_numbers_as_strings(tmp_path, game):
    from datamarkets.models.chain_game import load_game

    with pytest.raises(InvalidInputError, match="must be numeric"):
        load_game(_write(tmp_path / "g.json", game))


def test_shared_number_checks():
    from datamarkets.validation import real_array, real_number

    assert real_number(3, "x") == 3.0
    for bad in ("0.5", True, None, [1.0]):
        with pytest.raises(InvalidInputError, match="x must be a number"):
            real_number(bad, "x")
    with pytest.raises(GraphError):
        real_number(float("inf"), "x", error=GraphError)
    assert real_array([[1, 2.5]], "a").tolist() == [[1.0, 2.5]]
    with pytest.raises(InvalidInputError, match="rectangular"):
        real_array([[1, 2], [3]], "a")


# ------------------------------------------------------------------------------ --out, checked first
def _out_commands(tmp_path: Path) -> list[tuple[str, ...]]:
    m = _write(tmp_path / "m.json", MARKET)
    e = _write(tmp_path / "e.json", ESTIMATION)
    g = _write(
        tmp_path / "g.json", {"values": [0, 1], "start": 0, "transitions": [[0.5, 0.5], [0, 1]], "n": 2}
    )
    return [
        ("solve", "auction-welfare", "-p", "size=5", "--out"),
        ("auction", "solve", "--graph", str(m), "--out"),
        ("auction", "generate", "--buyers", "3", "--sellers", "2", "--out"),
        ("gne", "solve", "--graph", str(e), "--out"),
        ("gne", "example", "--x1", "0.3", "--out"),
        ("chain", "solve", "--model-file", str(g), "--out"),
    ]


@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_out_to_a_directory_or_unwritable_path_is_one_line(capsys, tmp_path, k, where):
    cmd = _out_commands(tmp_path)[k]
    if where == "directory":
        dest = tmp_path / "adir"
        dest.mkdir()
    else:
        blocker = _write(tmp_path / "plainfile", "x")
        dest = blocker / "r.json"
    code, _, err = run_main(capsys, *cmd, str(dest))
    assert_one_line(code, err, str(dest))
    assert not (dest.is_file())


def test_out_checked_before_the_work(monkeypatch, capsys, tmp_path):
    import datamarkets.formulations.welfare as welfare

    def boom(*a, **k):  # the solve must not even start
        raise AssertionError("solved before checking --out")

    monkeypatch.setattr(welfare, "solve_welfare", boom)
    code, _, err = run_main(
        capsys,
        "auction",
        "solve",
        "--graph",
        str(_write(tmp_path / "m.json", MARKET)),
        "--out",
        str(tmp_path),
    )
    assert_one_line(code, err, "is a directory")


@pytest.mark.parametrize("where", ["gne_sweep", "bench", "sweep"])
def test_directory_out_that_is_a_file_is_one_line(capsys, tmp_path, where):
    f = _write(tmp_path / "plainfile", "x")
    spec = _write(tmp_path / "s.toml", 'formulation = "auction-welfare"\n[grid]\nsize = [5]\n')
    argv = {
        "gne_sweep": ("gne", "sweep", "--steps", "2", "--out", str(f)),
        "bench": ("bench", "solvers", "--family", "auction-welfare", "--sizes", "5", "--out", str(f)),
        "sweep": ("sweep", str(spec), "--out", str(f)),
    }[where]
    code, _, err = run_main(capsys, *argv)
    assert_one_line(code, err, "not a directory")


# ------------------------------------------------------------------------------ numeric options
@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_bad_tol_is_exit_2(capsys, tmp_path, value):
    m = str(_write(tmp_path / "m.json", MARKET))
    code, _, err = run_main(capsys, "auction", "solve", "--graph", m, "--tol", value)
    assert_one_line(code, err, "--tol must be a finite number > 0")


@pytest.mark.parametrize("value", ["nan", "-1", "0"])
def test_bad_time_limit_is_exit_2(capsys, tmp_path, value):
    code, _, err = run_main(capsys, "solve", "auction-welfare", "-p", "size=5", "--time-limit", value)
    assert_one_line(code, err, "--time-limit must be a number of seconds > 0")
    code, _, err = run_main(
        capsys,
        "bench",
        "solvers",
        "--family",
        "auction-welfare",
        "--out",
        str(tmp_path / "b"),
        "--time-limit",
        value,
    )
    assert_one_line(code, err, "--time-limit")


# ------------------------------------------------------------------------------ library calls
def test_library_bad_arguments_raise_invalid_input(tmp_path):
    from datamarkets import Result, get_formulation
    from datamarkets.models.chain_equilibrium import solve_equilibrium
    from datamarkets.models.chain_simulation import simulate
    from datamarkets.models.chain_valuations import paper_model
    from datamarkets.status import Status

    g = paper_model("paper-1", 3, "ave")
    with pytest.raises(InvalidInputError, match="unknown method 'x'"):
        solve_equilibrium(g, method="x")
    with pytest.raises(InvalidInputError, match="seed must be None or an integer"):
        simulate(g, solve_equilibrium(g), samples=10, seed="x")
    with pytest.raises(InvalidInputError, match="saved result"):
        get_formulation("auction-welfare").verify("str")  # type: ignore[arg-type]
    for bad, match in [
        ({}, "missing"),
        ("x", "JSON object"),
        ({"kind": "k", "status": "nope"}, "unknown result status"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            Result.from_dict(bad)  # type: ignore[arg-type]
    r = Result(kind="k", status=Status.OPTIMAL, method="m")
    with pytest.raises(InvalidInputError, match="is a directory"):
        r.save(tmp_path)
    assert Result.from_dict(json.loads(r.to_json())).kind == "k"


def test_unknown_solver_and_mode_choices_are_invalid_input():
    from datamarkets.formulations.gne_best_response import best_response_gaps, best_response_iteration
    from datamarkets.formulations.kkt_mpec import solve_kkt
    from datamarkets.graphs.estimation_market import two_firm_example
    from datamarkets.graphs.market import example1_market
    from datamarkets.models.estimators import market_coefficients

    with pytest.raises(InvalidInputError, match="unknown KKT MILP solver"):
        solve_kkt(example1_market(), solver="nope")
    inp = market_coefficients(two_firm_example(0.3))
    d = [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(InvalidInputError, match="unknown mode"):
        best_response_gaps(inp, d, d, mode="nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown backend"):
        best_response_iteration(inp, backend="nope")


# ------------------------------------------------------------------------------ killed writes
def test_stale_temporaries_of_the_target_are_removed(tmp_path):
    from datamarkets.io import atomic_write_json

    target = tmp_path / "r.json"
    stale = _write(tmp_path / ".r.json.k1l2m3n4.json", "{" * 10)
    os.utime(stale, (1.0, 1.0))  # left by a writer killed long ago
    fresh = _write(tmp_path / ".r.json.abcdefgh.json", "{")  # a live concurrent writer: newer than us
    os.utime(fresh, (time.time() + 60, time.time() + 60))
    other = _write(tmp_path / ".other.json.k1l2m3n4.json", "{")  # another target's temporary
    os.utime(other, (1.0, 1.0))
    foreign = _write(tmp_path / ".r.json.backup", "{")  # not our name pattern
    os.utime(foreign, (1.0, 1.0))
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert not stale.exists()
    assert fresh.exists() and other.exists() and foreign.exists()


def test_kill_9_during_out_leaves_nothing_after_the_next_write(tmp_path):
    """A real SIGKILL inside an atomic write, then a new process writing the same path."""
    target = tmp_path / "r.json"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from datamarkets.io import atomic_path
                with atomic_path({str(target)!r}) as tmp:
                    tmp.write_text("x" * 100000)
                    print(tmp, flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    tmp_name = Path(child.stdout.readline().strip())
    assert tmp_name.exists() and tmp_name.parent == tmp_path
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert tmp_name.exists()  # what the issue reported: the temporary survives the kill
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from datamarkets.io import atomic_write_json; atomic_write_json({str(target)!r}, [1])",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert not tmp_name.exists()
    assert json.loads(target.read_text()) == [1]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


def test_interrupted_chain_reproduction_is_marked_incomplete(monkeypatch, tmp_path):
    import datamarkets.cli.chain_experiments as ce
    from datamarkets.io import INCOMPLETE_MARKER, incomplete_marker

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ce, "figure3_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ce.reproduce(
            tmp_path,
            models=("paper-1",),
            n=2,
            n_values=(2,),
            seeds=2,
            samples=200,
            progress=False,
            opt_random_starts=0,
            opt_max_evals=20,
            certify=False,
        )
    assert incomplete_marker(tmp_path) is not None
    assert "has not finished" in (tmp_path / INCOMPLETE_MARKER).read_text()
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="incomplete earlier run"):
        summary = ce.reproduce(
            tmp_path,
            models=("paper-1",),
            n=2,
            n_values=(2,),
            seeds=2,
            samples=200,
            progress=False,
            opt_random_starts=0,
            opt_max_evals=20,
            sweep_max_evals=20,
            certify=False,
        )
    assert incomplete_marker(tmp_path) is None
    assert Path(summary["files"]["summary"]).is_file()
