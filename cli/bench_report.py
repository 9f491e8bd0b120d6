"""The solver bench's table (part of :mod:`datamarkets.cli.bench_solvers`): its columns, the summary
(medians over seeds, times relative to HiGHS), the log-log plot, the files written and read back, and
the printed summary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datamarkets.cli.common import print_table
from datamarkets.errors import InvalidInputError
from datamarkets.io import atomic_path, atomic_write_csv, atomic_write_json
from datamarkets.plotting import figure_format, pyplot, save_figure
from datamarkets.registry import get_formulation
from datamarkets.result import provenance
from datamarkets.status import Status

__all__ = [
    "COLUMNS",
    "FILE_STEM",
    "SKIPPED_NOT_APPLICABLE",
    "SKIPPED_NOT_INSTALLED",
    "bench_summary",
    "plot_bench",
    "print_bench_summary",
    "read_bench",
    "write_bench",
]

SKIPPED_NOT_INSTALLED = "skipped: not installed"
SKIPPED_NOT_APPLICABLE = "skipped: not applicable"

COLUMNS: dict[str, str] = {
    "family": "string",
    "size": "int64",
    "seed": "int64",
    "solver": "string",
    "solver_version": "string",
    "status": "string",
    "generate_seconds": "float64",
    "build_seconds": "float64",
    "solve_seconds": "float64",
    "certify_seconds": "float64",
    "wall_seconds": "float64",
    "objective": "float64",
    "objective_gap_rel": "float64",
    "reference_solver": "string",
    "certificate_passed": "boolean",
    "max_residual_ratio": "float64",
    "instance_hash": "string",
    "error": "string",
}
"""Columns of the benchmark table and their pandas dtypes (``string``/``boolean`` are nullable)."""

FILE_STEM = "bench_solvers"
"""Stem of the files :func:`write_bench` writes (``bench_solvers.csv`` …)."""


def _has_solution(status: Any) -> bool:
    try:
        return Status(str(status)).has_solution
    except ValueError:
        return False


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    for col, dtype in COLUMNS.items():
        s = df[col].reset_index(drop=True) if col in df else pd.Series([None] * len(df))
        if dtype == "float64":
            out[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        elif dtype == "boolean":
            out[col] = s.map(lambda v: pd.NA if v is None or v is pd.NA or v != v else bool(v)).astype(
                "boolean"
            )
        elif dtype == "string":
            out[col] = s.map(lambda v: pd.NA if v is None or v is pd.NA or v != v else str(v)).astype(
                "string"
            )
        else:
            out[col] = s.astype(dtype)
    return out


# --------------------------------------------------------------------------- summarising
def _ran(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose run returned a solution (the ones with meaningful timings)."""
    return df[df["status"].map(_has_solution).astype(bool)]


