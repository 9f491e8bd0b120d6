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
import re
import tempfile
import time
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
    "check_writable",
    "incomplete_marker",
    "instance_hash",
    "mark_complete",
    "mark_incomplete",
    "read_json",
    "remove_stale_temporaries",
    "to_jsonable",
]

MAX_JSON_DEPTH = 64
"""Deepest nesting :func:`read_json` accepts (no datamarkets file format nests deeper than ~8)."""

INCOMPLETE_MARKER = "INCOMPLETE"
"""File written first into an output directory and removed once every file is in place."""

_PROCESS_START = time.time()  # temporaries older than this belong to an earlier (or killed) writer


_PLAIN_NUMBERS = frozenset((float, int, bool))


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
        # fast path for the big numeric rows of instances (a chain game's L×L matrices): the types
        # are checked and the finiteness of all of them by one sum (NaN/inf make it non-finite)
        if obj and set(map(type, obj)) <= _PLAIN_NUMBERS:
            try:
                if math.isfinite(sum(obj)):
                    return list(obj)
            except OverflowError:  # an int beyond float range: checked one by one below
                pass
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


def _temp_pattern(target: Path, suffix: str) -> re.Pattern[str]:
    # tempfile.mkstemp(prefix=".NAME.", suffix=SUFFIX) names: ".NAME." + 8 of [a-z0-9_] + SUFFIX
    return re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}" + re.escape(suffix) + r"\Z")


