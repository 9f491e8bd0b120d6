"""Thin, status-checked wrappers around the solvers every formulation shares.

HiGHS is the default. Pyomo programs go through ``appsi_highs``; large programs should be
assembled as sparse arrays and passed to ``highspy`` directly (see ``shared/SOLVERS.md``: a
Pyomo build costs ~40× a sparse-array build).

Solvers are silent: nothing of theirs reaches stdout or stderr (a ``--json`` report on stdout must
parse), unless the environment variable ``DATAMARKETS_SOLVER_OUTPUT=1`` asks for their logs (sweep
workers inherit it). See :func:`silence_highs_banner` for HiGHS's start-up banner.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from datamarkets.errors import SolverError, SolverLimitError
from datamarkets.status import Status, status_from_highs, status_from_pyomo

HIGHS_INF = 1e30
"""What datamarkets passes HiGHS for an infinite bound (HiGHS treats |v| ≥ 1e20 as infinite)."""

__all__ = [
    "HIGHS_INF",
    "PYOMO_NAMES",
    "SOLVER_NAMES",
    "Deadline",
    "SolveInfo",
    "available_solvers",
    "highs_model",
    "highs_version",
    "new_highs",
    "require_solver",
    "reset_highs_scheduler",
    "silence_highs_banner",
    "solve_highs",
    "solve_pyomo",
    "solver_output_requested",
    "solver_time_options",
]


@dataclass
class SolveInfo:
    """What a solver call reports: status, native status text, solver name/version, seconds."""

    status: Status
    raw_status: str
    solver: str
    solver_version: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


SOLVER_NAMES = ("highs", "clarabel", "osqp", "scs", "ecos", "glpk", "cbc", "ipopt")
"""Every solver a formulation may name; HiGHS always present, the rest when installed."""

PYOMO_NAMES = {"highs": "appsi_highs", "glpk": "glpk", "cbc": "cbc", "ipopt": "ipopt"}
"""Pyomo ``SolverFactory`` names of the solvers reached through Pyomo."""

_available: dict[str, str | None] | None = None


def _module_version(module: str) -> str | None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "unknown"))


def _pyomo_version(name: str) -> str | None:
    import logging

    import pyomo.environ as pyo

    logging.getLogger("pyomo").setLevel(logging.ERROR)
    try:
        opt = pyo.SolverFactory(name)
        if not opt.available(exception_flag=False):
            return None
        v = opt.version()
    except Exception:
        return None
    return ".".join(map(str, v)) if v else "unknown"


def available_solvers(*, refresh: bool = False) -> dict[str, str | None]:
    """Installed solvers with their versions (``None`` = not installed), cached per process.

    HiGHS comes from ``highspy``; Clarabel, OSQP, SCS and ECOS from their Python packages (as cvxpy
    uses them); GLPK, CBC and Ipopt from executables found by Pyomo (``glpsol``, ``cbc``, ``ipopt``).

    Examples
    --------
    >>> available_solvers()["highs"] is not None
    True
    """
    global _available
    if _available is None or refresh:
        _available = {name: _probe(name, refresh=refresh) for name in SOLVER_NAMES}
    return dict(_available)


_probed: dict[str, str | None] = {}


def _probe(name: str, *, refresh: bool = False) -> str | None:
    """Version of one solver (``None``: not installed), cached: probing every executable costs seconds."""
    if refresh or name not in _probed:
        if name == "highs":
            _probed[name] = highs_version()
        elif name in PYOMO_NAMES:
            _probed[name] = _pyomo_version(PYOMO_NAMES[name])
        else:
            _probed[name] = _module_version(name)
    return _probed[name]


def require_solver(name: str) -> str:
    """The installed version of solver ``name``.

    For ``"highs"`` it also calls :func:`silence_highs_banner`, so that a route that goes on to
    build its own HiGHS instance (cvxpy's ``solver="HIGHS"``) prints nothing.

    Raises
    ------
    SolverError
        Unknown or not installed.
    """
    if name not in SOLVER_NAMES:
        raise SolverError(f"unknown solver {name!r}; known: {', '.join(SOLVER_NAMES)}")
    v = _available.get(name) if _available is not None else _probe(name)  # one probe, not all of them
    if v is None:
        raise SolverError(f"solver {name!r} is not installed")
    if name == "highs":
        silence_highs_banner()
    return v


def highs_version() -> str:
    """HiGHS version string, e.g. ``"1.16.0"`` (the highspy wheel's version: it ships that HiGHS).

    Read from the package metadata so that asking does not print HiGHS's banner on stdout.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("highspy")
    except PackageNotFoundError:  # pragma: no cover - a source build of highspy
        import highspy

        silence_highs_banner()
        return str(highspy.Highs().version())


SOLVER_OUTPUT_ENV = "DATAMARKETS_SOLVER_OUTPUT"
"""Environment variable that, set to anything but ``""``/``"0"``, lets solvers print their logs."""


def solver_output_requested() -> bool:
    """Whether the user asked for solver logs (``DATAMARKETS_SOLVER_OUTPUT=1``); default ``False``.

    Examples
    --------
    >>> import os
    >>> solver_output_requested() == (os.environ.get("DATAMARKETS_SOLVER_OUTPUT", "") not in ("", "0"))
    True
    """
    return os.environ.get(SOLVER_OUTPUT_ENV, "") not in ("", "0")


_banner_lock = threading.Lock()
_banner_silenced = False


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: push out what C code left in its ``stdout`` buffer (best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # pragma: no cover - no C library to reach
        pass


@contextlib.contextmanager
def _fd1_to_devnull() -> Iterator[None]:
    """Point file descriptor 1 (C's and Python's stdout) at ``os.devnull`` for the block."""
    with contextlib.suppress(Exception):
        if sys.stdout is not None:
            sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        _flush_c_stdio()  # what was written in the block goes to devnull, not to the restored fd
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def silence_highs_banner() -> None:
    """Make sure HiGHS's start-up banner never reaches stdout in this process.

    HiGHS (highspy ≥ 1.1x) prints ``Running HiGHS x.y.z (git hash: …): Copyright …`` and a
    licence line on the C ``stdout`` the first time a ``Highs`` object is built in a process,
    from the constructor, before ``output_flag`` can be set. That first instance is built here
    with file descriptor 1 pointed at ``os.devnull``; every later ``highspy.Highs()`` — ours,
    cvxpy's, Pyomo's — is then silent once its ``output_flag`` is off. Call it before any code
    that builds a HiGHS instance itself (cvxpy's ``solver="HIGHS"``, a plug-in using highspy);
    :func:`new_highs`, :func:`solve_pyomo` and ``require_solver("highs")`` call it. Cheap after
    the first call; thread-safe; a no-op when :func:`solver_output_requested`.

    Examples
    --------
    >>> silence_highs_banner()
    >>> import highspy
    >>> h = highspy.Highs()   # prints nothing
    """
    global _banner_silenced
    if _banner_silenced or solver_output_requested():
        return
    with _banner_lock:
        if _banner_silenced:
            return
        import highspy

        with _fd1_to_devnull():
            highspy.Highs()
        _banner_silenced = True


def reset_highs_scheduler() -> None:
    """Drop HiGHS's global thread scheduler so the next run may choose its own thread count.

    Pyomo's ``appsi_highs`` initialises the scheduler with every core; a later ``highspy.Highs``
    with ``threads=1`` then fails with ``kNotset`` ("scheduler has already been initialized").
    """
    import highspy

    reset = getattr(highspy.Highs, "resetGlobalScheduler", None)
    if reset is not None:
        reset(True)


MIN_SOLVER_SECONDS = 1e-3
"""Smallest limit handed to a solver: OSQP and SCS read a limit of 0 as "no limit"."""


class Deadline:
    """A wall-clock budget shared by every phase of one solve (build, solver calls, iterations).

    ``Deadline(None)`` never expires. Routes pass :meth:`remaining` to their solver and call
    :meth:`check` (or read :attr:`expired`) between iterations and phases, so that a limit holds
    whatever the route does; :meth:`overran` says whether the limit was exceeded after the fact, so
    that a result is never reported ``optimal`` after overrunning it.

    Parameters
    ----------
    seconds : float or None
        The budget; ``None`` or ``inf`` means none.
    start : float, optional
        A ``time.perf_counter()`` reading to count from (default: now).

    Examples
    --------
    >>> d = Deadline(60.0)
    >>> 59.0 < d.remaining() <= 60.0, d.expired
    (True, False)
    >>> Deadline(None).remaining() is None
    True
    >>> Deadline(0.0).check("build")
    Traceback (most recent call last):
    ...
    datamarkets.errors.SolverLimitError: time limit of 0 s reached during build
    """

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        self.seconds = None if seconds is None or seconds == float("inf") else float(seconds)
        self.start = time.perf_counter() if start is None else float(start)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def remaining(self) -> float | None:
        """Seconds left (≥ 0), or ``None`` without a limit."""
        if self.seconds is None:
            return None
        return max(self.seconds - self.elapsed(), 0.0)

    def solver_limit(self) -> float | None:
        """:meth:`remaining`, floored at :data:`MIN_SOLVER_SECONDS` (what to hand a solver)."""
        r = self.remaining()
        return None if r is None else max(r, MIN_SOLVER_SECONDS)

    @property
    def expired(self) -> bool:
        """Whether the budget is used up."""
        return self.seconds is not None and self.elapsed() >= self.seconds

    def overran(self, slack: float = 0.0) -> bool:
        """Whether more than ``seconds + slack`` have passed."""
        return self.seconds is not None and self.elapsed() > self.seconds + slack

    def check(self, what: str = "the solve") -> None:
        """Raise :class:`~datamarkets.errors.SolverLimitError` when the budget is used up."""
        if self.expired:
            raise SolverLimitError(f"time limit of {self.seconds:g} s reached during {what}")

    @contextlib.contextmanager
    def interrupting(self, what: str = "the build") -> Iterator[None]:
        """Interrupt pure-Python work (a Pyomo build or transformation) when the budget runs out.

        In the main thread with a limit, a ``SIGALRM`` timer raises
        :class:`~datamarkets.errors.SolverLimitError` inside the block at the deadline; whatever
        the block was building is then incomplete and must be dropped. Elsewhere (worker threads,
        platforms without ``setitimer``, no limit) the block runs to its end and :meth:`check`
        after it is the only guard. Do not wrap solver subprocesses: only Python code between
        bytecodes is interrupted. An import in progress is never interrupted (the alarm is
        retried every 10 ms until it is done), and an interruption that was swallowed (raised in a
        weakref callback or caught by the interrupted code) is repeated every 10 ms.

        Examples
        --------
        >>> import time
        >>> with Deadline(0.05).interrupting("a loop"):
        ...     while True:
        ...         time.sleep(0.01)
        Traceback (most recent call last):
        ...
        datamarkets.errors.SolverLimitError: time limit of 0.05 s reached during a loop
        """
        self.check(what)
        can_alarm = (
            self.seconds is not None
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )
        if not can_alarm:
            yield
            self.check(what)
            return

        def _raise(_signum: int, frame: Any) -> None:
            f = frame
            while f is not None:  # never inside an import: a half-imported module would stay broken
                if f.f_code.co_filename.startswith("<frozen importlib"):
                    signal.setitimer(signal.ITIMER_REAL, 0.01)  # try again in 10 ms
                    return
                f = f.f_back
            # fire again in 10 ms until the block is left: an exception raised inside a weakref
            # callback, a __del__ or a broad ``except`` of the interrupted code is swallowed
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            raise SolverLimitError(f"time limit of {self.seconds:g} s reached during {what}")

        previous = signal.signal(signal.SIGALRM, _raise)
        # Pyomo logs "Rule failed … Constructing component … failed" (4 lines on stderr) for the
        # interruption it then re-raises: the exception is the one report, so its log stays quiet
        pyomo_log = logging.getLogger("pyomo")
        pyomo_level = pyomo_log.level
        pyomo_log.setLevel(logging.CRITICAL)
        t_set = time.perf_counter()
        old_delay, _ = signal.setitimer(signal.ITIMER_REAL, max(self.remaining() or 0.0, 1e-4))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, previous)
            pyomo_log.setLevel(pyomo_level)
            if old_delay:  # an outer timer was running: give it back what it had left (≥ 1 ms)
                signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.perf_counter() - t_set), 1e-3))
        self.check(what)


