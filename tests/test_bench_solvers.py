"""Solver benchmarks (`datamarkets.cli.bench_solvers`, `datamarkets bench solvers`).

The oracle formulation defined here projects a random vector c onto the probability simplex,
    min ½‖x − c‖²  s.t.  Σx = 1, x ≥ 0,
by three independent routes — the sort-based closed form (``direct``), HiGHS's QP solver and
Clarabel's interior point — so the bench's rows, skips, gaps and files can be checked against
known answers. A subclass with a deliberately biased objective, a crashing route and a route that
reports its time limit checks that failures are rows, not aborts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from datamarkets import solvers as solvers_mod
from datamarkets.cli import bench_report as br
from datamarkets.cli import bench_solvers as bs
from datamarkets.cli.bench import app
from datamarkets.errors import InvalidInputError, SolverError, SolverLimitError
from datamarkets.formulation import DIRECT, Formulation, check_params
from datamarkets.registry import register, unregister
from datamarkets.result import Certificate, Result
from datamarkets.status import Status

BIAS = 0.05


def project_simplex(c: np.ndarray) -> np.ndarray:
    """Closed form: x = max(c − τ, 0) with τ from the sorted prefix sums (Held–Wolfe–Crowder)."""
    u = np.sort(c)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.flatnonzero(u - css / np.arange(1, c.size + 1) > 0)[-1]
    return np.maximum(c - css[k] / (k + 1), 0.0)


class SimplexProjection(Formulation):
    name = "test-bench-simplex"
    summary = "Projection of a random vector onto the probability simplex (test oracle)"
    kinds = ("test-simplex",)
    solvers = (DIRECT, "highs", "clarabel")
    size_meaning = "dimension n"
    parameters: ClassVar[dict[str, Any]] = {"size": 10, "seed": 0}
    objective_sense = "min"

    def instance(self, params: Mapping[str, Any]) -> Any:
        p = check_params(self.name, params, self.parameters)
        n = int(p["size"])
        if n < 2:
            raise InvalidInputError(f"simplex dimension must be ≥ 2, got {n!r}")
        return np.random.default_rng(int(p["seed"])).normal(size=n)

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        return {"c": np.asarray(instance).tolist()}

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        return np.asarray(d["c"], dtype=float)

    def build(self, instance: Any, solver: str) -> Any:
        return {"c": np.asarray(instance, dtype=float)}

    def _solve(self, c: np.ndarray, solver: str, time_limit: float | None) -> tuple[Status, np.ndarray]:
        n = c.size
        if solver == DIRECT:
            return Status.OPTIMAL, project_simplex(c)
        if solver == "highs":
            import highspy

            from datamarkets.solvers import new_highs

            h = new_highs(time_limit=time_limit)
            h.setOptionValue("qp_regularization_value", 1e-12)
            h.addVars(n, np.zeros(n), np.full(n, highspy.kHighsInf))
            h.changeColsCost(n, np.arange(n, dtype=np.int32), -c)
            h.addRow(1.0, 1.0, n, np.arange(n, dtype=np.int32), np.ones(n))
            h.passHessian(n, n, 1, np.arange(n + 1, dtype=np.int32), np.arange(n, dtype=np.int32), np.ones(n))
            h.run()
            from datamarkets.status import status_from_highs

            st = status_from_highs(h.getModelStatus())
            return st, np.asarray(h.getSolution().col_value) if st.has_solution else np.full(n, np.nan)
        if solver == "clarabel":
            import clarabel

            A = sp.vstack([sp.csr_array(np.ones((1, n))), -sp.eye_array(n)], format="csc")
            b = np.concatenate([[1.0], np.zeros(n)])
            st = clarabel.DefaultSettings()
            st.verbose = False
            st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = 1e-10
            sol = clarabel.DefaultSolver(
                sp.csc_matrix(sp.eye_array(n)),
                -c,
                sp.csc_matrix(A),
                b,
                [clarabel.ZeroConeT(1), clarabel.NonnegativeConeT(n)],
                st,
            ).solve()
            ok = str(sol.status).endswith("Solved")
            return (Status.OPTIMAL if ok else Status.ERROR), np.asarray(sol.x)
        raise SolverError(f"no route for {solver!r}")

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        c = program["c"]
        status, x = self._solve(c, solver, time_limit)
        sol: dict[str, Any] = {"x": x, "objective": 0.5 * float(np.sum((x - c) ** 2))}
        return Result(kind="test-simplex", status=status, method=solver, solution=sol)

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        """KKT of the projection: x = max(c − τ, 0) for one τ; Σx = 1."""
        c = np.asarray(instance, dtype=float)
        x = np.asarray(solution["x"], dtype=float)
        cert = Certificate()
        cert.add("sum_minus_one_abs", abs(x.sum() - 1.0), 1e-7)
        cert.add("negativity_max", max(0.0, -x.min()), 1e-7)
        support = x > 1e-7
        tau = c[support] - x[support]
        tau_hat = float(np.median(tau))
        cert.add("stationarity_spread", float(tau.max() - tau.min()), 1e-6)
        off = c[~support] - tau_hat
        cert.add("dual_sign_max", max(0.0, float(off.max())) if off.size else 0.0, 1e-6)
        cert.add("objective_abs", abs(solution["objective"] - 0.5 * float(np.sum((x - c) ** 2))), 1e-9)
        return cert


class BiasedSimplex(SimplexProjection):
    """Clarabel reports its objective + BIAS (its x and certificate stay right); OSQP crashes; SCS
    reports its time limit."""

    name = "test-bench-simplex-biased"
    solvers = (DIRECT, "highs", "clarabel", "osqp", "scs")

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        if solver == "osqp":
            raise SolverError("deliberate crash of the osqp route")
        if solver == "scs":
            raise SolverLimitError("deliberate time limit of the scs route")
        res = super().solve_program(program, solver, time_limit=time_limit)
        if solver == "clarabel":
            res.solution["objective"] += BIAS
        return res

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        cert = super().certify(instance, solution)
        del cert.residuals["objective_abs"], cert.tolerances["objective_abs"]
        return cert


@pytest.fixture(autouse=True)
def formulations():
    register(SimplexProjection, replace=True)
    register(BiasedSimplex, replace=True)
    yield
    unregister(SimplexProjection.name)
    unregister(BiasedSimplex.name)


def test_oracle_routes_agree_with_closed_form():
    f = SimplexProjection()
    c = f.generate(30, 4)
    x0 = project_simplex(c)
    assert abs(x0.sum() - 1) < 1e-12 and x0.min() >= 0
    for s in f.solvers:
        r = f.solve(c, s)
        assert r.certified, (s, r.certificate.failures)
        assert np.max(np.abs(np.asarray(r.solution["x"]) - x0)) < 1e-6


def test_one_row_per_size_seed_solver_same_instance():
    df = bs.run_solver_bench(SimplexProjection.name, [5, 40], 3, progress=False)
    assert list(df.columns) == list(br.COLUMNS)
    assert len(df) == 2 * 3 * 3
    keys = df[["size", "seed", "solver"]].apply(tuple, axis=1)
    assert keys.is_unique
    assert set(keys) == {
        (n, s, v) for n in (5, 40) for s in range(3) for v in ("direct", "highs", "clarabel")
    }
    assert (df["status"] == "optimal").all()
    assert df["certificate_passed"].all()
    # every solver ran on the same instance: one hash per (size, seed), distinct across them
    hashes = df.groupby(["size", "seed"])["instance_hash"].nunique()
    assert (hashes == 1).all()
    assert df["instance_hash"].nunique() == 6
    # solvers agree → relative gap to the best (min) objective within the routes' tolerance
    assert (df["objective_gap_rel"] <= 1e-7).all()
    for col in ("build_seconds", "solve_seconds", "certify_seconds", "wall_seconds"):
        assert (df[col] >= 0).all() and df[col].notna().all()
    assert (df["max_residual_ratio"] <= 1).all()
    # objective equals the closed form of the generated instance
    f = SimplexProjection()
    for (n, seed), g in df.groupby(["size", "seed"]):
        c = f.generate(n, seed)
        x = project_simplex(c)
        assert np.allclose(g["objective"], 0.5 * np.sum((x - c) ** 2), rtol=1e-7, atol=1e-9)


def test_uninstalled_solver_is_skipped_not_failed(monkeypatch):
    real = solvers_mod.available_solvers()
    monkeypatch.setattr(solvers_mod, "available_solvers", lambda refresh=False: {**real, "clarabel": None})
    df = bs.run_solver_bench(SimplexProjection.name, [6], 2, progress=False)
    cl = df[df["solver"] == "clarabel"]
    assert len(cl) == 2
    assert (cl["status"] == br.SKIPPED_NOT_INSTALLED).all()
    assert cl["solve_seconds"].isna().all() and cl["error"].isna().all()
    assert (df[df["solver"] != "clarabel"]["status"] == "optimal").all()
    summary = br.bench_summary(df)["families"][SimplexProjection.name]
    assert summary["skipped"] == {"clarabel": [br.SKIPPED_NOT_INSTALLED]}
    assert {m["solver"] for m in summary["medians"]} == {"direct", "highs"}


def test_restricting_solvers_and_not_applicable():
    df = bs.run_solver_bench(SimplexProjection.name, "8", [3], solvers=["highs", "ecos"], progress=False)
    assert df["solver"].tolist() == ["highs", "ecos"]
    assert df["status"].tolist() == ["optimal", br.SKIPPED_NOT_APPLICABLE]
    assert df["seed"].tolist() == [3, 3]


def test_biased_route_shows_its_gap_and_failures_are_rows():
    df = bs.run_solver_bench(BiasedSimplex.name, [10, 20], 2, progress=False)
    assert len(df) == 2 * 2 * 5
    by = {s: g for s, g in df.groupby("solver")}
    best = by["direct"]["objective"].to_numpy()
    assert np.allclose(by["highs"]["objective"], best, rtol=1e-7, atol=1e-9)
    expected = BIAS / np.maximum(1.0, np.abs(best))
    np.testing.assert_allclose(by["clarabel"]["objective_gap_rel"], expected, rtol=1e-5)
    assert (by["direct"]["objective_gap_rel"] <= 1e-7).all() and (
        by["highs"]["objective_gap_rel"] <= 1e-7
    ).all()
    assert set(by["clarabel"]["reference_solver"]) <= {"direct", "highs"}
    assert (by["osqp"]["status"] == "error").all()
    assert by["osqp"]["error"].str.contains("deliberate crash").all()
    assert (by["scs"]["status"] == "time_limit").all()
    assert by["osqp"]["objective_gap_rel"].isna().all()
    fam = br.bench_summary(df)["families"][BiasedSimplex.name]
    # a crash is a failure row with its error; a time limit is a status (Formulation.solve turns the
    # route's SolverLimitError into status time_limit), counted but not a failure
    assert {x["solver"] for x in fam["failures"]} == {"osqp"}
    assert fam["status_counts"]["scs"] == {"time_limit": 4}


def test_gap_reference_by_sense():
    """Reference = best certified objective by sense; with no sense, the most accurate run."""
    rows = [
        {
            "solver": "a",
            "status": "optimal",
            "objective": 2.0,
            "certificate_passed": True,
            "max_residual_ratio": 0.5,
        },
        {
            "solver": "b",
            "status": "optimal",
            "objective": 1.0,
            "certificate_passed": True,
            "max_residual_ratio": 0.1,
        },
        {
            "solver": "c",
            "status": "optimal",
            "objective": 9.0,
            "certificate_passed": False,
            "max_residual_ratio": 7,
        },
        {"solver": "d", "status": br.SKIPPED_NOT_INSTALLED},
    ]
    bs.fill_gaps(rows, None)
    assert [r.get("objective_gap_rel") for r in rows] == [1.0, 0.0, 8.0, None]
    assert rows[0]["reference_solver"] == "b"
    bs.fill_gaps(rows, "max")
    assert [r["objective_gap_rel"] for r in rows[:3]] == [0.0, 0.5, 3.5]
    bs.fill_gaps(rows, "min")
    assert [r["objective_gap_rel"] for r in rows[:3]] == [1.0, 0.0, 8.0]


def test_write_bench_files_reread_equal(tmp_path, capsys):
    df = bs.run_solver_bench(BiasedSimplex.name, [4, 16], 2, progress=False)
    paths = br.write_bench(df, tmp_path / "out")
    assert "medians over seeds" in capsys.readouterr().out
    for key in ("csv", "parquet", "summary", f"plot:{BiasedSimplex.name}"):
        assert paths[key].is_file()
    pd.testing.assert_frame_equal(br.read_bench(paths["csv"]), df)
    pd.testing.assert_frame_equal(br.read_bench(paths["parquet"]), df)
    assert paths[f"plot:{BiasedSimplex.name}"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["summary"].read_text())
    med = summary["families"][BiasedSimplex.name]["medians"]
    solved = [m for m in med if m["solved"] > 0]
    assert {(m["solver"], m["size"]) for m in solved} == {
        (s, n) for s in ("direct", "highs", "clarabel") for n in (4, 16)
    }
    # the routes that never returned a solution still get a row, with their statuses
    unsolved = {(m["solver"], m["size"]): m["statuses"] for m in med if m["solved"] == 0}
    assert unsolved == {
        ("osqp", 4): {"error": 2},
        ("osqp", 16): {"error": 2},
        ("scs", 4): {"time_limit": 2},
        ("scs", 16): {"time_limit": 2},
    }
    for m in solved:
        assert m["ratio_to"] == "highs"
        sub = df[(df["solver"] == m["solver"]) & (df["size"] == m["size"])]
        assert m["median_solve_seconds"] == pytest.approx(sub["solve_seconds"].median())
        ref = df[(df["solver"] == "highs") & (df["size"] == m["size"])]["solve_seconds"].median()
        assert m["solve_ratio"] == pytest.approx(m["median_solve_seconds"] / ref)
    # no stray temporary files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [
            "bench_solvers.csv",
            "bench_solvers.parquet",
            "bench_solvers.json",
            f"bench_solvers-{BiasedSimplex.name}.png",
        ]
    )


def test_ratio_to_fastest_without_highs():
    df = bs.run_solver_bench(SimplexProjection.name, [6], 2, solvers=["direct", "clarabel"], progress=False)
    med = br.bench_summary(df)["families"][SimplexProjection.name]["medians"]
    fastest = min(med, key=lambda m: m["median_solve_seconds"])
    assert all(m["ratio_to"] == fastest["solver"] for m in med)
    assert fastest["solve_ratio"] == 1.0


@pytest.mark.parametrize(
    ("sizes", "seeds", "solvers", "match"),
    [
        ("100,abc", 1, None, "not an integer"),
        ("0,10", 1, None, "must be positive"),
        ("", 1, None, "no sizes"),
        ("10", 0, None, "at least 1"),
        ("10", [-1], None, "non-negative"),
        ("10", 1, ["gurobi"], "unknown solver"),
    ],
)
def test_bad_input_raises(sizes, seeds, solvers, match):
    with pytest.raises(InvalidInputError, match=match):
        bs.run_solver_bench(SimplexProjection.name, sizes, seeds, solvers=solvers, progress=False)


def test_unknown_family_and_rejected_size():
    with pytest.raises(InvalidInputError, match="unknown formulation"):
        bs.run_solver_bench("no-such-family", [10], 1, progress=False)
    with pytest.raises(InvalidInputError, match="dimension must be"):
        bs.run_solver_bench(SimplexProjection.name, [1], 1, progress=False)
    with pytest.raises(InvalidInputError, match="time limit"):
        bs.run_solver_bench(SimplexProjection.name, [10], 1, time_limit=-1.0, progress=False)


def test_read_bench_rejects_other_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInputError, match="not a bench table"):
        br.read_bench(p)
    with pytest.raises(InvalidInputError, match="does not exist"):
        br.read_bench(tmp_path / "missing.parquet")


runner = CliRunner()


def test_cli_writes_table_and_plot(tmp_path):
    out = tmp_path / "bench"
    r = runner.invoke(
        app,
        ["solvers", "--family", BiasedSimplex.name, "--sizes", "5,20", "--seeds", "2", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    df = br.read_bench(out / "bench_solvers.parquet")
    assert len(df) == 2 * 2 * 5
    assert (out / f"bench_solvers-{BiasedSimplex.name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "medians over seeds" in r.stdout


def test_cli_solver_restriction_and_time_limit(tmp_path):
    out = tmp_path / "b"
    args = ["solvers", "--family", SimplexProjection.name, "--sizes", "6", "--seeds", "1", "--out", str(out)]
    r = runner.invoke(app, [*args, "--solvers", "highs,direct", "--time-limit", "30"])
    assert r.exit_code == 0, r.output
    df = br.read_bench(out / "bench_solvers.csv")
    assert df["solver"].tolist() == ["highs", "direct"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--family", "no-such-family"], "unknown formulation"),
        (["--family", SimplexProjection.name, "--sizes", "100,abc"], "not an integer"),
        (["--family", SimplexProjection.name, "--sizes", "-5"], "must be positive"),
        (["--family", SimplexProjection.name, "--seeds", "0"], "at least 1"),
        (["--family", SimplexProjection.name, "--solvers", "nope"], "unknown solver"),
        (["--family", SimplexProjection.name, "--time-limit", "0"], "time-limit"),
    ],
)
def test_cli_bad_input_exit_2_one_line(extra, message, tmp_path):
    r = runner.invoke(app, ["solvers", "--sizes", "5", *extra, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("datamarkets: error:")]
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = runner.invoke(app, ["solvers", "--family", SimplexProjection.name, "--sizes", "5", "--out", str(f)])
    assert r.exit_code == 2 and "not a directory" in r.stderr


def test_cli_help_explains_terms():
    r = runner.invoke(app, ["solvers", "--help"])
    assert r.exit_code == 0
    for word in ("formulation", "certificate", "HiGHS", "skipped", "--time-limit"):
        assert word in r.stdout


# ----------------------------------------------------------------------------- real formulation
# the QP routes that are installed here (ECOS is optional: not a dependency of cvxpy ≥ 1.6)
AUCTION_SOLVERS = [
    s for s in ("highs", "clarabel", "osqp", "scs", "ecos") if solvers_mod.available_solvers()[s]
]


def test_auction_welfare_solvers_agree():
    df = bs.run_solver_bench("auction-welfare", [10, 30], 2, solvers=AUCTION_SOLVERS, progress=False)
    assert len(df) == 2 * 2 * len(AUCTION_SOLVERS)
    assert not df["status"].str.startswith("skipped").any()
    for _key, g in df.groupby(["size", "seed"]):
        opt = g[g["status"] == "optimal"]
        assert {"highs", "clarabel"} <= set(opt["solver"]), g[["solver", "status", "error"]]
        obj = opt["objective"].to_numpy()
        ref = obj.max()
        assert np.max(np.abs(obj - ref)) / max(1.0, abs(ref)) <= 1e-4, g[["solver", "objective"]]
        accurate = g[g["solver"].isin(["highs", "clarabel"])]
        assert accurate["certificate_passed"].all(), g[["solver", "max_residual_ratio"]]
        assert math.isfinite(ref)
