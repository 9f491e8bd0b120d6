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

Each built-in kind adds its per-entity tables (see :func:`table_names`), for example

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

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamarkets.errors import InvalidInputError
from datamarkets.io import to_jsonable

if TYPE_CHECKING:
    from datamarkets.result import Certificate, Result

__all__ = [
    "COMMON_TABLES",
    "TableFunction",
    "certificate_frame",
    "chain_strategies",
    "default_table",
    "object_frame",
    "object_tables",
    "register_tables",
    "summary_frame",
    "table_names",
    "to_frame",
    "unregister_tables",
]

TableFunction = Callable[["Result"], pd.DataFrame]
"""A table builder: takes a :class:`~datamarkets.result.Result`, returns a tidy frame."""

COMMON_TABLES = ("summary", "certificate")
"""Tables every result has."""


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


# ----------------------------------------------------------------------------------------------
# column helpers
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# tables of every result
# ----------------------------------------------------------------------------------------------
def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


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
        v = (result.meta or {}).get(k)
        if isinstance(v, str):
            row.setdefault(k, v)
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


# ----------------------------------------------------------------------------------------------
# chain trading
# ----------------------------------------------------------------------------------------------
def _chain_players(r: Result) -> pd.DataFrame:
    u = _array(r.solution["player_utility"])
    return _frame({"player": np.arange(u.size), "utility": u})


def _chain_trades(r: Result) -> pd.DataFrame:
    ts = _array(r.solution["trade_success"])
    n = ts.size
    cols: dict[str, Any] = {
        "trade": np.arange(1, n + 1),
        "seller": np.arange(n),
        "buyer": np.arange(1, n + 1),
        "success_probability": ts,
    }
    cond = r.solution.get("trade_success_conditional")
    if cond is not None:
        cols["success_probability_conditional"] = _array(cond)
    return _frame(cols)


def chain_strategies(
    thresholds: Any,
    prices: Any,
    values: Any = None,
    extra: Mapping[str, Any] | None = None,
    *,
    threshold_col: str = "threshold",
    price_col: str = "price",
) -> pd.DataFrame:
    """Long frame of chain strategies: one row per (player, value index).

    ``thresholds`` is (n+1, L); ``prices`` (n, L) is the price each player 0..n-1 posts as seller
    (NaN for the last player). ``extra`` adds (n+1, L) or (n, L) arrays as further columns.
    """
    s = _array(thresholds)
    p = _array(prices)
    n1, L = s.shape
    p_full = np.full((n1, L), np.nan)
    p_full[: p.shape[0]] = p
    cols: dict[str, Any] = {
        "player": np.repeat(np.arange(n1), L),
        "value_index": np.tile(np.arange(L), n1),
    }
    if values is not None:
        cols["value"] = np.tile(_array(values), n1)
    cols[threshold_col] = s.ravel()
    cols[price_col] = p_full.ravel()
    for name, a in (extra or {}).items():
        if a is None:
            continue
        arr = _array(a)
        full = np.full((n1, L), np.nan)
        full[: arr.shape[0]] = arr
        cols[name] = full.ravel()
    return _frame(cols)


def _chain_strategies(r: Result) -> pd.DataFrame:
    sol = r.solution
    return chain_strategies(
        sol["thresholds"], sol["prices"], sol.get("values"), {"lp_threshold": sol.get("lp_thresholds")}
    )


def _chain_mechanism(r: Result) -> pd.DataFrame:
    t = _array(r.solution["mechanism"])
    n, n1 = t.shape
    return _frame(
        {
            "trade": np.repeat(np.arange(1, n + 1), n1),
            "player": np.tile(np.arange(n1), n),
            "share": t.ravel(),
        }
    )


def _chain_baselines(r: Result) -> pd.DataFrame:
    b = _j(r.solution["baselines"])
    rows = [{"mechanism": k, **v} for k, v in b.items()]
    rows.append(
        {
            "mechanism": "opt",
            "social_welfare": r.solution.get("social_welfare"),
            "transaction_volume": r.solution.get("transaction_volume"),
        }
    )
    return _rows(
        rows,
        [
            ("mechanism", "mechanism", "name"),
            ("social_welfare", "social_welfare", "float"),
            ("transaction_volume", "transaction_volume", "float"),
        ],
    )


