"""Running a sweep (part of :mod:`datamarkets.cli.sweep`): expansion of specs into tasks, the worker
function, and the Dask driver that writes each finished task to the store and resumes (the
cluster, its logs and the progress bar: :mod:`datamarkets.cli.sweep_dask`)."""

from __future__ import annotations

import importlib
import itertools
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamarkets.cli.sweep_dask import (
    connect_cluster,
    is_worker_loss,
    progress_disabled,
    quiet_distributed_logs,
    running_tasks,
    silence_distributed_logs,
    sweep_progress,
)
from datamarkets.cli.sweep_spec import (
    _DASK_KEY_PREFIX,
    SweepSpec,
    SweepTask,
    _as_text,
    _column_coder,
    _is_int,
    load_spec,
    parse_spec,
    task_key,
)
from datamarkets.cli.sweep_store import _cell, _store_dir, _write_row, finished_keys
from datamarkets.errors import DataMarketsError, InvalidInputError
from datamarkets.formulation import Formulation
from datamarkets.registry import get_formulation
from datamarkets.solvers import silence_highs_banner

__all__ = [
    "SweepReport",
    "expand",
    "quiet_distributed_logs",
    "resolve_formulation",
    "run_sweep",
    "run_task",
    "silence_distributed_logs",
]

# ------------------------------------------------------------------------------------ expansion
_plugin_cache: dict[str, Formulation] = {}


def resolve_formulation(ref: str) -> Formulation:
    """The formulation a spec names: a registry name, or ``"module:Class"`` imported on the spot.

    Parameters
    ----------
    ref : str
        ``"chain-equilibrium"`` or e.g. ``"mypackage.cournot:CournotSellers"`` (a Formulation
        subclass, instantiated with no arguments, or an instance).

    Returns
    -------
    Formulation

    Raises
    ------
    InvalidInputError
        Unknown registry name, module that does not import, or an object that is not a formulation.

    Examples
    --------
    >>> resolve_formulation("chain-equilibrium").name
    'chain-equilibrium'
    """
    if ":" not in ref:
        return get_formulation(ref)
    if ref in _plugin_cache:
        return _plugin_cache[ref]
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"cannot load formulation {ref!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, type) and issubclass(obj, Formulation):
        obj = obj()
    if not isinstance(obj, Formulation):
        raise InvalidInputError(f"{ref!r} is a {type(obj).__name__}, not a Formulation subclass or instance")
    _plugin_cache[ref] = obj
    return obj


def _as_specs(spec: Any) -> list[SweepSpec]:
    if isinstance(spec, SweepSpec):
        return [spec]
    if isinstance(spec, str | os.PathLike):
        return load_spec(spec)
    if isinstance(spec, Mapping):
        return parse_spec(spec)
    if isinstance(spec, Sequence) and spec and all(isinstance(s, SweepSpec) for s in spec):
        return list(spec)
    raise InvalidInputError(
        f"a sweep spec is a TOML path, a parsed dict or SweepSpec object(s), got {type(spec).__name__}"
    )


def expand(spec: Any) -> list[SweepTask]:
    """All tasks of a spec, validated against their formulations before anything runs.

    Parameters
    ----------
    spec : path, mapping, SweepSpec or list of SweepSpec
        What :func:`run_sweep` accepts.

    Returns
    -------
    list of SweepTask
        In grid order (sweeps in file order, then solvers, then the product of the axes, then
        repetitions); a point that occurs twice (e.g. in two ``[[sweep]]`` tables) is kept once.

    Raises
    ------
    InvalidInputError
        Unknown formulation, a parameter the formulation does not accept (checked against
        :attr:`Formulation.parameters` when it declares any), or a solver it cannot use. Values are
        checked by :meth:`Formulation.instance` when the task runs.

    Examples
    --------
    >>> tasks = expand({"formulation": "chain-equilibrium",
    ...                 "grid": {"model": ["paper-1", "paper-2"], "n": [3, 4, 5]}})
    >>> len(tasks), tasks[0].solver, tasks[0].params
    (6, 'direct', {'model': 'paper-1', 'n': 3})
    """
    tasks: dict[str, SweepTask] = {}
    for s in _as_specs(spec):
        f = resolve_formulation(s.formulation)
        names = [*s.grid, *s.fixed]
        if f.parameters:
            unknown = [k for k in names if k not in f.parameters]
            if unknown:
                raise InvalidInputError(
                    f"sweep {s.name!r}: formulation {f.name!r} has no parameter(s) "
                    f"{', '.join(map(repr, unknown))}; accepted: {', '.join(sorted(f.parameters))}"
                )
        solvers = []
        for solver in s.solvers:
            solver = solver or f.solvers[0]
            if solver not in f.solvers:
                raise InvalidInputError(
                    f"sweep {s.name!r}: formulation {f.name!r} cannot use solver {solver!r}; "
                    f"choose one of {', '.join(f.solvers)}"
                )
            solvers.append(solver)
        coders = {k: _column_coder(v) for k, v in s.grid.items()}
        fixed_cols = {
            k: v if v is None or isinstance(v, bool | int | float | str) else _as_text(v)
            for k, v in s.fixed.items()
        }
        axes = list(s.grid)
        for solver in solvers:
            for point in itertools.product(*(s.grid[a] for a in axes)):
                params = {**s.fixed, **dict(zip(axes, point, strict=True))}
                columns = {**{a: coders[a](v) for a, v in zip(axes, point, strict=True)}, **fixed_cols}
                for rep in range(s.repeat):
                    key = task_key(s.formulation, solver, params, rep)
                    if key not in tasks:
                        tasks[key] = SweepTask(
                            key, s.name, s.formulation, solver, params, columns, rep, s.time_limit, s.retries
                        )
    return list(tasks.values())


