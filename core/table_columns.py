"""Column helpers for table builders: JSON solution fields → tidy ``pandas`` columns.

Used by the generic table machinery (:mod:`datamarkets.frames`) and by each market's table module
(``datamarkets.models.*_tables``). Solution fields are read in their JSON form
(:func:`datamarkets.io.to_jsonable`), so a result read back from JSON gives the same columns.

Examples
--------
>>> _snake("lpThreshold")
'lp_threshold'
>>> _keyed({"s1": 0.5, "s2": None}, "resource", "price")["price"].tolist()
[0.5, nan]
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamarkets.errors import InvalidInputError
from datamarkets.io import to_jsonable

if TYPE_CHECKING:
    from datamarkets.result import Result

__all__: list[str] = []  # package-internal helpers (underscore names), imported by the table modules


def _snake(name: Any) -> str:
    """``"lpThreshold"``/``"lp-threshold"``/``"LP threshold"`` → ``"lp_threshold"``."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(name))
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_").lower()
    return s or "value"


def _j(value: Any) -> Any:
    """JSON form of a solution field (arrays → lists, NaN → None, dict keys → str)."""
    return to_jsonable(value)


def _floats(values: Iterable[Any]) -> np.ndarray:
    """Float array; ``None`` becomes NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _ints(values: Iterable[Any]) -> np.ndarray:
    return np.array(list(values), dtype=np.int64)


def _names(values: Sequence[Any]) -> Any:
    """A column of node names, as given (an empty column has dtype object)."""
    values = list(values)
    return values if values else pd.Series([], dtype=object)


def _array(value: Any) -> np.ndarray:
    """Float ndarray of a JSON array (``None`` → NaN)."""
    return np.array(_j(value), dtype=float)


def _frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(dict(columns))


def _rows(rows: Any, spec: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
    """Frame of a list of row dicts: ``spec`` = (row key, column, "name"|"float"|"int"|"int?"|"str")."""
    rows = _j(rows) or []
    cols: dict[str, Any] = {}
    for key, col, kind in spec:
        vals = [r.get(key) for r in rows]
        if kind == "float":
            cols[col] = _floats(vals)
        elif kind == "int":
            cols[col] = _ints(vals)
        elif kind == "int?":  # nullable integer (a missing entry stays missing)
            cols[col] = pd.array(vals, dtype="Int64")
        else:
            cols[col] = _names(vals)
    return _frame(cols)


def _keyed(d: Any, key_col: str, value_col: str) -> pd.DataFrame:
    """Frame of a ``{name: number}`` dict."""
    d = _j(d) or {}
    return _frame({key_col: _names(list(d)), value_col: _floats(d.values())})


def _keyed_many(dicts: Mapping[str, Any], key_col: str) -> pd.DataFrame:
    """Join several ``{name: number}`` dicts on their keys (order of the first); missing → NaN."""
    js = {col: (_j(d) or {}) for col, d in dicts.items() if d is not None}
    keys: list[Any] = []
    for d in js.values():
        keys += [k for k in d if k not in keys]
    cols: dict[str, Any] = {key_col: _names(keys)}
    for col, d in js.items():
        cols[col] = _floats(d.get(k) for k in keys)
    return _frame(cols)


def _grid(
    arrays: Mapping[str, Any], row_col: str, col_col: str, row_names: Sequence[Any], col_names: Sequence[Any]
) -> pd.DataFrame:
    """Long frame of same-shape 2-D arrays: one row per (row, col) cell, one column per array."""
    K, N = len(row_names), len(col_names)
    cols: dict[str, Any] = {
        row_col: _names([row_names[k] for k in range(K) for _ in range(N)]),
        col_col: _names([col_names[i] for _ in range(K) for i in range(N)]),
    }
    for name, a in arrays.items():
        if a is None:
            continue
        arr = _array(a)
        if arr.shape != (K, N):
            raise InvalidInputError(f"solution field {name!r} has shape {arr.shape}, expected {(K, N)}")
        cols[name] = arr.ravel()
    return _frame(cols)


def _per_index(arrays: Mapping[str, Any], index_col: str, names: Sequence[Any] | None = None) -> pd.DataFrame:
    """One row per index of same-length 1-D arrays (``names`` label the rows, else 0..n-1)."""
    present = {k: _array(v) for k, v in arrays.items() if v is not None}
    n = len(names) if names is not None else (len(next(iter(present.values()))) if present else 0)
    cols: dict[str, Any] = {index_col: _names(list(names)) if names is not None else np.arange(n)}
    for k, a in present.items():
        if a.shape != (n,):
            raise InvalidInputError(f"solution field {k!r} has shape {a.shape}, expected ({n},)")
        cols[k] = a
    return _frame(cols)


def _solution_names(result: Result, key: str, n: int) -> list[Any]:
    """``result.solution[key]`` (a list of names) or ``0..n-1`` when absent."""
    names = result.solution.get(key)
    return list(_j(names)) if names is not None else list(range(n))


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def _one_row(d: Mapping[str, Any]) -> pd.DataFrame:
    row = {}
    for k, v in d.items():
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, enum.Enum):  # Status
            v = v.value
        row[_snake(k)] = np.nan if v is None else v
    return pd.DataFrame([row])


def _is_rows(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _is_scalar_dict(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and all(_scalar(x) for x in v.values())


def _is_dict_of_dicts(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and bool(v)
        and all(isinstance(x, dict) and all(_scalar(y) for y in x.values()) for x in v.values())
    )


def _numeric_array(v: Any) -> np.ndarray | None:
    if not isinstance(v, list) or not v:
        return None
    try:
        a = np.array(v, dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.ndim >= 1 and a.size else None


def _column(values: list[Any]) -> Any:
    """Numeric values (None → NaN) as floats/ints, booleans as bool, anything else as given."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=bool)
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        if len(present) == len(values) and all(isinstance(v, int) for v in present):
            return _ints(values)
        return _floats(values)
    return _names(values)


def _generic_table(key: str) -> Callable[[Result], pd.DataFrame]:
    def build(r: Result) -> pd.DataFrame:
        v = _j(r.solution.get(key))
        if _is_rows(v):
            cols: list[str] = []
            for row in v:
                cols += [c for c in row if c not in cols]
            return _frame({_snake(c): _column([row.get(c) for row in v]) for c in cols})
        if _is_dict_of_dicts(v):
            inner: list[str] = []
            for d in v.values():
                inner += [c for c in d if c not in inner]
            out: dict[str, Any] = {"name": _names(list(v))}
            for c in inner:
                col = _snake(c)
                out[col if col != "name" else "name_value"] = _column([d.get(c) for d in v.values()])
            return _frame(out)
        if _is_scalar_dict(v):
            return _frame({"name": _names(list(v)), "value": _column(list(v.values()))})
        a = _numeric_array(v)
        if a is None:
            raise InvalidInputError(f"solution field {key!r} cannot be shown as a table")
        if a.ndim == 1:
            return _frame({"index": np.arange(a.size), "value": a})
        idx = np.indices(a.shape).reshape(a.ndim, -1)
        names = ["row", "col"] if a.ndim == 2 else [f"dim_{d}" for d in range(a.ndim)]
        return _frame({**{n: idx[d] for d, n in enumerate(names)}, "value": a.ravel()})

    return build
