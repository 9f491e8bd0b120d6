r"""LP certificate of a chain-trading sequential equilibrium (Eq. 7–9).

Given everyone else's equilibrium strategies, player :math:`i`'s choice of a price is a finite
Markov decision problem with a single decision. For each player we write that problem as one
linear program covering all of the player's values at once and solve it with HiGHS:

* **policy evaluation** (the future reallocated profit down the chain, Eq. 20–21). For the
  players :math:`j > i` who follow the equilibrium, with :math:`V^{(i)}_n \equiv 0`,

  .. math::

      V^{(i)}_j(l) = \sum_{l'} q_{j+1,l,l'}\,\mathbf 1\{s_{j+1}(l') \ge p_j(l)\}
                     \bigl(t_{j+1,i}\,p_j(l) + V^{(i)}_{j+1}(l')\bigr),\qquad i < j < n;

* **epigraph** of the gain :math:`g_i(w_k, c)` (Eq. 8) over the candidate prices :math:`c`
  (the next player's non-negative thresholds, plus 0 — which never beats the smallest
  non-negative threshold, so the optimum is that of the issue's tie rules):

  .. math::

      z_k \ge w_k + \sum_{l'} q_{i+1,k,l'}\,\mathbf 1\{s_{i+1}(l') \ge c\}
              \bigl(t_{i+1,i}\,c + V^{(i)}_{i+1}(l')\bigr);

* objective :math:`\min \sum_k z_k`, so that :math:`z_k^\star = \max_c g_i(w_k, c)
  = \tilde s_i(w_k)` (Eq. 7).

The equilibrium is *certified* when for every player and value :math:`z_k^\star` equals the
DP threshold (relative :math:`10^{-7}`, scale :math:`\max(|w_k|, |s_i(k)|)`, see :func:`gap_scale`)
and the DP's own price
attains the LP optimum (its epigraph row is tight: it equals or ties the LP's optimal price).
The future profit :math:`V` is computed by the LP's equality rows, never copied from the DP.

Scaling. Every variable is scaled by the magnitude of its own (player, value), an exact change
of variables that makes HiGHS's absolute tolerances relative ones
(:mod:`~datamarkets.formulations.chain_certificate_data` says why and how).

Candidate pruning (``prune=True``): for value :math:`k` two candidates that the buyer accepts
on the same set of reachable values (:math:`q_{i+1,k,l'} > 0`) differ only in the term
:math:`t_{i+1,i}\,c\,\Pr[\text{accept}]` with :math:`t \ge 0`, so only the highest price of each
acceptance class can be a strict maximiser; the others are dropped (the LP optimum is unchanged).
The DP's own price is always added as an extra row so that its gain is evaluated exactly.

Two builds of the same LPs (``route=``), tested to give the same optima to 1e-9: ``"highspy"``
(default; sparse arrays passed to highspy, :mod:`~datamarkets.formulations.chain_certificate_arrays`)
and ``"pyomo"`` (the readable model above, ``define_*`` piece by piece, about 40× slower to build;
the only route for GLPK and CBC, :mod:`~datamarkets.formulations.chain_certificate_pyomo`).

Ties. Where several prices attain the optimum the equilibrium is a selection; the DP's rule
(``tie_rule="lowest"`` or ``"highest"``) is checked as a count in the details
(``prices_off_tie_rule``: DP prices other than the rule's pick among the LP's tight prices, with the
LP's looser tolerance, so a count is a hint, not a failure).

Modules. This one holds the certificates (:func:`certify_strategies`, :func:`certify_equilibrium`,
:func:`certify_chain_solution`) and re-exports the pieces they are made of (the data and scales in
:mod:`~datamarkets.formulations.chain_certificate_data`, and the two routes).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.chain_certificate_arrays import (
    PolicyBlocks,
    build_certificate_arrays,
    solve_player_arrays,
)
from datamarkets.formulations.chain_certificate_data import (
    RTOL,
    ChainStrategyData,
    gap_scale,
    strategy_data,
    validated_strategy_data,
    variable_scale,
)
from datamarkets.formulations.chain_certificate_pyomo import (
    build_certificate_lp,
    define_future_profit,
    define_gain_epigraph,
    define_objective,
    solve_player_pyomo,
)
from datamarkets.models.chain_equilibrium import expectations, solve_equilibrium
from datamarkets.models.chain_game import check_tie_rule
from datamarkets.result import Certificate, Result, provenance
from datamarkets.status import Status

__all__ = [
    "RECOMPUTE_RTOL",
    "ROUTES",
    "ChainStrategyData",
    "build_certificate_arrays",
    "build_certificate_lp",
    "certify_chain_solution",
    "certify_equilibrium",
    "certify_strategies",
    "define_future_profit",
    "define_gain_epigraph",
    "define_objective",
    "gap_scale",
    "strategy_data",
    "variable_scale",
]

ROUTES = ("highspy", "pyomo")
"""Builds of the per-player LPs: sparse arrays to highspy (default) or the readable Pyomo model."""


def certify_strategies(
    data: ChainStrategyData,
    *,
    rtol: float = RTOL,
    prune: bool = True,
    players: Any = None,
    solver: str = "highs",
    route: str | None = None,
    tie_rule: str = "lowest",
    time_limit: float | None = None,
) -> Result:
    """Certify claimed strategies ``(s, p)`` player by player with one LP each.

    Parameters
    ----------
    data : ChainStrategyData
        Game arrays and the claimed thresholds/prices.
    rtol : float, default 1e-7
        Relative tolerance (scale :func:`gap_scale`).
    prune : bool, default True
        Candidate pruning (exact).
    players : iterable of int, optional
        Subset of players to check (default all ``0..n``).
    solver : {"highs", "glpk", "cbc"}, default "highs"
        LP solver: HiGHS through highspy (or Pyomo's ``appsi_highs``), GLPK and CBC through Pyomo.
    route : {"highspy", "pyomo"}, optional
        How the LPs are built: sparse arrays passed to highspy (default for HiGHS) or the
        readable Pyomo model (default, and the only route, for GLPK and CBC).
    tie_rule : {"lowest", "highest"}, default "lowest"
        The claimed prices' tie rule, counted in ``details["prices_off_tie_rule"]``.
    time_limit : float, optional
        Wall-clock seconds for all the LPs (each LP gets what is left; checked between players).
        When it runs out the status is ``time_limit`` and the certificate does not pass.

    Returns
    -------
    Result
        ``kind="chain-certificate"``; ``solution`` holds ``lp_thresholds`` ((n+1)×L),
        ``lp_prices`` (n×L), ``max_gap`` and ``certified``; ``certificate.details`` per-player
        gaps.

    Raises
    ------
    InvalidInputError
        Unknown route or tie rule, ``route="highspy"`` with another solver than HiGHS, or a
        negative/non-finite time limit.


    Examples
    --------
    One trade; the buyer's value is 1 or 3 with probability 1/2; price 3 earns 1.5, price 1 earns 1:

    >>> d = ChainStrategyData(W=np.array([0.0, 1.0, 3.0]),
    ...                       Q=np.array([[[0.0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]]]),
    ...                       t=np.array([[1.0, 0.0]]),
    ...                       s=np.array([[1.5, 2.0, 6.0], [0.0, 1.0, 3.0]]),
    ...                       p=np.array([[3.0, 1.0, 3.0]]))
    >>> certify_strategies(d).certificate.passed
    True
    >>> d.p[0, 0] = 1.0  # a strictly worse price for value 0
    >>> round(certify_strategies(d).solution["max_gap"], 6)
    0.333333
    """
    n, L = data.n, data.L
    check_tie_rule(tie_rule)
    route = ("highspy" if solver == "highs" else "pyomo") if route is None else route
    if route not in ROUTES:
        raise InvalidInputError(f"route must be one of {ROUTES!r}, got {route!r}")
    if route == "highspy" and solver != "highs":
        raise InvalidInputError(f"route 'highspy' solves with HiGHS only, not {solver!r}; use route='pyomo'")
    if time_limit is not None and not (isinstance(time_limit, int | float) and 0 <= time_limit < np.inf):
        raise InvalidInputError(f"time_limit must be a finite number of seconds >= 0, got {time_limit!r}")
    players = list(range(n + 1)) if players is None else [int(i) for i in players]
    t_start = time.perf_counter()
    deadline = None if time_limit is None else t_start + float(time_limit)
    blocks = PolicyBlocks(data) if route == "highspy" else None
    z_all = np.full((n + 1, L), np.nan)
    lp_price = np.full((n, L), np.nan)
    per_player = []
    worst_status = Status.OPTIMAL
    thr_gap_max = price_gap_max = 0.0
    build_s = solve_s = 0.0
    version = "unknown"
    ties = equal = off_rule = 0
    unchecked: list[int] = []
    for pos, i in enumerate(players):
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            worst_status = Status.TIME_LIMIT
            unchecked = players[pos:]
            thr_gap_max = price_gap_max = float("inf")
            break
        if route == "highspy":
            r = solve_player_arrays(data, i, prune, blocks, tie_rule, left)
        else:
            r = solve_player_pyomo(data, i, prune, solver, tie_rule, left)
        build_s += r["build_seconds"]
        solve_s += r["solve_seconds"]
        version = r["solver_version"]
        if not r["status"].has_solution:
            worst_status = r["status"]
            per_player.append({"player": i, "status": r["status"].value})
            thr_gap_max = price_gap_max = float("inf")
            continue
        z = r["z"]
        z_all[i] = z
        scale = gap_scale(data)[i]
        thr_gap = np.abs(z - data.s[i]) / scale  # LP optimum vs DP threshold
        price_gap = np.maximum(z - r["dp_gain"], 0.0) / scale  # DP price attains the optimum?
        k_t, k_p = int(np.argmax(thr_gap)), int(np.argmax(price_gap))
        entry = {
            "player": i,
            "status": r["status"].value,
            "threshold_gap_rel": float(thr_gap[k_t]),
            "threshold_gap_at_value": k_t,
            "price_gap_rel": float(price_gap[k_p]),
            "price_gap_at_value": k_p,
            "rows": r["rows"],
        }
        if i < n:
            lp_price[i] = r["lp_price"]
            same = r["lp_price"] == data.p[i]
            equal += int(same.sum())
            ties += int((~same & (price_gap <= rtol)).sum())
            off_rule += int((data.p[i] != r["tie_pick"]).sum())
        per_player.append(entry)
        thr_gap_max = max(thr_gap_max, float(thr_gap.max()))
        price_gap_max = max(price_gap_max, float(price_gap.max()))
    seconds = time.perf_counter() - t_start

    cert = Certificate()
    cert.add("lp_vs_dp_threshold_rel_max", thr_gap_max, rtol)
    cert.add("dp_price_vs_lp_optimum_rel_max", price_gap_max, rtol)
    cert.details.update(
        per_player=per_player,
        prices_equal_lp_argmax=equal,
        prices_tied_with_lp_argmax=ties,
        tie_rule=tie_rule,
        prices_off_tie_rule=off_rule,
        candidate_pruning=prune,
        route=route,
    )
    if unchecked:
        cert.details["unchecked_players"] = unchecked
        cert.add("players_unchecked_time_limit", float(len(unchecked)), 0.0)
    max_gap = max(thr_gap_max, price_gap_max)
    certified = worst_status.has_solution and cert.passed
    return Result(
        kind="chain-certificate",
        status=worst_status,
        method=f"lp-{route}-{solver}",
        solution={
            "certified": certified,
            "max_gap": max_gap,
            "lp_thresholds": z_all,
            "lp_prices": lp_price,
        },
        certificate=cert,
        timings={"build_seconds": build_s, "lp_seconds": solve_s, "certify_seconds": seconds},
        meta=provenance({solver: version}) | {"players": players, "n": n, "L": L},
    )


def certify_equilibrium(
    game: Any,
    eq: Any,
    *,
    rtol: float = RTOL,
    prune: bool = True,
    route: str | None = None,
    tie_rule: str | None = None,
    time_limit: float | None = None,
) -> Result:
    """LP certificate of a claimed chain equilibrium (Eq. 9), one LP per player.

    Certified when for every player and value the LP optimum equals the claimed threshold
    (relative ``rtol``, scale :func:`gap_scale`) and the claimed price attains the LP
    optimum (equals or ties the LP's optimal price).

    Parameters
    ----------
    game : ChainGame
        The game (``values``, ``Q``, ``t``).
    eq : ChainEquilibrium
        Claimed equilibrium (``thresholds`` (n+1, L), ``prices`` (n, L)).
    rtol : float, default 1e-7
    prune : bool, default True
    route : {"highspy", "pyomo"}, optional
        LP build (default: sparse arrays to highspy).
    tie_rule : {"lowest", "highest"}, optional
        Tie rule of the claim (default: ``eq.tie_rule``, else the game's, else ``"lowest"``).
    time_limit : float, optional
        Seconds for all the LPs (see :func:`certify_strategies`).

    Returns
    -------
    Result
        ``kind="chain-certificate"``; ``certificate.passed`` says whether it is certified;
        ``solution["max_gap"]`` is the largest gap; per-player gaps in
        ``certificate.details["per_player"]``.

    Raises
    ------
    InvalidInputError
        Malformed game or strategies.
    SolverError
        HiGHS is unavailable.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> game = paper_model("paper-1", 5, "ave")
    >>> certify_equilibrium(game, solve_equilibrium(game)).certificate.passed
    True
    """
    rule: Any = tie_rule  # a claim's or game's rule is checked by certify_strategies
    if rule is None:
        rule = getattr(eq, "tie_rule", None) or getattr(game, "tie_rule", "lowest")
        if isinstance(eq, dict):
            rule = eq.get("tie_rule") or rule
    return certify_strategies(
        strategy_data(game, eq), rtol=rtol, prune=prune, route=route, tie_rule=rule, time_limit=time_limit
    )


# ----------------------------------------------------------------------------------------------
# the certificate of a chain-equilibrium result: every reported number
# ----------------------------------------------------------------------------------------------

#: Tolerance of the recomputed expectations and DP quantities (relative, see :func:`certify_chain_solution`).
RECOMPUTE_RTOL = 1e-9

_NOT_CHECKED = {
    "label": "free-form name, not a number",
    "certified": "the producer's verdict; the certificate re-derives its own (certificate.passed)",
}


def _numeric(solution: Any, key: str) -> np.ndarray:
    try:
        v = np.asarray([np.nan if x is None else x for x in np.ravel(solution[key]).tolist()], dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"chain solution field {key!r} is not numeric: {exc}") from exc
    return v


def _rel_max(claimed: np.ndarray, exact: np.ndarray, floor: float) -> float:
    """``max |claimed - exact| / max(|exact|, floor)`` (NaN must match NaN; a shape mismatch is inf)."""
    claimed, exact = np.ravel(claimed), np.ravel(exact)
    if claimed.shape != exact.shape:
        return float("inf")
    both_nan = np.isnan(claimed) & np.isnan(exact)
    diff = np.where(both_nan, 0.0, np.abs(claimed - exact))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(np.max(diff / np.maximum(np.abs(np.nan_to_num(exact)), floor), initial=0.0))


def certify_chain_solution(
    game: Any,
    solution: Any,
    *,
    lp: bool = True,
    route: str | None = None,
    time_limit: float | None = None,
) -> Certificate:
    r"""The one certificate of a ``chain-equilibrium`` result (``chain solve`` and the formulation).

    Every number the result reports is recomputed from the game and the claimed strategies and
    compared, or listed in ``details["not_checked"]`` with the reason:

    * ``thresholds``, ``prices``: the per-player LPs (``lp_vs_dp_threshold_rel_max``,
      ``dp_price_vs_lp_optimum_rel_max``, relative :data:`RTOL`; see :func:`certify_strategies`) and,
      as the equilibrium *selection* under the game's tie rule, the DP recomputed
      (``thresholds_vs_dp_rel_max``, ``prices_vs_dp_rel_max``, :data:`RECOMPUTE_RTOL`, scale
      :func:`gap_scale`);
    * ``social_welfare``, ``transaction_volume``, ``trade_success``,
      ``trade_success_conditional``, ``player_utility``: exact expectations recomputed from the
      claimed strategies by forward propagation (``<field>_rel``, :data:`RECOMPUTE_RTOL` relative to
      ``max(|exact|, 1e-3·scale)``, scale :math:`(n+1)\max|w|` for welfare and utilities, 1 for
      probabilities, n for TV);
    * ``tie_rule``, ``tie_count``, ``sw_tie_range``: the game's rule, and the DP under both rules;
    * ``n``, ``L``, ``values``, ``mechanism``: against the game;
    * ``objective`` (Σ thresholds) and ``lp_thresholds`` (LP routes): against the LPs' optima
      (relative :data:`RTOL`) or, when ``lp=False``, the recomputed DP.

    Parameters
    ----------
    game : ChainGame
    solution : mapping
        The result's ``solution`` (or a saved result's fields).
    lp : bool, default True
        Run the per-player LPs. When False their residuals are absent and
        ``details["not_checked"]["equilibrium_optimality"]`` says so.
    route : {"highspy", "pyomo"}, optional
        LP build.
    time_limit : float, optional
        Seconds for the LPs.

    Returns
    -------
    Certificate

    Raises
    ------
    InvalidInputError
        Missing or non-numeric ``thresholds``/``prices`` or wrong shapes.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> g = paper_model("paper-2", 3)
    >>> sol = solve_equilibrium(g).to_result().solution
    >>> certify_chain_solution(g, sol).passed
    True
    >>> certify_chain_solution(g, {**sol, "social_welfare": sol["social_welfare"] * 1.001}).passed
    False
    """
    if not hasattr(solution, "get"):
        raise InvalidInputError(f"a chain solution must be a mapping, got {type(solution).__name__!r}")
    n, L = game.n, game.L
    for key in ("thresholds", "prices"):
        if key not in solution:
            raise InvalidInputError(f"a chain solution needs numeric 'thresholds' and 'prices' (no {key!r})")
    s = _numeric(solution, "thresholds")
    p = _numeric(solution, "prices")
    if s.size != (n + 1) * L or p.size != n * L:
        raise InvalidInputError(
            f"thresholds/prices must have shapes {(n + 1, L)!r}/{(n, L)!r} for this game, "
            f"got {s.size!r}/{p.size!r} numbers"
        )
    s, p = s.reshape(n + 1, L), p.reshape(n, L)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(p))):
        raise InvalidInputError("thresholds and prices must be finite numbers")
    data = validated_strategy_data(game.values, game.Q, game.t, s, p)
    cert = Certificate()
    checked: dict[str, list[str]] = {}
    not_checked = dict(_NOT_CHECKED)  # "certified" may be added after this certificate

    def add(field_: str, name: str, residual: float, tol: float) -> None:
        cert.add(name, residual, tol)
        checked.setdefault(field_, []).append(name)

    gscale = gap_scale(data)
    wmax = float(np.abs(game.values).max()) or 1.0
    scale = wmax * (n + 1)
    # -- the game the result claims to be about
    if "n" in solution or "L" in solution:
        size = [_numeric(solution, k)[0] if k in solution else v for k, v in (("n", n), ("L", L))]
        add("n", "size_vs_instance", float(abs(size[0] - n) + abs(size[1] - L)), 0.0)
        checked.setdefault("L", []).append("size_vs_instance")
    if "values" in solution:
        add(
            "values",
            "values_vs_instance_rel",
            _rel_max(_numeric(solution, "values"), game.values, wmax),
            1e-12,
        )
    if "mechanism" in solution:
        add(
            "mechanism",
            "mechanism_vs_instance",
            _rel_max(_numeric(solution, "mechanism"), game.t, 1.0),
            1e-12,
        )
    # -- optimality: the per-player LPs
    z_sum = None
    if lp:
        res = certify_strategies(data, route=route, tie_rule=game.tie_rule, time_limit=time_limit)
        for k, v in res.certificate.residuals.items():
            add("thresholds", k, v, res.certificate.tolerances[k])
        checked.setdefault("prices", []).append("dp_price_vs_lp_optimum_rel_max")
        if not res.status.has_solution:
            add("thresholds", "lp_status_ok", 1.0, 0.0)
        else:
            z_sum = res.solution["lp_thresholds"]
        cert.details["lp_per_player"] = res.certificate.details.get("per_player")
        cert.details["lp_route"] = res.method
        cert.details["prices_off_tie_rule"] = res.certificate.details.get("prices_off_tie_rule")
    else:
        not_checked["equilibrium_optimality"] = (
            "per-player LPs skipped (large instance); `datamarkets verify RESULT.json` runs them"
        )
    # -- the selection under the tie rule, by the DP (and the other rule for the range)
    eq = solve_equilibrium(game, tie_range=True)
    add(
        "thresholds",
        "thresholds_vs_dp_rel_max",
        float(np.max(np.abs(s - eq.thresholds) / gscale)),
        RECOMPUTE_RTOL,
    )
    add("prices", "prices_vs_dp_rel_max", float(np.max(np.abs(p - eq.prices) / gscale[:-1])), RECOMPUTE_RTOL)
    if "tie_rule" in solution:
        add("tie_rule", "tie_rule_vs_instance", float(solution["tie_rule"] != game.tie_rule), 0.0)
    if "tie_count" in solution:
        add(
            "tie_count", "tie_count_vs_dp", abs(float(_numeric(solution, "tie_count")[0]) - eq.tie_count), 0.0
        )
    if "sw_tie_range" in solution:
        rng = solution["sw_tie_range"]
        exact_rng = np.asarray(eq.sw_tie_range, dtype=float)
        claimed_rng = np.full(2, np.nan) if rng is None else _numeric(solution, "sw_tie_range")
        add(
            "sw_tie_range", "sw_tie_range_rel", _rel_max(claimed_rng, exact_rng, 1e-3 * scale), RECOMPUTE_RTOL
        )
    # -- exact expectations of the claimed strategies
    ex = expectations(game, s, p)
    floors = {
        "social_welfare": scale,
        "player_utility": scale,
        "transaction_volume": float(n),
        "trade_success": 1.0,
        "trade_success_conditional": 1.0,
    }
    for key, fl in floors.items():
        if key in solution:
            claimed = _numeric(solution, key)
            add(
                key,
                f"{key}_rel",
                _rel_max(claimed, np.asarray(ex[key], dtype=float), 1e-3 * fl),
                RECOMPUTE_RTOL,
            )
    # -- sums of thresholds reported by a route
    ref = eq.thresholds if z_sum is None else z_sum
    if solution.get("objective") is not None:
        z = float(np.sum(ref))
        add(
            "objective",
            "objective_rel",
            abs(float(_numeric(solution, "objective")[0]) - z) / max(1.0, abs(z)),
            RTOL,
        )
    if "lp_thresholds" in solution:
        add(
            "lp_thresholds",
            "lp_thresholds_vs_lp_rel_max",
            _rel_max(_numeric(solution, "lp_thresholds"), np.ravel(ref), float(np.min(gscale))),
            RTOL,
        )
    for key in solution:
        if key not in checked and key not in not_checked:
            not_checked[key] = "not recognised by the chain certificate"
    cert.details["checked"] = checked
    cert.details["not_checked"] = not_checked
    cert.details["recomputed"] = {
        "social_welfare": ex["social_welfare"],
        "transaction_volume": ex["transaction_volume"],
        "tie_count": eq.tie_count,
        "sw_tie_range": list(eq.sw_tie_range or ()),
    }
    return cert
