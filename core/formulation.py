"""The formulation protocol: build a program from an instance, solve it, certify the answer.

A *formulation* is one way of computing an equilibrium or optimum of one market family. Every
formulation — the built-in chain, auction and GNE ones and any plug-in — subclasses
:class:`Formulation` and fills in six small methods::

    instance(params)            -> instance          data: a graph or model from parameters
    instance_to_dict(instance)  -> dict              data: JSON form, embedded in every result
    instance_from_dict(d)       -> instance
    build(instance, solver)     -> program           the declarative program (Pyomo/cvxpy/arrays)
    solve_program(program, ...) -> Result            solve + solution writer (no certificate yet)
    certify(instance, solution) -> Certificate       re-derived from the solution and instance only

and in return gets :meth:`Formulation.solve` (timed build → solve → certify, with provenance and
the instance embedded), :meth:`Formulation.verify` (``datamarkets verify RESULT.json``), solver
benchmarks (``datamarkets bench solvers``) and Dask sweeps (``datamarkets sweep``). Formulations are
discovered through the ``datamarkets.formulations`` entry-point group (see
:mod:`datamarkets.registry` and ``docs/writing-a-formulation.md``).

``certify`` must not trust whoever produced the solution: it recomputes residuals of the
optimality conditions from the instance, using at most an *independent* auxiliary program (e.g.
the LP of best KKT prices for a given allocation).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.io import instance_hash, to_jsonable
from datamarkets.result import (
    NO_CHECK_SECTIONS,
    NO_SOLUTION,
    NOT_CHECKED,
    Certificate,
    Result,
    Timer,
    provenance,
)
from datamarkets.solvers import SOLVER_NAMES, Deadline, require_solver
from datamarkets.status import Status, StatusGroup
from datamarkets.validation import check_integer, check_seed, check_time_limit

__all__ = ["DIRECT", "TIME_LIMIT_SLACK", "Formulation", "VerificationResult", "check_params", "positive_int"]

TIME_LIMIT_SLACK = 0.0
"""Seconds a build + solve may exceed its time limit and still report its own status: none."""

DIRECT = "direct"
"""Solver name of a formulation whose program is solved by its own direct algorithm."""


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` (bool/int/float/str); others pass through."""
    if value is None or default is None or isinstance(default, list | dict | tuple):
        return value
    bad = InvalidInputError(
        f"{name}: parameter {key!r} must be {type(default).__name__}, got {type(value).__name__} {value!r}"
    )
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad
    if isinstance(default, int):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if isinstance(default, float):
        if isinstance(value, bool):
            raise bad
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(out):
            raise InvalidInputError(f"{name}: parameter {key!r} must be finite, got {value!r}")
        return out
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # e.g. a mechanism "0.5" read back as a number
        raise bad
    return value


def positive_int(name: str, key: str, value: Any) -> int:
    """``value`` as an int ≥ 1 (``"20"`` and ``20.0`` accepted).

    Raises
    ------
    InvalidInputError
        Not an integer, or < 1.

    Examples
    --------
    >>> positive_int("demo", "size", "20")
    20
    """
    v = _coerce(name, key, value, 1)
    if v < 1:
        raise InvalidInputError(f"{name}: parameter {key!r} must be ≥ 1, got {value!r}")
    return int(v)


