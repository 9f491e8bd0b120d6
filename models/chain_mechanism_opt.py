r"""OPT: search budget-balanced, past-only reallocation mechanisms for the highest welfare.

A mechanism is budget-balanced and past-only when row :math:`i` of :math:`t` (trade
:math:`i`) lies on the simplex over players :math:`0..i-1` (Def. 2.5 with equality, Def. 2.6).
Row 1 is forced (:math:`t_{1,0} = 1`), leaving :math:`n(n-1)/2` free coordinates. The objective
is the *exact* expected social welfare of the induced sequential equilibrium (Eq. 9), which is
piecewise constant in :math:`t` (it only changes when an equilibrium price or buy decision
flips), so gradients are useless and the paper (App. D) used differential evolution over a
softmax parametrisation (≈ 1 min at n = 5, with a sampled objective).

Here the default ``method="pattern"`` is a multi-start compass search on the product of
simplices: a move shifts mass :math:`\delta` from player :math:`a` to player :math:`b` within one
row (it stays feasible), :math:`\delta` runs through a dyadic schedule
:math:`1, 1/2, \dots, 2^{-m}`, and a move is kept only when it strictly raises the exact welfare.
Starts: RAW, AVE, TBDS(α) for a few α, and seeded random Dirichlet rows. Every start includes
RAW and AVE, so the result never falls below ``max(SW_RAW, SW_AVE)``. ``method="de"`` runs
scipy's differential evolution over the paper's softmax parametrisation with the same exact
objective (for comparison).

The search is a heuristic: the result is the best mechanism found, *not* a proven global
optimum. The status is therefore ``OPTIMAL_INACCURATE`` and ``solution["converged"]`` says
whether the final step size was reached with no improving move.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError, MechanismError
from datamarkets.models.chain_equilibrium import solve_equilibrium
from datamarkets.models.chain_game import ave_mechanism, raw_mechanism, tbds_mechanism
from datamarkets.result import Certificate, Result, provenance
from datamarkets.status import Status
from datamarkets.validation import check_seed, check_time_limit

__all__ = [
    "MechanismEvaluator",
    "check_budget_balanced",
    "optimize_mechanism",
    "softmax_mechanism",
    "welfare_upper_bound",
]


def softmax_mechanism(x: np.ndarray, n: int) -> np.ndarray:
    """The paper's App. D parametrisation: row i = softmax(x_{i,0:i-1}); ``x`` has n(n+1)/2 entries.

    Parameters
    ----------
    x : ndarray, shape (n(n+1)/2,)
        Unconstrained coordinates, trade by trade (``i`` entries for trade ``i``).
    n : int
        Number of trades.

    Returns
    -------
    ndarray, shape (n, n+1)
        A budget-balanced (rows sum to 1), past-only mechanism.

    Examples
    --------
    >>> softmax_mechanism(np.zeros(3), 2).tolist()  # x = 0 is AVE, the paper's starting point
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]
    """
    t = np.zeros((n, n + 1))
    pos = 0
    for i in range(1, n + 1):
        z = np.asarray(x[pos : pos + i], dtype=float)
        z = np.exp(z - z.max())
        t[i - 1, :i] = z / z.sum()
        pos += i
    return t


def check_budget_balanced(t: np.ndarray, n: int) -> None:
    """Check that ``t`` is a budget-balanced, past-only mechanism (Def. 2.5 with equality, Def. 2.6).

    Parameters
    ----------
    t : numpy.ndarray
        ``(n, n+1)`` reallocation matrix; row ``i-1`` is trade *i*, column *j* is player *j*.
    n : int
        Number of trades.

    Raises
    ------
    MechanismError
        Wrong shape, a non-finite or negative entry, a share paid to a player ``j >= i``, or a row
        that does not sum to one (within ``1e-9``).

    Examples
    --------
    >>> check_budget_balanced(np.array([[1.0, 0.0]]), 1)
    """
    if t.shape != (n, n + 1):
        raise MechanismError(f"mechanism must have shape {(n, n + 1)!r}, got {t.shape!r}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise MechanismError("mechanism entries must be finite and non-negative")
    for i in range(1, n + 1):
        if np.any(t[i - 1, i:] != 0):
            raise MechanismError(f"trade {i!r} pays a player j ≥ {i} (Def. 2.6 past-only)")
        if abs(t[i - 1].sum() - 1.0) > 1e-9:
            raise MechanismError(f"trade {i!r} row sums to {t[i - 1].sum()!r}, not 1 (budget balance)")


def _with_mechanism(game: Any, t: np.ndarray) -> Any:
    if hasattr(game, "with_mechanism"):
        return game.with_mechanism(t)
    if dataclasses.is_dataclass(game) and not isinstance(game, type):
        return dataclasses.replace(game, t=t)
    return type(game)(game.values, game.start, game.Q, t)


class MechanismEvaluator:
    """Exact (SW, TV) of the equilibrium induced by a mechanism, with a cache and a counter.

    Parameters
    ----------
    game_or_builder : ChainGame or callable
        A game (its mechanism is replaced) or ``builder(t) -> ChainGame``.
    n : int, optional
        Chain length (read from the game when omitted).
    evaluate : callable, optional
        ``evaluate(game) -> (social_welfare, transaction_volume)``; default solves with
        :func:`datamarkets.models.chain_equilibrium.solve_equilibrium` (``method="fast"``).


    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_game import ave_mechanism
    >>> f = MechanismEvaluator(paper_model("paper-2", 3))
    >>> sw, tv = f(ave_mechanism(3))
    >>> _ = f(ave_mechanism(3))  # cached
    >>> f.evaluations
    1
    """

    def __init__(
        self,
        game_or_builder: Any,
        n: int | None = None,
        evaluate: Callable[[Any], tuple[float, float]] | None = None,
    ) -> None:
        if callable(game_or_builder) and not hasattr(game_or_builder, "Q"):
            self.builder = game_or_builder
            probe = None
        else:
            probe = game_or_builder
            self.builder = lambda t: _with_mechanism(probe, t)
        if n is None:
            if probe is None:
                raise InvalidInputError("pass n when game_or_builder is a builder function")
            n = int(np.asarray(probe.Q).shape[0])
        self.n = int(n)
        self._evaluate = evaluate or _exact_sw_tv
        self.cache: dict[bytes, tuple[float, float]] = {}
        self.evaluations = 0

    def __call__(self, t: np.ndarray) -> tuple[float, float]:
        key = np.round(t, 15).tobytes()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        self.evaluations += 1
        val = self._evaluate(self.builder(t))
        self.cache[key] = (float(val[0]), float(val[1]))
        return self.cache[key]


def _exact_sw_tv(game: Any) -> tuple[float, float]:
    eq = solve_equilibrium(game, method="fast", tie_range=False)  # the search needs one selection
    return float(eq.social_welfare), float(eq.transaction_volume)


def welfare_upper_bound(game: Any) -> float:
    r"""Mechanism-free bound :math:`E[v_0] + \sum_{i\ge1} E[\max(v_i, 0)]` on expected welfare.

    With budget feasibility, :math:`SW = v_0 + \sum_i v_i y_i - (\text{unallocated payments})
    \le v_0 + \sum_i v_i^+`; it is the first-best welfare when values are positive.


    Parameters
    ----------
    game : ChainGame

    Returns
    -------
    float

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> g = paper_model("paper-2", 3, "ave")
    >>> solve_equilibrium(g).social_welfare <= welfare_upper_bound(g)
    True
    """
    W = np.asarray(game.values, dtype=float)
    alpha = np.asarray(game.start, dtype=float)
    bound = float(alpha @ W)
    for Qi in np.asarray(game.Q):
        alpha = alpha @ Qi
        bound += float(alpha @ np.maximum(W, 0.0))
    return bound


def _rows(t: np.ndarray) -> list[np.ndarray]:
    return [t[i - 1, :i].copy() for i in range(1, t.shape[0] + 1)]


def _matrix(rows: list[np.ndarray]) -> np.ndarray:
    n = len(rows)
    t = np.zeros((n, n + 1))
    for i, r in enumerate(rows, start=1):
        t[i - 1, :i] = r
    return t


def _better(a: float, b: float) -> bool:
    """Strict improvement, relative to |b| (scale-invariant: an absolute floor such as
    ``max(1, |b|)`` hid every improvement of a game whose welfare is below ~1e-12)."""
    return a > b + 1e-12 * abs(b)


def _pattern_search(
    f: MechanismEvaluator, t0: np.ndarray, steps: list[float], deadline: float, max_evals: int
) -> tuple[np.ndarray, float, str]:
    """Compass search from ``t0``; returns (best t, best SW, "converged" | "max_evals" | "time_limit")."""
    rows = _rows(t0)
    best = f(_matrix(rows))[0]
    n = len(rows)
    for delta in steps:
        improved = True
        while improved:
            improved = False
            for i in range(n, 1, -1):  # trade n … 2 (row 1 is forced)
                for a in range(i):
                    for b in range(i):
                        if a == b or rows[i - 1][a] <= 0:
                            continue
                        if f.evaluations >= max_evals:
                            return _matrix(rows), best, "max_evals"
                        if time.perf_counter() > deadline:
                            return _matrix(rows), best, "time_limit"
                        cand = rows[i - 1].copy()
                        m = min(delta, cand[a])
                        cand[a] -= m
                        cand[b] += m
                        cand[cand < 1e-15] = 0.0
                        cand /= cand.sum()
                        trial = [*rows[: i - 1], cand, *rows[i:]]
                        sw = f(_matrix(trial))[0]
                        if _better(sw, best):
                            rows, best, improved = trial, sw, True
    return _matrix(rows), best, "converged"


def optimize_mechanism(
    game_or_builder: Any,
    *,
    n: int | None = None,
    method: str = "pattern",
    seed: int = 0,
    random_starts: int = 4,
    min_step: float = 1.0 / 64,
    time_limit: float = 60.0,
    max_evals: int = 20_000,
    evaluate: Callable[[Any], tuple[float, float]] | None = None,
) -> Result:
    """Best budget-balanced, past-only mechanism for exact expected social welfare.

    Parameters
    ----------
    game_or_builder : ChainGame or callable
        The game (its mechanism is ignored and replaced) or ``builder(t) -> ChainGame``.
    n : int, optional
        Chain length when a builder is given.
    method : {"pattern", "de"}, default "pattern"
        Multi-start compass search on the simplices (default) or the paper's differential
        evolution over a softmax parametrisation (same exact objective).
    seed : int, default 0
        Seed of the random starts (``"pattern"``) or of differential evolution.
    random_starts : int, default 4
        Seeded Dirichlet starts in addition to RAW, AVE and TBDS(0.25, 0.5, 0.75).
    min_step : float, default 1/64
        Smallest mass moved between two players of a row.
    time_limit : float, default 60.0
        Wall-clock safety net in seconds (the best mechanism so far is returned when it runs
        out). When it binds the result depends on the machine's speed; ``meta["stopped_by"]``
        says which budget ended the search.
    max_evals : int, default 20000
        Budget of distinct equilibrium solves: the deterministic stopping rule.
    evaluate : callable, optional
        ``evaluate(game) -> (SW, TV)``; default: exact forward propagation of the fast solver.

    Returns
    -------
    Result
        ``kind="chain-opt"``; ``solution``: ``mechanism`` (n × (n+1)), ``social_welfare``,
        ``transaction_volume``, ``baselines`` (RAW/AVE SW and TV), ``sw_upper_bound``
        (:func:`welfare_upper_bound`), ``sw_interior_perturbation`` (SW at
        ``0.999 t + 0.001 AVE``: shows reliance on exact zero shares), ``evaluations``,
        ``converged`` and, with the default evaluator, the OPT equilibrium's ``trade_success``,
        ``player_utility``, ``thresholds`` and ``prices``. The certificate checks budget balance,
        past-only, ``SW_OPT ≥ max(SW_RAW, SW_AVE)`` and ``SW_OPT ≤ sw_upper_bound``.

    Raises
    ------
    InvalidInputError
        Unknown ``method``, a ``time_limit`` that is not a number of seconds > 0 (``None`` or
        ``inf``: none), or ``max_evals`` < 1.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> res = optimize_mechanism(paper_model("paper-2", 3, "ave"))
    >>> res.solution["social_welfare"] > res.solution["baselines"]["ave"]["social_welfare"]
    True
    """
    if method not in ("pattern", "de"):
        raise InvalidInputError(f"unknown method {method!r}; choose one of pattern, de")
    limit = check_time_limit(time_limit, "time_limit")
    time_limit = float("inf") if limit is None else limit
    if isinstance(max_evals, bool) or not isinstance(max_evals, int | np.integer) or max_evals < 1:
        raise InvalidInputError(f"max_evals must be an integer >= 1, got {max_evals!r}")
    if (
        isinstance(random_starts, bool)
        or not isinstance(random_starts, int | np.integer)
        or random_starts < 0
    ):
        raise InvalidInputError(f"random_starts must be an integer >= 0, got {random_starts!r}")
    check_seed(seed)
    f = MechanismEvaluator(game_or_builder, n=n, evaluate=evaluate)
    n = f.n
    t_start = time.perf_counter()
    deadline = t_start + float(time_limit)
    raw, ave = raw_mechanism(n), ave_mechanism(n)
    baselines = {
        name: dict(zip(("social_welfare", "transaction_volume"), f(t), strict=True))
        for name, t in (("raw", raw), ("ave", ave))
    }
    best_t = raw if baselines["raw"]["social_welfare"] >= baselines["ave"]["social_welfare"] else ave
    best_sw = f(best_t)[0]
    converged = True
    stopped_by = "converged"
    starts_log: list[dict[str, Any]] = []
    if method == "pattern":
        rng = np.random.default_rng(check_seed(seed))
        starts = [("raw", raw), ("ave", ave)]
        starts += [(f"tbds-{a}", tbds_mechanism(n, a)) for a in (0.25, 0.5, 0.75)]
        for r in range(random_starts):
            rows = [np.ones(1)] + [rng.dirichlet(np.ones(i)) for i in range(2, n + 1)]
            starts.append((f"random-{r}", _matrix(rows)))
        steps = []
        d = 1.0
        while d >= min_step:
            steps.append(d)
            d /= 2
        for name, t0 in starts:
            t_loc, sw_loc, reason = _pattern_search(f, t0, steps, deadline, max_evals)
            starts_log.append({"start": name, "social_welfare": sw_loc, "stopped_by": reason})
            if _better(sw_loc, best_sw):
                best_t, best_sw = t_loc, sw_loc
            if reason != "converged":
                converged, stopped_by = False, reason
                break
    else:
        from scipy.optimize import differential_evolution

        dim = n * (n + 1) // 2

        def neg_sw(x: np.ndarray) -> float:
            if time.perf_counter() > deadline or f.evaluations >= max_evals:
                return 0.0
            return -f(softmax_mechanism(x, n))[0]

        x0 = np.zeros(dim)  # AVE, as in App. D
        res = differential_evolution(
            neg_sw, [(-5.0, 5.0)] * dim, x0=x0, maxiter=50, popsize=5, seed=seed, polish=False, tol=0
        )
        t_de = softmax_mechanism(res.x, n)
        sw_de = f(t_de)[0]
        if f.evaluations >= max_evals:
            converged, stopped_by = False, "max_evals"
        elif time.perf_counter() > deadline:
            converged, stopped_by = False, "time_limit"
        starts_log.append({"start": "de", "social_welfare": sw_de, "stopped_by": stopped_by})
        if _better(sw_de, best_sw):
            best_t, best_sw = t_de, sw_de
    seconds = time.perf_counter() - t_start
    sw, tv = f(best_t)
    check_budget_balanced(best_t, n)
    game = f.builder(best_t)
    sw_ub = welfare_upper_bound(game)
    eps = 1e-3
    sw_interior = f((1 - eps) * best_t + eps * ave)[0]

    cert = Certificate()
    base = max(baselines["raw"]["social_welfare"], baselines["ave"]["social_welfare"])
    cert.add("sw_shortfall_vs_best_baseline", max(0.0, base - sw), 0.0)
    cert.add("sw_above_upper_bound", max(0.0, sw - sw_ub), 1e-9 * max(abs(sw_ub), abs(sw)))
    cert.add("row_sum_deviation_max", float(np.abs(best_t.sum(axis=1) - 1.0).max()), 1e-12)
    cert.add("past_only_violation_max", float(np.abs(np.triu(best_t, k=1)).max(initial=0.0)), 0.0)
    cert.details.update(starts=starts_log)
    extra: dict[str, Any] = {}
    if evaluate is None:
        eq = solve_equilibrium(game, method="fast")
        extra = {
            "trade_success": eq.trade_success,
            "player_utility": eq.player_utility,
            "thresholds": eq.thresholds,
            "prices": eq.prices,
        }
    return Result(
        kind="chain-opt",
        status=Status.OPTIMAL_INACCURATE,
        method=f"{method}-search-exact-sw",
        solution={
            "mechanism": best_t,
            "social_welfare": sw,
            "transaction_volume": tv,
            "baselines": baselines,
            "improvement_over_ave": sw - baselines["ave"]["social_welfare"],
            "improvement_over_raw": sw - baselines["raw"]["social_welfare"],
            "sw_upper_bound": sw_ub,
            "sw_interior_perturbation": sw_interior,
            "evaluations": f.evaluations,
            "converged": converged,
            **extra,
        },
        certificate=cert,
        timings={"optimize_seconds": seconds},
        meta=provenance()
        | {
            "n": n,
            "seed": seed,
            "min_step": min_step,
            "time_limit": time_limit,
            "max_evals": max_evals,
            "random_starts": random_starts,
            "stopped_by": stopped_by,
            "optimality": "best mechanism found by a heuristic search; global optimality not proven",
        },
    )
