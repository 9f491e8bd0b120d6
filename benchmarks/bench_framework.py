"""Benchmark: what the framework layer costs, and what a Dask sweep buys.

Rows (medians over repeats, same process):

- ``welfare direct`` (baseline): ``solve_welfare`` + ``certify_allocation`` called by hand on a
  random market (``--buyers`` buyers, buyers/10 sellers, 5 edges each);
- ``welfare via formulation``: ``get_formulation("auction-welfare").solve(G)`` — the same work plus
  provenance, the embedded instance and its hash (ratio = plug-in overhead);
- ``verify saved result``: ``Formulation.verify`` of the saved JSON (instance rebuilt from JSON,
  hash checked, certificate re-derived);
- ``chain grid, sequential``: the chain models × n × mechanisms grid of
  ``examples/sweeps/chain_mechanisms.toml`` solved one task after another in this process (the
  baseline of the next row);
- ``chain grid, Dask sweep``: the same grid with ``run_sweep`` on a LocalCluster of 2 worker
  processes into a fresh Parquet store (cluster start-up included).

Usage: ``python benchmarks/bench_framework.py [--buyers B] [--repeats R] [--no-sweep]``;
JSON to ``benchmarks/out/framework.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from timing import timed

from datamarkets.cli.common import print_table, solver_output_to_stderr
from datamarkets.formulations.auction_certificate import certify_allocation
from datamarkets.formulations.welfare import solve_welfare
from datamarkets.graphs.market import random_bipartite_market
from datamarkets.io import atomic_write_json, read_json
from datamarkets.registry import get_formulation
from datamarkets.result import provenance

OUT = Path(__file__).resolve().parent / "out" / "framework.json"
SPEC = Path(__file__).resolve().parents[1] / "examples" / "sweeps" / "chain_mechanisms.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buyers", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-sweep", action="store_true", help="skip the Dask sweep rows")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows: list[dict[str, Any]] = []
    G = random_bipartite_market(args.buyers, max(1, args.buyers // 10), 5, seed=0)
    f = get_formulation("auction-welfare")

    def direct() -> Any:
        r = solve_welfare(G)
        return r, certify_allocation(G, r.solution["allocation"], optimum=r)

    with solver_output_to_stderr():
        direct()  # warm-up: imports and solver start-up off the clock
        base, t_base, _ = timed(direct, args.repeats)
        via, t_via, res = timed(lambda: f.solve(G, "clarabel"), args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            path = res.save(Path(tmp) / "r.json")
            size_mb = path.stat().st_size / 1e6
            ver, t_ver, v = timed(lambda: f.verify(read_json(path)), args.repeats)
    rows += [
        {"name": "welfare direct", "median_s": base, "times": t_base, "note": f"{args.buyers} buyers"},
        {
            "name": "welfare via formulation",
            "median_s": via,
            "times": t_via,
            "note": f"certified={res.certified}",
        },
        {
            "name": "verify saved result",
            "median_s": ver,
            "times": t_ver,
            "note": f"passed={v.certificate.passed}, file {size_mb:.2f} MB",
        },
    ]
    base_ratio = {"welfare via formulation": base, "verify saved result": via}
    if not args.no_sweep:
        from datamarkets.cli.sweep import expand, load_spec, run_sweep, run_task

        specs = load_spec(SPEC)
        tasks = expand(specs)
        t0 = time.perf_counter()
        with solver_output_to_stderr():
            seq = [run_task(t) for t in tasks]
        t_seq = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rep = run_sweep(specs, Path(tmp) / "store", n_workers=2, progress=False)
            t_dask = time.perf_counter() - t0
        ok = sum(1 for r in seq if r.get("certified"))
        rows += [
            {
                "name": "chain grid, sequential",
                "median_s": t_seq,
                "times": [t_seq],
                "note": f"{len(tasks)} tasks, {ok} certified",
            },
            {
                "name": "chain grid, Dask sweep",
                "median_s": t_dask,
                "times": [t_dask],
                "note": f"2 workers: {rep.done} done, {rep.failed} failed, {rep.lost} lost",
            },
        ]
        base_ratio["chain grid, Dask sweep"] = t_seq
    table = []
    for r in rows:
        ref = base_ratio.get(r["name"])
        r["ratio_to_baseline"] = None if ref is None else r["median_s"] / ref
        table.append([r["name"], r["median_s"], r["ratio_to_baseline"] or "-", r["note"]])
    print_table("framework layer (medians, seconds)", ["route", "median s", "× baseline", "note"], table)
    meta = {"rows": rows, "meta": provenance(), "buyers": args.buyers, "repeats": args.repeats}
    atomic_write_json(OUT, meta)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