def check_params(
    name: str, params: Mapping[str, Any], defaults: Mapping[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Merge ``params`` over ``defaults``, rejecting unknown and missing keys and converting each
    value to its default's type (``"5"`` → 5 for an int parameter; ``2.5`` for an int is an error).

    Parameters
    ----------
    name : str
        Formulation name, for the message.
    params : mapping
        Given parameters.
    defaults : mapping
        Every accepted parameter with its default (``None`` = no default, any type).
    required : tuple of str
        Parameters that must be given.

    Returns
    -------
    dict
        ``defaults`` updated with ``params``.

    Raises
    ------
    InvalidInputError
        An unknown or missing parameter, or a value of the wrong type.

    Examples
    --------
    >>> check_params("demo", {"n": "3"}, {"n": 5, "seed": 0})
    {'n': 3, 'seed': 0}
    """
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidInputError(
            f"{name}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(sorted(defaults))}"
        )
    missing = [k for k in required if k not in params]
    if missing:
        raise InvalidInputError(f"{name}: missing parameter(s) {', '.join(map(repr, missing))}")
    return {**defaults, **{k: _coerce(name, k, v, defaults[k]) for k, v in params.items()}}


class Formulation(ABC):
    """Base class of every formulation (built-in or plug-in).

    Class attributes
    ----------------
    name : str
        Registry name, e.g. ``"auction-welfare"`` (lower case, hyphens).
    summary : str
        One line for ``datamarkets formulations`` and ``--help``.
    kinds : tuple of str
        ``Result.kind`` values this formulation produces (and can therefore verify).
    solvers : tuple of str
        Solver names it can use, default first: ``"highs"``, ``"clarabel"``, ``"osqp"``, ``"scs"``,
        ``"ecos"``, ``"glpk"``, ``"cbc"``, ``"ipopt"`` (see :func:`datamarkets.solvers.available_solvers`)
        or ``"direct"`` for a direct algorithm.
    size_meaning : str
        What ``size`` counts in :meth:`generate`, e.g. ``"buyers (sellers = size/10)"``.
    parameters : dict
        Accepted :meth:`instance` parameters with their defaults (documented in ``--help``).
    objective_sense : {"max", "min"} or None
        Whether a larger or smaller :meth:`objective` is better (benchmarks measure each solver's
        gap to the best); ``None`` when the objective is a value every exact route must reproduce.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    solvers: ClassVar[tuple[str, ...]] = (DIRECT,)
    size_meaning: ClassVar[str] = "instance size"
    parameters: ClassVar[dict[str, Any]] = {}
    objective_sense: ClassVar[str | None] = None

    # ------------------------------------------------------------------ data
    @abstractmethod
    def instance(self, params: Mapping[str, Any]) -> Any:
        """Build an instance (graph or model) from parameters; validate at the door."""

    def generate(self, size: int, seed: int) -> Any:
        """A generated instance of the benchmark family at ``size`` (see :attr:`size_meaning`)."""
        return self.instance({"size": check_integer(size, "size"), "seed": check_seed(seed)})

    @abstractmethod
    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        """JSON-ready form of an instance (embedded in results for :meth:`verify`)."""

    @abstractmethod
    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        """Inverse of :meth:`instance_to_dict`; raises :class:`InvalidInputError` on bad data."""

    def applicable_solvers(self, instance: Any) -> tuple[str, ...]:
        """Solvers of :attr:`solvers` that can take this instance (default: all of them)."""
        return self.solvers

    # --------------------------------------------------------------- program
    @abstractmethod
    def build(self, instance: Any, solver: str) -> Any:
        """Declare the program for ``solver`` (returned so a user can inspect or extend it)."""

    @abstractmethod
    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        """Solve a built program and write the solution (status, solution, meta solver versions).

        Infeasible or limit statuses are returned, not raised. The certificate is added later by
        :meth:`solve`.
        """

    @abstractmethod
    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        """Residuals of the optimality conditions of ``solution`` on ``instance``, each with its
        tolerance — computed from these two alone."""

    def certify_result(self, instance: Any, result: Result) -> Certificate:
        """Certificate of a result with a solution: :meth:`certify` of its solution by default.

        :meth:`solve` and :meth:`verify` both call this, so one answer gets one certificate.
        Override when the tolerances depend on the result's ``kind`` (e.g. a direct algorithm and
        an iterative route of the same formulation).
        """
        return self.certify(instance, result.solution)

    def objective(self, result: Result) -> float | None:
        """The number solvers are compared on in benchmarks (``None`` when absent)."""
        v = result.solution.get("objective")
        return None if v is None else float(v)

    # -------------------------------------------------------------- composed
    def solve(self, instance: Any, solver: str | None = None, *, time_limit: float | None = None) -> Result:
        """Build, solve and certify; the result embeds the instance and its hash.

        Parameters
        ----------
        instance : object
            From :meth:`instance`, :meth:`generate` or :meth:`instance_from_dict`.
        solver : str, optional
            One of :attr:`solvers` (default: the first).
        time_limit : float, optional
            Wall-clock seconds for build and solve together (certification is not counted). The
            remaining time is passed to the solver, routes check the clock between iterations,
            and a result that took longer (beyond :data:`TIME_LIMIT_SLACK`) has status
            ``time_limit`` — never ``optimal`` — with its solution kept.

        Returns
        -------
        Result
            ``timings`` has ``build_seconds``, ``solve_seconds``, ``certify_seconds``; ``meta`` has
            ``formulation``, ``solver``, ``instance_hash`` and provenance; ``instance`` holds the
            instance's JSON form.

        Raises
        ------
        InvalidInputError
            Unknown solver for this formulation.
        SolverError
            The solver is not installed or crashed.
        """
        solver = self._check_solver(instance, solver)
        time_limit = check_time_limit(time_limit, "time_limit")
        timer = Timer()
        deadline = Deadline(time_limit)  # build + solve: the limit is the caller's wall clock
        program: Any = None
        build_message = ""
        with timer("build_seconds"):
            try:  # a pure-Python build (Pyomo, cvxpy) is interrupted at the deadline (main thread)
                with deadline.interrupting("the build"):
                    program = self.build(instance, solver)
            except SolverLimitError as exc:
                build_message = f"{exc}: the limit was used up by the build"
        with timer("solve_seconds"):
            if build_message or deadline.expired:
                res = self._time_limit_result(
                    solver, time_limit, build_message or "the limit was used up by the build"
                )
            else:
                try:
                    res = self.solve_program(program, solver, time_limit=deadline.solver_limit())
                except SolverLimitError as exc:  # a limit is a result, not a crash
                    res = self._time_limit_result(solver, time_limit, str(exc))
        if res.status.has_solution and deadline.overran(TIME_LIMIT_SLACK):
            # never "optimal" after overrunning: the answer is kept, the status says what happened
            res.meta["status_before_time_limit"] = res.status.value
            res.meta["message"] = (
                f"build and solve took {deadline.elapsed():.3g} s, over the time limit of {time_limit:g} s"
            )
            res.status = Status.TIME_LIMIT
        # a route that builds inside its solve call reports that part as inner_build_seconds
        inner = float(res.timings.pop("inner_build_seconds", 0.0))
        timer.seconds["build_seconds"] += inner
        timer.seconds["solve_seconds"] = max(timer.seconds["solve_seconds"] - inner, 0.0)
        with timer("certify_seconds"):
            if res.status.has_solution:
                cert = self.certify_result(instance, res)
                cert.details.update(res.certificate.details)
                res.certificate = cert
        return self.attach(res, instance, solver, timer.seconds)

    def _time_limit_result(self, solver: str, time_limit: float | None, message: str) -> Result:
        kind = self.kinds[0] if self.kinds else self.name
        return Result(
            kind, Status.TIME_LIMIT, solver, {}, meta={"message": message, "time_limit": time_limit}
        )

    def attach(
        self, res: Result, instance: Any, solver: str, timings: Mapping[str, float] | None = None
    ) -> Result:
        """Stamp ``res`` with this formulation, the solver, provenance and the embedded instance."""
        inst = to_jsonable(self.instance_to_dict(instance))  # no-op walk when already plain JSON
        res.instance = inst
        res.timings = {**res.timings, **dict(timings or {})}
        prov = provenance(res.meta.get("solvers"))
        res.meta = {**prov, **res.meta, "formulation": self.name, "solver": solver}
        res.meta["instance_hash"] = instance_hash(inst)
        return res

    def certify_no_solution(self, instance: Any, claimed: Result) -> Certificate | None:
        """Check a saved result that claims *no* solution (e.g. no equilibrium exists).

        Override to re-derive the claim; the default returns ``None``, and :meth:`verify` then
        reports the claim as unverified (a failing ``unverified_no_solution_claim`` residual):
        a verifier never passes what it did not check.
        """
        return None

    def verify(self, saved: Mapping[str, Any], *, instance: Any = None) -> VerificationResult:
        """Re-derive the certificate of a saved result (a :meth:`Result.to_dict`) independently.

        Parameters
        ----------
        saved : mapping
            The saved result.
        instance : object, optional
            The instance, for a result saved without one embedded; it must match the recorded hash.

        Returns
        -------
        VerificationResult
            ``kind="verification"``; its certificate is the re-derived one; ``solution`` holds the
            verified kind and what the saved result claimed.

        Raises
        ------
        InvalidInputError
            No instance embedded or given, or an instance that does not match the recorded hash.
        """
        if not isinstance(saved, Mapping):
            raise InvalidInputError(f"a saved result must be a JSON object, got {type(saved).__name__}")
        kind = saved.get("kind")
        if kind not in self.kinds:
            raise InvalidInputError(
                f"result of kind {kind!r} cannot be verified by formulation {self.name!r}, which produces "
                f"{', '.join(map(repr, self.kinds)) or 'no kinds'}"
            )
        meta_d = saved.get("meta")
        meta_d = meta_d if isinstance(meta_d, Mapping) else {}
        recorded = meta_d.get("instance_hash")
        if instance is None:
            inst_d = saved.get("instance")
            if not isinstance(inst_d, Mapping):
                raise InvalidInputError(
                    f"result of kind {saved.get('kind')!r} embeds no instance; pass the instance "
                    "(--instance FILE) or save results with --out / Formulation.solve()"
                )
            actual = instance_hash(to_jsonable(dict(inst_d)))
            if recorded is not None and recorded != actual:
                raise InvalidInputError(
                    f"instance hash mismatch: recorded {recorded!r}, embedded instance hashes to {actual!r}"
                )
            instance = self.instance_from_dict(inst_d)
        else:
            actual = instance_hash(to_jsonable(self.instance_to_dict(instance)))
            if recorded is not None and recorded != actual:
                raise InvalidInputError(
                    f"the given instance does not match the result: recorded hash {recorded!r}, "
                    f"given instance hashes to {actual!r}"
                )
        try:
            claimed = Result.from_dict(dict(saved))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"malformed saved result: {exc!r}") from exc
        timer = Timer()
        with timer("verify_seconds"):
            if claimed.status.has_solution:
                cert = self.certify_result(instance, claimed)
            elif claimed.status.group in (StatusGroup.LIMIT, StatusGroup.ERROR):
                # no answer at all: nothing to re-derive, never a pass
                cert = Certificate(
                    details={
                        "note": f"saved status {claimed.status.value!r}: the route returned no solution, "
                        "so there is nothing to verify"
                    }
                )
                cert.add(NO_SOLUTION, 1.0, 0.0)
            else:
                maybe = self.certify_no_solution(instance, claimed)
                if maybe is not None:
                    cert = maybe
                else:  # nothing re-derived: the claim is not verified (never a pass)
                    cert = Certificate(
                        details={
                            "note": f"saved status {claimed.status.value!r}: {self.name!r} cannot re-derive "
                            "a claim that no solution exists"
                        }
                    )
                    cert.add("unverified_no_solution_claim", 1.0, 0.0)
        listed = cert.details.setdefault(NOT_CHECKED, {})
        for section, why in NO_CHECK_SECTIONS.items():  # numbers outside the solution, said once
            if section in saved:
                listed.setdefault(section, why)
        saved_cert = saved.get("certificate")
        claimed_passed = saved_cert.get("passed") if isinstance(saved_cert, Mapping) else None
        if claimed_passed is True and claimed.status.group in (StatusGroup.LIMIT, StatusGroup.ERROR):
            cert.add("passed_claimed_without_solution", 1.0, 0.0)
            cert.details["passed_claimed_without_solution"] = (
                f"the file claims a passed certificate for status {claimed.status.value!r} (no solution)"
            )
        return VerificationResult(
            kind="verification",
            status=claimed.status,
            method=f"verify:{self.name}",
            solution={
                "verified_kind": claimed.kind,
                "claimed_passed": claimed_passed,
                "claimed_residuals": claimed.certificate.residuals,
            },
            certificate=cert,
            timings=dict(timer.seconds),
            meta={**provenance(), "formulation": self.name, "instance_hash": actual},
        )

    def summary_row(self, result: Result) -> dict[str, Any]:
        """Scalars of a result for sweep stores and benchmark tables."""
        row: dict[str, Any] = {
            "status": result.status.value,
            "certified": bool(result.certified),
            "max_residual_ratio": float(result.certificate.max_residual),
            "objective": self.objective(result),
        }
        for k, v in result.timings.items():
            row[k] = float(v)
        for k, v in result.solution.items():
            if isinstance(v, bool | int | float | str):
                row.setdefault(k, None if isinstance(v, float) and not math.isfinite(v) else v)
        return row

    # -------------------------------------------------------------- helpers
    def _check_solver(self, instance: Any, solver: str | None) -> str:
        solver = (solver or self.solvers[0]).lower()
        if solver not in self.solvers:
            raise InvalidInputError(
                f"formulation {self.name!r} cannot use solver {solver!r}; "
                f"choose one of {', '.join(self.solvers)}"
            )
        if solver != DIRECT and solver in SOLVER_NAMES:
            require_solver(solver)  # installed? (probed once per process, before any clock starts)
        if solver not in self.applicable_solvers(instance):
            raise InvalidInputError(
                f"solver {solver!r} does not apply to this {self.name!r} instance; "
                f"applicable: {', '.join(self.applicable_solvers(instance))}"
            )
        return solver

    def __repr__(self) -> str:
        return f"<formulation {self.name!r}: {self.summary}>"


class VerificationResult(Result):
    """Result of :meth:`Formulation.verify`: the re-derived certificate of a saved result.

    Its status is the saved one; its certificate judges the saved claim (a re-derived "no
    equilibrium" can pass), so no :data:`~datamarkets.result.NO_SOLUTION` residual is added here —
    :meth:`Formulation.verify` puts one in for results that hold no answer at all.
    """

    def mark_no_solution(self) -> Result:
        return self
