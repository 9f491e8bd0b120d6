"""Benchmark: GNE of competing data buyers, direct Leontief solve vs best-response iteration.

Market: ``random_estimation_market(20, 500, degree=2)`` (20 buyers fitting quadratic least squares
on 500 sources at random positions, F uniform on random sub-intervals). With N = 500 sources every
γ is O(1/N²) ~ 1e-5, so with α ~ 1 every equilibrium effort would be negative and Theorem 1's
c-polytope empty (a typed no-equilibrium result). The generator's default effort scale is
α_i = u_i / (2 Σ_k γ_i^k), u_i ∈ [1, 4] (α ∝ N²/K), which guarantees 2 α_i D_i ≥ 1 (interior GNE);
α does not enter A or d, only efforts, variances and payments.

Rows (medians over repeats, same process):

- ``leontief-gmres``: the matrix-free solve of (26) alone (baseline);
- ``gne (direct)``: :func:`solve_gne` — spectral radius with Collatz–Wielandt bracket, solve,
  condition number, c-polytope, welfare;
- ``gne + certificate``: also every buyer's best-response gap (cvxpy/Clarabel) and the HiGHS
  payment-range LPs;
- ``BR iteration (closed form)`` and ``BR iteration (cvxpy)``: Gauss–Seidel best responses.

Usage: ``python benchmarks/bench_gne.py [--quick | --small] [--repeats R]`` (``--quick``: the
20 x 500 target with one repeat; ``--small``: 8 x 120); JSON to ``benchmarks/out/gne.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from timing import timed

from datamarkets.cli.common import print_table
from datamarkets.formulations.gne_solve import solve_gne
from datamarkets.io import atomic_write_json
from datamarkets.models.estimators import market_coefficients, random_estimation_market
from datamarkets.models.gne_inputs import as_gne_inputs
from datamarkets.models.gne_leontief import solve_leontief
from datamarkets.result import provenance

OUT = Path(__file__).resolve().parent / "out" / "gne.json"


def _note(name: str, r: dict[str, Any]) -> str:
    if name == "leontief-gmres":
        return f"{r['iterations']} GMRES its"
    if name == "gne (direct)":
        return f"rho={r['spectral_radius']:.6f} ({r['spectral_method']}), certified={r['certified']}"
    if name == "gne + certificate":
        return f"max BR gap {r['best_response_gap_max']:.2e}, certified={r['certified']}"
    return f"{r['sweeps']} sweeps, {r['programs']} programs, |d-d*|/|d*| = {r['d_vs_direct_rel']:.1e}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="the target size (20 buyers x 500 sources), one repeat"
    )
    ap.add_argument("--small", action="store_true", help="8 buyers x 120 sources (smoke test)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    K, N = (8, 120) if args.small else (20, 500)
    R = args.repeats or (1 if args.quick or args.small else 3)

    from datamarkets.formulations.gne_best_response import best_response_iteration

    t0 = time.perf_counter()
    G = random_estimation_market(K, N, degree=2, seed=args.seed)  # α ∝ N² by default (interior)
    t_graph = time.perf_counter() - t0
    t_coef, _, coeffs = timed(lambda: market_coefficients(G), R)
    inp = as_gne_inputs(coeffs)
    best_response_iteration(inp, backend="cvxpy", max_iter=1)  # warm cvxpy import/compilation

    rows: dict[str, dict[str, Any]] = {}
    t, ts, (d_ref, info) = timed(lambda: solve_leontief(inp, method="gmres"), R)
    rows["leontief-gmres"] = {"median_s": t, "times_s": ts, "iterations": info["iterations"]}
    t, ts, res = timed(lambda: solve_gne(coeffs), R)  # includes validation of the coefficients
    rows["gne (direct)"] = {
        "median_s": t,
        "times_s": ts,
        "certified": res.certificate.passed,
        "spectral_radius": res.solution["spectral_radius"],
        "spectral_method": res.certificate.details["spectral_method"],
    }
    t, ts, full = timed(lambda: solve_gne(coeffs, best_response_gap=True, lp_check=True), R)
    rows["gne + certificate"] = {
        "median_s": t,
        "times_s": ts,
        "certified": full.certificate.passed,
        "best_response_gap_max": float(np.max(np.abs(full.solution["best_response_gap"]))),
        "phases_s": full.timings,
        "failures": full.certificate.failures,
    }
    for backend in ("closed", "cvxpy"):
        t, ts, br = timed(lambda b=backend: best_response_iteration(inp, backend=b), R)
        rel = float(np.max(np.abs(br.solution["d"] - d_ref)) / np.abs(d_ref).max())
        rows[f"BR iteration ({backend})"] = {
            "median_s": t,
            "times_s": ts,
            "status": br.status.value,
            "sweeps": br.solution["iterations"],
            "programs": br.solution["programs_solved"],
            "d_vs_direct_rel": rel,
        }
    base = rows["leontief-gmres"]["median_s"]
    table = []
    for name, r in rows.items():
        note = _note(name, r)
        table.append([name, r["median_s"], r["median_s"] / base, note])
    load = os.getloadavg()
    print_table(
        f"GNE benchmark: {K} buyers x {N} sources, quadratic features, medians of {R} "
        f"(load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on {os.cpu_count()} cores)",
        ["route", "median s", "x leontief-gmres", "notes"],
        table,
    )
    print(f"graph {t_graph:.2f} s, coefficients {t_coef:.2f} s (not included above)", file=sys.stderr)
    payload = {
        "buyers": K,
        "sources": N,
        "repeats": R,
        "quick": args.quick,
        "small": args.small,
        "load_average": load,
        "graph_seconds": t_graph,
        "coefficients_seconds": t_coef,
        "rows": rows,
        "ratios_vs_leontief_gmres": {k: v["median_s"] / base for k, v in rows.items()},
        "meta": provenance(),
    }
    atomic_write_json(OUT, payload)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