def _chain_cert_players(r: Result) -> pd.DataFrame:
    rows = r.certificate.details.get("per_player") or []
    return _rows(
        rows,
        [
            ("player", "player", "int"),
            ("status", "status", "str"),
            ("threshold_gap_rel", "threshold_gap_rel", "float"),
            ("threshold_gap_at_value", "threshold_gap_at_value", "int?"),
            ("price_gap_rel", "price_gap_rel", "float"),
            ("price_gap_at_value", "price_gap_at_value", "int?"),
            ("rows", "lp_rows", "int?"),
        ],
    )


def _chain_cert_strategies(r: Result) -> pd.DataFrame:
    return chain_strategies(
        r.solution["lp_thresholds"],
        r.solution["lp_prices"],
        threshold_col="lp_threshold",
        price_col="lp_price",
    )


# ----------------------------------------------------------------------------------------------
# auctions
# ----------------------------------------------------------------------------------------------
_ALLOC = [("buyer", "buyer", "name"), ("seller", "seller", "name"), ("amount", "amount", "float")]


def _allocation(r: Result) -> pd.DataFrame:
    return _rows(r.solution.get("allocation"), _ALLOC)


def _prices(r: Result) -> pd.DataFrame:
    return _keyed(r.solution.get("prices"), "resource", "price")


def _welfare_buyers(r: Result) -> pd.DataFrame:
    return _rows(
        r.solution.get("buyers"),
        [
            ("buyer", "buyer", "name"),
            ("total", "total", "float"),
            ("marginal", "marginal", "float"),
            ("mu", "mu", "float"),
        ],
    )


def _psp_bids(r: Result) -> pd.DataFrame:
    return _rows(
        r.solution["bids"],
        [
            ("buyer", "buyer", "name"),
            ("seller", "seller", "name"),
            ("price", "price", "float"),
            ("quantity", "quantity", "float"),
        ],
    )


def _psp_payments(r: Result) -> pd.DataFrame:
    return _rows(r.solution["payments"], _ALLOC)


def _psp_buyers(r: Result) -> pd.DataFrame:
    s = r.solution
    return _keyed_many(
        {"quantity": s.get("buyer_quantity"), "utility": s.get("utilities"), "epsilon": s.get("epsilons")},
        "buyer",
    )


def _psp_stages(r: Result) -> pd.DataFrame:
    rounds = _j(r.solution["stage_rounds"]) or []
    return _frame({"stage": np.arange(len(rounds)), "rounds": _ints(rounds)})


def _ds_prices(r: Result) -> pd.DataFrame:
    s = r.solution
    return _keyed_many({"price": s.get("prices"), "reserve_price": s.get("reserve_prices")}, "resource")


def _ds_buyers(r: Result) -> pd.DataFrame:
    s = r.solution
    return _keyed_many({"bid_price": s.get("bid_prices"), "unmet": s.get("unmet")}, "buyer")


def _ds_history(r: Result) -> pd.DataFrame:
    rows = [{"round": t + 1, **b} for t, bids in enumerate(_j(r.solution["history"]) or []) for b in bids]
    return _rows(
        rows,
        [
            ("round", "round", "int"),
            ("buyer", "buyer", "name"),
            ("seller", "seller", "name"),
            ("quantity", "quantity", "float"),
            ("price", "price", "float"),
        ],
    )


def _cert_residuals(r: Result) -> pd.DataFrame:
    return _keyed(r.solution["residuals"], "name", "value")


def _eps_nash_buyers(r: Result) -> pd.DataFrame:
    s = r.solution
    return _keyed_many(
        {
            "gain": s.get("gains"),
            "epsilon": s.get("epsilons"),
            "exact_best_reply_gain": s.get("exact_best_reply_gains"),
        },
        "buyer",
    )


def _broker_history(r: Result) -> pd.DataFrame:
    rows = [{"evaluation": i, **h} for i, h in enumerate(_j(r.solution["history"]) or [])]
    return _rows(
        rows,
        [
            ("evaluation", "evaluation", "int"),
            ("traded", "traded", "float"),
            ("price_a", "price_a", "float"),
            ("price_b", "price_b", "float"),
            ("welfare", "welfare", "float"),
        ],
    )


def _broker_prices(r: Result) -> pd.DataFrame:
    s = r.solution
    return _keyed_many(
        {"price_before": s.get("prices_before"), "price_after": s.get("prices_after")}, "seller"
    )


