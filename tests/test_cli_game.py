"""`datamarkets game …` through subprocess: exit codes, JSON, verify round trip."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from helpers import run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "game.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=120)


def test_solve_example_json_and_verify_round_trip(tmp_path):
    out = tmp_path / "r.json"
    p = run("game", "solve", str(EXAMPLE), "--json", "--out", str(out))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["kind"] == "game" and d["certificate"]["passed"]
    np.testing.assert_allclose(d["x"], [7 / 3, 4 / 3, 1 / 3], atol=1e-7)
    assert d["x_players"] == [[v] for v in d["x"]]
    p = run("verify", str(out))
    assert p.returncode == 0, p.stderr
    # edit one number of the saved answer: verify re-derives the certificate and fails
    saved = json.loads(out.read_text())
    saved["x"][0] += 0.05
    out.write_text(json.dumps(saved))
    p = run("verify", str(out))
    assert p.returncode == 4, (p.stdout, p.stderr)


def test_milp_enumeration_and_no_variational(tmp_path):
    p = run(
        "game", "solve", str(EXAMPLE), "--method", "milp", "--no-variational", "--enumerate", "3", "--json"
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["route"] == "milp" and len(d["equilibria"]) == 3 and d["variational"] is False


def test_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = run("game", "solve", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "error" in p.stderr
    d = json.loads(EXAMPLE.read_text())
    d["Q"][0][0][0] = -2.0  # player 0's own block not PSD
    bad.write_text(json.dumps(d))
    p = run("game", "solve", str(bad))
    assert p.returncode == 2 and "not positive semidefinite" in p.stderr
    p = run("game", "solve", str(EXAMPLE), "--method", "nope")
    assert p.returncode == 2


def test_infeasible_and_uncertified_exit_codes(tmp_path):
    d = json.loads(EXAMPLE.read_text())
    d["b"] = [-1.0]  # Σx ≤ −1 with x ≥ 0: empty
    f = tmp_path / "inf.json"
    f.write_text(json.dumps(d))
    p = run("game", "solve", str(f))
    assert p.returncode == 3 and "infeasible" in p.stderr
    p = run("game", "solve", str(EXAMPLE), "--tol", "1e-30")
    assert p.returncode == 4 and "certificate failed" in p.stderr


def test_generate_then_solve(tmp_path):
    g = tmp_path / "g.json"
    p = run("game", "generate", "--players", "3", "--size", "12", "--seed", "2", "--out", str(g))
    assert p.returncode == 0, p.stderr
    d = json.loads(g.read_text())
    assert d["sizes"] == [4, 4, 4]
    p = run("game", "solve", str(g), "--method", "best_response", "--json")
    assert p.returncode == 0, p.stderr
    p = run("game", "generate", "--players", "30", "--size", "12", "--out", str(g))
    assert p.returncode == 2
