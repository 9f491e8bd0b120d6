"""Tidy ``pandas.DataFrame`` views of every result: ``result.to_frame(table)``.

Every :class:`~datamarkets.result.Result` has named *tables*, each a tidy frame (one row per
observation, one column per variable, snake_case column names, numeric columns with numeric dtypes,
node names as given). Two tables exist for every result:

``"summary"``
    One row: ``kind``, ``status``, ``method``, ``certified``, ``certificate_passed``,
    ``max_residual_ratio``, the timings (``build_seconds``, …), ``formulation``/``solver``/
    ``instance_hash`` when the result carries them, then every scalar solution field.
``"certificate"``
    One row per residual: ``name``, ``residual``, ``tolerance``, ``ratio`` (residual/tolerance) and
    ``passed`` (``False`` exactly for the names in :attr:`Certificate.failures`).

Each market kind adds its per-entity tables (see :func:`table_names`), for example

=========================  ==========================================================================
kind                        tables (default first)
=========================  ==========================================================================
``chain-equilibrium``       players, trades, strategies, mechanism
``chain-opt``               mechanism, baselines, players, trades, strategies
``chain-certificate``       players, strategies
``auction-optimum``         allocation, prices, buyers
``auction-psp``             allocation, prices, bids, payments, buyers, stages
``auction-data-share``      allocation, prices, buyers, history
``auction-certificate``     prices, residuals
``auction-epsilon-nash``    buyers
``broker-experiment``       history, prices
``gne``                     pairs, sources, buyers, xi
``gne-existence-lp``        pairs
``gne-payment-range``       buyers
``gne-best-response``       pairs, iterations, sources
``welfare-effort``          sources
``verification``            comparison
=========================  ==========================================================================

Tables are built from the JSON form of the solution (:func:`datamarkets.io.to_jsonable`), so a
result read back from its JSON file gives the same frames as the original: NaN is stored as
``null`` and comes back as NaN; dictionary keys (node names used as keys) are strings.

A kind this module does not know (a plug-in's) gets generic tables: a solution field holding a list
of row dicts becomes a table of that name; a dict of scalars a ``name, value`` table; a dict of dicts
one row per outer key; an array a long table (``index``/``row, col``/``dim_0, …`` and ``value``);
scalars go to ``"summary"``. A plug-in can register its own tables with :func:`register_tables`.

This module names no market. Each market's tables live next to it (``datamarkets.models.chain_tables``,
``auction_tables``, ``gne_tables``) and register themselves on import with :func:`define_tables` and
:func:`register_object_tables`; the modules are listed in the ``datamarkets.tables`` entry-point group,
and the first table lookup imports every one of them, so a result read back from JSON finds its
tables without any of the market's modules imported first.

Examples
--------
>>> from datamarkets.graphs.market import example1_market
>>> from datamarkets.formulations.welfare import solve_welfare
>>> r = solve_welfare(example1_market())
>>> r.tables()[:3]
['allocation', 'prices', 'buyers']
>>> list(r.to_frame("prices").columns)
['resource', 'price']
>>> r.to_frame("summary").loc[0, "kind"]
'auction-optimum'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamarkets.errors import InvalidInputError
from datamarkets.result import Result
from datamarkets.table_columns import (
    _floats,
    _frame,
    _generic_table,
    _is_dict_of_dicts,
    _is_rows,
    _is_scalar_dict,
    _j,
    _names,
    _numeric_array,
    _scalar,
    _snake,
)

if TYPE_CHECKING:
    from datamarkets.result import Certificate, Result

__all__ = [
    "COMMON_TABLES",
    "TABLES_GROUP",
    "ObjectTables",
    "TableFunction",
    "certificate_frame",
    "default_table",
    "define_tables",
    "object_frame",
    "object_tables",
    "register_object_tables",
    "register_tables",
    "summary_frame",
    "table_names",
    "to_frame",
    "unregister_tables",
]

TableFunction = Callable[["Result"], pd.DataFrame]
"""A table builder: takes a :class:`~datamarkets.result.Result`, returns a tidy frame."""

ObjectTables = Callable[[Any], dict[str, Callable[[], pd.DataFrame]]]
"""Tables of a result object: takes the object, returns ``{table name: () -> frame}``, default first."""

COMMON_TABLES = ("summary", "certificate")
"""Tables every result has."""

TABLES_GROUP = "datamarkets.tables"
"""Entry-point group of the modules that register market tables on import."""


@dataclass(frozen=True)
class _Table:
    build: TableFunction
    requires: tuple[str, ...] = ()  # solution fields that must be present and not None

    def available(self, result: Result) -> bool:
        return all(result.solution.get(k) is not None for k in self.requires)


# kind -> ordered {table name -> _Table}; the first table is the default
_BUILTIN: dict[str, dict[str, _Table]] = {}
_PLUGIN: dict[str, dict[str, _Table]] = {}
_PLUGIN_DEFAULT: dict[str, str] = {}
_SUMMARY_RENAME: dict[str, dict[str, str]] = {}
# class name -> table builders of such an object (matched along the MRO)
_OBJECTS: dict[str, ObjectTables] = {}
_loaded = False


def _load_table_modules() -> None:
    """Import every module of the ``datamarkets.tables`` entry-point group once (each registers its
    market's tables on import)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=TABLES_GROUP):
        ep.load()


def define_tables(
    kind: str,
    tables: Mapping[str, tuple[TableFunction, tuple[str, ...]]],
    *,
    summary_rename: Mapping[str, str] | None = None,
) -> None:
    """Define the tables of a market's result ``kind`` (called by the market's table module on import).

    Parameters
    ----------
    kind : str
        ``Result.kind``.
    tables : mapping
        Table name → ``(builder, required solution fields)``, default table first; a table is listed
        only when its required fields are present and not ``None``.
    summary_rename : mapping, optional
        Solution field → column name in the ``"summary"`` table.

    Examples
    --------
    >>> from datamarkets.result import Result
    >>> from datamarkets.status import Status
    >>> define_tables("demo-defined", {"x": (lambda r: pd.DataFrame({"x": r.solution["x"]}), ("x",))})
    >>> table_names(Result("demo-defined", Status.OPTIMAL, "m", {"x": None}))
    ['summary', 'certificate']
    """
    _BUILTIN[kind] = {name: _Table(fn, req) for name, (fn, req) in tables.items()}
    if summary_rename:
        _SUMMARY_RENAME[kind] = dict(summary_rename)


def register_object_tables(class_name: str, builders: ObjectTables) -> None:
    """Register the tables of result objects whose class (or a base class) is named ``class_name``.

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Demo:
    ...     value: float
    >>> register_object_tables("Demo", lambda d: {"summary": lambda: pd.DataFrame([{"value": d.value}])})
    >>> object_frame(Demo(2.0)).loc[0, "value"]
    np.float64(2.0)
    """
    _OBJECTS[class_name] = builders


# ----------------------------------------------------------------------------------------------
# tables of every result
# ----------------------------------------------------------------------------------------------
def summary_frame(result: Result, rename: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One-row frame: kind, status, method, certification, timings, provenance, scalar solution fields.

    Parameters
    ----------
    result : Result
    rename : mapping, optional
        Solution field → column name (e.g. ``{"L": "n_values"}``).

    Returns
    -------
    pandas.DataFrame
        One row. Missing scalars (``None``/NaN) are NaN. A solution field whose snake_case name
        clashes with a column already present is prefixed ``solution_``.

    Examples
    --------
    >>> from datamarkets.result import Result
    >>> from datamarkets.status import Status
    >>> r = Result("demo", Status.OPTIMAL, "direct", {"welfare": 2.5}, timings={"solve_seconds": 0.1})
    >>> summary_frame(r)[["kind", "certified", "welfare"]].to_dict("records")
    [{'kind': 'demo', 'certified': True, 'welfare': 2.5}]
    """
    cert = result.certificate
    row: dict[str, Any] = {
        "kind": result.kind,
        "status": result.status.value,
        "method": result.method,
        "certified": bool(result.certified),
        "certificate_passed": bool(cert.passed),
        "max_residual_ratio": float(cert.max_residual),
    }
    for k, v in (result.timings or {}).items():
        row.setdefault(_snake(k), np.nan if v is None else float(v))
    for k in ("formulation", "solver", "instance_hash"):
        tag = (result.meta or {}).get(k)
        if isinstance(tag, str):
            row.setdefault(k, tag)
    rename = dict(rename or {})
    for k, v in result.solution.items():
        if isinstance(v, np.generic):
            v = v.item()
        if not _scalar(v):
            continue
        col = rename.get(k, _snake(k))
        if col in row:
            col = f"solution_{col}"
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            v = np.nan
        row[col] = v
    return pd.DataFrame([row])


def certificate_frame(cert: Certificate) -> pd.DataFrame:
    """One row per residual: ``name``, ``residual``, ``tolerance``, ``ratio``, ``passed``.

    ``passed`` is ``False`` exactly for the names in :attr:`Certificate.failures` (a NaN residual
    fails; a residual without a tolerance has tolerance NaN and passes). ``ratio`` is
    residual/tolerance (NaN without a tolerance; for a zero tolerance 0 when the residual is ≤ 0,
    else 1, as in :attr:`Certificate.max_residual`). Residuals are the certificate's own floats: an
    infinite residual shows as ``inf`` here but as NaN after a JSON round trip (JSON stores both as
    ``null``); it fails either way.

    Examples
    --------
    >>> from datamarkets.result import Certificate
    >>> c = Certificate()
    >>> c.add("gap", 2e-9, 1e-9)
    >>> certificate_frame(c)[["name", "passed"]].to_dict("records")
    [{'name': 'gap', 'passed': False}]
    """
    names = list(cert.residuals)
    res = np.array([cert.residuals[k] for k in names], dtype=float)
    tol = np.array([cert.tolerances.get(k, np.nan) for k in names], dtype=float)
    ratio = np.full(len(names), np.nan)
    for i, k in enumerate(names):
        if k in cert.tolerances:
            ratio[i] = res[i] / tol[i] if tol[i] > 0 else float(res[i] > 0)
    fails = cert.failures
    return _frame(
        {
            "name": _names(names),
            "residual": res,
            "tolerance": tol,
            "ratio": ratio,
            "passed": np.array([k not in fails for k in names], dtype=bool),
        }
    )


def _verification(r: Result) -> pd.DataFrame:
    """Claimed (saved) residuals beside the re-derived ones; ``passed`` is missing (``<NA>``) for a
    claimed residual the verification did not re-derive."""
    claimed = _j(r.solution.get("claimed_residuals")) or {}
    cert = r.certificate
    names = list(cert.residuals) + [k for k in claimed if k not in cert.residuals]
    fails = cert.failures
    return _frame(
        {
            "name": _names(names),
            "claimed_residual": _floats(claimed.get(k) for k in names),
            "residual": _floats(cert.residuals.get(k) for k in names),
            "tolerance": _floats(cert.tolerances.get(k) for k in names),
            "passed": pd.array(
                [(k not in fails) if k in cert.residuals else None for k in names], dtype="boolean"
            ),
        }
    )


define_tables("verification", {"comparison": (_verification, ())})


# ----------------------------------------------------------------------------------------------
# generic tables (unknown kinds)
# ----------------------------------------------------------------------------------------------
def _generic_tables(result: Result) -> dict[str, _Table]:
    found: list[tuple[bool, str, str]] = []
    for key, v in result.solution.items():
        if _scalar(v) or isinstance(v, np.generic):
            continue
        name = _snake(key)
        if name in COMMON_TABLES or any(name == f[1] for f in found):
            continue
        j = _j(v)
        if _is_rows(j) or _is_dict_of_dicts(j) or _is_scalar_dict(j) or _numeric_array(j) is not None:
            found.append((not _is_rows(j), name, key))
    # list-of-rows tables first: the default is the first per-entity table
    found.sort(key=lambda f: f[0])
    return {name: _Table(_generic_table(key)) for _, name, key in found}


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def _kind_tables(result: Result) -> dict[str, _Table]:
    _load_table_modules()
    kind = result.kind
    if kind in _PLUGIN:
        base = dict(_BUILTIN.get(kind, {}))
        plug = _PLUGIN[kind]
        default = _PLUGIN_DEFAULT.get(kind)
        merged = {k: plug.get(k, v) for k, v in base.items()} | {
            k: v for k, v in plug.items() if k not in base
        }
        if default is not None:
            merged = {default: merged[default], **{k: v for k, v in merged.items() if k != default}}
        return merged
    if kind in _BUILTIN:
        return _BUILTIN[kind]
    return _generic_tables(result)


def table_names(result: Result) -> list[str]:
    """Names of the tables available for ``result``, default first, ``summary``/``certificate`` last.

    A kind's table whose solution fields are missing (e.g. ``"pairs"`` of a GNE result without an
    equilibrium) is not listed.

    Examples
    --------
    >>> from datamarkets.result import Result
    >>> from datamarkets.status import Status
    >>> table_names(Result("my-plugin", Status.OPTIMAL, "x", {"rows": [{"a": 1}], "w": 1.0}))
    ['rows', 'summary', 'certificate']
    """
    own = [name for name, t in _kind_tables(result).items() if t.available(result)]
    return own + [c for c in COMMON_TABLES if c not in own]


def default_table(result: Result) -> str:
    """The table :func:`to_frame` returns when none is named: the kind's main per-entity table,
    else ``"summary"``."""
    return table_names(result)[0]


def to_frame(result: Result, table: str | None = None) -> pd.DataFrame:
    """A tidy ``pandas.DataFrame`` of one table of ``result``.

    Parameters
    ----------
    result : Result
        Any result (built-in kind, plug-in kind, or read back with :meth:`Result.from_dict`).
    table : str, optional
        One of :func:`table_names` (default :func:`default_table`).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InvalidInputError
        Unknown table name (the message lists the available ones), or a solution field of the
        wrong shape.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> r = solve_equilibrium(paper_model("paper-1", 2, "raw")).to_result()
    >>> to_frame(r).columns.tolist(), len(to_frame(r, "strategies"))
    (['player', 'utility'], 27)
    """
    names = table_names(result)
    if table is None:
        table = names[0]
    if table not in names:
        raise InvalidInputError(
            f"result of kind {result.kind!r} has no table {table!r}; available: {', '.join(names)}"
        )
    own = _kind_tables(result)
    if table in own:
        df = own[table].build(result)
    elif table == "summary":
        df = summary_frame(result, _SUMMARY_RENAME.get(result.kind))
    else:
        df = certificate_frame(result.certificate)
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError(
            f"table {table!r} of kind {result.kind!r} returned {type(df).__name__}, not a DataFrame"
        )
    return df.reset_index(drop=True)


def register_tables(
    kind: str,
    tables: Mapping[str, TableFunction],
    *,
    default: str | None = None,
    replace: bool = False,
) -> None:
    """Register a plug-in's tables for results of ``kind``.

    Parameters
    ----------
    kind : str
        ``Result.kind`` the tables apply to.
    tables : mapping of str to callable
        Table name (snake_case) → function ``result -> pandas.DataFrame``. They replace the generic
        tables of an unknown kind, or add to a built-in kind's tables.
    default : str, optional
        Table returned by ``to_frame()`` without a name (default: the first of ``tables``).
    replace : bool
        Allow replacing tables already registered (or built in) for ``kind``.

    Raises
    ------
    InvalidInputError
        A name clash without ``replace``, a reserved name (``summary``, ``certificate``), a name
        that is not snake_case, a non-callable, or a ``default`` not among the kind's tables.

    Examples
    --------
    >>> import pandas as pd
    >>> from datamarkets.result import Result
    >>> from datamarkets.status import Status
    >>> register_tables("demo-kind", {"points": lambda r: pd.DataFrame({"x": r.solution["x"]})})
    >>> Result("demo-kind", Status.OPTIMAL, "m", {"x": [1.0, 2.0]}).to_frame()["x"].tolist()
    [1.0, 2.0]
    >>> unregister_tables("demo-kind")
    """
    if not isinstance(kind, str) or not kind:
        raise InvalidInputError(f"kind must be a non-empty string, got {kind!r}")
    if not tables:
        raise InvalidInputError(f"register_tables({kind!r}) needs at least one table")
    _load_table_modules()
    existing = {**_BUILTIN.get(kind, {}), **_PLUGIN.get(kind, {})}
    for name, fn in tables.items():
        if name in COMMON_TABLES:
            raise InvalidInputError(f"table name {name!r} is reserved (every result has it)")
        if not isinstance(name, str) or _snake(name) != name:
            raise InvalidInputError(f"table name {name!r} must be snake_case")
        if not callable(fn):
            raise InvalidInputError(
                f"table {name!r} of kind {kind!r} must be callable, got {type(fn).__name__}"
            )
        if name in existing and not replace:
            raise InvalidInputError(
                f"kind {kind!r} already has a table {name!r}; pass replace=True to replace it"
            )
    available = list(tables) + [k for k in existing if k not in tables]
    if default is not None and default not in available:
        raise InvalidInputError(f"default table {default!r} is not among {', '.join(available)}")
    plug = dict(_PLUGIN.get(kind, {}))
    plug.update({name: _Table(fn) for name, fn in tables.items()})
    _PLUGIN[kind] = plug
    if default is not None:
        _PLUGIN_DEFAULT[kind] = default
    elif kind not in _PLUGIN_DEFAULT and kind not in _BUILTIN:
        _PLUGIN_DEFAULT[kind] = next(iter(tables))


def unregister_tables(kind: str) -> None:
    """Forget the tables registered for ``kind`` with :func:`register_tables` (built-ins stay)."""
    _PLUGIN.pop(kind, None)
    _PLUGIN_DEFAULT.pop(kind, None)


# ----------------------------------------------------------------------------------------------
# result dataclasses that are not Results
# ----------------------------------------------------------------------------------------------
def _object_builders(obj: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    _load_table_modules()
    if isinstance(obj, Result):
        return {name: functools.partial(to_frame, obj, name) for name in table_names(obj)}
    for cls in type(obj).__mro__:
        if cls.__name__ in _OBJECTS:
            return _OBJECTS[cls.__name__](obj)
    raise InvalidInputError(f"no tables are defined for objects of type {type(obj).__name__!r}")


def object_tables(obj: Any) -> list[str]:
    """Table names of a result dataclass (``ChainEquilibrium``, ``CPolytope``, …), default first."""
    return list(_object_builders(obj))


def object_frame(obj: Any, table: str | None = None) -> pd.DataFrame:
    """Tidy frame of a result dataclass that is not a :class:`~datamarkets.result.Result`.

    Tables: ``ChainEquilibrium`` — those of its ``to_result()`` with a richer ``strategies``
    (``price_index``, ``one_shot_profit``, ``future_profit``, ``alive_probability``);
    ``EstimationSimulation`` — buyers, pairs, sources, summary, certificate; ``CPolytope`` —
    pairs, sources, summary; ``BestResponse`` — sources, summary; ``MaxBidResult`` — counts,
    winners, summary; ``SecureSum`` — parties, received, summary; ``PSPState`` — bids;
    ``SpectralRadius`` and ``PriceOfAnarchy`` — summary. Indices stand in for buyer/source names
    where the object does not carry them.

    Raises
    ------
    InvalidInputError
        Unknown table (the message lists the available ones) or an object without tables.

    Examples
    --------
    >>> from datamarkets.formulations.welfare_effort import price_of_anarchy
    >>> object_frame(price_of_anarchy(3.0, 2.0)).loc[0, "ratio"]
    np.float64(1.5)
    """
    builders = _object_builders(obj)
    if table is None:
        table = next(iter(builders))
    if table not in builders:
        raise InvalidInputError(
            f"{type(obj).__name__} has no table {table!r}; available: {', '.join(builders)}"
        )
    return builders[table]().reset_index(drop=True)