# ----------------------------------------------------------------------------------------------
# GNE
# ----------------------------------------------------------------------------------------------
def _gne_dims(r: Result) -> tuple[list[Any], list[Any]]:
    s = r.solution
    for key in ("gamma", "d", "d_candidate"):
        if s.get(key) is not None:
            K, N = _array(s[key]).shape
            return _solution_names(r, "buyers", K), _solution_names(r, "sources", N)
    raise InvalidInputError(f"result of kind {r.kind!r} has no (buyer, source) array")


def _gne_pairs(r: Result) -> pd.DataFrame:
    b, src = _gne_dims(r)
    s = r.solution
    keys = ("gamma", "d", "c_lower", "c_point", "d_candidate", "d_leontief")
    return _grid({k: s.get(k) for k in keys}, "buyer", "source", b, src)


def _gne_sources(r: Result) -> pd.DataFrame:
    s = r.solution
    keys = (
        "alpha",
        "d_total",
        "variance",
        "effort_equilibrium",
        "effort_optimal",
        "effort_candidate",
        "effort_closed_form",
        "c_total",
    )
    arrays = {k: s.get(k) for k in keys}
    present = [v for v in arrays.values() if v is not None]
    n = len(_j(present[0])) if present else 0
    return _per_index(arrays, "source", _solution_names(r, "sources", n))


def _gne_buyers(r: Result) -> pd.DataFrame:
    s = r.solution
    pr = _j(s.get("payment_range")) or {}
    names = _solution_names(r, "buyers", len(pr))
    cols: dict[str, Any] = {"buyer": _names(names)}
    if s.get("eta") is not None:
        cols["eta"] = _array(s["eta"])
    for src, col in (
        ("least", "payment_least"),
        ("most", "payment_most"),
        ("c_least", "c_least"),
        ("c_most", "c_most"),
    ):
        if pr:
            cols[col] = _floats((pr.get(str(b)) or {}).get(src) for b in names)
    if s.get("best_response_gap") is not None:
        cols["best_response_gap"] = _array(s["best_response_gap"])
    return _frame(cols)


def _gne_xi(r: Result) -> pd.DataFrame:
    xi = _array(r.solution["xi"])
    K, N, _ = xi.shape
    b = _solution_names(r, "buyers", K)
    src = _solution_names(r, "sources", N)
    return _frame(
        {
            "buyer": _names([b[k] for k in range(K) for _ in range(N * N)]),
            "source": _names([src[i] for _ in range(K) for i in range(N) for _ in range(N)]),
            "other_source": _names([src[j] for _ in range(K) for _ in range(N) for j in range(N)]),
            "xi": xi.ravel(),
        }
    )


def _payment_range_buyers(r: Result) -> pd.DataFrame:
    pr = _j(r.solution["payment_range"]) or {}
    return _frame(
        {
            "buyer": _names(list(pr)),
            "payment_least": _floats(v.get("least") for v in pr.values()),
            "payment_most": _floats(v.get("most") for v in pr.values()),
            "c_least": _floats(v.get("c_least") for v in pr.values()),
            "c_most": _floats(v.get("c_most") for v in pr.values()),
        }
    )


def _br_iterations(r: Result) -> pd.DataFrame:
    steps = _j(r.solution["step_history"]) or []
    return _frame({"iteration": np.arange(1, len(steps) + 1), "step": _floats(steps)})


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


def _reg(kind: str, tables: Mapping[str, tuple[TableFunction, tuple[str, ...]]]) -> None:
    _BUILTIN[kind] = {name: _Table(fn, req) for name, (fn, req) in tables.items()}


