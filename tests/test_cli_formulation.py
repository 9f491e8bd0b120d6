"""``datamarkets formulations``, ``datamarkets solve``, ``datamarkets verify`` and the ``--out`` files of
``chain solve``, ``auction solve`` and ``gne solve/example``.

Commands run in-process through :func:`datamarkets.cli.main` (the console-script entry point, so
library exceptions map to exit codes exactly as installed: 2 bad input, 3 solver/limit, 4 not
certified); two end-to-end runs go through a real ``python -m datamarkets.cli`` subprocess to check
that stdout is pure JSON while solvers print.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from datamarkets.io import atomic_write_json, read_json
from datamarkets.registry import get_formulation
from datamarkets.solvers import available_solvers

from helpers import need_solver, run_cli

BUILT_INS = ("auction-kkt", "auction-psp", "auction-welfare", "chain-equilibrium", "gne")


# ----------------------------------------------------------------------------- formulations
def test_formulations_lists_every_built_in(cli):
    code, out, _ = cli("formulations")
    assert code == 0
    for name in BUILT_INS:
        assert name in out
    if available_solvers().get("ipopt") is None:
        assert "ipopt (not installed)" in out


def test_formulations_json_marks_installed_solvers(cli):
    code, out, _ = cli("formulations", "--json")
    assert code == 0
    d = json.loads(out)
    avail = available_solvers()
    assert set(BUILT_INS) <= set(d)
    for name in BUILT_INS:
        f = get_formulation(name)
        entry = d[name]
        assert entry["summary"] == f.summary and entry["kinds"] == list(f.kinds)
        assert list(entry["solvers"]) == list(f.solvers)  # default first
        for s, v in entry["solvers"].items():
            assert v == ("built-in" if s == "direct" else avail[s])
        assert set(entry["parameters"]) == set(f.parameters)
    assert d["auction-welfare"]["solvers"]["highs"] is not None
    if avail["ipopt"] is None:
        assert d["auction-welfare"]["solvers"]["ipopt"] is None


# ------------------------------------------------------------------------------------ solve
def test_solve_certified_save_and_verify(cli, tmp_path):
    path = tmp_path / "chain.json"
    code, out, _ = cli(
        "solve", "chain-equilibrium", "-p", "model=paper-1", "-p", "n=3", "-p", "mechanism=ave", "--out", path
    )
    assert code == 0 and "saved" in out
    saved = read_json(path)
    assert saved["meta"]["formulation"] == "chain-equilibrium" and saved["meta"]["solver"] == "direct"
    assert saved["instance"]["n"] == 3
    code, out, _ = cli("verify", path)
    assert code == 0 and "VERIFIED" in out and "NOT VERIFIED" not in out
    code, out, _ = cli("verify", path, "--json")
    ver = json.loads(out)
    assert code == 0 and ver["kind"] == "verification" and ver["certificate"]["passed"]
    assert ver["meta"]["instance_hash"] == saved["meta"]["instance_hash"]


def test_solve_json_output_parses(cli):
    code, out, _ = cli("solve", "auction-welfare", "-p", "market=example1", "--solver", "highs", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["kind"] == "auction-optimum" and d["certificate"]["passed"]
    assert d["welfare"] == pytest.approx(207.8, rel=1e-9)  # Σ p_i D_i: every demand is served
    assert d["meta"]["solver"] == "highs" and "instance" in d


def test_solve_from_an_instance_file(cli, tmp_path):
    f = get_formulation("gne")
    G = f.instance({"market": "two-firm", "x1": 0.5})
    inst = atomic_write_json(tmp_path / "inst.json", f.instance_to_dict(G))
    code, out, _ = cli("solve", "gne", "--instance", inst, "--json")
    assert code == 0
    from_file = json.loads(out)
    code, out, _ = cli("solve", "gne", "-p", "market=two-firm", "-p", "x1=0.5", "--json")
    from_params = json.loads(out)
    assert from_file["meta"]["instance_hash"] == from_params["meta"]["instance_hash"]
    np.testing.assert_allclose(from_file["d"], from_params["d"], rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("solve", "chain-equilibrium", "-p", "n"), "KEY=VALUE"),
        (("solve", "no-such-formulation"), "unknown formulation"),
        (("solve", "chain-equilibrium", "-p", "trades=3"), "'trades'"),
        (("solve", "chain-equilibrium", "-p", "model=paper-9"), "unknown chain model"),
        (("solve", "chain-equilibrium", "--solver", "gurobi"), "cannot use solver"),
        (("solve", "auction-welfare", "-p", "size=5", "--solver", "glpk"), "does not apply"),
        (("solve", "auction-psp", "-p", "size=5", "-p", "epsilon=0"), "epsilon"),
        (("solve", "auction-psp", "-p", "size=5", "-p", "scaling=0.5"), "scaling"),
    ],
)
def test_solve_bad_input_exits_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""


def test_solve_instance_and_params_together_exit_2(cli, tmp_path):
    f = get_formulation("gne")
    inst = atomic_write_json(
        tmp_path / "inst.json", f.instance_to_dict(f.instance({"market": "two-firm", "x1": 0.5}))
    )
    code, _, err = cli("solve", "gne", "--instance", inst, "-p", "x1=0.3")
    assert code == 2 and "not both" in err
    code, _, err = cli("solve", "gne", "--instance", tmp_path / "missing.json")
    assert code == 2 and "does not exist" in err


def test_solve_non_numeric_parameter_exits_2(cli):
    code, _, err = cli("solve", "chain-equilibrium", "-p", "model=paper-1", "-p", "n=abc")
    assert code == 2 and "Traceback" not in err


def test_solve_no_equilibrium_is_a_typed_answer_exit_0(cli, tmp_path):
    path = tmp_path / "noeq.json"
    code, out, _ = cli(
        "solve", "gne", "-p", "size=10", "-p", "buyers=4", "-p", "seed=1", "--json", "--out", path
    )
    assert code == 0
    d = json.loads(out)
    assert d["status"] == "no_equilibrium" and d["no_equilibrium_cause"] == "spectral_radius"
    code, out, _ = cli("verify", path)
    assert code == 0 and "VERIFIED" in out
    bad = read_json(path)
    bad["no_equilibrium_cause"] = "negative_effort"
    code, out, _ = cli("verify", atomic_write_json(tmp_path / "bad.json", bad))
    assert code == 4 and "no_equilibrium_not_confirmed" in out


def test_solve_uncertified_exit_4_and_verify_agrees(cli, tmp_path):
    """OSQP on a 30-buyer LP market (seed 1) stops at a point whose welfare is within 7e-8 of the
    optimum but whose best KKT prices leave a stationarity violation ≈ 1.04 (tolerance 3e-6)."""
    need_solver("osqp")
    path = tmp_path / "osqp.json"
    code, out, _ = cli(
        "solve",
        "auction-welfare",
        "-p",
        "valuation=linear",
        "-p",
        "buyers=30",
        "-p",
        "seed=1",
        "--solver",
        "osqp",
        "--json",
        "--out",
        path,
    )
    assert code == 4
    d = json.loads(out)
    assert d["status"] == "optimal" and not d["certificate"]["passed"]
    assert "stationarity_max" in d["certificate"]["failures"]
    code, out, _ = cli("verify", path)
    assert code == 4 and "NOT VERIFIED" in out and "stationarity_max" in out


def test_solve_time_limit_exit_3(cli):
    need_solver("glpk")
    code, out, _ = cli(
        "solve",
        "auction-kkt",
        "-p",
        "buyers=30",
        "-p",
        "seed=1",
        "--solver",
        "glpk",
        "--time-limit",
        "1",
        "--json",
    )
    assert code == 3
    assert json.loads(out)["status"] == "time_limit"


# ----------------------------------------------------------------------------------- verify
@pytest.fixture
def gne_file(cli, tmp_path):
    path = tmp_path / "gne.json"
    code, _, _ = cli("solve", "gne", "-p", "market=two-firm", "-p", "x1=0.5", "--out", path)
    assert code == 0
    return path


def test_verify_tampered_solution_exit_4(cli, gne_file, tmp_path):
    bad = read_json(gne_file)
    bad["d"][0][0] *= 1.01
    code, out, _ = cli("verify", atomic_write_json(tmp_path / "bad.json", bad))
    assert code == 4 and "NOT VERIFIED" in out and "leontief_backward_error" in out
    code, out, _ = cli("verify", tmp_path / "bad.json", "--json")
    assert code == 4 and "leontief_backward_error" in json.loads(out)["certificate"]["failures"]


def test_verify_bad_files_exit_2(cli, gne_file, tmp_path):
    d = read_json(gne_file)
    d["instance"]["nodes"][0]["x"] = 0.123  # any change to the embedded instance
    code, _, err = cli("verify", atomic_write_json(tmp_path / "hash.json", d))
    assert code == 2 and "hash mismatch" in err
    code, _, err = cli("verify", atomic_write_json(tmp_path / "other.json", {"hello": 1}))
    assert code == 2 and "not a saved datamarkets result" in err
    code, _, err = cli("verify", tmp_path / "missing.json")
    assert code == 2 and "does not exist" in err
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    code, _, err = cli("verify", junk)
    assert code == 2 and "not valid JSON" in err
    bad = read_json(gne_file)
    bad["meta"]["formulation"] = "no-such-formulation"
    code, _, err = cli("verify", atomic_write_json(tmp_path / "noform.json", bad))
    assert code == 2 and "unknown formulation" in err


def test_verify_without_embedded_instance(cli, gne_file, tmp_path):
    f = get_formulation("gne")
    bare = read_json(gne_file)
    inst = bare.pop("instance")
    bare_path = atomic_write_json(tmp_path / "bare.json", bare)
    code, _, err = cli("verify", bare_path)
    assert code == 2 and "embeds no instance" in err
    code, out, _ = cli("verify", bare_path, "--instance", atomic_write_json(tmp_path / "inst.json", inst))
    assert code == 0 and "VERIFIED" in out
    other = f.instance_to_dict(f.instance({"market": "two-firm", "x1": 0.3}))
    code, _, err = cli("verify", bare_path, "--instance", atomic_write_json(tmp_path / "o.json", other))
    assert code == 2 and "does not match" in err


# ------------------------------------------------------------------- --out of sub-commands
def test_chain_solve_out_verifies(cli, tmp_path):
    path = tmp_path / "c.json"
    code, _, _ = cli("chain", "solve", "--model", "paper-2", "--n", "3", "--mechanism", "ave", "--out", path)
    assert code == 0
    saved = read_json(path)
    assert saved["meta"]["formulation"] == "chain-equilibrium" and "instance" in saved
    code, out, _ = cli("verify", path)
    assert code == 0 and "VERIFIED" in out


@pytest.fixture(scope="module")
def market_file(tmp_path_factory):
    from datamarkets.graphs.market import random_bipartite_market, write_market_json

    path = tmp_path_factory.mktemp("auction") / "market.json"
    return write_market_json(random_bipartite_market(10, 2, 1, seed=5), path)


@pytest.mark.parametrize(
    ("method", "formulation"),
    [("optimum", "auction-welfare"), ("kkt", "auction-kkt"), ("psp", "auction-psp")],
)
def test_auction_solve_out_verifies(cli, tmp_path, market_file, method, formulation):
    path = tmp_path / f"{method}.json"
    code, _, _ = cli(
        "auction", "solve", "--graph", market_file, "--method", method, "--epsilon", "0.01", "--out", path
    )
    assert code == 0
    saved = read_json(path)
    assert saved["meta"]["formulation"] == formulation
    code, out, _ = cli("verify", path, "--json")
    assert code == 0 and json.loads(out)["certificate"]["passed"]
    if method == "optimum":  # the file's welfare agrees with the generic command on the same market
        G = get_formulation(formulation).instance_from_dict(saved["instance"])
        assert saved["welfare"] == pytest.approx(
            get_formulation(formulation).solve(G, "clarabel").solution["welfare"], rel=1e-6
        )


def test_gne_example_and_solve_out_verify(cli, tmp_path):
    from datamarkets.graphs.estimation_market import estimation_market_to_dict, two_firm_example

    ex = tmp_path / "ex.json"
    code, _, _ = cli("gne", "example", "--x1", "0.5", "--out", ex)
    assert code == 0
    code, out, _ = cli("verify", ex)
    assert code == 0 and "VERIFIED" in out
    graph = atomic_write_json(
        tmp_path / "g.json", estimation_market_to_dict(two_firm_example(-0.3, delta=0.2))
    )
    sv = tmp_path / "sv.json"
    code, _, _ = cli("gne", "solve", "--graph", graph, "--no-best-response", "--no-lp", "--out", sv)
    assert code == 0
    code, out, _ = cli("verify", sv)
    assert code == 0 and "VERIFIED" in out
    # the sub-command's file and the generic command describe the same instance
    assert (
        read_json(ex)["meta"]["instance_hash"]
        == get_formulation("gne")
        .solve(get_formulation("gne").instance({"market": "two-firm", "x1": 0.5}))
        .meta["instance_hash"]
    )


# ------------------------------------------------------------------------ real subprocess
def _run(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=120)


def test_end_to_end_pure_json_on_stdout(tmp_path):
    path = tmp_path / "w.json"
    p = _run(
        "solve", "auction-welfare", "-p", "market=example1", "--solver", "highs", "--json", "--out", str(path)
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["certificate"]["passed"]  # the HiGHS banner went to stderr
    p = _run("verify", str(path), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["certificate"]["passed"]


def test_end_to_end_bad_input_is_one_line(tmp_path):
    p = _run("solve", "gne", "-p", "market=three-firm")
    assert p.returncode == 2
    assert p.stderr.strip().startswith("datamarkets: error:") and "Traceback" not in p.stderr
