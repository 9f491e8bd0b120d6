"""Conformance checks every formulation (built-in or plug-in) must pass.

:func:`check_formulation` runs a formulation through the whole protocol on generated instances and
raises :class:`ConformanceError` naming the first broken promise:

1. the class attributes are well formed (name, kinds, solvers known to datamarkets, parameters);
2. ``instance_to_dict`` is JSON-plain and survives ``instance_from_dict`` with the same hash;
3. every installed, applicable solver returns a result of one of ``kinds`` whose status is a
   :class:`~datamarkets.status.Status`, timed in build / solve / certify phases and stamped with
   the formulation, the solver, the instance hash and the package version;
4. a result with a solution is certified, and its JSON round trip verifies independently
   (:meth:`~datamarkets.formulation.Formulation.verify`) with the same verdict;
5. ``summary_row`` holds scalars only and every ``to_frame`` table is a DataFrame.

Plug-in authors call it from their tests (``docs/writing-a-formulation.md``); the package's own
tests run it over every registered formulation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from datamarkets.errors import DataMarketsError
from datamarkets.formulation import DIRECT, Formulation
from datamarkets.io import instance_hash, to_jsonable
from datamarkets.result import Result
from datamarkets.solvers import SOLVER_NAMES, available_solvers
from datamarkets.status import Status

__all__ = ["ConformanceError", "ConformanceReport", "check_formulation"]


class ConformanceError(DataMarketsError, AssertionError):
    """A formulation breaks the protocol (the message says which promise and where)."""


@dataclass
class ConformanceReport:
    """What :func:`check_formulation` exercised.

    Attributes
    ----------
    name : str
        The formulation.
    runs : list of dict
        One entry per (size, seed, solver): status, certified, verified, objective.
    skipped : dict of str to str
        Solvers not run, with the reason (not installed / not applicable).
    """

    name: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _fail(f: Formulation, what: str) -> ConformanceError:
    return ConformanceError(f"formulation {f.name!r}: {what}")


def _check_attributes(f: Formulation) -> None:
    if not f.name or f.name != f.name.strip().lower() or " " in f.name:
        raise _fail(f, "name must be a non-empty lower-case word with hyphens")
    if not f.kinds or not all(isinstance(k, str) and k for k in f.kinds):
        raise _fail(f, "kinds must list the Result.kind values it produces")
    if not f.solvers:
        raise _fail(f, "solvers must not be empty")
    unknown = [s for s in f.solvers if s != DIRECT and s not in SOLVER_NAMES]
    if unknown:
        raise _fail(f, f"unknown solver name(s) {unknown!r}; use {SOLVER_NAMES!r} or {DIRECT!r}")
    if f.objective_sense not in (None, "max", "min"):
        raise _fail(f, f"objective_sense must be None, 'max' or 'min', got {f.objective_sense!r}")
    if not isinstance(f.parameters, dict):
        raise _fail(f, "parameters must be a dict of defaults")


def _check_instance(f: Formulation, instance: Any) -> str:
    d = f.instance_to_dict(instance)
    plain = to_jsonable(d)
    try:
        text = json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(f, f"instance_to_dict is not plain JSON: {exc}") from exc
    again = f.instance_from_dict(json.loads(text))
    h1, h2 = instance_hash(plain), instance_hash(to_jsonable(f.instance_to_dict(again)))
    if h1 != h2:
        raise _fail(f, "instance_from_dict(instance_to_dict(x)) changes the instance (hash differs)")
    return h1


def _check_result(f: Formulation, res: Result, solver: str, inst_hash: str) -> None:
    where = f"solver {solver!r}"
    if not isinstance(res, Result):
        raise _fail(f, f"{where}: solve() returned {type(res).__name__}, not a Result")
    if res.kind not in f.kinds:
        raise _fail(f, f"{where}: result kind {res.kind!r} is not in kinds {f.kinds!r}")
    if not isinstance(res.status, Status):
        raise _fail(f, f"{where}: status {res.status!r} is not a datamarkets Status")
    for phase in ("build_seconds", "solve_seconds", "certify_seconds"):
        t = res.timings.get(phase)
        if t is None or not (t >= 0 and math.isfinite(t)):
            raise _fail(f, f"{where}: timing {phase!r} missing or invalid ({t!r})")
    meta = res.meta
    for key, want in (("formulation", f.name), ("solver", solver), ("instance_hash", inst_hash)):
        if meta.get(key) != want:
            raise _fail(f, f"{where}: meta[{key!r}] is {meta.get(key)!r}, expected {want!r}")
    if "version" not in meta or not isinstance(meta.get("solvers"), dict):
        raise _fail(f, f"{where}: meta lacks the package version or the solvers used")


def check_formulation(
    f: Formulation,
    *,
    sizes: tuple[int, ...] = (8,),
    seeds: tuple[int, ...] = (0, 1),
    solvers: tuple[str, ...] | None = None,
    require_certified: bool = True,
) -> ConformanceReport:
    """Run ``f`` through the whole protocol on generated instances; raise on the first breach.

    Parameters
    ----------
    f : Formulation
        The formulation (e.g. ``registry.get_formulation("cournot-sellers")``).
    sizes, seeds : tuple of int
        Instances ``f.generate(size, seed)`` to use (keep them small: every solver runs on each).
    solvers : tuple of str, optional
        Solvers to run (default: every installed solver of ``f.solvers``).
    require_certified : bool
        Demand that every solution is certified (True) or only that verification agrees with the
        saved verdict (False, for formulations with inexact routes).

    Returns
    -------
    ConformanceReport

    Raises
    ------
    ConformanceError
        A broken promise (which one, for which solver).

    Examples
    --------
    >>> from datamarkets.registry import get_formulation
    >>> rep = check_formulation(get_formulation("chain-equilibrium"), solvers=("direct",), seeds=(0,))
    >>> [(r["solver"], r["certified"], r["verified"]) for r in rep.runs]
    [('direct', True, True)]
    """
    _check_attributes(f)
    report = ConformanceReport(f.name)
    avail = available_solvers()
    wanted = tuple(solvers) if solvers is not None else f.solvers
    for s in wanted:
        if s not in f.solvers:
            raise _fail(f, f"asked to check solver {s!r}, which it does not list")
    for size in sizes:
        for seed in seeds:
            instance = f.generate(size, seed)
            inst_hash = _check_instance(f, instance)
            applicable = f.applicable_solvers(instance)
            for solver in wanted:
                if solver != DIRECT and avail.get(solver) is None:
                    report.skipped[solver] = "not installed"
                    continue
                if solver not in applicable:
                    report.skipped[solver] = "not applicable"
                    continue
                res = f.solve(instance, solver)
                _check_result(f, res, solver, inst_hash)
                saved = json.loads(res.to_json())
                try:
                    ver = f.verify(saved)
                except DataMarketsError as exc:
                    raise _fail(
                        f, f"solver {solver!r}: verify() of its own saved result raised {exc!r}"
                    ) from exc
                if res.status.has_solution:
                    if require_certified and not res.certified:
                        raise _fail(
                            f,
                            f"solver {solver!r} (size {size}, seed {seed}): result not certified: "
                            f"{res.certificate.failures}",
                        )
                    if ver.certificate.passed != res.certificate.passed:
                        raise _fail(
                            f,
                            f"solver {solver!r}: verify() says passed={ver.certificate.passed} but the "
                            f"result says {res.certificate.passed} "
                            f"({ver.certificate.failures or res.certificate.failures})",
                        )
                row = f.summary_row(res)
                bad = {
                    k: type(v).__name__
                    for k, v in row.items()
                    if not (v is None or isinstance(v, bool | int | float | str))
                }
                if bad:
                    raise _fail(f, f"summary_row holds non-scalars: {bad}")
                restored = Result.from_dict(saved)
                for table in restored.tables():
                    frame = restored.to_frame(table)
                    if frame.__class__.__name__ != "DataFrame":
                        raise _fail(f, f"to_frame({table!r}) returned {type(frame).__name__}")
                report.runs.append(
                    {
                        "size": size,
                        "seed": seed,
                        "solver": solver,
                        "status": res.status.value,
                        "certified": bool(res.certified),
                        "verified": bool(ver.certificate.passed),
                        "objective": f.objective(res),
                    }
                )
    return report
