"""Bad files and arguments found by the adversarial audit of issue 11 (one line, exit 2, no traceback).

Each case crashed with a traceback, was silently accepted, or replaced a file it must not touch on the
code before this audit: integers of 400 or 5,000 digits in JSON, the game loader (no depth bound, numbers
as strings), negative seeds, a polynomial degree of 10⁶ (a hang), chain mechanisms with numbers as
strings or nested 10⁵ deep, duplicate edges, an ``--out`` that is a FIFO (renamed over), click's own
usage errors (a five-line box), and options that were accepted and ignored.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from datamarkets.errors import InvalidInputError

from helpers import run_main

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("datamarkets: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


def _data(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def _write(path: Path, obj: object) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ------------------------------------------------------------------------------ huge integers
@pytest.mark.parametrize("args", [("verify", "{f}"), ("auction", "solve", "--graph", "{f}")])
def test_integer_too_long_to_parse_is_one_line(capsys, tmp_path, args):
    f = _write(tmp_path / "big.json", '{"n": 1' + "0" * 5000 + "}")  # int() refuses > 4300 digits
    code, _, err = run_main(capsys, *[a.format(f=f) for a in args])
    assert_one_line(code, err, "big.json")


def test_integer_beyond_float_range_is_not_finite(capsys, tmp_path):
    text = (DATA / "auction_market.json").read_text().replace('"supply": 2.0', '"supply": 1' + "0" * 400)
    f = _write(tmp_path / "m.json", text)
    for method in ("optimum", "psp"):
        code, _, err = run_main(capsys, "auction", "solve", "--graph", f, "--method", method)
        assert_one_line(code, err, "supply")
    from datamarkets.validation import real_array, real_number

    with pytest.raises(InvalidInputError, match="finite"):
        real_number(10**400, "x")
    assert real_array([1, -(10**400)], "a").tolist() == [1.0, float("-inf")]


# ------------------------------------------------------------------------------ games
@pytest.mark.parametrize(
    ("content", "fragment"),
    [("[" * 200_000, "nested too deeply"), (b"\x80\x81", "not UTF-8"), ("", "not valid JSON")],
)
def test_game_file_garbage_is_one_line(capsys, tmp_path, content, fragment):
    f = tmp_path / "g.json"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = run_main(capsys, "game", "solve", f)
    assert_one_line(code, err, fragment)


def _game_with(fn) -> dict:
    d = _data("game.json")
    fn(d)
    return d


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["Q"][0][0].__setitem__(0, "2.0"), "'Q[0]' must be numeric"),
        (lambda d: d["c"][0].__setitem__(0, "-9"), "'c' must be numeric"),
        (lambda d: d.update(b=["4"]), "'b' must be numeric"),
        (lambda d: d.update(lb=["0.5", 0.0, 0.0]), "'lb'[0] must be a number or 'inf'"),
        (lambda d: d.update(ub=["infinity?", "inf", "inf"]), "'ub'[0]"),
        (lambda d: d.update(sizes=["1", 1, 1]), "sizes must be a list of integers"),
        (lambda d: d.update(sizes=[1.5, 1, 1]), "sizes must be a list of integers"),
        (lambda d: d.update(names=[1, "1", "x"]), "'names' must be a list of strings"),
    ],
)
def test_game_loader_rejects_numbers_as_strings(capsys, tmp_path, mutate, fragment):
    f = _write(tmp_path / "g.json", _game_with(mutate))
    code, _, err = run_main(capsys, "game", "solve", f)
    assert_one_line(code, err, fragment)


def test_game_loader_keeps_infinite_bounds_and_sparse_form():
    from datamarkets.formulations.games import LQGame

    g = LQGame.from_dict(_data("game.json"))  # ub: ["inf", "inf", "inf"]
    assert g.ub.tolist() == [float("inf")] * 3
    d = g.to_dict()
    d["A"] = {"shape": [1, 3], "rows": [0, 0, 0], "cols": [0, 1, 2], "vals": [1.0, 1.0, 1.0]}
    assert LQGame.from_dict(d).A.toarray().tolist() == [[1.0, 1.0, 1.0]]
    d["A"] = {"shape": [1, 3], "rows": ["0", 0, 0], "cols": [0, 1, 2], "vals": [1.0, 1.0, 1.0]}
    with pytest.raises(InvalidInputError, match="'rows' must be a list of integers"):
        LQGame.from_dict(d)


@pytest.mark.parametrize(
    ("opts", "fragment"),
    [
        (("--tol", "nan"), "--tol must be a finite number > 0"),
        (("--tol", "-1"), "--tol must be a finite number > 0"),
        (("--tol", "inf"), "--tol must be a finite number > 0"),
        (("--time-limit", "nan"), "--time-limit must be a number of seconds > 0"),
        (("--enumerate", "-1"), "--enumerate must be an integer >= 0"),
    ],
)
def test_game_solve_options_are_checked(capsys, opts, fragment):
    code, _, err = run_main(capsys, "game", "solve", DATA / "game.json", *opts)
    assert_one_line(code, err, fragment)


# ------------------------------------------------------------------------------ --out to a FIFO
@pytest.mark.parametrize(
    "argv",
    [
        ("game", "solve", str(DATA / "game.json"), "--out"),
        ("game", "generate", "--players", "2", "--size", "4", "--out"),
    ],
)
def test_out_to_a_non_regular_file_is_refused_and_left_alone(capsys, tmp_path, argv):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    code, _, err = run_main(capsys, *argv, fifo)
    assert_one_line(code, err, "not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # the rename of a temporary would have replaced it


def test_atomic_write_never_replaces_a_non_regular_file(tmp_path):
    from datamarkets.io import atomic_write_json

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        atomic_write_json(fifo, {"a": 1})
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.json"]  # no temporary left


def test_game_generate_checks_shared_and_seed(capsys, tmp_path):
    out = tmp_path / "g.json"
    base = ("game", "generate", "--players", "2", "--size", "4", "--out", out)
    code, _, err = run_main(capsys, *base, "--shared", "-5")
    assert_one_line(code, err, "--shared")
    code, _, err = run_main(capsys, *base, "--seed", "-1")
    assert_one_line(code, err, "seed must be None or an integer >= 0")
    assert not out.exists()


# ------------------------------------------------------------------------------ seeds, sizes, degree
@pytest.mark.parametrize(
    "argv",
    [
        ("solve", "auction-welfare", "-p", "seed=-1"),
        ("auction", "generate", "--buyers", "3", "--sellers", "2", "--seed", "-1", "--out", "{out}"),
        ("chain", "optimize", "--model", "paper-1", "-n", "2", "--seed", "-1", "--max-evals", "5"),
    ],
)
def test_negative_seed_is_one_line(capsys, tmp_path, argv):
    code, _, err = run_main(capsys, *[a.format(out=tmp_path / "m.json") for a in argv])
    assert_one_line(code, err, "seed must be None or an integer >= 0, got -1")


def test_generators_check_their_seed():
    from datamarkets.formulations.games import random_lq_game
    from datamarkets.graphs.market import random_bipartite_market

    with pytest.raises(InvalidInputError, match="seed"):
        random_bipartite_market(3, 2, seed=-1)
    with pytest.raises(InvalidInputError, match="seed"):
        random_lq_game(4, seed="x")  # type: ignore[arg-type]


def test_polynomial_degree_is_bounded(capsys, tmp_path):
    code, _, err = run_main(capsys, "solve", "gne", "-p", "degree=-1")
    assert_one_line(code, err, "degree must be an integer ≥ 0")
    market = _data("estimation_market.json")
    market["nodes"][5]["estimator"]["degree"] = 10**6  # hung (> 120 s) before the bound
    t = time.perf_counter()
    code, _, err = run_main(capsys, "gne", "solve", "--graph", _write(tmp_path / "e.json", market))
    assert_one_line(code, err, "degree must be at most")
    assert time.perf_counter() - t < 30
    market["nodes"][5]["estimator"]["degree"] = 50  # allowed, but 5 sources cannot identify 51 features
    code, _, err = run_main(capsys, "gne", "solve", "--graph", _write(tmp_path / "e.json", market))
    assert_one_line(code, err, "rank at most 5 < 51 features")


# ------------------------------------------------------------------------------ chain
@pytest.mark.parametrize(
    ("mechanism", "fragment"),
    [
        ({"tbds": "0.5"}, "TBDS alpha must be a number"),
        ([["1", 0, 0, 0, 0]] + [[1, 0, 0, 0, 0]] * 3, "mechanism must be numeric"),
    ],
)
def test_chain_mechanism_numbers_as_strings(capsys, tmp_path, mechanism, fragment):
    g = _data("chain_game.json")
    g["mechanism"] = mechanism
    code, _, err = run_main(capsys, "chain", "solve", "--model-file", _write(tmp_path / "g.json", g))
    assert_one_line(code, err, fragment)
    code, _, err = run_main(
        capsys, "chain", "solve", "--model", "paper-1", "-n", "4", "--mechanism", json.dumps(mechanism)
    )
    assert_one_line(code, err, fragment)


@pytest.mark.parametrize("spec", ["[" * 100_000, "[[NaN, 0]]"])
def test_chain_mechanism_option_garbage_is_one_line(capsys, spec):
    code, _, err = run_main(capsys, "chain", "solve", "--model", "paper-1", "-n", "1", "--mechanism", spec)
    assert_one_line(code, err, "--mechanism")


def test_chain_solve_time_limit_zero_is_bad_input(capsys):
    code, _, err = run_main(capsys, "chain", "solve", "--model", "paper-1", "-n", "2", "--time-limit", "0")
    assert_one_line(code, err, "--time-limit must be a number of seconds > 0")


@pytest.mark.parametrize("opt", [("--seeds", "0"), ("--samples", "1"), ("--sweep-max-evals", "0")])
def test_chain_reproduce_counts_checked_before_the_directory_is_touched(capsys, tmp_path, opt):
    out = tmp_path / "rep"
    code, _, err = run_main(capsys, "chain", "reproduce", "--out", out, *opt)
    assert_one_line(code, err, opt[0].lstrip("-").replace("-", "_"))
    assert not out.exists()  # not created, not marked incomplete


def test_optimize_mechanism_random_starts():
    from datamarkets.models.chain_mechanism_opt import optimize_mechanism
    from datamarkets.models.chain_valuations import paper_model

    with pytest.raises(InvalidInputError, match="random_starts must be an integer >= 0"):
        optimize_mechanism(paper_model("paper-1", 2, "ave"), random_starts=-1)


# ------------------------------------------------------------------------------ other loaders
def test_deep_toml_sweep_spec_is_one_line(capsys, tmp_path):
    spec = _write(tmp_path / "s.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    code, _, err = run_main(capsys, "sweep", spec, "--out", tmp_path / "store", "--dry-run")
    assert_one_line(code, err, "nested too deeply")


def test_psp_instance_and_allocation_reject_numbers_as_strings(capsys, tmp_path):
    psp = _data("auction_psp_instance.json")
    psp["epsilon"] = "0.001"
    code, _, err = run_main(capsys, "solve", "auction-psp", "-i", _write(tmp_path / "p.json", psp))
    assert_one_line(code, err, "epsilon must be a number")
    alloc = _data("auction_allocation.json")
    alloc[0]["amount"] = "0.5"
    code, _, err = run_main(
        capsys,
        "auction",
        "verify",
        "--graph",
        DATA / "auction_market.json",
        "--allocation",
        _write(tmp_path / "a.json", alloc),
    )
    assert_one_line(code, err, "is not a number: '0.5'")


@pytest.mark.parametrize("reverse", [False, True])
def test_duplicate_edges_are_rejected(capsys, tmp_path, reverse):
    m = _data("auction_market.json")
    e = dict(m["edges"][0])
    if reverse:
        e["source"], e["target"] = e["target"], e["source"]
    m["edges"].append(e)
    code, _, err = run_main(capsys, "auction", "solve", "--graph", _write(tmp_path / "m.json", m))
    assert_one_line(code, err, "duplicate edge")


def test_directed_documents_may_list_both_directions():
    from datamarkets.validation import check_node_link

    doc = {
        "directed": True,
        "nodes": [{"id": "a"}, {"id": "b"}],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
    }
    assert check_node_link(doc, "d")["directed"] is True


# ------------------------------------------------------------------------------ the command line itself
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("auction", "solve", "--graph", "m.json", "--tol", "abc"), "Invalid value for '--tol'"),
        (("auction", "solve"), "Missing option '--graph'"),
        (("bogus",), "No such command 'bogus'"),
        (("auction", "solve", "--graph"), "requires an argument"),
        (("chain", "reproduce", "--out", "x", "--mc-seed", "-1"), "--mc-seed"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, fragment):
    code, _, err = run_main(capsys, *argv)
    assert_one_line(code, err, fragment)


def test_help_and_version_still_exit_0(capsys):
    code, out, err = run_main(capsys, "auction", "solve", "--help")
    assert code == 0 and "--graph" in out and err == ""
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip()


def test_solver_option_applies_to_the_welfare_route_only(capsys):
    code, _, err = run_main(
        capsys,
        "auction",
        "solve",
        "--graph",
        DATA / "auction_market.json",
        "--method",
        "kkt",
        "--solver",
        "clarabel",
    )
    assert_one_line(code, err, "--method optimum only")


@pytest.mark.parametrize(("opt", "value"), [("--alpha", "-1"), ("--alpha", "nan"), ("--x2", "nan")])
def test_gne_sweep_bad_market_is_bad_input_not_singular_points(capsys, tmp_path, opt, value):
    out = tmp_path / "sweep"
    code, _, err = run_main(capsys, "gne", "sweep", "--steps", "2", "--out", out, opt, value)
    assert_one_line(code, err, opt)
    assert not out.exists()


def test_two_firm_parameters_on_a_random_gne_market_are_refused(capsys):
    code, _, err = run_main(capsys, "solve", "gne", "-p", "alpha=-1")  # was ignored (random market)
    assert_one_line(code, err, "apply to market='two-firm' only")


def test_interrupted_pyomo_build_reports_once():
    """An interrupted Pyomo build is reported by its exception alone (Pyomo logged 4 more lines)."""
    import logging

    import pyomo.environ as pyo

    from datamarkets.errors import SolverLimitError
    from datamarkets.solvers import Deadline

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    log = logging.getLogger("pyomo")
    log.addHandler(handler)
    try:
        m = pyo.ConcreteModel()

        def slow(model):
            time.sleep(5)
            return 0.0

        with pytest.raises(SolverLimitError, match="during the build"):
            with Deadline(0.05).interrupting("the build"):
                m.x = pyo.Var(initialize=slow)
    finally:
        log.removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("opt", "value"), [("--connect-timeout", "nan"), ("--connect-timeout", "-1"), ("--scheduler", "bogus")]
)
def test_sweep_options_checked_even_with_nothing_to_run(capsys, tmp_path, opt, value):
    spec = _write(tmp_path / "s.toml", 'formulation = "chain-equilibrium"\n[grid]\nn = [3]\n')
    code, _, err = run_main(capsys, "sweep", spec, "--out", tmp_path / "store", "--dry-run", opt, value)
    assert_one_line(code, err, opt)