_CHAIN_EQ = ("player_utility",)
_reg(
    "chain-equilibrium",
    {
        "players": (_chain_players, _CHAIN_EQ),
        "trades": (_chain_trades, ("trade_success",)),
        "strategies": (_chain_strategies, ("thresholds", "prices")),
        "mechanism": (_chain_mechanism, ("mechanism",)),
    },
)
_reg(
    "chain-opt",
    {
        "mechanism": (_chain_mechanism, ("mechanism",)),
        "baselines": (_chain_baselines, ("baselines",)),
        "players": (_chain_players, _CHAIN_EQ),
        "trades": (_chain_trades, ("trade_success",)),
        "strategies": (_chain_strategies, ("thresholds", "prices")),
    },
)
_reg(
    "chain-certificate",
    {
        "players": (_chain_cert_players, ()),
        "strategies": (_chain_cert_strategies, ("lp_thresholds", "lp_prices")),
    },
)
_reg(
    "auction-optimum",
    {"allocation": (_allocation, ()), "prices": (_prices, ()), "buyers": (_welfare_buyers, ())},
)
_reg(
    "auction-psp",
    {
        "allocation": (_allocation, ()),
        "prices": (_prices, ()),
        "bids": (_psp_bids, ("bids",)),
        "payments": (_psp_payments, ("payments",)),
        "buyers": (_psp_buyers, ()),
        "stages": (_psp_stages, ("stage_rounds",)),
    },
)
_reg(
    "auction-data-share",
    {
        "allocation": (_allocation, ()),
        "prices": (_ds_prices, ()),
        "buyers": (_ds_buyers, ()),
        "history": (_ds_history, ("history",)),
    },
)
_reg("auction-certificate", {"prices": (_prices, ()), "residuals": (_cert_residuals, ("residuals",))})
_reg("auction-epsilon-nash", {"buyers": (_eps_nash_buyers, ())})
_reg("broker-experiment", {"history": (_broker_history, ("history",)), "prices": (_broker_prices, ())})
_reg(
    "gne",
    {
        "pairs": (_gne_pairs, ("gamma",)),
        "sources": (_gne_sources, ("alpha",)),
        "buyers": (_gne_buyers, ("buyers",)),
        "xi": (_gne_xi, ("xi",)),
    },
)
_reg("gne-existence-lp", {"pairs": (_gne_pairs, ("d",))})
_reg("gne-payment-range", {"buyers": (_payment_range_buyers, ("payment_range",))})
_reg(
    "gne-best-response",
    {
        "pairs": (_gne_pairs, ("d",)),
        "iterations": (_br_iterations, ("step_history",)),
        "sources": (_gne_sources, ("effort_equilibrium",)),
    },
)
_reg("welfare-effort", {"sources": (_gne_sources, ("effort_closed_form",))})
_reg("verification", {"comparison": (_verification, ())})

_SUMMARY_RENAME: dict[str, dict[str, str]] = {
    "chain-equilibrium": {"n": "n_trades", "L": "n_values"},
}


# ----------------------------------------------------------------------------------------------
# generic tables (unknown kinds)
# ----------------------------------------------------------------------------------------------
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


def _generic_table(key: str) -> TableFunction:
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
def _one_row(d: Mapping[str, Any]) -> pd.DataFrame:
    row = {}
    for k, v in d.items():
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, enum.Enum):  # Status
            v = v.value
        row[_snake(k)] = np.nan if v is None else v
    return pd.DataFrame([row])


