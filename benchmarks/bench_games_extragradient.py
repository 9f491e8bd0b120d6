"""Benchmark: first-order VI routes (extragradient, projection) against the one-QP vi route.

Games: :func:`~datamarkets.formulations.games.random_lq_game` (strongly monotone, non-symmetric,
shared rows binding). Per size, each route is timed (solve only, ``certify=False``; median over
``--repeats``) in the same process; the ``vi`` route (gap QP on Clarabel, polished) is the baseline of
the ratio column. Also reported: iterations, the step τ, ``L = ‖M‖₂``, μ, the final natural residual,
the largest difference from the vi answer, and the certificate of one extra certified solve.

Usage: ``python benchmarks/bench_games_extragradient.py [--sizes 50,200] [--repeats 3]
[--out benchmarks/out/games_extragradient.json]``.
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

from datamarkets.formulations.games import random_lq_game, solve_game

ROUTES = ("vi", "extragradient", "projection")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,200")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/out/games_extragradient.json")
    a = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for n in [int(s) for s in a.sizes.split(",")]:
        game = random_lq_game(n, seed=a.seed)
        base_s, base_x = None, None
        for route in ROUTES:
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                solve_game(game, route, certify=False)
                times.append(time.perf_counter() - t0)
            r = solve_game(game, route)
            s = r.solution
            x = np.asarray(s["x"])
            med = statistics.median(times)
            if route == "vi":
                base_s, base_x = med, x
            assert base_s is not None and base_x is not None
            row = {
                "n": n,
                "N": game.N,
                "m": game.m,
                "route": route,
                "status": r.status.value,
                "certified": bool(r.certified),
                "seconds_median": med,
                "ratio_vs_vi": med / base_s,
                "iterations": s.get("iterations"),
                "step": s.get("step"),
                "L": s.get("lipschitz_L"),
                "mu": s.get("monotonicity_min_eig"),
                "natural_residual": s.get("natural_residual"),
                "max_diff_vs_vi": float(np.abs(x - base_x).max()),
            }
            rows.append(row)
            print(
                f"{n:>5} {route:<14} {row['status']:<8} cert={row['certified']!s:<5} "
                f"{med:.3f} s ×{row['ratio_vs_vi']:.1f} it={row['iterations']} step={row['step']}",
                flush=True,
            )
    print(
        "\n| n | route | iterations | step τ | L | μ | natural residual | seconds (median) "
        "| × vi | max Δx vs vi |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:

        def f(v: Any, spec: str = ".3g") -> str:
            return "–" if v is None else format(v, spec)

        print(
            f"| {r['n']} | {r['route']} | {r['iterations']} | {f(r['step'])} | {f(r['L'])} | {f(r['mu'])} "
            f"| {f(r['natural_residual'], '.1e')} | {r['seconds_median']:.3f} | {r['ratio_vs_vi']:.1f} "
            f"| {r['max_diff_vs_vi']:.1e} |"
        )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "argv": sys.argv[1:]}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
