"""`datamarkets auction …` through a real subprocess (exit codes, pure JSON on stdout)."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import run_cli


def run(*args: str) -> subprocess.CompletedProcess:
    """``datamarkets auction ARGS...`` in a subprocess (:func:`helpers.run_cli`)."""
    return run_cli("auction", *args)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    path = tmp_path_factory.mktemp("auction") / "market.json"
    p = run(
        "generate",
        "--buyers",
        "12",
        "--sellers",
        "3",
        "--seed",
        "4",
        "--edges-per-buyer",
        "2",
        "--out",
        str(path),
    )
    assert p.returncode == 0, p.stderr
    return path


def test_solve_optimum_and_kkt_agree(market):
    out = {}
    for method in ("optimum", "kkt"):
        p = run("solve", "--graph", str(market), "--method", method, "--json")
        assert p.returncode == 0, p.stderr
        d = json.loads(p.stdout)  # stdout is pure JSON (the HiGHS banner goes to stderr)
        assert {"welfare", "allocation", "prices", "certificate", "timings"} <= set(d)
        assert d["certificate"]["passed"]
        assert {"buyer", "seller", "amount"} <= set(d["allocation"][0])
        out[method] = d
    assert out["kkt"]["method"] == "kkt-milp"
    assert abs(out["kkt"]["welfare"] - out["optimum"]["welfare"]) <= 1e-6 * max(1, out["optimum"]["welfare"])


def test_solve_psp_reports_kkt_certificate(market):
    p = run("solve", "--graph", str(market), "--method", "psp", "--epsilon", "0.01", "--json")
    assert p.returncode in (0, 4), p.stderr
    d = json.loads(p.stdout)
    assert d["kind"] == "auction-psp"
    details = d["certificate"]["details"]  # information on the allocation, beside the PSP certificate
    assert details["welfare_gap"] >= -1e-6
    assert "kkt_certificate" in details and "max_kkt_violation" in details["kkt_certificate"]


def test_verify_optimum_and_perturbed(market, tmp_path):
    p = run("solve", "--graph", str(market), "--json")
    alloc = json.loads(p.stdout)["allocation"]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(alloc))
    p = run("verify", "--graph", str(market), "--allocation", str(good), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["certificate"]["passed"]
    alloc[0]["amount"] *= 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(alloc))
    p = run("verify", "--graph", str(market), "--allocation", str(bad), "--json")
    assert p.returncode == 4
    assert json.loads(p.stdout)["welfare_gap"] > 0


def test_example1_json():
    p = run("example1", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["every_demand_met"]
    assert all(d["sellers_sold_out"].values())
    assert d["optimum"]["welfare"] == pytest.approx(207.8, abs=1e-6)
    for lo, hi in d["clearing_price_intervals"].values():
        assert lo == pytest.approx(0.0, abs=1e-8) and hi == pytest.approx(1.0, abs=1e-6)
    # the paper's reserve rule (models.data_share): same welfare, every demand met, and its
    # prices at most ε (default 0.01) above the interval of clearing prices
    paper = d["paper_reserve_rule"]
    assert paper["available"]
    assert paper["welfare"] == pytest.approx(207.8, abs=1e-6)
    assert d["paper_allocation_certificate"]["welfare_gap"] == pytest.approx(0.0, abs=1e-6)
    assert d["paper_allocation_certificate"]["certificate"]["passed"]
    for excess in d["paper_price_excess_over_interval"].values():
        assert excess <= 0.01 + 1e-9


@pytest.mark.parametrize(
    "args",
    [
        ("solve", "--graph", "/nonexistent/market.json"),
        ("solve", "--graph", "MALFORMED", "--json"),
        ("solve", "--graph", "GOOD", "--method", "magic"),
        ("verify", "--graph", "GOOD", "--allocation", "BADALLOC"),
        ("generate", "--buyers", "0", "--sellers", "1", "--out", "OUT"),
    ],
)
def test_malformed_input_one_line_exit_2(args, market, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    badalloc = tmp_path / "alloc.json"
    badalloc.write_text(json.dumps([{"buyer": "ghost", "seller": "s0", "amount": 1}]))
    subs = {
        "MALFORMED": str(bad),
        "GOOD": str(market),
        "BADALLOC": str(badalloc),
        "OUT": str(tmp_path / "o.json"),
    }
    p = run(*[subs.get(a, a) for a in args])
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [
        ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith(("Running HiGHS", "Includes"))
    ]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("datamarkets: error:")


_Q = {"kind": "quadratic", "a": 2.0, "b": 1.0}
_S = {"id": "s", "role": "seller", "supply": 1.0}
_B = {"id": "b", "role": "buyer", "valuation": _Q}
_GRAPH_ERRORS = {
    "unknown role": (
        {"nodes": [_S, {**_B, "role": "buyr"}], "edges": [{"source": "b", "target": "s"}]},
        "'buyr'",
    ),
    "unknown attribute": (
        {"nodes": [_S, {**_B, "colour": "red"}], "edges": [{"source": "b", "target": "s"}]},
        "'colour'",
    ),
    "negative supply": (
        {"nodes": [{**_S, "supply": -1.0}, _B], "edges": [{"source": "b", "target": "s"}]},
        "'s'",
    ),
    "missing supply": (
        {"nodes": [{"id": "s", "role": "seller"}, _B], "edges": [{"source": "b", "target": "s"}]},
        "'s'",
    ),
    "buyer-buyer edge": (
        {
            "nodes": [_S, _B, {**_B, "id": "c"}],
            "edges": [{"source": "b", "target": "s"}, {"source": "b", "target": "c"}],
        },
        "two buyers",
    ),
    "isolated buyer": (
        {"nodes": [_S, _B, {**_B, "id": "c"}], "edges": [{"source": "b", "target": "s"}]},
        "'c'",
    ),
    "empty graph": ({"nodes": [], "edges": []}, "empty"),
    "bad valuation": (
        {"nodes": [_S, {**_B, "valuation": {"kind": "cubic"}}], "edges": [{"source": "b", "target": "s"}]},
        "'b'",
    ),
    "non-path route": (
        {
            "graph": {"kind": "routes"},
            "nodes": [
                {"id": "0~1", "role": "seller", "supply": 1.0, "link": [0, 1]},
                {"id": "1~2", "role": "seller", "supply": 1.0, "link": [1, 2]},
                {**_B, "route": [0, 2]},
            ],
            "edges": [{"source": "b", "target": "0~1"}],
        },
        "'b'",
    ),
}


@pytest.mark.parametrize("case", sorted(_GRAPH_ERRORS))
def test_graph_errors_exit_2_with_one_line(case, tmp_path):
    """Each validation failure of a market file: exit 2, exactly one stderr line naming the culprit."""
    doc, needle = _GRAPH_ERRORS[case]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    p = run("solve", "--graph", str(path), "--json")
    assert p.returncode == 2, (case, p.returncode, p.stderr)
    assert p.stdout == ""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("datamarkets: error:"), p.stderr
    assert needle in lines[0], lines[0]


def test_psp_uses_epsilon_scaling_by_default(market):
    """At the default ε = 1e-3 the plain dynamics did not settle within 1,000 rounds on this 12-buyer
    market (exit 3); `--scaling 2` (default) runs warm-started ε-stages and ends with the same
    ε-stopping rule, so it is ε-Nash certified. `--scaling 0` is the plain dynamics; bad factors
    are bad input."""
    p = run("solve", "--graph", str(market), "--method", "psp", "--epsilon", "0.001", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert len(d["stage_rounds"]) > 1 and d["certificate"]["passed"]
    details = d["certificate"]["details"]
    assert 0 <= details["welfare_gap"] <= 1e-2 * details["welfare_optimum"]
    p = run(
        "solve", "--graph", str(market), "--method", "psp", "--epsilon", "0.01", "--scaling", "0", "--json"
    )
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)["stage_rounds"]) <= 1
    p = run("solve", "--graph", str(market), "--method", "psp", "--scaling", "0.5")
    assert p.returncode == 2 and "--scaling" in p.stderr
