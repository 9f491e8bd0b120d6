"""Benchmark: routes of the LQ games layer on random strongly monotone generalized Nash games.

Games: :func:`~datamarkets.formulations.games.random_lq_game` (n variables, N = max(2, n // 10)
players, max(1, n // 20) shared rows ``A x ≤ b`` binding at the equilibrium, box bounds, sparse
couplings; sym(M) ⪰ 0.6 I so the variational equilibrium is unique). Per size, every applicable route
is timed build + solve + certificate (medians over ``--repeats`` for runs under 5 s and for the MILP
rows, whose HiGHS times vary run to run, else one run), with the certificate's best-response gap
(relative) it reaches:

- ``auto`` — the default route (vi: the gap QP on Clarabel) — the baseline of the ratio column;
- ``vi-highs`` — the same QP on HiGHS's active-set QP (n ≤ 200);
- ``best_response`` (Gauss–Seidel) — a GNE (not the VE: shared rows) — n ≤ 1000, and 10,000 with
  a time limit;
- ``jacobi`` — n ≤ 200;
- ``milp`` — the milp route as it runs by default: the KKT MILP with derived big-M (variational),
  started from the vi answer on these monotone games (its switches fixed in a first solve, then
  confirmed by HiGHS as the start of the full MILP), n ≤ 200; ``milp-cold`` — the same MILP with no
  start (``mip_start="none"``); and ``milp-fixed-big-m`` (blind M = 1e4, no bounding, no start; the
  baseline of the MILP ratios) at n = 60 and 200.

The MILP table (n = 60, 200) gives the three medians, total (build + solve + certificate) and solve
only (the certificate is the same for all three), and the ratios baseline / route and baseline /
cold.

Migration row (``--cournot S``, default 300 sellers = 600 edge variables; 0 skips it): the Cournot
sellers' market of ``examples/cournot_sellers.py`` solved (build + solve + certificate) by the generic
layer's default route on ``examples/cournot_games.py``'s game versus the hand-derived potential QP
(``cournot-sellers`` on Clarabel, the baseline of its ratio), same graph, same process; it also
prints the largest quantity difference relative to the quantity scale q̄.

Usage: ``python benchmarks/bench_games.py [--sizes 20,60,200,1000,10000] [--repeats 3]
[--time-limit 120] [--cournot 300] [--out benchmarks/out/games.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from datamarkets.examples.cournot_games import cournot_game
from datamarkets.examples.cournot_sellers import CournotSellers, cournot_arrays, random_cournot_graph
from datamarkets.formulations.games import random_lq_game, solve_game

FIXED_BIG_M = 1e4


def _run(game: Any, route: str, time_limit: float) -> dict[str, Any]:
    kw: dict[str, Any] = {"time_limit": time_limit}
    method = route
    if route == "vi-highs":
        method, kw["qp_solver"] = "vi", "highs"
    elif route == "milp-fixed-big-m":
        method, kw["fixed_big_m"] = "milp", FIXED_BIG_M
    elif route == "milp-cold":
        method, kw["mip_start"] = "milp", "none"
    t0 = time.perf_counter()
    r = solve_game(game, method, **kw)
    total = time.perf_counter() - t0
    return {
        "status": r.status.value,
        "certified": bool(r.certified),
        "build_s": r.timings.get("build_seconds", 0.0),
        "solve_s": r.timings.get("solve_seconds", 0.0),
        "certify_s": r.timings.get("certify_seconds", 0.0),
        "total_s": total,
        "br_gap_rel": r.certificate.residuals.get("br_gap_max"),
        "iterations": r.solution.get("iterations"),
        "binaries": r.solution.get("binaries"),
        "binaries_free": r.solution.get("binaries_free"),
        "mip_start": r.meta.get("mip_start"),
        "mip_start_result": r.solution.get("mip_start_result"),
    }


def cournot_rows(sellers: int, repeats: int, seed: int) -> list[dict[str, Any]]:
    """Generic default route vs the hand-derived QP on one random Cournot market (medians)."""
    G = random_cournot_graph(sellers, seed)
    q_bar = cournot_arrays(G).quantity_scale
    hand_f = CournotSellers()

    def generic() -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = solve_game(cournot_game(G))  # the game's build counts too
        return time.perf_counter() - t0, r

    def hand() -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = hand_f.solve(G, "clarabel")
        return time.perf_counter() - t0, r

    generic(), hand()  # warm-up: imports and cvxpy's first canonicalisation
    g_runs = [generic() for _ in range(repeats)]
    h_runs = [hand() for _ in range(repeats)]
    g_res, h_res = g_runs[-1][1], h_runs[-1][1]
    q_hand = np.array([row["quantity"] for row in h_res.solution["quantities"]])
    diff = float(np.max(np.abs(np.asarray(g_res.solution["x"]) - q_hand))) / q_bar
    base = statistics.median(t for t, _ in h_runs)
    rows = []
    for route, runs, res in (
        (f"cournot-generic-{g_res.solution['route']}", g_runs, g_res),
        ("cournot-hand-qp-clarabel", h_runs, h_res),
    ):
        total = statistics.median(t for t, _ in runs)
        rows.append(
            {
                "n": len(q_hand),
                "N": sellers,
                "m": 0,
                "route": route,
                "status": res.status.value,
                "certified": bool(res.certified),
                "build_s": statistics.median(r.timings.get("build_seconds", 0.0) for _, r in runs),
                "solve_s": statistics.median(r.timings.get("solve_seconds", 0.0) for _, r in runs),
                "certify_s": statistics.median(r.timings.get("certify_seconds", 0.0) for _, r in runs),
                "total_s": total,
                "br_gap_rel": None,
                "repeats": len(runs),
                "ratio_vs_auto": total / base,
                "max_quantity_diff_rel": diff,
            }
        )
    return rows


def milp_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per n with all three MILP rows: the medians and the ratios baseline / route, baseline / cold."""
    out = []
    for n in sorted({r["n"] for r in rows}):
        by = {r["route"]: r for r in rows if r["n"] == n}
        if not all(k in by for k in ("milp", "milp-cold", "milp-fixed-big-m")):
            continue
        base, route, cold = by["milp-fixed-big-m"], by["milp"], by["milp-cold"]
        row: dict[str, Any] = {"n": n, "repeats": route["repeats"], "mip_start": route["mip_start_result"]}
        for k in ("total_s", "solve_s"):
            row[f"baseline_{k}"], row[f"cold_{k}"], row[f"route_{k}"] = base[k], cold[k], route[k]
            row[f"baseline_over_route_{k}"] = base[k] / route[k]
            row[f"baseline_over_cold_{k}"] = base[k] / cold[k]
        row["all_certified"] = bool(base["certified"] and cold["certified"] and route["certified"])
        out.append(row)
    return out