def solver_time_options(solver: str, time_limit: float | None) -> dict[str, Any]:
    """The time-limit option of ``solver`` under its own keyword (what cvxpy / Pyomo pass through).

    HiGHS, Clarabel and OSQP: ``time_limit``; SCS: ``time_limit_secs``; Ipopt: ``max_cpu_time``;
    GLPK: ``tmlim`` (whole seconds, at least 1); CBC: ``sec``. ECOS has no time limit (``{}``): its
    routes must check a :class:`Deadline` themselves. Solver names are datamarkets' lower-case names
    or cvxpy's upper-case ones.

    Examples
    --------
    >>> solver_time_options("scs", 2), solver_time_options("OSQP", 0.0), solver_time_options("highs", None)
    ({'time_limit_secs': 2.0}, {'time_limit': 0.001}, {})
    """
    if time_limit is None or time_limit == float("inf"):
        return {}
    t = max(float(time_limit), MIN_SOLVER_SECONDS)
    name = solver.lower()
    if name in ("highs", "clarabel", "osqp", "appsi_highs"):
        return {"time_limit": t}
    if name == "scs":
        return {"time_limit_secs": t}
    if name == "ipopt":
        return {"max_cpu_time": t}
    if name == "glpk":
        return {"tmlim": max(1, math.ceil(t))}
    if name == "cbc":
        return {"sec": t}
    return {}


