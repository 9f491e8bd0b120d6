"""`datamarkets bench …` commands: time every installed solver on the same generated instances.

Heavy modules are imported inside the commands so that ``datamarkets --help`` stays fast.
Exit codes: 0 ok (failed or skipped solver runs are rows of the table, not failures of the
command), 2 bad input (one line on stderr).
"""

from __future__ import annotations

from pathlib import Path

import typer

from datamarkets.cli.common import check_options, check_out, fail, solver_output_to_stderr, stderr
from datamarkets.errors import InvalidInputError
from datamarkets.plotting import figure_format
from datamarkets.registry import get_formulation

__all__ = ["app"]

app = typer.Typer(
    help="Benchmark the solvers available for a formulation on generated instances of growing size.",
    no_args_is_help=True,
)


@app.callback()
def _bench() -> None:
    """Benchmark the solvers available for a formulation on generated instances of growing size."""


_SOLVERS_HELP = (
    "Time every solver a formulation can use on the same generated instances.\n\n"
    "A formulation is one way of computing a market outcome (for example 'auction-welfare': the "
    "welfare-maximising allocation of a data auction, a quadratic or linear program). For each size "
    "and seed one random instance is generated, and every solver the formulation supports (HiGHS "
    "always; Clarabel, SCS, OSQP, ECOS, GLPK, CBC and Ipopt when installed) solves that same instance. "
    "Each run is timed in three phases: building the program, solving it, and checking the answer's "
    "optimality conditions (the certificate). Its objective is compared with the best certified "
    "objective on that instance.\n\n"
    "Written to OUT: bench_solvers.csv and bench_solvers.parquet (one row per size, seed and solver), "
    "bench_solvers.json (medians over seeds and each solver's time relative to HiGHS) and "
    "bench_solvers-FAMILY.png (log-log plot of time against size; --format pdf or svg for papers). "
    "Solvers that are not installed or do not apply are listed as skipped, not failed. An OUT that "
    "already holds bench results is refused (nothing is run) unless --overwrite is given.\n\n"
    "Example: datamarkets bench solvers --family auction-welfare --sizes 100,1000 --seeds 3 --out bench/"
)


@app.command(help=_SOLVERS_HELP)
def solvers(
    family: str = typer.Option(
        ...,
        "--family",
        help="Formulation to benchmark (see `datamarkets formulations`), or 'all' for every one.",
    ),
    sizes: str = typer.Option(
        "100,1000,10000",
        "--sizes",
        help="Comma-separated instance sizes; what a size counts depends on the formulation "
        "(e.g. the number of buyers).",
    ),
    seeds: int = typer.Option(3, "--seeds", help="Random instances per size (seeds 0, 1, …, SEEDS-1)."),
    out: Path = typer.Option(..., "--out", help="Directory for the table, summary and plot (created)."),
    solver_names: str = typer.Option(
        "",
        "--solvers",
        help="Only these solvers, comma-separated (e.g. highs,clarabel); default: all the formulation "
        "supports.",
    ),
    time_limit: float | None = typer.Option(
        300.0,
        "--time-limit",
        help="Seconds allowed per solve; a run that hits it is reported as time_limit (keeps a slow solver "
        "from stalling the whole bench).",
    ),
    no_warmup: bool = typer.Option(
        False, "--no-warmup", help="Do not run each solver once untimed before measuring."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace bench results already in OUT (refused without this flag)."
    ),
    fmt: str = typer.Option("png", "--format", help="Plot format: png | pdf | svg."),
) -> None:
    from datamarkets.cli.bench_report import FILE_STEM  # lazy: fast --help (no pandas)
    from datamarkets.cli.bench_solvers import (  # lazy: fast --help (no solver stack)
        parse_sizes,
        run_solver_bench,
        write_bench,
    )

    try:
        size_list = parse_sizes(sizes)
        if seeds < 1:
            raise InvalidInputError(f"--seeds must be at least 1, got {seeds!r}")
        time_limit = check_options(time_limit=time_limit)
        if family != "all":
            get_formulation(family)
        check_out(out, directory=True)
        fmt = figure_format(fmt)
        earlier = sorted(p.name for p in out.glob(f"{FILE_STEM}*")) if out.is_dir() else []
        if earlier and not overwrite:
            raise InvalidInputError(
                f"--out {str(out)!r} already holds bench results ({', '.join(earlier[:3])}"
                f"{', …' if len(earlier) > 3 else ''}); choose another directory or pass --overwrite"
            )
        wanted = [s for s in solver_names.split(",") if s.strip()] or None
        with solver_output_to_stderr():
            df = run_solver_bench(family, size_list, seeds, wanted, time_limit, warmup=not no_warmup)
        for stale in earlier:  # --overwrite: no plot of an earlier run survives beside the new table
            (out / stale).unlink(missing_ok=True)
        paths = write_bench(df, out, fmt=fmt)
    except InvalidInputError as exc:
        fail(str(exc))
    stderr.print(f"wrote {', '.join(str(p) for p in paths.values())}")
