"""`datamarkets chain …` through a real subprocess (exit codes come from ``cli.main``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from datamarkets.models.chain_equilibrium import solve_equilibrium
from datamarkets.models.chain_game import ChainGame
from datamarkets.models.chain_valuations import paper_model

ENV = {**os.environ, "DATAMARKETS_NO_PROGRESS": "1"}


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """In-process run through ``cli.main`` (same error handling as the console script, no fork)."""
    from datamarkets.cli import main

    old = sys.argv
    sys.argv = ["datamarkets", "chain", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamarkets.cli", "chain", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


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
