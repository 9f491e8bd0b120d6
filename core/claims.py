"""Compare the numbers a result *claims* with the numbers a certificate re-derives.

A certificate checks the optimality conditions of the answer (``d``, an allocation, bids); the
other numbers a result reports (totals, prices, utilities, losses, …) are functions of that answer
and the instance. :func:`compare_claim` recomputes-and-compares one such field and records the
relative difference as a residual ``claimed_<field>_rel``; :func:`not_checked` lists a field that
is deliberately not re-derived, with the reason, under ``certificate.details["not_checked"]``;
:func:`unlisted_fields` finds numeric fields neither compared nor listed, so that every number of a
result is accounted for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from datamarkets.io import to_jsonable
from datamarkets.result import NOT_CHECKED, Certificate

__all__ = ["CLAIM_RTOL", "compare_claim", "has_number", "not_checked", "unlisted_fields"]

CLAIM_RTOL = 1e-9
"""Default relative tolerance of a re-derived field (the numbers are recomputed by the same
formulas from the same saved answer, so they agree to rounding)."""


def _diff(a: Any, b: Any) -> tuple[float, float]:
    """(largest |a − b| over numeric leaves, largest |b|); ``inf`` on a structural mismatch."""
    if isinstance(b, bool) or b is None or isinstance(b, str):
        return (0.0 if a == b else math.inf), 0.0
    if isinstance(b, int | float):
        if isinstance(a, bool) or not isinstance(a, int | float):
            return math.inf, abs(float(b))
        fa, fb = float(a), float(b)
        if math.isnan(fb):
            return (0.0 if math.isnan(fa) else math.inf), 0.0
        if math.isinf(fb):
            return (0.0 if fa == fb else math.inf), 0.0
        return abs(fa - fb) if math.isfinite(fa) else math.inf, abs(fb)
    if isinstance(b, Mapping):
        if not isinstance(a, Mapping) or {str(k) for k in a} != {str(k) for k in b}:
            return math.inf, 0.0
        a_s = {str(k): v for k, v in a.items()}
        out = (0.0, 0.0)
        for k, v in b.items():
            d, s = _diff(a_s[str(k)], v)
            out = (max(out[0], d), max(out[1], s))
        return out
    if isinstance(b, list | tuple):
        if not isinstance(a, list | tuple) or len(a) != len(b):
            return math.inf, 0.0
        out = (0.0, 0.0)
        for x, y in zip(a, b, strict=True):
            d, s = _diff(x, y)
            out = (max(out[0], d), max(out[1], s))
        return out
    return (0.0 if a == b else math.inf), 0.0


def compare_claim(
    cert: Certificate,
    solution: Mapping[str, Any],
    name: str,
    recomputed: Any,
    rtol: float = CLAIM_RTOL,
    *,
    floor: float = 1e-300,
) -> None:
    """Add ``claimed_<name>_rel`` = max |claimed − recomputed| / max(max |recomputed|, floor) (over
    every number of a nested field), judged at ``rtol``; nothing when the field is absent.

    Booleans and strings must be equal (else ``inf``); so must the structure (keys, lengths).

    Examples
    --------
    >>> c = Certificate()
    >>> compare_claim(c, {"total": [1.0, 2.002]}, "total", [1.0, 2.0])
    >>> round(c.residuals["claimed_total_rel"], 6), c.passed
    (0.001, False)
    """
    if name not in solution:
        return
    d, s = _diff(to_jsonable(solution[name]), to_jsonable(recomputed))
    cert.add(f"claimed_{name}_rel", d / max(s, floor) if d > 0 else 0.0, rtol)


def not_checked(cert: Certificate, name: str, reason: str) -> None:
    """List field ``name`` under ``details["not_checked"]`` with the reason it is not re-derived."""
    cert.details.setdefault(NOT_CHECKED, {})[name] = reason


def has_number(v: Any) -> bool:
    """Whether ``v`` holds a number (int/float, not bool) anywhere inside."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return False
    if isinstance(v, int | float):
        return True
    if isinstance(v, Mapping):
        return any(has_number(x) for x in v.values())
    if isinstance(v, list | tuple):
        return any(has_number(x) for x in v)
    return isinstance(v, np.ndarray) and v.size > 0


def unlisted_fields(cert: Certificate, solution: Mapping[str, Any], checked: Iterable[str]) -> list[str]:
    """Numeric fields of ``solution`` neither in ``checked`` nor listed as not checked; each is
    listed as not checked ("not a field of this kind") and returned."""
    known = set(checked) | set(cert.details.get(NOT_CHECKED, {}))
    extra = [k for k, v in solution.items() if k not in known and has_number(v)]
    for k in extra:
        not_checked(cert, k, "not a field this kind's certificate knows; its value is not checked")
    return extra