def new_highs(time_limit: float | None = None, threads: int = 1, **options: Any) -> Any:
    """A silent ``highspy.Highs`` instance with options set (``solver="ipm"`` etc.).

    Neither the banner (see :func:`silence_highs_banner`) nor the solver log is printed, unless
    ``output_flag=True`` is passed or :func:`solver_output_requested`.

    Examples
    --------
    >>> options = new_highs(time_limit=5.0, solver="ipm").getOptions()
    >>> options.output_flag, options.solver, options.time_limit
    (False, 'ipm', 5.0)
    """
    import highspy

    output = bool(options.pop("output_flag", solver_output_requested()))
    if not output:
        silence_highs_banner()
    reset_highs_scheduler()
    h = highspy.Highs()
    h.setOptionValue("output_flag", output)
    h.setOptionValue("threads", threads)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    for k, v in options.items():
        h.setOptionValue(k, v)
    return h


def _fin(v: Any) -> Any:
    import numpy as np

    return np.clip(np.asarray(v, dtype=float), -HIGHS_INF, HIGHS_INF)


def highs_model(
    cost: Any,
    lb: Any,
    ub: Any,
    A: Any,
    rl: Any,
    ru: Any,
    *,
    H: Any = None,
    integrality: Any = None,
    what: str = "model",
    time_limit: float | None = None,
    **options: Any,
) -> Any:
    """A silent ``highspy.Highs`` holding ``min ½vᵀHv + costᵀv, rl ≤ A v ≤ ru, lb ≤ v ≤ ub``.

    The one place a HiGHS model is passed from arrays (welfare, GNE existence LP, chain
    certificate, games). ``A`` is any scipy sparse or dense matrix (repeated entries are summed,
    as HiGHS rejects them); bounds beyond ±1e30 are infinite. ``H`` is the full symmetric Hessian
    (its lower triangle is passed, with HiGHS's QP regularisation lowered to 1e-12: the default
    1e-7 moves x by ~1e-5); ``integrality`` 1 = integer. ``options`` go to :func:`new_highs`.

    Raises
    ------
    SolverError
        HiGHS rejects the model or the Hessian (``what`` names the model in the message).

    Examples
    --------
    >>> import numpy as np
    >>> h = highs_model([1.0, 1.0], [0, 0], [np.inf, np.inf], [[1.0, 2.0]], [2.0], [np.inf])
    >>> solve_highs(h).status.value, h.getSolution().col_value
    ('optimal', [0.0, 1.0])
    """
    import highspy
    import numpy as np
    import scipy.sparse as sp

    h = new_highs(time_limit=time_limit, **options)
    n = int(np.size(cost))
    Acsc = sp.csc_array(A, dtype=float)
    Acsc.sum_duplicates()  # HiGHS rejects a matrix with repeated (row, column) entries
    Acsc.eliminate_zeros()
    Acsc.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = int(Acsc.shape[0])
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = _fin(lb)
    lp.col_upper_ = _fin(ub)
    lp.row_lower_ = _fin(rl)
    lp.row_upper_ = _fin(ru)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = Acsc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = Acsc.indices.astype(np.int32)
    lp.a_matrix_.value_ = Acsc.data.astype(float)
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = int(Acsc.shape[0])
    if integrality is not None:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if t else highspy.HighsVarType.kContinuous for t in integrality
        ]
    if h.passModel(lp) == highspy.HighsStatus.kError:  # kWarning: tiny entries dropped, fine
        raise SolverError(f"highspy rejected the {what} (passModel)")
    if H is not None and sp.csc_array(H).nnz:
        L = sp.csc_array(sp.tril(sp.csc_array(H, dtype=float)), dtype=float)
        L.sum_duplicates()
        L.eliminate_zeros()
        L.sort_indices()
        st = h.passHessian(n, int(L.nnz), 1, L.indptr.astype(np.int32), L.indices.astype(np.int32), L.data)
        if st == highspy.HighsStatus.kError:
            raise SolverError(f"highspy rejected the Hessian of the {what} (passHessian)")
        h.setOptionValue("qp_regularization_value", 1e-12)
    return h


