"""Lazy public names of a package: ``name → module`` imported on first attribute access.

Each subpackage's ``__init__`` lists its main names in ``__all__`` without importing the solver
stack (``import datamarkets`` stays fast): :func:`lazy_exports` returns the module-level
``__getattr__`` and ``__dir__`` (PEP 562) that resolve them on demand.

Examples
--------
>>> import types, sys
>>> sys.modules["pkg"] = types.ModuleType("pkg")
>>> getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"})
>>> getattr_("sqrt")(9.0), "sqrt" in dir_()
(3.0, True)
>>> del sys.modules["pkg"]
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` live in the given modules.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the error message).
    names : mapping
        Public name → absolute module path that defines it.
    """
    table = dict(names)

    def __getattr__(name: str) -> Any:
        try:
            module = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)  # resolved once
        return value

    def __dir__() -> list[str]:
        return sorted(set(table) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
