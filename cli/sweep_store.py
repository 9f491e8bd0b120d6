"""The sweep store (part of :mod:`datamarkets.cli.sweep`): one Parquet part file per finished task,
read back, de-duplicated per task key and compacted."""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamarkets.cli.sweep_spec import _PART_PREFIX, SweepStoreWarning
from datamarkets.errors import InvalidInputError
from datamarkets.io import atomic_path, to_jsonable

__all__ = ["compact_store", "finished_keys", "read_store"]


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    j = to_jsonable(v)
    return j if j is None or isinstance(j, bool | int | float | str) else json.dumps(j, sort_keys=True)


# ---------------------------------------------------------------------------------------- store
def _store_dir(path: str | os.PathLike[str], create: bool) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"sweep store {str(p)!r} exists and is not a directory")
    if create:
        p.mkdir(parents=True, exist_ok=True)
    elif not p.is_dir():
        raise InvalidInputError(f"sweep store {str(p)!r} does not exist")
    return p


def _part_files(store: Path) -> list[Path]:
    """Visible ``*.parquet`` files (temporary files start with a dot and are never read)."""
    return sorted(p for p in store.glob("*.parquet") if not p.name.startswith(".") and p.is_file())


def _read_part(path: Path, columns: list[str] | None = None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if columns is not None:
            have = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in have]
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        warnings.warn(
            f"sweep store: skipping unreadable file {str(path)!r}: {exc}", SweepStoreWarning, stacklevel=3
        )
        return None
    if "key" not in table.column_names:
        warnings.warn(
            f"sweep store: skipping {str(path)!r}: no 'key' column", SweepStoreWarning, stacklevel=3
        )
        return None
    return table


def _concat(tables: list[Any]) -> Any:
    """Concatenate part tables; columns of conflicting types (e.g. int and text) become text."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    types: dict[str, set[Any]] = {}
    for t in tables:
        for fld in t.schema:
            if not pa.types.is_null(fld.type):
                types.setdefault(fld.name, set()).add(fld.type)
    numeric = {
        n for n, ts in types.items() if all(pa.types.is_integer(x) or pa.types.is_floating(x) for x in ts)
    }
    conflicted = {n for n, ts in types.items() if len(ts) > 1 and n not in numeric}
    fixed = []
    for t in tables:
        for n in conflicted & set(t.column_names):
            i = t.column_names.index(n)
            t = t.set_column(i, n, t.column(n).cast(pa.string()))
        fixed.append(t)
    return pa.concat_tables(fixed, promote_options="permissive")


def _read_tables(files: list[Path], columns: list[str] | None = None) -> Any:
    import pyarrow as pa

    tables = [t for t in (_read_part(p, columns) for p in files) if t is not None]
    if not tables:
        return pa.table({"key": pa.array([], pa.string())})
    return _concat(tables)


def _latest_per_key(df: Any) -> Any:
    """One row per key: the latest ``finished_at`` wins (ties: the first read)."""
    if "finished_at" in df.columns:
        df = df.sort_values("finished_at", kind="stable", na_position="first")
        df = df.drop_duplicates("key", keep="last")
    else:
        df = df.drop_duplicates("key", keep="first")
    return df.reset_index(drop=True)


def read_store(path: str | os.PathLike[str], *, dedupe: bool = True) -> Any:
    """The sweep store as one table.

    Parameters
    ----------
    path : path-like
        The store directory given to :func:`run_sweep`.
    dedupe : bool
        One row per key (the newest; a key occurs twice only after :func:`compact_store` was
        interrupted or after ``retry_failed``). ``False`` returns every stored row.

    Returns
    -------
    pandas.DataFrame
        Rows in the order they finished; columns are the union over the parts (missing = null).

    Raises
    ------
    InvalidInputError
        The store does not exist.

    Warns
    -----
    SweepStoreWarning
        A ``*.parquet`` file that cannot be read (it is skipped).

    Examples
    --------
    >>> import tempfile
    >>> read_store(tempfile.mkdtemp()).shape
    (0, 1)
    """
    store = _store_dir(path, create=False)
    df = _read_tables(_part_files(store)).to_pandas()
    return _latest_per_key(df) if dedupe else df


def finished_keys(path: str | os.PathLike[str], *, include_failed: bool = True) -> set[str]:
    """Keys already in the store (an absent store has none).

    Parameters
    ----------
    path : path-like
        Store directory.
    include_failed : bool
        Count tasks whose newest row is an error row as finished (the default).

    Returns
    -------
    set of str

    Examples
    --------
    >>> finished_keys("/nonexistent/store")
    set()
    """
    store = Path(path)
    if not store.is_dir():
        return set()
    df = _read_tables(_part_files(store), ["key", "error_type", "finished_at"]).to_pandas()
    df = _latest_per_key(df)
    if not include_failed and "error_type" in df.columns:
        df = df[df["error_type"].isna()]
    return set(df["key"])


def compact_store(path: str | os.PathLike[str]) -> Path | None:
    """Merge the store's part files into one ``compact-*.parquet`` (one row per key).

    Safe while nothing else writes to the store, and safe to interrupt: the merged file is
    written atomically before any part is removed, and readers de-duplicate keys.

    Parameters
    ----------
    path : path-like
        Store directory.

    Returns
    -------
    Path or None
        The merged file (``None`` for an empty store).

    Examples
    --------
    >>> import tempfile
    >>> compact_store(tempfile.mkdtemp()) is None
    True
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = _store_dir(path, create=False)
    files = _part_files(store)
    tables = [t for t in (_read_part(p) for p in files) if t is not None]
    if not tables:
        return None
    df = _latest_per_key(_concat(tables).to_pandas())
    table = pa.Table.from_pandas(df, preserve_index=False)
    target = store / f"compact-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    for p in files:
        if p != target:
            p.unlink(missing_ok=True)
    return target


def _write_row(store: Path, row: Mapping[str, Any]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = store / f"{_PART_PREFIX}{row['key']}.parquet"
    table = pa.Table.from_pylist([{k: _cell(v) for k, v in row.items()}])
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return target
