"""One result object per solve: solution, status, timings, certificate — serialisable to JSON.

Every solve in datamarkets returns a :class:`Result` (or a subclass adding typed fields). The
:class:`Certificate` holds the residuals of the optimality conditions and the cross-check deltas
between routes, each beside the tolerance it is judged against.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamarkets import __version__
from datamarkets.errors import InvalidInputError
from datamarkets.io import atomic_write_json, to_jsonable
from datamarkets.status import Status

__all__ = ["NOT_CHECKED", "NO_CHECK_SECTIONS", "NO_SOLUTION", "Certificate", "Result", "Timer", "provenance"]

NO_SOLUTION = "no_solution"
"""Residual (1, tolerance 0: always a failure) carried by the certificate of every result whose status
has no solution: nothing was certified, so such a certificate never passes."""

NOT_CHECKED = "not_checked"
"""Key of ``Certificate.details``: reported numbers a certificate does not re-derive, name → reason."""

NO_CHECK_SECTIONS = {
    "certificate": "the saved certificate is a claim: verify re-derives its own (this one) and shows the "
    "saved 'passed' and residuals as claimed_passed / claimed_residuals, unjudged",
    "timings": "wall-clock seconds of the original run: not reproducible, not judged",
    "meta": "provenance (package and solver versions, formulation, solver, counts, messages): not "
    "judged, except instance_hash, which must match the embedded instance",
}
"""Sections of a saved result outside its solution that ``verify`` lists under
:data:`NOT_CHECKED` with these reasons (the instance is checked by its hash)."""


@dataclass
class Certificate:
    """Residuals of optimality conditions and cross-check deltas, each with its tolerance.

    Attributes
    ----------
    residuals : dict of str to float
        Name → measured residual (absolute or relative as the name says), e.g.
        ``"stationarity_max"``, ``"lp_vs_dp_threshold_rel_max"``.
    tolerances : dict of str to float
        Name → tolerance the residual of the same name must not exceed.
    details : dict
        Anything else worth keeping (argmax locations, per-player gaps, …).
    """

    residuals: dict[str, float] = field(default_factory=dict)
    tolerances: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, residual: float, tolerance: float) -> None:
        """Record one residual with its tolerance."""
        self.residuals[name] = float(residual)
        self.tolerances[name] = float(tolerance)

    @property
    def failures(self) -> dict[str, float]:
        """Residuals above their tolerance (a NaN residual fails)."""
        out = {}
        for name, r in self.residuals.items():
            tol = self.tolerances.get(name)
            if tol is not None and not (r <= tol):
                out[name] = r
        return out

    @property
    def passed(self) -> bool:
        """True when every residual with a tolerance is within it."""
        return not self.failures

    @property
    def max_residual(self) -> float:
        """Largest residual/tolerance ratio (≤ 1 means certified)."""
        ratios = [
            self.residuals[k] / self.tolerances[k] if self.tolerances[k] > 0 else float(self.residuals[k] > 0)
            for k in self.residuals
            if k in self.tolerances
        ]
        return max(ratios, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "residuals": to_jsonable(self.residuals),
            "tolerances": to_jsonable(self.tolerances),
            "failures": to_jsonable(self.failures),
            "details": to_jsonable(self.details),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Certificate:
        return cls(
            residuals={k: float("nan") if v is None else float(v) for k, v in d.get("residuals", {}).items()},
            tolerances={k: float(v) for k, v in d.get("tolerances", {}).items()},
            details=dict(d.get("details", {})),
        )


class Timer:
    """Collect named wall-clock timings: ``with timer("solve"): ...`` → ``timer.seconds["solve"]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def provenance(solvers: dict[str, str] | None = None) -> dict[str, Any]:
    """Package version, Python, and solver names/versions for a result's ``meta``."""

    return {
        "package": "datamarkets",
        "version": __version__,
        "python": platform.python_version(),
        "solvers": dict(solvers or {}),
    }