def bench_summary(df: pd.DataFrame) -> dict[str, Any]:
    """Medians over seeds per family × solver × size, with time ratios, from one bench table.

    ``ratio_to`` is ``"highs"`` where HiGHS returned a solution at that size, otherwise the solver
    with the smallest median solve time; ``solve_ratio`` = median solve time / the reference's.
    Medians are over runs that returned a solution; a solver that ran at a size without ever
    returning one (all runs hit the time limit, say) gets a row with ``solved = 0`` and its
    ``statuses`` counted.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`run_solver_bench`.

    Returns
    -------
    dict
        ``{"families": {family: {"medians": [...], "skipped": {...}, "status_counts": {...}}},
        "provenance": {...}}``.

    Examples
    --------
    >>> from datamarkets.cli.bench_solvers import run_solver_bench
    >>> df = run_solver_bench("chain-equilibrium", [8], 1, solvers=["direct"], progress=False)
    >>> bench_summary(df)["families"]["chain-equilibrium"]["medians"][0]["solver"]
    'direct'
    """
    out: dict[str, Any] = {"families": {}}
    for fam, fdf in df.groupby("family", sort=True):
        by_order = {str(s): i for i, s in enumerate(dict.fromkeys(fdf["solver"]))}
        ran = _ran(fdf)
        medians: list[dict[str, Any]] = []
        for size, sdf in ran.groupby("size", sort=True):
            per: list[dict[str, Any]] = []
            for solver, g in sdf.groupby("solver", sort=False):
                runs = fdf[(fdf["size"] == size) & (fdf["solver"] == solver)]
                total = g["build_seconds"] + g["solve_seconds"]
                per.append(
                    {
                        "solver": str(solver),
                        "size": int(size),
                        "runs": len(runs),
                        "solved": len(g),
                        "optimal": int((g["status"] == Status.OPTIMAL.value).sum()),
                        "certified": int(g["certificate_passed"].fillna(False).sum()),
                        "median_build_seconds": float(g["build_seconds"].median()),
                        "median_solve_seconds": float(g["solve_seconds"].median()),
                        "min_solve_seconds": float(g["solve_seconds"].min()),
                        "max_solve_seconds": float(g["solve_seconds"].max()),
                        "median_total_seconds": float(total.median()),
                        "median_certify_seconds": float(g["certify_seconds"].median()),
                        "max_objective_gap_rel": float(g["objective_gap_rel"].max()),
                        "max_residual_ratio": float(g["max_residual_ratio"].max()),
                    }
                )
            by = {p["solver"]: p for p in per}
            ref = "highs" if "highs" in by else min(per, key=lambda p: p["median_solve_seconds"])["solver"]
            ref_t = by[ref]["median_solve_seconds"]
            for p in per:
                p["ratio_to"] = ref
                p["solve_ratio"] = p["median_solve_seconds"] / ref_t if ref_t > 0 else math.nan
            medians.extend(per)
        # solvers that ran at a size but never returned a solution (time limit, error, …) get a row
        # too, with their statuses, so that "0/3 solved" is visible rather than absent
        tried = fdf[~fdf["status"].str.startswith("skipped")]
        have = {(m["solver"], m["size"]) for m in medians}
        for (solver, size), g in tried.groupby(["solver", "size"], sort=False):
            if (str(solver), int(size)) in have:
                continue
            nan = math.nan
            medians.append(
                {
                    "solver": str(solver),
                    "size": int(size),
                    "runs": len(g),
                    "solved": 0,
                    "optimal": 0,
                    "certified": 0,
                    "statuses": {str(k): int(v) for k, v in g["status"].value_counts().items()},
                    "median_build_seconds": float(g["build_seconds"].median()),
                    "median_solve_seconds": float(g["solve_seconds"].median()),
                    "min_solve_seconds": float(g["solve_seconds"].min()),
                    "max_solve_seconds": float(g["solve_seconds"].max()),
                    "median_total_seconds": nan,
                    "median_certify_seconds": nan,
                    "max_objective_gap_rel": nan,
                    "max_residual_ratio": nan,
                    "ratio_to": None,
                    "solve_ratio": nan,
                }
            )
        medians.sort(key=lambda m: (m["size"], m["solver"] not in by_order, by_order.get(m["solver"], 0)))
        skipped = fdf[fdf["status"].str.startswith("skipped")]
        out["families"][str(fam)] = {
            "medians": medians,
            "skipped": {
                str(s): sorted(set(g["status"].astype(str))) for s, g in skipped.groupby("solver", sort=False)
            },
            "status_counts": {
                str(s): {str(k): int(v) for k, v in g["status"].value_counts().items()}
                for s, g in fdf.groupby("solver", sort=False)
            },
            "failures": [
                {"size": int(r.size), "seed": int(r.seed), "solver": str(r.solver), "error": str(r.error)}
                for r in fdf[fdf["error"].notna()].itertuples()
            ],
        }
    versions = {str(s): str(v) for s, v in df[["solver", "solver_version"]].dropna().drop_duplicates().values}
    out["provenance"] = provenance(versions)
    return out


