"""The Dask side of a sweep (part of :mod:`datamarkets.cli.sweep`): the cluster and its manners.

:func:`connect_cluster` opens a local cluster of single-threaded worker processes (with SIGINT
blocked, so a Ctrl-C reaches the driver only), connects to a remote scheduler or uses a given
client, and closes what it opened quietly; :func:`quiet_distributed_logs` keeps Dask's shutdown
noise off the user's stderr; :func:`sweep_progress` draws the done / running / failed bar;
:func:`is_worker_loss` and :func:`running_tasks` read the cluster's state for the driver
(:func:`~datamarkets.cli.sweep_runner.run_sweep`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from datamarkets.errors import InvalidInputError

__all__ = [
    "connect_cluster",
    "is_worker_loss",
    "progress_disabled",
    "quiet_distributed_logs",
    "running_tasks",
    "silence_distributed_logs",
    "sweep_progress",
]


def progress_disabled() -> bool:
    """True when ``DATAMARKETS_NO_PROGRESS`` is set (to anything but ``""`` or ``"0"``)."""
    return os.environ.get("DATAMARKETS_NO_PROGRESS", "") not in ("", "0")


@contextlib.contextmanager
def sweep_progress(total: int, enabled: bool) -> Iterator[Any]:
    """Yield ``update(done, running, failed)`` drawing a rich bar on stderr (no-op when disabled).

    Parameters
    ----------
    total : int
        Tasks to run.
    enabled : bool
        Draw the bar (unless :func:`progress_disabled`).
    """
    if not enabled or progress_disabled():
        yield lambda done, running, failed: None
        return
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "[green]{task.fields[done]} done[/] · [cyan]{task.fields[running]} running[/] · "
            "[red]{task.fields[failed]} failed[/]"
        ),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        # a live display on a plain file or pipe writes its last frame there: only on a terminal
        disable=not (console.is_terminal or console.is_jupyter),
    ) as progress:
        bar = progress.add_task("sweep", total=total, done=0, running=0, failed=0)

        def update(done: int, running: int, failed: int) -> None:
            progress.update(bar, completed=done + failed, done=done, running=running, failed=failed)

        yield update


_NOISY_LOGGERS = ("distributed", "tornado", "asyncio")
"""Loggers whose messages (CommClosedError tracebacks at shutdown, "Task exception was never
retrieved") would reach the user's stderr: the sweep reports lost tasks itself."""

_CLOSE_TIMEOUT = 20.0
"""Seconds allowed to close the client, then the local cluster."""

_INTERRUPT_CLOSE_TIMEOUT = 2.0
"""Seconds allowed to close after a Ctrl-C: running tasks are abandoned, not waited for."""


def silence_distributed_logs(level: int = logging.CRITICAL + 1) -> list[tuple[logging.Logger, int]]:
    """Raise the level of Dask's, tornado's and asyncio's loggers, and of their existing children
    (which may carry levels of their own, as ``distributed.client`` does).

    Returns
    -------
    list of (logging.Logger, int)
        Each logger changed with its previous level, for :func:`quiet_distributed_logs` to restore.
    """
    manager = logging.Logger.manager
    names = dict.fromkeys(
        n
        for n in [*_NOISY_LOGGERS, *list(manager.loggerDict)]
        if any(n == root or n.startswith(root + ".") for root in _NOISY_LOGGERS)
    )
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(level)
    return saved


@contextlib.contextmanager
def quiet_distributed_logs(level: int = logging.CRITICAL + 1) -> Iterator[None]:
    """:func:`silence_distributed_logs` for the block; the levels are restored after it.

    Examples
    --------
    >>> import logging
    >>> with quiet_distributed_logs():
    ...     logging.getLogger("distributed.core").isEnabledFor(logging.CRITICAL)
    False
    """
    saved = silence_distributed_logs(level)
    try:
        yield
    finally:
        for logger, old in saved:
            logger.setLevel(old)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread for the block (a Ctrl-C then arrives when it ends).

    Threads and processes started inside inherit the blocked mask: the local cluster's event-loop
    thread, and through it every worker process it spawns (now or when it restarts one), never
    see a Ctrl-C: the driver alone handles it and closes the cluster, so no worker prints a
    ``KeyboardInterrupt`` traceback.
    """
    import signal
    from multiprocessing import resource_tracker

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    # multiprocessing starts its resource tracker with the first process it spawns, and unblocks
    # SIGINT in the spawning thread when done (bpo-33613): start it now, before blocking
    with contextlib.suppress(Exception):
        resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _close_quietly(*closables: Any, timeout: float = _CLOSE_TIMEOUT) -> None:
    """Close the client, then the cluster, with SIGINT blocked and Dask's loggers silenced: the
    results are in the store already, so a shutdown hiccup (``CommClosedError``, a timeout) is
    not the user's concern."""
    with _sigint_blocked(), quiet_distributed_logs():
        for obj in closables:
            if obj is None:
                continue
            with contextlib.suppress(Exception):  # shutdown only: the sweep's outcome is decided
                obj.close(timeout=timeout)


def _kill_local_workers() -> None:
    """Kill the local cluster's worker processes (children of this process): after a Ctrl-C a
    task still running would otherwise hold the exit until it ends (or the close times out)."""
    import multiprocessing  # lazy: only on an interrupted local sweep

    for child in multiprocessing.active_children():
        with contextlib.suppress(Exception):
            child.kill()
            child.join(1.0)


def _skip_close_at_exit(cluster: Any) -> None:
    """Do not close ``cluster`` again at interpreter exit. When the short close after a Ctrl-C
    times out (its workers were killed), distributed's atexit hook ``close_clusters`` tries again
    with a 10 s timeout: measured 12.5–13.2 s from Ctrl-C to exit in 6 of 12 runs instead of ≈ 2 s."""
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.shutdown_on_close = False


@contextlib.contextmanager
def connect_cluster(scheduler: Any, n_workers: int | None, connect_timeout: float) -> Iterator[Any]:
    """A connected Dask client for the block: a local cluster (closed after it), a remote
    scheduler, or a given client (left open).

    Parameters
    ----------
    scheduler : str or distributed.Client
        ``"local"``, an address ``"tcp://HOST:PORT"`` or a client.
    n_workers : int, optional
        Workers of the local cluster (default: the number of CPUs).
    connect_timeout : float
        Seconds to wait for a remote scheduler.

    Raises
    ------
    InvalidInputError
        A bad scheduler address, a worker count for a remote scheduler or below 1, or an
        unreachable scheduler.
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise InvalidInputError(
            f"scheduler must be 'local' or an address like tcp://HOST:PORT, got {scheduler!r}"
        )
    scheduler = scheduler.strip()
    if scheduler == "local":
        n = n_workers if n_workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise InvalidInputError(f"the number of workers must be ≥ 1, got {n}")
        cluster = client = None
        try:
            with _sigint_blocked():  # workers inherit the mask: Ctrl-C reaches the driver only
                cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",  # a free port: never collide on :8787
                    silence_logs=logging.CRITICAL,
                )
                client = Client(cluster)
            yield client
        except BaseException:  # Ctrl-C or a failed store: what is written stays, running work is dropped
            _kill_local_workers()  # first: a graceful close would wait for the running tasks
            _close_quietly(client, cluster, timeout=_INTERRUPT_CLOSE_TIMEOUT)
            _skip_close_at_exit(cluster)
            raise
        else:
            _close_quietly(client, cluster)  # the client first: it talks to the cluster
        return
    if "://" not in scheduler:
        raise InvalidInputError(
            f"scheduler must be 'local' or an address like tcp://HOST:PORT, got {scheduler!r}"
        )
    if n_workers is not None:
        raise InvalidInputError("the number of workers applies to the local scheduler only")
    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InvalidInputError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from exc
    try:
        yield client
    finally:
        _close_quietly(client)


def is_worker_loss(exc: BaseException | None) -> bool:
    """Whether a task failed because its worker died (``KilledWorker``, ``CommClosedError``)."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker | CommClosedError)


def running_tasks(client: Any, pending: Mapping[str, Any]) -> int:
    """Our tasks executing now: per worker, those assigned to it, capped by its threads (the
    scheduler also counts tasks queued on a worker as processing).

    Parameters
    ----------
    client : distributed.Client
    pending : mapping
        Dask keys of the tasks not collected yet.

    Returns
    -------
    int
        0 when the scheduler cannot be asked (progress only: never fails the sweep).
    """
    try:
        processing = client.processing()
        nthreads = client.nthreads()
    except Exception:  # progress only: never let a status query break the sweep
        return 0
    return sum(
        min(sum(1 for k in keys if k in pending), int(nthreads.get(w, 1))) for w, keys in processing.items()
    )