def remove_stale_temporaries(path: str | os.PathLike[str], suffix: str | None = None) -> list[Path]:
    """Delete temporaries an interrupted atomic write of ``path`` left beside it.

    Only files named as :func:`atomic_path` names its temporaries for this very target
    (``.NAME.XXXXXXXX.SUFFIX``) and last modified before this process started are removed, so a
    concurrent writer's live temporary is never touched. Called by every atomic write.

    Returns
    -------
    list of Path
        The files removed.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> stale = d / ".r.json.abcd1234.json"
    >>> _ = stale.write_text("{")
    >>> os.utime(stale, (0, 0))  # written long ago, by a killed process
    >>> [p.name for p in remove_stale_temporaries(d / "r.json")]
    ['.r.json.abcd1234.json']
    """
    target = Path(path)
    pattern = _temp_pattern(target, target.suffix if suffix is None else suffix)
    removed: list[Path] = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.*"))
    except OSError:  # pragma: no cover - unreadable directory: the write itself will say so
        return removed
    for p in candidates:
        if not pattern.match(p.name):
            continue
        try:
            if p.is_file() and not p.is_symlink() and p.stat().st_mtime < _PROCESS_START:
                p.unlink()
                removed.append(p)
        except OSError:  # raced with another cleaner, or not ours to delete
            continue
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (``glob.escape`` for one path component)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def check_writable(path: str | os.PathLike[str], *, directory: bool = False, what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written: fail early rather than after a long solve.

    For a file: ``path`` is not an existing directory and its nearest existing ancestor is a
    writable directory (missing parents are created by the writers). For a directory: ``path`` is
    a directory or does not exist yet, under a writable ancestor.

    Raises
    ------
    InvalidInputError
        Naming the path and the reason.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_writable(d / "r.json") == d / "r.json"
    True
    >>> check_writable(d)
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: output ... is a directory, not a file
    """
    p = Path(path)
    if str(p) == "" or p.name in ("", ".", ".."):
        if not directory:
            raise InvalidInputError(f"{what} {str(p)!r} is a directory, not a file")
    if p.exists() or p.is_symlink():
        if directory and not p.is_dir():
            raise InvalidInputError(f"{what} {str(p)!r} exists and is not a directory")
        if not directory and p.is_dir():
            raise InvalidInputError(f"{what} {str(p)!r} is a directory, not a file")
        if not directory and not p.is_file():
            raise InvalidInputError(f"{what} {str(p)!r} exists and is not a regular file")
    parent = p if directory and p.is_dir() else p.parent
    while not parent.exists():
        if parent.is_symlink():  # dangling link
            raise InvalidInputError(f"{what} {str(p)!r}: {str(parent)!r} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidInputError(f"{what} {str(p)!r}: {str(parent)!r} is not a directory")
    try:  # os.access is fooled by read-only mounts and ACLs: create and remove a probe file
        fd, probe = tempfile.mkstemp(prefix=".datamarkets-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be written: {exc.strerror or exc}") from exc
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Use this for writers that want a file name (``savefig``, ``to_parquet``). Temporaries that a
    killed earlier write of the same target left behind are removed first
    (:func:`remove_stale_temporaries`).

    Raises
    ------
    InvalidInputError
        ``path`` is a directory, an existing file that is not a regular file (a device such as
        ``/dev/null``, a FIFO: the rename would replace it), or its directory cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"cannot write {str(target)!r}: it is a directory")
    if target.exists() and not target.is_file():
        # renaming over it would replace a device, FIFO or socket (``/dev/null``) by a regular file
        raise InvalidInputError(f"cannot write {str(target)!r}: it exists and is not a regular file")
    suffix = suffix or target.suffix
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target, suffix)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
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


def mark_incomplete(directory: str | os.PathLike[str], what: str = "run") -> Path:
    """Mark ``directory`` incomplete before writing its files; :func:`mark_complete` removes the mark.

    A run killed (or failed) in between leaves the marker file (:data:`INCOMPLETE_MARKER`), and
    :func:`incomplete_marker` tells a reader or a re-run that the files may be partial.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = mark_incomplete(d, "reproduction")
    >>> incomplete_marker(d).startswith("This reproduction was started")
    True
    >>> mark_complete(d); incomplete_marker(d) is None
    True
    """
    d = Path(directory)
    return atomic_write_text(
        d / INCOMPLETE_MARKER,
        f"This {what} was started at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} (pid "
        f"{os.getpid()}) and has not finished: the files here may be partial or from an earlier run.\n",
    )


def mark_complete(directory: str | os.PathLike[str]) -> None:
    """Remove the marker :func:`mark_incomplete` wrote: every file of ``directory`` is in place."""
    (Path(directory) / INCOMPLETE_MARKER).unlink(missing_ok=True)


def incomplete_marker(directory: str | os.PathLike[str]) -> str | None:
    """The text of ``directory``'s incomplete marker, or ``None`` when it is complete (or absent)."""
    marker = Path(directory) / INCOMPLETE_MARKER
    try:
        return marker.read_text(encoding="utf-8").strip() or "incomplete"
    except FileNotFoundError:
        return None
    except OSError:
        return "incomplete (marker unreadable)"


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


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read a JSON file; every problem with it is an :class:`~datamarkets.errors.InvalidInputError`
    naming the file: missing, a directory, unreadable, not UTF-8, bad syntax, ``NaN``/``Infinity``,
    or nested deeper than :data:`MAX_JSON_DEPTH`.

    Every datamarkets loader reads its files through this function.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "deep.json"
    >>> _ = p.write_text("[" * 200000)
    >>> read_json(p)
    Traceback (most recent call last):
    ...
    datamarkets.errors.InvalidInputError: file '...deep.json' is nested too deeply (more than 64 levels)
    """
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"{what} {str(p)!r} does not exist")
    if not p.is_file():
        raise InvalidInputError(f"{what} {str(p)!r} is not a regular file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} is not UTF-8 text: {exc.reason}") from exc
    except OSError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be read: {exc.strerror or exc}") from exc
    too_deep = f"{what} {str(p)!r} is nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidInputError(too_deep) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} is not valid JSON: {exc}") from exc
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what} {str(p)!r}: {exc}") from exc
    except ValueError as exc:  # an integer of more digits than int() converts (sys.get_int_max_str_digits)
        raise InvalidInputError(f"{what} {str(p)!r} is not valid input: {exc}") from exc
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise InvalidInputError(too_deep)
    return data


def _depth_exceeds(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests containers deeper than ``limit`` (iterative: no recursion to overflow)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        if type(o) is dict:
            items: Iterable[Any] = o.values()
        elif type(o) is list:
            items = o
        else:
            continue
        if depth > limit:
            return True
        for v in items:
            if type(v) is dict or type(v) is list:
                stack.append((v, depth + 1))
    return False


def _reject_constant(token: str) -> Any:
    raise InvalidInputError(f"JSON has no {token}: non-finite numbers are not valid input")


def instance_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys): identifies an instance."""
    payload = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
