"""`datamarkets chain …` through a real subprocess (exit codes come from ``cli.main``)."""

from __future__ import annotations

import copy
import json
import math
import subprocess

import numpy as np
import pytest

from datamarkets.models.chain_equilibrium import solve_equilibrium
from datamarkets.models.chain_game import ChainGame
from datamarkets.models.chain_valuations import paper_model

from helpers import run_cli
from helpers import run_main as run_datamarkets


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``datamarkets chain ARGS...`` in process (:func:`helpers.run_main`)."""
    return run_datamarkets(capsys, "chain", *args)


def run(*args: str) -> subprocess.CompletedProcess:
    """``datamarkets chain ARGS...`` in a subprocess (:func:`helpers.run_cli`)."""
    return run_cli("chain", *args)


def test_solve_named_model_json_contract():
    r = run("solve", "--model", "paper-1", "--n", "5", "--mechanism", "ave", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    eq = solve_equilibrium(paper_model("paper-1", 5, "ave"))
    n, L = 5, 21
    assert d["social_welfare"] == pytest.approx(eq.social_welfare, rel=1e-12)
    assert d["transaction_volume"] == pytest.approx(eq.transaction_volume, rel=1e-12)
    assert len(d["trade_success"]) == n and len(d["player_utility"]) == n + 1
    assert np.array(d["thresholds"]).shape == (n + 1, L)
    assert np.array(d["prices"]).shape == (n, L)
    np.testing.assert_allclose(d["thresholds"], eq.thresholds, rtol=1e-12)
    assert d["certificate"]["passed"] is True
    assert d["certificate"]["residuals"]["lp_vs_dp_threshold_rel_max"] <= 1e-7
    assert d["timings"]["solve_seconds"] > 0 and "certify_seconds" in d["timings"]


GAME = {
    "values": [0.5, 1.0, 2.0],
    "start": [0.2, 0.5, 0.3],
    "transitions": [[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]],
    "n": 3,
    "mechanism": {"tbds": 0.5},
}


@pytest.mark.parametrize(
    "game",
    [
        GAME,
        {**GAME, "start": 1, "mechanism": "ave"},
        {
            **{k: v for k, v in GAME.items() if k != "n"},
            "transitions": [GAME["transitions"]] * 3,
            "mechanism": [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0]],
        },
    ],
)
def test_solve_model_file(tmp_path, game):
    path = tmp_path / "game.json"
    path.write_text(json.dumps(game))
    r = run("solve", "--model-file", str(path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    eq = solve_equilibrium(ChainGame.from_dict(game))
    assert d["social_welfare"] == pytest.approx(eq.social_welfare, rel=1e-12)
    np.testing.assert_allclose(d["prices"], eq.prices, rtol=1e-12)
    assert d["certificate"]["passed"] is True


BAD = {
    "row-not-stochastic": {**GAME, "transitions": [[0.5, 0.4, 0.0], *GAME["transitions"][1:]]},
    "negative-probability": {**GAME, "transitions": [[1.5, -0.5, 0.0], *GAME["transitions"][1:]]},
    "wrong-shape": {**GAME, "transitions": [[0.5, 0.5], [0.5, 0.5]]},
    "start-wrong-shape": {**GAME, "start": [0.5, 0.5]},
    "budget-def-2.5": {**GAME, "mechanism": [[1, 0, 0, 0], [0.7, 0.7, 0, 0], [0.2, 0.3, 0.5, 0]]},
    "past-only-def-2.6": {**GAME, "mechanism": [[1, 0, 0, 0], [0.5, 0.0, 0.5, 0], [0.2, 0.3, 0.5, 0]]},
    "nan-value": {**GAME, "values": [0.5, math.nan, 2.0]},
    "inf-value": {**GAME, "values": [0.5, 1.0, math.inf]},
}


_OK = '"values": [0.5, 1, 2], "transitions": [[0.5, 0.5, 0], [0.25, 0.5, 0.25], [0, 0.5, 0.5]]'
# Python's json accepts the non-standard tokens NaN, Infinity, -Infinity and overflows 1e400 to inf:
# each must still end in one clean line and exit code 2.
BAD_TEXT = {
    "nan-token-transition": '{"values": [0.5, 1, 2], "start": 0, "n": 2, '
    '"transitions": [[NaN, 0.5, 0.5], [0.25, 0.5, 0.25], [0, 0.5, 0.5]]}',
    "infinity-token-transition": '{"values": [0.5, 1, 2], "start": 0, "n": 2, '
    '"transitions": [[Infinity, 0.5, 0.5], [0.25, 0.5, 0.25], [0, 0.5, 0.5]]}',
    "nan-token-start": "{" + _OK + ', "start": [NaN, 0.5, 0.5], "n": 2}',
    "nan-token-start-index": "{" + _OK + ', "start": NaN, "n": 2}',
    "nan-token-mechanism": "{" + _OK + ', "start": 0, "n": 1, "mechanism": [[NaN, 0]]}',
    "minus-infinity-mechanism": "{" + _OK + ', "start": 0, "n": 1, "mechanism": [[-Infinity, 0]]}',
    "infinity-token-tbds": "{" + _OK + ', "start": 0, "n": 2, "mechanism": {"tbds": Infinity}}',
    "nan-token-tbds": "{" + _OK + ', "start": 0, "n": 2, "mechanism": {"tbds": NaN}}',
    "bool-tbds": "{" + _OK + ', "start": 0, "n": 2, "mechanism": {"tbds": true}}',
    "nan-token-n": "{" + _OK + ', "start": 0, "n": NaN}',
    "huge-n": "{" + _OK + ', "start": 0, "n": 100000000000}',
    "overflowing-literal": '{"values": [0.5, 1, 1e400], "start": 0, "n": 2, '
    '"transitions": [[0.5, 0.5, 0], [0.25, 0.5, 0.25], [0, 0.5, 0.5]]}',
    "values-overflow-thresholds": '{"values": [-1.7e308, 1, 1.7e308], "start": 0, "n": 2, '
    '"transitions": [[0.5, 0.5, 0], [0.25, 0.5, 0.25], [0, 0.5, 0.5]]}',
    "negative-start": "{" + _OK + ', "start": [1.5, -0.5, 0], "n": 2}',
    "start-index-out-of-range": "{" + _OK + ', "start": 3, "n": 2}',
    "label-not-string": "{" + _OK + ', "start": 0, "n": 2, "label": {"a": 1}}',
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_malformed_text_exits_2_with_one_line(tmp_path, capsys, case):
    path = tmp_path / "bad.json"
    path.write_text(BAD_TEXT[case])
    code, out, err = run_main(capsys, "solve", "--model-file", str(path), "--json")
    assert code == 2, (case, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datamarkets: error:"), err
    assert out == ""


def test_non_utf8_file_and_nan_overflow_subprocess(tmp_path):
    """Through the console entry point: bytes that are not UTF-8, and values whose sums overflow."""
    for name, payload in (
        ("bin.json", b"\xff\xfe\x00garbage"),
        ("big.json", BAD_TEXT["values-overflow-thresholds"].encode()),
        ("nan.json", BAD_TEXT["nan-token-transition"].encode()),
    ):
        path = tmp_path / name
        path.write_bytes(payload)
        r = run("solve", "--model-file", str(path), "--json")
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("datamarkets: error:"), (name, r.stderr)
        assert r.stdout == ""


def test_malformed_file_subprocess(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD["row-not-stochastic"]))
    r = run("solve", "--model-file", str(path), "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datamarkets: error:"), r.stderr
    assert "sums to" in lines[0]
    assert r.stdout == ""


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_file_exits_2_with_one_line(tmp_path, capsys, case):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD[case]))  # json writes NaN / Infinity literals
    code, out, err = run_main(capsys, "solve", "--model-file", str(path), "--json")
    assert code == 2, (case, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datamarkets: error:"), err
    assert out == ""


def test_not_json_and_missing_file_and_bad_options(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    for args in (
        ("solve", "--model-file", str(path)),
        ("solve", "--model-file", str(tmp_path / "missing.json")),
        ("solve",),  # neither --model nor --model-file
        ("solve", "--model", "paper-9"),
        ("solve", "--model", "paper-1", "--mechanism", "{oops"),
        ("verify", "--model", "paper-1", "--n", "2", "--claim", str(path)),
    ):
        code, _, err = run_main(capsys, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, (args, err)


def test_solve_table_output(capsys):
    code, out, err = run_main(capsys, "solve", "--model", "paper-2", "--n", "3")
    assert code == 0, err
    assert "social welfare" in out and "passed" in out


def test_verify_certifies_and_rejects_a_perturbed_claim(tmp_path, capsys):
    code, out, err = run_main(capsys, "verify", "--model", "paper-4", "--n", "4", "--mechanism", "ave")
    assert code == 0, err
    assert "CERTIFIED" in out
    eq = solve_equilibrium(paper_model("paper-4", 4, "ave"))
    prices = eq.prices.copy()
    k0 = int(np.argmax(paper_model("paper-4", 4, "ave").start))
    prices[0, k0] += 0.1  # a price that is not optimal (player 1 rejects more often)
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps({"thresholds": eq.thresholds.tolist(), "prices": prices.tolist()}))
    r = run("verify", "--model", "paper-4", "--n", "4", "--mechanism", "ave", "--claim", str(claim), "--json")
    assert r.returncode == 4, r.stderr
    d = json.loads(r.stdout)
    assert d["certified"] is False and d["certificate"]["passed"] is False


def test_optimize_json(capsys):
    code, out, err = run_main(
        capsys, "optimize", "--model", "paper-2", "--n", "3", "--json", "--max-evals", "2000"
    )
    assert code == 0, err
    d = json.loads(out)
    base = max(d["baselines"]["raw"]["social_welfare"], d["baselines"]["ave"]["social_welfare"])
    assert d["social_welfare"] >= base
    t = np.array(d["mechanism"])
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-12)
    assert d["certificate"]["residuals"]["lp_vs_dp_threshold_rel_max"] <= 1e-7
    sw = solve_equilibrium(paper_model("paper-2", 3, t)).social_welfare
    assert d["social_welfare"] == pytest.approx(sw, rel=1e-12)


@pytest.mark.slow
def test_reproduce_small(tmp_path):
    out = tmp_path / "rep"
    r = run(
        "reproduce",
        "--out",
        str(out),
        "--n-min",
        "2",
        "--n-max",
        "3",
        "--seeds",
        "2",
        "--samples",
        "300",
        "--opt-max-evals",
        "300",
        "--sweep-max-evals",
        "100",
    )
    assert r.returncode == 0, r.stderr
    assert "Table 1" in r.stdout
    for name in ("table1.csv", "figure2.png", "figure3.png", "figure3.csv", "summary.json"):
        assert (out / name).stat().st_size > 0


def test_large_instance_skips_lp_by_default(capsys):
    # n(n+1)L/2 = 60·61·241/2 = 441k policy rows > 300k: the LPs are skipped, and the certificate says so
    code, out, err = run_main(
        capsys, "solve", "--model", "paper-1", "--n", "60", "--mechanism", "ave", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    assert "skipped" in d["certificate"]["details"]["not_checked"]["equilibrium_optimality"]
    assert "lp_vs_dp_threshold_rel_max" not in d["certificate"]["residuals"]
    assert "social_welfare_rel" in d["certificate"]["residuals"]  # the rest is still checked
    assert len(d["trade_success"]) == 60 and np.array(d["thresholds"]).shape == (61, 241)


# ----------------------------------------------------------------------------------------------
# verify certifies every number a chain result reports (issue 11)
# ----------------------------------------------------------------------------------------------

# the numeric fields of `chain solve --out` and of `datamarkets solve chain-equilibrium --out`
SOLVE_FIELDS = (
    "n",
    "L",
    "social_welfare",
    "transaction_volume",
    "trade_success",
    "trade_success_conditional",
    "player_utility",
    "thresholds",
    "prices",
    "values",
    "mechanism",
    "tie_count",
    "sw_tie_range",
)
FORMULATION_FIELDS = (*SOLVE_FIELDS, "objective")


@pytest.fixture(scope="module")
def saved_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("saved")
    a, b = d / "chain_solve.json", d / "formulation.json"
    r = run("solve", "--model", "paper-2", "--n", "3", "--out", str(a), "--json")
    assert r.returncode == 0, r.stderr
    params = ("-p", "model=paper-2", "-p", "n=3", "-p", "mechanism=ave", "-p", "tie_rule=highest")
    r = run_cli("solve", "chain-equilibrium", *params, "--out", str(b), "--json")
    assert r.returncode == 0, r.stderr
    return {"chain-solve": json.loads(a.read_text()), "formulation": json.loads(b.read_text())}


def _numeric_fields(d):
    reserved = {"kind", "status", "method", "certificate", "timings", "meta", "instance"}

    def numeric(v):
        if isinstance(v, bool):
            return False
        if isinstance(v, int | float):
            return True
        return isinstance(v, list) and all(
            numeric(x) or x is None for x in np.ravel(np.array(v, dtype=object))
        )

    return {k for k, v in d.items() if k not in reserved and numeric(v)}


def test_field_lists_cover_every_reported_number(saved_results):
    assert _numeric_fields(saved_results["chain-solve"]) == set(SOLVE_FIELDS)
    assert _numeric_fields(saved_results["formulation"]) == set(FORMULATION_FIELDS)
    for d in saved_results.values():
        det = d["certificate"]["details"]
        assert d["certificate"]["passed"] is True
        # every solution field is either checked or listed as not checked with a reason
        fields = {
            k
            for k in d
            if k not in {"kind", "status", "method", "certificate", "timings", "meta", "instance"}
        }
        assert fields <= set(det["checked"]) | set(det["not_checked"])
        assert d["tie_count"] > 0 and d["sw_tie_range"][0] < d["sw_tie_range"][1]  # ties occur here


def _perturb(value, rel=1e-3):
    """The largest-magnitude finite entry times (1 + rel) (an exact zero becomes rel)."""
    arr = np.array(value, dtype=object)
    flat = arr.ravel()
    mags = [abs(x) if x is not None else -1.0 for x in flat]
    j = int(np.argmax(mags))
    x = flat[j]
    flat[j] = x * (1 + rel) if x != 0 else rel
    return flat.reshape(arr.shape).tolist() if arr.ndim else flat[0]


@pytest.mark.parametrize(
    ("source", "field"),
    [("chain-solve", f) for f in SOLVE_FIELDS] + [("formulation", f) for f in FORMULATION_FIELDS],
)
def test_verify_rejects_any_perturbed_number(saved_results, tmp_path, capsys, source, field):
    saved = saved_results[source]
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(saved))
    code, out, err = run_datamarkets(capsys, "verify", path, "--json")
    assert code == 0, (out, err)
    bad = copy.deepcopy(saved)
    bad[field] = _perturb(bad[field])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, out, err = run_datamarkets(capsys, "verify", path, "--json")
    assert code == 4, (field, out, err)
    failed = json.loads(out)["certificate"]["failures"]
    assert failed, field


def test_chain_solve_and_formulation_share_one_certificate(saved_results):
    a = saved_results["chain-solve"]["certificate"]
    b = saved_results["formulation"]["certificate"]
    common = set(a["residuals"]) & set(b["residuals"])
    assert set(a["residuals"]) <= set(b["residuals"])  # the formulation adds only `objective_rel`
    assert set(b["residuals"]) - set(a["residuals"]) == {"objective_rel"}
    assert {k: a["tolerances"][k] for k in common} == {k: b["tolerances"][k] for k in common}


def test_tie_rule_option_and_range(capsys):
    code, out, err = run_main(
        capsys, "solve", "--model", "paper-2", "--n", "5", "--json", "--tie-rule", "highest"
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["tie_rule"] == "highest" and d["tie_count"] > 0
    assert round(d["social_welfare"], 4) == 0.2010
    assert [round(x, 4) for x in d["sw_tie_range"]] == [0.2010, 0.2437]
    assert d["instance"]["tie_rule"] == "highest"  # the selection is part of the saved game
    code, out, err = run_main(capsys, "solve", "--model", "paper-2", "--n", "5", "--tie-rule", "middle")
    assert code == 2 and "tie_rule" in err


def test_time_limit_cli(capsys):
    code, out, err = run_main(
        capsys, "solve", "--model", "paper-1", "--n", "300", "--mechanism", "ave", "--time-limit", "0.05"
    )
    assert code == 3, (out, err)
    assert "time limit" in err and len(err.strip().splitlines()) == 1
