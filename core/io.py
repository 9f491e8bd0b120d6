"""Atomic files and JSON that understands numpy.

Every file datamarkets writes goes through :func:`atomic_write_text` / :func:`atomic_write_bytes`:
the content is written to a temporary file in the same directory, flushed, fsynced and renamed
over the target, so a reader never sees half a file and an interrupted run leaves the old one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "instance_hash",
    "read_json",
    "to_jsonable",
]


def to_jsonable(obj: Any) -> Any:
    """Convert numpy arrays/scalars, dataclasses, enums, paths and tuples to plain JSON types.

    Non-finite floats become ``None`` (JSON has no NaN); use explicit fields to say why.
    """
    t = type(obj)
    if t is str or t is int or t is bool or obj is None:  # fast path: most leaves of big instances
        return obj
    if t is float:
        return obj if math.isfinite(obj) else None
    if t is dict:
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if t is list:
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise TypeError(f"cannot serialise {type(obj).__name__!r} to JSON")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Use this for writers that want a file name (``savefig``, ``to_parquet``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the file the permissions an ordinary open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Serialise ``obj`` with :func:`to_jsonable` and write it atomically."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent) + "\n")


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # shortest round-trip representation
    if isinstance(v, np.integer):
        return int(v)
    return v


def atomic_write_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write a tidy CSV of ``rows`` atomically.

    Columns are the union of the rows' keys in first-seen order; a missing key or ``None`` is an
    empty cell; floats are written in their shortest round-trip form.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = atomic_write_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", [{"a": 0.1}, {"b": None}])
    >>> p.read_text().splitlines()
    ['a,b', '0.1,', ',']
    """
    rows = list(rows)
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(v) for k, v in r.items()})
    return atomic_write_text(path, buf.getvalue())


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, raising :class:`~datamarkets.errors.InvalidInputError` on bad syntax."""

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"file {str(p)!r} does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{str(p)!r} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{str(p)!r} is not valid JSON: {exc}") from exc


def _reject_constant(token: str) -> Any:
    raise InvalidInputError(f"JSON has no {token}: non-finite numbers are not valid input")


def instance_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys): identifies an instance."""
    payload = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