def plot_bench(df: pd.DataFrame, family: str, path: str | Path) -> Path:
    """Log–log plot of build and solve time against size, one line per solver (atomic; the
    format follows the suffix of ``path``: ``.png``, ``.pdf`` or ``.svg``).

    Each line is the median over seeds of the runs that returned a solution; the band spans the
    minimum and maximum; every solver has its own colour, line style and marker (coincident lines
    stay distinguishable). Runs stopped by the time limit are crosses in their solver's colour, named
    beside them, on the solve panel (their time is a lower bound) with a legend entry of their own.
    Skipped solvers, and solvers that never returned a solution or hit the limit, are absent.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from datamarkets.cli.bench_solvers import run_solver_bench
    >>> df = run_solver_bench("chain-equilibrium", [6, 8], 1, solvers=["direct"], progress=False)
    >>> p = plot_bench(df, "chain-equilibrium", pathlib.Path(tempfile.mkdtemp()) / "t.png")
    >>> p.read_bytes()[:4]
    b'\\x89PNG'
    """

    plt = pyplot()
    ran = _ran(df[df["family"] == family])
    xlabel = "instance size"
    try:
        xlabel = f"size = {get_formulation(family).size_meaning}"
    except InvalidInputError:  # a table from a formulation no longer installed
        pass
    fam = df[df["family"] == family]
    limited = fam[fam["status"] == Status.TIME_LIMIT.value]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
    # solvers that coincide (same times) stay distinguishable: each its own line style and marker
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    solvers = list(dict.fromkeys([*ran["solver"].astype(str), *limited["solver"].astype(str)]))
    color = {sv: f"C{k % 10}" for k, sv in enumerate(solvers)}
    for ax, col, label in zip(axes, ("build_seconds", "solve_seconds"), ("build", "solve"), strict=True):
        for k, (solver, g) in enumerate(ran.groupby("solver", sort=False)):
            stats = g.groupby("size")[col].agg(["median", "min", "max"]).sort_index()
            x = stats.index.to_numpy(dtype=float)
            lo = np.maximum(stats["min"].to_numpy(dtype=float), 1e-6)
            ax.plot(
                x,
                np.maximum(stats["median"].to_numpy(dtype=float), 1e-6),
                linestyle=styles[k % len(styles)],
                marker=markers[k % len(markers)],
                color=color[str(solver)],
                label=str(solver),
            )
            if len(x) > 1:
                ax.fill_between(
                    x,
                    lo,
                    np.maximum(stats["max"].to_numpy(dtype=float), 1e-6),
                    alpha=0.15,
                    color=color[str(solver)],
                )
        if len(limited) and col == "solve_seconds":
            # a run stopped by the time limit: its time is a lower bound, drawn as a cross in its
            # solver's colour and named beside it (a black cross did not say whose run it was)
            t = pd.to_numeric(limited[col], errors="coerce").fillna(0.0).to_numpy(dtype=float)
            who = limited["solver"].astype(str).to_numpy()
            x_lim = limited["size"].to_numpy(dtype=float)
            ax.scatter(
                x_lim,
                np.maximum(t, 1e-6),
                marker="x",
                s=60,
                linewidths=2,
                c=[color[sv] for sv in who],
                zorder=5,
            )
            # the legend's entry in black: the crosses take their solvers' colours
            ax.scatter(
                [],
                [],
                marker="x",
                s=60,
                linewidths=2,
                color="black",
                label="hit the time limit (time ≥ shown)",
            )
            for (sv, xv), tv in pd.Series(t).groupby([who, x_lim]).max().items():
                ax.annotate(
                    str(sv),
                    (float(xv), max(float(tv), 1e-6)),
                    xytext=(-6, -4),  # left of and below the cross: inside the axes at the largest size
                    textcoords="offset points",
                    ha="right",
                    va="top",
                    fontsize=7,
                    color=color[str(sv)],
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel(f"{label} time [s]")
        ax.set_title(f"{label} (median over seeds, band = min–max)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    if len(ran) or len(limited):
        axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(family)
    fig.supxlabel(xlabel, fontsize=9)  # once for both panels: long size descriptions fit
    fig.tight_layout()
    return save_figure(fig, path)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    recs = []
    for rec in df.to_dict("records"):
        recs.append(
            {
                k: (None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v)
                for k, v in rec.items()
            }
        )
    return recs


def write_bench(
    df: pd.DataFrame, out_dir: str | Path, *, show: bool = True, fmt: str = "png"
) -> dict[str, Path]:
    """Write a bench table as CSV, Parquet, JSON summary and one log–log plot per family.

    Every file is written atomically. Files: ``bench_solvers.csv``, ``bench_solvers.parquet``,
    ``bench_solvers.json`` (:func:`bench_summary`) and ``bench_solvers-FAMILY.png``
    (:func:`plot_bench`).

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`run_solver_bench`.
    out_dir : str or Path
        Directory (created if missing).
    show : bool, default True
        Also print a table of the medians on stdout (:func:`print_bench_summary`).
    fmt : {"png", "pdf", "svg"}, default "png"
        Format of the plots (``bench_solvers-FAMILY.FMT``).

    Returns
    -------
    dict of str to Path
        ``{"csv": ..., "parquet": ..., "summary": ..., "plot:FAMILY": ...}``.

    Examples
    --------
    >>> import tempfile
    >>> from datamarkets.cli.bench_solvers import run_solver_bench
    >>> df = run_solver_bench("chain-equilibrium", [8], 1, solvers=["direct"], progress=False)
    >>> sorted(write_bench(df, tempfile.mkdtemp(), show=False))
    ['csv', 'parquet', 'plot:chain-equilibrium', 'summary']
    """
    fmt = figure_format(fmt)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output path {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    df = _typed(df)
    paths: dict[str, Path] = {}
    paths["csv"] = atomic_write_csv(out / f"{FILE_STEM}.csv", _records(df))
    with atomic_path(out / f"{FILE_STEM}.parquet") as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    paths["parquet"] = out / f"{FILE_STEM}.parquet"
    summary = bench_summary(df)
    paths["summary"] = atomic_write_json(out / f"{FILE_STEM}.json", summary)
    for fam in summary["families"]:
        paths[f"plot:{fam}"] = plot_bench(df, fam, out / f"{FILE_STEM}-{fam}.{fmt}")
    if show:
        print_bench_summary(summary)
    return paths


def read_bench(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_bench` (``.csv`` or ``.parquet``) with its dtypes.

    Raises
    ------
    InvalidInputError
        Missing file, unknown suffix, or columns that are not a bench table.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"file {str(p)!r} does not exist")
    if p.suffix == ".parquet":
        df = pd.read_parquet(p, engine="pyarrow")
    elif p.suffix == ".csv":
        df = pd.read_csv(
            p,
            dtype={k: ("object" if v in ("string", "boolean") else v) for k, v in COLUMNS.items()},
            keep_default_na=False,
            na_values={k: [""] for k in COLUMNS},
        )
        if "certificate_passed" in df:
            df["certificate_passed"] = df["certificate_passed"].map(
                lambda v: {"True": True, "False": False}.get(v, pd.NA) if isinstance(v, str) else pd.NA
            )
    else:
        raise InvalidInputError(f"{str(p)!r}: expected a .csv or .parquet bench table")
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise InvalidInputError(f"{str(p)!r} is not a bench table: missing column(s) {', '.join(missing)}")
    return _typed(df)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    # wide tables are split by columns and long cells wrap: nothing is cut at the console width
    print_table(title, columns, [[str(v) for v in r] for r in rows], compact=True)


def print_bench_summary(summary: Mapping[str, Any]) -> None:
    """Print the medians of :func:`bench_summary` as one rich table per family on stdout.

    Columns: runs with a solution / runs, certified runs, median build and solve seconds, solve
    time relative to HiGHS (or to the fastest solver, named in brackets), largest objective gap
    and largest certificate residual/tolerance ratio (≤ 1 = certified).
    """
    for fam, s in summary["families"].items():
        rows = [
            [
                m["solver"],
                m["size"],
                f"{m['solved']}/{m['runs']}",
                m["certified"],
                f"{m['median_build_seconds']:.3g}",
                f"{m['median_solve_seconds']:.3g}",
                (
                    ", ".join(f"{k} ×{v}" for k, v in m["statuses"].items())
                    if m["solved"] == 0
                    else f"{m['solve_ratio']:.3g}"
                    + ("" if m["ratio_to"] == "highs" else f" ({m['ratio_to']})")
                ),
                "-" if math.isnan(m["max_objective_gap_rel"]) else f"{m['max_objective_gap_rel']:.1e}",
                "-" if math.isnan(m["max_residual_ratio"]) else f"{m['max_residual_ratio']:.1e}",
            ]
            for m in s["medians"]
        ]
        _table(
            f"{fam}: medians over seeds (ratio = solve time / HiGHS's)",
            ["solver", "size", "solved", "cert", "build s", "solve s", "ratio", "max gap", "res/tol"],
            rows,
        )
        if s["skipped"]:
            _table(
                f"{fam}: skipped solvers",
                ["solver", "reason"],
                [[solver, ", ".join(st)] for solver, st in s["skipped"].items()],
            )
        if s["failures"]:
            _table(
                f"{fam}: failed runs",
                ["solver", "size", "seed", "error"],
                [[x["solver"], x["size"], x["seed"], x["error"]] for x in s["failures"]],
            )
