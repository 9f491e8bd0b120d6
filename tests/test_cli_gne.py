"""`datamarkets gne …` through subprocess: exit codes, JSON fields, sweep files."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from datamarkets.graphs.estimation_market import estimation_market, write_estimation_market
from datamarkets.models.estimators import random_estimation_market

from helpers import run_cli

FIELDS = [
    "gamma",
    "xi",
    "spectral_radius",
    "d",
    "effort_equilibrium",
    "effort_optimal",
    "social_loss_equilibrium",
    "social_loss_optimal",
    "price_of_anarchy",
    "payment_range",
    "certificate",
    "timings",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``datamarkets gne ARGS...`` in a subprocess (:func:`helpers.run_cli`)."""
    return run_cli("gne", *args)


def test_example_json_fields_and_values():
    p = run("example", "--x1", "0.3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # stdout is pure JSON (the HiGHS banner goes to stderr)
    for f in FIELDS:
        assert f in out, f
    x1 = 0.3
    assert out["spectral_radius"] == pytest.approx((x1 + 1) ** 2 / (2 * (x1**2 + 1)), rel=1e-10)
    assert out["gamma"]["b1"]["s1"] == pytest.approx((4 / 3) / (x1 - 1) ** 2, rel=1e-10)
    assert out["xi"]["b2"]["s1"]["s2"] == pytest.approx((x1 + 1) ** 2 / 4, rel=1e-10)
    assert set(out["payment_range"]["b1"]) >= {"least", "most"}
    assert out["status"] == "optimal" and out["certificate"]["passed"]
    assert out["certificate"]["residuals"]["best_response_gap_rel_max"] < 1e-7
    assert out["price_of_anarchy"] > 1


def test_example_human_output():
    p = run("example", "--x1", "-0.5")
    assert p.returncode == 0, p.stderr
    assert "price_of_anarchy" in p.stdout and "payment range" in p.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["example", "--x1", "1.0"], "coincident sources"),
        (["example", "--x1", "0.2", "--delta", "1.5"], "outside [0, 1]"),
        (["solve", "--graph", "/nonexistent/market.json"], "does not exist"),
        (["sweep", "--steps", "1", "--out", "/tmp/never"], "--steps"),
        (["sweep", "--x1-from", "0.5", "--x1-to", "0.2", "--out", "/tmp/never"], "--x1-from"),
        (["sweep", "--delta", "2", "--out", "/tmp/never"], "--delta"),
        (["sweep", "--collapse-margin", "0", "--out", "/tmp/never"], "--collapse-margin"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    p = run(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("datamarkets: error:")]
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in p.stderr


def test_solve_bad_method(tmp_path: Path):
    path = write_estimation_market(random_estimation_market(2, 8, 1, seed=0), tmp_path / "m.json")
    p = run("solve", "--graph", str(path), "--method", "lu")
    assert p.returncode == 2 and "--method" in p.stderr


def test_negative_gamma_graph_exit_2(tmp_path: Path):
    buyer = {"estimator": {"kind": "polynomial", "degree": 1}, "eta": 1.0}
    G = estimation_market(
        {"s1": {"x": -1.0, "alpha": 1.0}, "s2": {"x": 0.0, "alpha": 1.0}, "s3": {"x": 1.0, "alpha": 1.0}},
        {
            "b1": {**buyer, "F": {"kind": "discrete", "points": [-1.0], "weights": [1.0]}},
            "b2": {**buyer, "F": {"kind": "discrete", "points": [1.0], "weights": [1.0]}},
        },
        delta=1.0,
    )
    path = write_estimation_market(G, tmp_path / "neg.json")
    p = run("solve", "--graph", str(path), "--json")
    assert p.returncode == 2 and "Theorem 1" in p.stderr


def test_no_equilibrium_is_json_exit_0(tmp_path: Path):
    path = write_estimation_market(random_estimation_market(4, 3, 1, seed=0), tmp_path / "m.json")
    p = run("solve", "--graph", str(path), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "no_equilibrium" and out["d"] is None
    assert out["spectral_radius"] >= 1 and "spectral radius" in out["reason"]


def test_certified_and_uncertified_graphs(tmp_path: Path):
    good = write_estimation_market(
        random_estimation_market(2, 8, 1, seed=0, alpha_range=(50, 60)), tmp_path / "g.json"
    )
    p = run("solve", "--graph", str(good), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["certificate"]["passed"] and out["status"] == "optimal"
    assert set(out["d"]) == {"b0", "b1"} and len(out["d"]["b0"]) == 8
    # small alpha: Leontief d exists but efforts are negative -> polytope empty -> typed no-equilibrium
    bad = write_estimation_market(
        random_estimation_market(2, 8, 1, seed=0, alpha_range=(0.5, 2.0)), tmp_path / "b.json"
    )
    p = run("solve", "--graph", str(bad), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "no_equilibrium" and out["d"] is None
    assert out["no_equilibrium_cause"] == "negative_effort" and "no interior GNE" in out["reason"]
    assert "c_polytope_negative_effort" in out["certificate"]["failures"]
    # the generator's default alpha scaling gives an interior, certified equilibrium
    dflt = write_estimation_market(random_estimation_market(2, 8, 1, seed=0), tmp_path / "d.json")
    p = run("solve", "--graph", str(dflt), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "optimal" and out["certificate"]["passed"]
    assert min(out["effort_equilibrium"].values()) >= 0


def test_sweep_writes_sane_files(tmp_path: Path):
    out_dir = tmp_path / "figs"
    p = run("sweep", "--x1-from", "-1", "--x1-to", "0.9999", "--steps", "21", "--out", str(out_dir), "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["points"] == 21
    assert summary["regimes"]["collapse"] == 1 and summary["collapse_from_x1"] == pytest.approx(0.9999)
    for name in ("fig1_gamma", "fig2_xi", "fig3_d", "fig4_price_of_anarchy"):
        png = out_dir / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    with open(out_dir / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 21
    first, last = rows[0], rows[-1]
    assert float(first["x1"]) == -1.0 and float(first["price_of_anarchy"]) == pytest.approx(1.0, abs=1e-12)
    for r in rows:
        x1 = float(r["x1"])
        assert float(r["spectral_radius"]) == pytest.approx(
            (x1 + 1) ** 2 / (2 * (x1**2 + 1)), rel=1e-8, abs=1e-14
        )
    assert last["regime"] == "collapse" and last["d_b1_s1"] == "" and last["price_of_anarchy"] == ""
    assert not list(out_dir.glob(".*"))  # no temporary files left behind
