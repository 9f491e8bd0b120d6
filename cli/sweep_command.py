"""`datamarkets sweep SPEC.toml --out STORE` — parameter sweeps on Dask (see :mod:`datamarkets.cli.sweep`).

The command function :func:`sweep` is registered on the main app by :mod:`datamarkets.cli`.

Exit codes
----------
0
    Every task of the spec is in the store (tasks that ended in a recorded error — bad values for
    one point, an infeasible program, a solver failure — count: their rows say ``status = "error"``).
2
    Bad input: unreadable or invalid spec, unknown formulation or parameter, store path is a file,
    bad or unreachable scheduler — one line on stderr, nothing submitted.
3
    Some tasks were lost (an unexpected exception, or workers kept dying); re-run the same command
    to retry exactly those.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from datamarkets.cli.common import EXIT_ALGORITHM, EXIT_INPUT, check_out, emit_json, fail, stdout
from datamarkets.errors import InvalidInputError

__all__ = ["sweep"]


def sweep(
    spec: Path = typer.Argument(
        ..., help="Sweep spec (TOML): formulation, grid of parameter lists, optional fixed parameters."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Store directory (Parquet parts, one per finished task)."
    ),
    scheduler: str = typer.Option(
        "local",
        "--scheduler",
        help="'local' (a LocalCluster of processes) or a scheduler address tcp://HOST:PORT.",
    ),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Local workers (default: CPU count)."),
    max_tasks: int | None = typer.Option(
        None, "--max-tasks", help="Submit at most this many unfinished tasks."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again tasks stored with an error."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Expand and count the tasks; run nothing."),
    connect_timeout: float = typer.Option(
        20.0, "--connect-timeout", help="Seconds to reach a remote scheduler."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON only."),
) -> None:
    """Expand a parameter grid into tasks, run them on Dask, append each result to a Parquet store.

    A re-run skips the tasks already in the store; a worker that dies has its task retried.
    Read the store with ``datamarkets.cli.sweep.read_store(STORE)``.
    """
    from datamarkets.cli.sweep import (  # lazy: fast --help (no solver stack)
        expand,
        finished_keys,
        run_sweep,
    )
    from datamarkets.cli.sweep_runner import silence_distributed_logs  # lazy: fast --help

    # the sweep reports lost tasks itself: Dask's own logs (a CommClosedError traceback from a
    # thread that outlives the cluster's close) never reach the user's stderr in this process
    silence_distributed_logs()

    try:
        # checked whatever the store holds (with nothing left to run they used to be ignored)
        if not (math.isfinite(connect_timeout) and connect_timeout > 0):
            raise InvalidInputError(
                f"--connect-timeout must be a number of seconds > 0, got {connect_timeout}"
            )
        if scheduler.strip() != "local" and "://" not in scheduler:  # the rule of connect_cluster
            raise InvalidInputError(
                f"--scheduler must be 'local' or an address like tcp://HOST:PORT, got {scheduler!r}"
            )
        if dry_run:
            tasks = expand(spec)
            done = finished_keys(out, include_failed=not retry_failed) if out.is_dir() else set()
            todo = [t for t in tasks if t.key not in done]
            if json_out:
                emit_json(
                    {
                        "total": len(tasks),
                        "finished": len(tasks) - len(todo),
                        "to_run": [
                            {
                                "key": t.key,
                                "sweep": t.sweep,
                                "formulation": t.formulation,
                                "solver": t.solver,
                                "rep": t.rep,
                                "params": t.params,
                            }
                            for t in todo
                        ],
                    }
                )
            else:
                stdout.print(
                    f"{len(tasks)} tasks: {len(tasks) - len(todo)} in {str(out)!r}, {len(todo)} to run"
                )
            return
        check_out(out, directory=True)
        report = run_sweep(
            spec,
            out,
            scheduler,
            n_workers=workers,
            progress=not json_out,
            max_tasks=max_tasks,
            retry_failed=retry_failed,
            connect_timeout=connect_timeout,
        )
    except InvalidInputError as exc:
        fail(str(exc), EXIT_INPUT)
    except KeyboardInterrupt:  # every finished task is already in the store (one atomic part each)
        n = len(finished_keys(out)) if out.is_dir() else 0
        fail(f"interrupted: {n} finished task(s) are in {str(out)!r}; re-run the same command to resume", 130)
    if json_out:
        emit_json(report.to_dict())
    else:
        stdout.print(
            f"sweep: {report.total} tasks — {report.done} done, {report.failed} failed (recorded), "
            f"{report.skipped} skipped, {report.lost} lost, {report.remaining} not run "
            f"in {report.seconds:.1f} s → {report.store}",
            soft_wrap=True,
            highlight=False,
        )
        for msg in report.errors[:5]:
            stdout.print(f"  {msg}", markup=False, highlight=False, soft_wrap=True)
        if len(report.errors) > 5:
            stdout.print(
                f"  … and {len(report.errors) - 5} more error(s): --json lists them all, and "
                f"datamarkets.sweep.read_store({str(out)!r}) has one row per task",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if report.lost:
        fail(f"{report.lost} task(s) did not finish; re-run the same command to retry them", EXIT_ALGORITHM)