# ----------------------------------------------------------------------------------- the worker
def run_task(task: SweepTask) -> dict[str, Any]:
    """Solve one grid point and return its store row (runs on a Dask worker).

    A :class:`~datamarkets.errors.DataMarketsError` — bad parameters for this point, an
    infeasible program, a solver failure — is caught and recorded in the row (``status =
    "error"``, ``error_type``, ``error``); any other exception propagates (and the task is lost,
    not stored).

    Parameters
    ----------
    task : SweepTask

    Returns
    -------
    dict
        :meth:`SweepTask.base_row` + :meth:`Formulation.summary_row` of the result (fields whose
        names clash with a parameter or reserved column get a ``result_`` prefix) + ``seconds``,
        ``worker`` and ``finished_at``.

    Examples
    --------
    >>> [t] = expand({"formulation": "chain-equilibrium", "grid": {"model": ["paper-1"], "n": [3]}})
    >>> row = run_task(t)
    >>> row["status"], row["certified"], row["n"]
    ('optimal', True, 3)
    """
    t0 = time.perf_counter()
    silence_highs_banner()  # once per worker process: nothing of HiGHS's on the user's stdout
    row = task.base_row()
    row.update({"status": None, "error_type": None, "error": None})
    try:
        f = resolve_formulation(task.formulation)
        instance = f.instance(task.params)
        result = f.solve(instance, task.solver, time_limit=task.time_limit)
        for k, v in f.summary_row(result).items():
            name = k if k == "status" or k not in row else f"result_{k}"
            row[name] = _cell(v)
    except DataMarketsError as exc:
        row.update({"status": "error", "error_type": type(exc).__name__, "error": str(exc)})
    row["seconds"] = time.perf_counter() - t0
    row["worker"] = _worker_name()
    row["finished_at"] = datetime.now(UTC).isoformat()
    return row


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------------------- driver
@dataclass
class SweepReport:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    store : Path
        The store directory.
    total : int
        Tasks in the spec (after de-duplication).
    skipped : int
        Already in the store before this run.
    done : int
        Finished with a result and stored in this run.
    failed : int
        Finished with a recorded error (``status = "error"``) and stored in this run.
    lost : int
        Crashed with an unexpected exception or lost their worker more than ``retries`` times; not
        stored, so a re-run tries them again.
    remaining : int
        Not submitted because of ``max_tasks``.
    resubmitted : int
        Resubmissions by the driver after Dask gave up on a task whose workers died.
    seconds : float
        Wall-clock time of the run.
    errors : list of str
        Messages of the lost tasks (and of the first recorded failures).
    """

    store: Path
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    remaining: int = 0
    resubmitted: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every task of the spec is in the store."""
        return self.lost == 0 and self.remaining == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "total": self.total,
            "skipped": self.skipped,
            "done": self.done,
            "failed": self.failed,
            "lost": self.lost,
            "remaining": self.remaining,
            "resubmitted": self.resubmitted,
            "complete": self.complete,
            "seconds": self.seconds,
            "errors": list(self.errors),
        }