def solve_highs(h: Any) -> SolveInfo:
    """Run an assembled ``highspy.Highs`` model and map its status."""
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    ms = h.getModelStatus()
    return SolveInfo(status_from_highs(ms), str(ms), "highs", highs_version(), seconds)


def solve_pyomo(
    model: Any,
    solver: str = "appsi_highs",
    time_limit: float | None = None,
    options: dict[str, Any] | None = None,
) -> SolveInfo:
    """Solve a Pyomo model, loading primal values (and duals if a ``dual`` Suffix exists) only
    when the status says a solution is present.

    Parameters
    ----------
    model : pyomo.environ.ConcreteModel
        The program.
    solver : str, default "appsi_highs"
        Pyomo solver name.
    time_limit : float, optional
        Seconds.
    options : dict, optional
        Solver options.

    Returns
    -------
    SolveInfo

    Raises
    ------
    SolverError
        The solver is not available or crashed.
    """
    import pyomo.environ as pyo

    if "highs" in solver:  # Pyomo builds its own highspy.Highs
        silence_highs_banner()
    opt = pyo.SolverFactory(solver)
    if not opt.available(exception_flag=False):
        raise SolverError(f"Pyomo solver {solver!r} is not available")
    for k, v in (options or {}).items():
        opt.options[k] = v
    # each solver under its own keyword: GLPK stops with an error on an unknown "--time_limit"
    for k, v in solver_time_options(solver, time_limit).items():
        opt.options[k] = v
    if hasattr(opt, "config") and hasattr(opt.config, "stream_solver"):
        opt.config.stream_solver = solver_output_requested()
    t0 = time.perf_counter()
    try:
        res = opt.solve(model, load_solutions=False)
    except Exception as exc:  # pragma: no cover - solver crash
        raise SolverError(f"{solver} failed: {exc}") from exc
    seconds = time.perf_counter() - t0
    status = status_from_pyomo(res)
    if status.has_solution:
        model.solutions.load_from(res)
    version = ".".join(map(str, opt.version())) if opt.version() else "unknown"
    return SolveInfo(status, str(res.solver.termination_condition), solver, version, seconds)
