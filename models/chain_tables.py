"""Tables of the chain-trading results (kinds ``chain-equilibrium``, ``chain-opt``,
``chain-certificate``) and of :class:`~datamarkets.models.chain_equilibrium.ChainEquilibrium`.

Registered with the generic table machinery (:mod:`datamarkets.frames`) on import; the
``datamarkets.tables`` entry point imports this module the first time a table is asked for.

Examples
--------
>>> from datamarkets.result import Result
>>> from datamarkets.status import Status
>>> r = Result("chain-equilibrium", Status.OPTIMAL, "dp", {"player_utility": [1.0, 2.0]})
>>> r.to_frame("players")["utility"].tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamarkets.frames import define_tables, register_object_tables, table_names, to_frame
from datamarkets.table_columns import (
    _array,
    _frame,
    _j,
    _rows,
)

if TYPE_CHECKING:
    from datamarkets.result import Result

__all__ = ["chain_strategies"]


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
        name: functools.partial(to_frame, r, name) for name in table_names(r)
    }
    tabs["strategies"] = strategies
    return tabs


_CHAIN_EQ = ("player_utility",)
define_tables(
    "chain-equilibrium",
    {
        "players": (_chain_players, _CHAIN_EQ),
        "trades": (_chain_trades, ("trade_success",)),
        "strategies": (_chain_strategies, ("thresholds", "prices")),
        "mechanism": (_chain_mechanism, ("mechanism",)),
    },
    summary_rename={"n": "n_trades", "L": "n_values"},
)
define_tables(
    "chain-opt",
    {
        "mechanism": (_chain_mechanism, ("mechanism",)),
        "baselines": (_chain_baselines, ("baselines",)),
        "players": (_chain_players, _CHAIN_EQ),
        "trades": (_chain_trades, ("trade_success",)),
        "strategies": (_chain_strategies, ("thresholds", "prices")),
    },
)
define_tables(
    "chain-certificate",
    {
        "players": (_chain_cert_players, ()),
        "strategies": (_chain_cert_strategies, ("lp_thresholds", "lp_prices")),
    },
)
register_object_tables("ChainEquilibrium", _obj_chain_equilibrium)
