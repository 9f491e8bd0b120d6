"""Parameter sweeps on Dask distributed, resumable, into a Parquet store keyed by parameters.

A sweep spec (TOML) names a formulation and a grid; the Cartesian product of the grid becomes one
task per point, run on a Dask cluster — a :class:`distributed.LocalCluster` of worker processes by
default, or any running scheduler (``tcp://HOST:PORT``)::

    formulation = "chain-equilibrium"      # a registry name, or "package.module:Class"
    solver = "direct"                      # optional: default = the formulation's first solver;
                                           #   a list sweeps solvers too
    time_limit = 60                        # optional, seconds per solve
    retries = 2                            # optional: re-runs of a task whose worker died
    repeat = 1                             # optional: repetitions of every point (column "rep")
    seeds = [0, 1, 2]                      # optional: shorthand for a grid axis "seed"

    [grid]                                 # lists (or {range = [a, b(, step)]}, {linspace = [a, b, num]})
    model = ["paper-1", "paper-2", "paper-4"]
    n = {range = [3, 6]}
    mechanism = ["raw", "ave", "opt"]

    [fixed]                                # optional: parameters shared by every point
    seed = 0

Several ``[[sweep]]`` tables may share one file; top-level keys are their defaults.

Each task's key is the SHA-256 of ``(formulation, solver, parameters, rep)`` (:func:`task_key`).
The driver — never a worker — writes every finished task as one Parquet file ``part-KEY.parquet``
in the store directory, atomically (temporary file + rename), so

- a re-run lists the finished keys and submits only the rest (resume after an interrupt);
- a worker that dies mid-task has the task rescheduled by Dask, and resubmitted by the driver
  (``retries`` times) if Dask gives up on it; nothing already written is touched;
- a half-written temporary file (``.part-…``) is never read.

A task that raises a :class:`~datamarkets.errors.DataMarketsError` (bad parameters for one point,
an infeasible program, a solver crash) is a *finished* task: its row has ``status = "error"``,
``error_type`` and ``error``, and a re-run skips it (``retry_failed=True`` runs it again). Any
other exception (a bug, or a task that keeps killing its workers) is reported as *lost* and not
stored, so a re-run retries it.

:func:`read_store` returns the store as one :class:`pandas.DataFrame` (one row per key, newest
wins); :func:`compact_store` merges the part files into one.
"""

from __future__ import annotations

from datamarkets.cli.sweep_runner import SweepReport, expand, resolve_formulation, run_sweep, run_task
from datamarkets.cli.sweep_spec import (
    RESERVED_COLUMNS,
    SweepSpec,
    SweepStoreWarning,
    SweepTask,
    load_spec,
    parse_spec,
    task_key,
)
from datamarkets.cli.sweep_store import compact_store, finished_keys, read_store

__all__ = [
    "RESERVED_COLUMNS",
    "SweepReport",
    "SweepSpec",
    "SweepStoreWarning",
    "SweepTask",
    "compact_store",
    "expand",
    "finished_keys",
    "load_spec",
    "parse_spec",
    "read_store",
    "resolve_formulation",
    "run_sweep",
    "run_task",
    "task_key",
]
