"""Tables of the GNE results (kinds ``gne``, ``gne-existence-lp``, ``gne-payment-range``,
``gne-best-response``, ``welfare-effort``) and of the GNE objects (``EstimationSimulation``,
``CPolytope``, ``BestResponse``, ``SpectralRadius``, ``PriceOfAnarchy``).

Registered with the generic table machinery (:mod:`datamarkets.frames`) on import; the
``datamarkets.tables`` entry point imports this module the first time a table is asked for.

Examples
--------
>>> from datamarkets.result import Result
>>> from datamarkets.status import Status
>>> r = Result("gne-existence-lp", Status.OPTIMAL, "lp", {"d": [[1.0, 0.0]]})
>>> r.to_frame("pairs")[["buyer", "source", "d"]].to_dict("records")
[{'buyer': 0, 'source': 0, 'd': 1.0}, {'buyer': 0, 'source': 1, 'd': 0.0}]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamarkets.errors import InvalidInputError
from datamarkets.frames import certificate_frame, define_tables, register_object_tables
from datamarkets.table_columns import (
    _array,
    _floats,
    _frame,
    _grid,
    _j,
    _names,
    _one_row,
    _per_index,
    _snake,
    _solution_names,
)

if TYPE_CHECKING:
    from datamarkets.result import Result

__all__: list[str] = []


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


def _obj_one_row(obj: Any) -> dict[str, Callable[[], pd.DataFrame]]:
    return {"summary": lambda: _one_row({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})}


define_tables(
    "gne",
    {
        "pairs": (_gne_pairs, ("gamma",)),
        "sources": (_gne_sources, ("alpha",)),
        "buyers": (_gne_buyers, ("buyers",)),
        "xi": (_gne_xi, ("xi",)),
    },
)
define_tables("gne-existence-lp", {"pairs": (_gne_pairs, ("d",))})
define_tables("gne-payment-range", {"buyers": (_payment_range_buyers, ("payment_range",))})
define_tables(
    "gne-best-response",
    {
        "pairs": (_gne_pairs, ("d",)),
        "iterations": (_br_iterations, ("step_history",)),
        "sources": (_gne_sources, ("effort_equilibrium",)),
    },
)
define_tables("welfare-effort", {"sources": (_gne_sources, ("effort_closed_form",))})
register_object_tables("EstimationSimulation", _obj_estimation)
register_object_tables("CPolytope", _obj_cpolytope)
register_object_tables("BestResponse", _obj_best_response)
register_object_tables("SpectralRadius", _obj_one_row)
register_object_tables("PriceOfAnarchy", _obj_one_row)
