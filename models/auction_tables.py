"""Tables of the auction results (kinds ``auction-optimum``, ``auction-psp``, ``auction-data-share``,
``auction-certificate``, ``auction-epsilon-nash``, ``broker-experiment``) and of the PSP objects
(:class:`~datamarkets.models.psp_dynamics.PSPState`, :class:`~datamarkets.models.secure_sum.SecureSum`,
:class:`~datamarkets.models.secure_sum.MaxBidResult`).

Registered with the generic table machinery (:mod:`datamarkets.frames`) on import; the
``datamarkets.tables`` entry point imports this module the first time a table is asked for.

Examples
--------
>>> from datamarkets.result import Result
>>> from datamarkets.status import Status
>>> r = Result("auction-optimum", Status.OPTIMAL, "lp", {"prices": {"s1": 0.5}})
>>> r.to_frame("prices").to_dict("records")
[{'resource': 's1', 'price': 0.5}]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamarkets.frames import define_tables, register_object_tables
from datamarkets.table_columns import (
    _frame,
    _ints,
    _j,
    _keyed,
    _keyed_many,
    _names,
    _one_row,
    _rows,
)

if TYPE_CHECKING:
    from datamarkets.result import Result

__all__: list[str] = []

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


define_tables(
    "auction-optimum",
    {"allocation": (_allocation, ()), "prices": (_prices, ()), "buyers": (_welfare_buyers, ())},
)
define_tables(
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
define_tables(
    "auction-data-share",
    {
        "allocation": (_allocation, ()),
        "prices": (_ds_prices, ()),
        "buyers": (_ds_buyers, ()),
        "history": (_ds_history, ("history",)),
    },
)
define_tables(
    "auction-certificate", {"prices": (_prices, ()), "residuals": (_cert_residuals, ("residuals",))}
)
define_tables("auction-epsilon-nash", {"buyers": (_eps_nash_buyers, ())})
define_tables(
    "broker-experiment", {"history": (_broker_history, ("history",)), "prices": (_broker_prices, ())}
)
register_object_tables("MaxBidResult", _obj_max_bid)
register_object_tables("SecureSum", _obj_secure_sum)
register_object_tables("PSPState", _obj_psp_state)
