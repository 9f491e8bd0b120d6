"""Small helpers of the cvxpy players (values projected onto sign sets, finiteness checks)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarkets.errors import InvalidInputError


def _project(value: NDArray, attrs: dict[str, Any]) -> NDArray:
    """Project a value onto a parameter's declared sign set (solver round-off only)."""
    if attrs.get("nonneg"):
        value = np.maximum(value, 0.0)
    if attrs.get("pos"):
        value = np.maximum(value, np.finfo(float).tiny)
    if attrs.get("nonpos"):
        value = np.minimum(value, 0.0)
    if attrs.get("neg"):
        value = np.minimum(value, -np.finfo(float).tiny)
    if attrs.get("symmetric"):
        value = 0.5 * (value + value.T)
    return value


def _check_finite(obj: Any, where: str) -> None:
    import scipy.sparse as sp

    for const in obj.constants():
        v = const.value
        data = v.data if sp.issparse(v) else np.asarray(v)
        if not np.all(np.isfinite(data)):
            raise InvalidInputError(f"{where} ({obj}) contains a non-finite constant (NaN or inf)")
    for par in obj.parameters():
        if par.value is None:
            raise InvalidInputError(f"{where}: parameter {par.name()!r} has no value")
        v = par.value
        data = v.data if sp.issparse(v) else np.asarray(v)
        if not np.all(np.isfinite(data)):
            raise InvalidInputError(f"{where}: parameter {par.name()!r} has a non-finite value")