def print_milp_table(table: list[dict[str, Any]]) -> None:
    print(
        "\n| n | what | fixed-big-M baseline s | derived-M cold s | derived-M route (vi start) s "
        "| baseline / route | baseline / cold |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in table:
        for k, what in (("total_s", "total"), ("solve_s", "solve only")):
            print(
                f"| {r['n']} | {what} | {r[f'baseline_{k}']:.3f} | {r[f'cold_{k}']:.3f} | "
                f"{r[f'route_{k}']:.3f} | {r[f'baseline_over_route_{k}']:.1f}× "
                f"| {r[f'baseline_over_cold_{k}']:.2f}× |"
            )


def routes_for(n: int) -> list[str]:
    out = ["auto"]
    if n <= 200:
        out += ["vi-highs", "jacobi", "milp", "milp-cold"]
    if n in (60, 200):
        out.append("milp-fixed-big-m")
    out.append("best_response")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20,60,200,1000,10000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cournot", type=int, default=300, help="Cournot sellers (0: skip the row)")
    ap.add_argument("--out", default="benchmarks/out/games.json")
    a = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    if a.cournot > 0:
        crows = cournot_rows(a.cournot, a.repeats, a.seed)
        rows += crows
        g, h = crows
        print(
            f"# Cournot {a.cournot} sellers ({g['n']} variables): generic {g['route']} {g['total_s']:.3f} s "
            f"(cert={g['certified']}), hand-derived QP {h['total_s']:.3f} s (cert={h['certified']}); "
            f"generic / hand = {g['ratio_vs_auto']:.2f}; max |q_generic − q_hand| / q̄ = "
            f"{g['max_quantity_diff_rel']:.1e}",
            flush=True,
        )
    for n in [int(s) for s in a.sizes.split(",")]:
        t0 = time.perf_counter()
        game = random_lq_game(n, seed=a.seed)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        eig = game.monotonicity_min_eig
        eig_s = time.perf_counter() - t0
        print(
            f"# n={n}: N={game.N} m={game.m}, generated in {gen_s:.2f} s, "
            f"min eig sym(M) = {eig:.4f} ({eig_s:.2f} s)",
            flush=True,
        )
        base = None
        for route in routes_for(n):
            runs = [_run(game, route, a.time_limit)]
            if runs[0]["total_s"] < 5.0 or route.startswith(
                "milp"
            ):  # the fast ones and the MILP ratio: medians
                runs += [_run(game, route, a.time_limit) for _ in range(a.repeats - 1)]
            reps = len(runs)
            row = dict(runs[-1])
            for k in ("build_s", "solve_s", "certify_s", "total_s"):
                row[k] = statistics.median(r[k] for r in runs)
            row.update(n=n, N=game.N, m=game.m, route=route, repeats=reps, eig_s=eig_s)
            if route == "auto":
                base = row["total_s"]
            row["ratio_vs_auto"] = row["total_s"] / base if base else None
            rows.append(row)
            print(
                f"{n:>6} {route:<18} {row['status']:<15} cert={row['certified']!s:<5} "
                f"build={row['build_s']:.3f} solve={row['solve_s']:.3f} cert={row['certify_s']:.3f} "
                f"total={row['total_s']:.3f} brgap={row['br_gap_rel']} x{row['ratio_vs_auto']:.2f}",
                flush=True,
            )
    milp_table = milp_rows(rows)
    print(
        "\n| n | N | route | status | certified | build s | solve s | certify s | total s "
        "| BR gap (rel) | × auto |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gap = "–" if r["br_gap_rel"] is None else f"{r['br_gap_rel']:.1e}"
        print(
            f"| {r['n']} | {r['N']} | {r['route']} | {r['status']} | {r['certified']} | {r['build_s']:.3f} | "
            f"{r['solve_s']:.3f} | {r['certify_s']:.3f} | {r['total_s']:.3f} | {gap} "
            f"| {r['ratio_vs_auto']:.2f} |"
        )
    print_milp_table(milp_table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "milp": milp_table, "argv": sys.argv[1:]}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