@dataclass
class Result:
    """Base result of a solve.

    Attributes
    ----------
    kind : str
        What was solved, e.g. ``"chain-equilibrium"``, ``"auction-optimum"``, ``"gne"``.
    status : Status
        Solver status (see :mod:`datamarkets.status`).
    method : str
        The route that produced the solution (``"dp-fast"``, ``"qp-highs"``, ``"kkt-milp"``, …).
    solution : dict
        The solution in plain named arrays/numbers.
    certificate : Certificate
        Residuals and cross-check deltas.
    timings : dict of str to float
        Seconds per phase (``build_seconds``, ``solve_seconds``, …).
    meta : dict
        Provenance: package version, solver versions, instance hash, parameters.
    instance : dict, optional
        The instance's JSON form (set by :meth:`datamarkets.formulation.Formulation.solve`), so that
        ``datamarkets verify`` can re-derive the certificate from the saved file alone.
    """

    kind: str
    status: Status
    method: str
    solution: dict[str, Any] = field(default_factory=dict)
    certificate: Certificate = field(default_factory=Certificate)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    instance: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):  # a string that names a status is accepted, as in from_dict
            try:
                self.status = Status(self.status)
            except ValueError:
                known = ", ".join(k.value for k in Status)
                msg = f"unknown result status {self.status!r}; choose one of {known}"
                raise InvalidInputError(msg) from None
        self.mark_no_solution()

    def mark_no_solution(self) -> Result:
        """Give the certificate a failing :data:`NO_SOLUTION` residual when the status has no solution.

        A result without a solution (error, time or iteration limit, infeasible, no equilibrium) never
        carries a passed certificate: called on construction, by :attr:`certified` and by
        :meth:`to_dict`, so it holds whatever a route put in the certificate. Returns ``self``.
        """
        if not self.status.has_solution and NO_SOLUTION not in self.certificate.residuals:
            self.certificate.add(NO_SOLUTION, 1.0, 0.0)
            self.certificate.details[NO_SOLUTION] = (
                f"status {self.status.value!r}: no solution was returned, so nothing is certified"
            )
        return self

    @property
    def certified(self) -> bool:
        self.mark_no_solution()
        return self.status.has_solution and self.certificate.passed

    def raise_for_status(self) -> Result:
        """Raise unless a solution is present (warn when inaccurate); return ``self``."""
        self.status.raise_for_status(self.kind)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready dict: solution fields at top level, then status, certificate, timings."""
        self.mark_no_solution()
        d: dict[str, Any] = {"kind": self.kind, "status": self.status.value, "method": self.method}
        d.update(to_jsonable(self.solution))
        d["certificate"] = self.certificate.to_dict()
        d["timings"] = to_jsonable(self.timings)
        d["meta"] = to_jsonable(self.meta)
        if self.instance is not None:
            d["instance"] = to_jsonable(self.instance)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON atomically.

        Raises
        ------
        InvalidInputError
            ``path`` is a directory or cannot be written.
        """
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """Rebuild a result from :meth:`to_dict` output.

        Raises
        ------
        InvalidInputError
            ``d`` is not a saved result: not a mapping, no ``kind``/``status``, an unknown status,
            or a malformed certificate, timings or meta.
        """
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"a saved result must be a JSON object, got {type(d).__name__!r}")
        missing = [k for k in ("kind", "status") if k not in d]
        if missing:
            raise InvalidInputError(f"not a saved datamarkets result: missing {missing!r}")
        if not isinstance(d["kind"], str) or not d["kind"]:
            raise InvalidInputError(f"a saved result's 'kind' must be a non-empty string, got {d['kind']!r}")
        try:
            status = Status(d["status"])
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise InvalidInputError(f"unknown result status {d['status']!r}; known: {known}") from None
        reserved = {"kind", "status", "method", "certificate", "timings", "meta", "instance"}
        for key in ("certificate", "timings", "meta"):
            if not isinstance(d.get(key, {}), Mapping):
                raise InvalidInputError(f"a saved result's {key!r} must be an object, got {d[key]!r}")
        try:
            certificate = Certificate.from_dict(d.get("certificate", {}))
            timings = dict(d.get("timings", {}))
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"a saved result has a malformed certificate or timings: {exc}") from exc
        method = d.get("method", "")
        if not isinstance(method, str):
            raise InvalidInputError(f"a saved result's 'method' must be a string, got {method!r}")
        return cls(
            kind=d["kind"],
            status=status,
            method=method,
            solution={k: v for k, v in d.items() if k not in reserved},
            certificate=certificate,
            timings=timings,
            meta=dict(d.get("meta", {})),
            instance=d.get("instance"),
        )

    def replace(self, **changes: Any) -> Result:
        return dataclasses.replace(self, **changes)

    def tables(self) -> list[str]:
        """Names of the tidy tables :meth:`to_frame` can build, default first (:mod:`datamarkets.frames`)."""
        from datamarkets.frames import table_names  # lazy: pandas only when a table is asked for

        return table_names(self)

    def to_frame(self, table: str | None = None) -> Any:
        """One tidy ``pandas.DataFrame`` of this result (see :mod:`datamarkets.frames`).

        Parameters
        ----------
        table : str, optional
            One of :meth:`tables`; default: the kind's main per-entity table, else ``"summary"``.
            ``"summary"`` (one row of scalars) and ``"certificate"`` (one row per residual) exist
            for every result.

        Raises
        ------
        InvalidInputError
            Unknown table; the message lists the available ones.

        Examples
        --------
        >>> r = Result("demo", Status.OPTIMAL, "direct", {"rows": [{"x": 1.0}, {"x": 2.0}]})
        >>> r.tables()
        ['rows', 'summary', 'certificate']
        >>> r.to_frame()["x"].tolist()
        [1.0, 2.0]
        """
        from datamarkets.frames import to_frame  # lazy: pandas only when a table is asked for

        return to_frame(self, table)