def run_sweep(
    spec: Any,
    out: str | os.PathLike[str],
    scheduler: Any = "local",
    *,
    n_workers: int | None = None,
    progress: bool = True,
    max_tasks: int | None = None,
    retry_failed: bool = False,
    connect_timeout: float = 20.0,
) -> SweepReport:
    """Run a sweep on Dask, appending each finished task to the store; skip what is there.

    Parameters
    ----------
    spec : path, mapping, SweepSpec or list of SweepSpec
        A TOML spec file (see the module docstring), its parsed dict, or specs.
    out : path-like
        Store directory (created if absent).
    scheduler : str or distributed.Client
        ``"local"`` (a :class:`~distributed.LocalCluster` of ``n_workers`` single-threaded
        processes, closed at the end), a scheduler address (``"tcp://HOST:PORT"``; every worker
        needs ``datamarkets`` and any ``module:Class`` formulation importable), or a connected
        client (left open).
    n_workers : int, optional
        Workers of the local cluster (default: the number of CPUs).
    progress : bool
        Show a rich progress bar (done / running / failed) on stderr; ``DATAMARKETS_NO_PROGRESS=1``
        disables it too.
    max_tasks : int, optional
        Submit at most this many unfinished tasks (the rest count as ``remaining``).
    retry_failed : bool
        Run again the tasks whose stored row is an error row.
    connect_timeout : float
        Seconds to wait for a remote scheduler.

    Returns
    -------
    SweepReport

    Raises
    ------
    InvalidInputError
        Bad spec (before any task is submitted), a store path that is a file, a bad scheduler
        address or an unreachable scheduler.

    Examples
    --------
    >>> import tempfile
    >>> spec = {"formulation": "chain-equilibrium", "grid": {"model": ["paper-1"], "n": [2, 3]}}
    >>> out = tempfile.mkdtemp()
    >>> r = run_sweep(spec, out, n_workers=1, progress=False)   # doctest: +SKIP
    >>> (r.done, r.skipped), len(read_store(out))               # doctest: +SKIP
    ((2, 0), 2)
    """
    t0 = time.perf_counter()
    tasks = expand(spec)
    if max_tasks is not None and (not _is_int(max_tasks) or max_tasks < 0):
        raise InvalidInputError(f"max_tasks must be an integer ≥ 0, got {max_tasks!r}")
    store = _store_dir(out, create=True)
    finished = finished_keys(store, include_failed=not retry_failed)
    todo = [t for t in tasks if t.key not in finished]
    report = SweepReport(store=store, total=len(tasks), skipped=len(tasks) - len(todo))
    if max_tasks is not None and len(todo) > max_tasks:
        report.remaining = len(todo) - max_tasks
        todo = todo[:max_tasks]
    if todo:
        with connect_cluster(scheduler, n_workers, connect_timeout) as client:
            _drive(client, todo, store, report, progress)
    report.seconds = time.perf_counter() - t0
    return report


def _drive(client: Any, todo: list[SweepTask], store: Path, report: SweepReport, progress: bool) -> None:
    """Submit ``todo``, write each finished row as it arrives, resubmit tasks whose workers died."""
    from distributed import as_completed

    pending: dict[str, tuple[SweepTask, int, Any]] = {}

    def submit(task: SweepTask, attempt: int) -> Any:
        fut = client.submit(
            run_task, task, key=f"{_DASK_KEY_PREFIX}{task.key}-{attempt}", retries=task.retries, pure=False
        )
        pending[fut.key] = (task, attempt, fut)
        return fut

    futures = [submit(t, 0) for t in todo]
    ac = as_completed(futures)
    last_poll = 0.0
    running = 0
    with sweep_progress(len(todo), progress) as update:
        try:
            while not ac.is_empty():
                batch = ac.next_batch(block=False)
                if not batch:
                    now = time.monotonic()
                    if now - last_poll > 0.5 and progress and not progress_disabled():
                        last_poll = now
                        running = running_tasks(client, pending)
                        update(report.done, running, report.failed + report.lost)
                    time.sleep(0.02)
                    continue
                for fut in batch:
                    task, attempt, _ = pending.pop(fut.key)
                    _collect(client, fut, task, attempt, store, report, submit, ac)
                    fut.release()
                update(report.done, min(running, len(pending)), report.failed + report.lost)
        except BaseException:
            # interrupted (Ctrl-C) or the store failed: stop the cluster's work; what is written stays
            client.cancel([f for _, _, f in pending.values()])
            raise


def _collect(
    client: Any,
    fut: Any,
    task: SweepTask,
    attempt: int,
    store: Path,
    report: SweepReport,
    submit: Any,
    ac: Any,
) -> None:
    if fut.status == "finished":
        row = fut.result()
        _write_row(store, row)
        if row.get("error_type"):
            report.failed += 1
            if len(report.errors) < 20:
                report.errors.append(f"{task.label}: {row['error_type']}: {row['error']}")
        else:
            report.done += 1
        return
    exc: BaseException | None
    if fut.status == "cancelled":
        exc = None
    else:
        try:
            exc = fut.exception()
        except BaseException as err:  # the exception itself could not be retrieved
            exc = err
    if (exc is None or is_worker_loss(exc)) and attempt < task.retries:
        report.resubmitted += 1
        ac.add(submit(task, attempt + 1))
        return
    report.lost += 1
    what = "cancelled" if exc is None else f"{type(exc).__name__}: {exc}"
    report.errors.insert(report.lost - 1, f"{task.label}: {what}")
