"""Discover formulations through the ``datamarkets.formulations`` entry-point group.

A package (ours or a user's) declares each formulation with one pyproject line::

    [project.entry-points."datamarkets.formulations"]
    cournot-sellers = "mypackage.cournot:CournotSellers"

The value names a :class:`~datamarkets.formulation.Formulation` subclass (instantiated with no
arguments) or an instance. :func:`list_formulations` loads every entry point once per process; a plug-in
that fails to import or is not a formulation is skipped with a :class:`PluginWarning` and listed by
:func:`broken_plugins` — one broken third-party package never takes the CLI down. :func:`register`
adds a formulation at run time (notebooks, tests).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from datamarkets.errors import InvalidInputError
from datamarkets.formulation import Formulation, VerificationResult
from datamarkets.io import read_json

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginWarning",
    "broken_plugins",
    "formulation_for_kind",
    "get_formulation",
    "list_formulations",
    "register",
    "unregister",
    "verify",
]

ENTRY_POINT_GROUP = "datamarkets.formulations"

_loaded: dict[str, Formulation] | None = None
_runtime: dict[str, Formulation] = {}
_broken: dict[str, str] = {}


class PluginWarning(UserWarning):
    """A ``datamarkets.formulations`` entry point could not be loaded."""


def _as_formulation(obj: Any, where: str) -> Formulation:
    if isinstance(obj, type) and issubclass(obj, Formulation):
        obj = obj()
    if not isinstance(obj, Formulation):
        raise TypeError(f"{where} is {type(obj).__name__}, not a Formulation subclass or instance")
    if not obj.name:
        raise TypeError(f"{where} has an empty name")
    return obj


def _load() -> dict[str, Formulation]:
    global _loaded
    if _loaded is not None:
        return _loaded
    found: dict[str, Formulation] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found:  # the same distribution seen twice on sys.path (editable + source tree)
            continue
        try:
            f = _as_formulation(ep.load(), f"entry point {ep.name!r} ({ep.value})")
            if f.name != ep.name:
                raise TypeError(f"entry point {ep.name!r} loads a formulation named {f.name!r}")
        except Exception as exc:  # a broken plug-in is reported, not fatal
            _broken[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"datamarkets: skipping formulation plug-in {ep.name!r}: {exc}", PluginWarning, stacklevel=3
            )
            continue
        found[ep.name] = f
    _loaded = found
    return found


def list_formulations(*, reload: bool = False) -> dict[str, Formulation]:
    """Every available formulation by name (entry points, then run-time registrations).

    Parameters
    ----------
    reload : bool
        Scan the entry points again (after installing a plug-in in the same process).

    Returns
    -------
    dict of str to Formulation
        Sorted by name.

    Examples
    --------
    >>> "auction-welfare" in list_formulations()
    True
    """
    global _loaded
    if reload:
        _loaded = None
        _broken.clear()
    out = {**_load(), **_runtime}
    return dict(sorted(out.items()))


def broken_plugins() -> dict[str, str]:
    """Entry points that failed to load, with the reason."""
    _load()
    return dict(_broken)


def get_formulation(name: str) -> Formulation:
    """The formulation called ``name``.

    Raises
    ------
    InvalidInputError
        No such formulation (the message lists the available ones).
    """
    found = list_formulations()
    if name not in found:
        hint = f" (its plug-in failed to load: {_broken[name]})" if name in _broken else ""
        raise InvalidInputError(
            f"unknown formulation {name!r}{hint}; available: {', '.join(found) or 'none'}"
        )
    return found[name]


def formulation_for_kind(kind: str, name: str | None = None) -> Formulation:
    """The formulation that produced results of ``kind`` (``name`` wins when given).

    Raises
    ------
    InvalidInputError
        No formulation produces ``kind``.
    """
    if name:
        return get_formulation(name)
    for f in list_formulations().values():
        if kind in f.kinds:
            return f
    raise InvalidInputError(f"no registered formulation produces results of kind {kind!r}")


def verify(
    saved: Mapping[str, Any] | str | os.PathLike[str],
    *,
    formulation: str | None = None,
    instance: Any = None,
) -> VerificationResult:
    """Re-derive the certificate of a saved result (``Result.to_dict()`` or its JSON file) from its
    solution and instance alone, with the formulation recorded in it (or ``formulation``).

    The library form of ``datamarkets verify``: see :meth:`Formulation.verify`.

    Raises
    ------
    InvalidInputError
        Not a saved result; no formulation produces its kind; instance hash mismatch.

    Examples
    --------
    >>> f = get_formulation("auction-welfare")
    >>> r = f.solve(f.instance({"market": "example1"}), "highs")
    >>> verify(r.to_dict()).certificate.passed
    True
    """
    if not isinstance(saved, (Mapping, str, os.PathLike)):
        raise InvalidInputError(
            f"verify takes a saved result (a mapping) or its path, got {type(saved).__name__!r}"
        )
    data = saved if isinstance(saved, Mapping) else read_json(saved)
    if not isinstance(data, Mapping) or "kind" not in data or "status" not in data:
        raise InvalidInputError("not a saved datamarkets result (no 'kind'/'status')")
    meta = data.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    f = formulation_for_kind(str(data["kind"]), formulation or meta.get("formulation"))
    return f.verify(data, instance=instance)


def register(formulation: Formulation | type[Formulation], *, replace: bool = False) -> Formulation:
    """Register a formulation for this process (no entry point needed).

    Raises
    ------
    InvalidInputError
        The name is taken and ``replace`` is false.
    """
    f = _as_formulation(formulation, repr(formulation))
    if not replace and f.name in list_formulations():
        raise InvalidInputError(f"a formulation named {f.name!r} is already registered")
    _runtime[f.name] = f
    return f


def unregister(name: str) -> None:
    """Remove a run-time registration (entry points are not affected)."""
    _runtime.pop(name, None)