def _obj_chain_equilibrium(eq: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    r = eq.to_result()

    def strategies() -> pd.DataFrame:
        return chain_strategies(
            eq.thresholds,
            eq.prices,
            eq.game.values,
            {
                "price_index": eq.price_index,
                "one_shot_profit": eq.one_shot_profit,
                "future_profit": eq.future_profit,
                "alive_probability": eq.alive,
            },
        )

    tabs: dict[str, Callable[[], pd.DataFrame]] = {
        name: (lambda name=name: to_frame(r, name)) for name in table_names(r)
    }
    tabs["strategies"] = strategies
    return tabs


def _obj_estimation(sim: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    buyers, sources = list(sim.buyers), list(sim.sources)

    def buyer_table() -> pd.DataFrame:
        ci = np.asarray(sim.g_ci, dtype=float)
        cols = {k: np.asarray(getattr(sim, k), dtype=float) for k in ("g_variance", "g_bias2", "g_analytic")}
        cols |= {"g_mean": np.asarray(sim.g_mean, float), "g_stderr": np.asarray(sim.g_stderr, float)}
        cols |= {"g_ci_lower": ci[:, 0], "g_ci_upper": ci[:, 1], "g_z": np.asarray(sim.g_z, float)}
        return _frame({"buyer": _names(buyers), **cols})

    def pair_table() -> pd.DataFrame:
        keys = ("penalty_variance", "penalty_bias2", "penalty_analytic", "penalty_mean", "penalty_stderr")
        df = _grid({k: getattr(sim, k) for k in keys}, "buyer", "source", buyers, sources)
        ci = np.asarray(sim.penalty_ci, dtype=float).reshape(-1, 2)
        df["penalty_ci_lower"], df["penalty_ci_upper"] = ci[:, 0], ci[:, 1]
        df["penalty_z"] = np.asarray(sim.penalty_z, dtype=float).ravel()
        return df

    def source_table() -> pd.DataFrame:
        return _per_index({"effort": sim.efforts, "sigma2": sim.sigma2}, "source", sources)

    def summary() -> pd.DataFrame:
        row = {"n_rep": sim.n_rep, "confidence": sim.confidence, "z_tol": sim.z_tol, "seed": sim.seed}
        row |= {"passed": bool(sim.passed), "max_residual_ratio": float(sim.certificate.max_residual)}
        row |= {_snake(k): float(v) for k, v in sim.timings.items()}
        return _one_row(row)

    return {
        "buyers": buyer_table,
        "pairs": pair_table,
        "sources": source_table,
        "summary": summary,
        "certificate": lambda: certificate_frame(sim.certificate),
    }


def _obj_cpolytope(poly: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    K, N = np.asarray(poly.lower).shape

    def pairs() -> pd.DataFrame:
        df = _grid({"lower": poly.lower, "upper": poly.upper()}, "buyer", "source", range(K), range(N))
        df.insert(2, "uses", np.asarray(poly.uses, dtype=bool).ravel())
        return df

    def sources() -> pd.DataFrame:
        return _per_index({"total": poly.total, "effort": poly.effort}, "source")

    def summary() -> pd.DataFrame:
        return _one_row({"n_buyers": K, "n_sources": N, "nonempty": bool(poly.nonempty)})

    return {"pairs": pairs, "sources": sources, "summary": summary}


def _obj_best_response(br: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    return {
        "sources": lambda: _per_index({"variance": br.variance, "d": br.d}, "source"),
        "summary": lambda: _one_row(
            {"buyer": br.buyer, "status": br.status, "value": br.value, "mode": br.mode}
        ),
    }


def _obj_max_bid(mb: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    counts = dict(sorted(mb.counts.items()))
    return {
        "counts": lambda: _frame({"level": _ints(counts), "count": _ints(counts.values())}),
        "winners": lambda: _frame({"winner": _ints(mb.winners)}),
        "summary": lambda: _one_row(
            {
                "max_bid": mb.max_bid,
                "winner": mb.winner,
                "n_winners": len(mb.winners),
                "messages": mb.messages,
                "sums": mb.sums,
            }
        ),
    }


def _obj_secure_sum(ss: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    partials = np.asarray(ss.partials, dtype=np.int64)
    n = partials.size

    def received() -> pd.DataFrame:
        rec = np.asarray(ss.received, dtype=np.int64)
        party = np.repeat(np.arange(n), n - 1)
        frm = np.array([i for k in range(n) for i in range(n) if i != k], dtype=np.int64)
        return _frame({"party": party, "from_party": frm, "share": rec.ravel()})

    return {
        "parties": lambda: _frame({"party": np.arange(n), "partial": partials}),
        "received": received,
        "summary": lambda: _one_row({"total": ss.total, "messages": ss.messages, "n_parties": n}),
    }


def _obj_psp_state(st: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    m = st.market

    def bids() -> pd.DataFrame:
        return _frame(
            {
                "buyer": _names([m.buyers[i] for i in m.edge_buyer]),
                "seller": _names([m.sellers[j] for j in m.edge_seller]),
                "price": np.asarray(st.price, dtype=float),
                "quantity": np.asarray(st.quantity, dtype=float),
            }
        )

    return {"bids": bids}


def _obj_one_row(obj: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    import dataclasses

    return {"summary": lambda: _one_row({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})}


_OBJECTS: dict[str, Callable[[Any], dict[str, Callable[[], pd.DataFrame]]]] = {
    "ChainEquilibrium": _obj_chain_equilibrium,
    "EstimationSimulation": _obj_estimation,
    "CPolytope": _obj_cpolytope,
    "BestResponse": _obj_best_response,
    "MaxBidResult": _obj_max_bid,
    "SecureSum": _obj_secure_sum,
    "PSPState": _obj_psp_state,
    "SpectralRadius": _obj_one_row,
    "PriceOfAnarchy": _obj_one_row,
}


def _object_builders(obj: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    from datamarkets.result import Result

    if isinstance(obj, Result):
        return {name: (lambda name=name: to_frame(obj, name)) for name in table_names(obj)}
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
