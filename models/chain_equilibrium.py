r"""Exact sequential equilibrium of the chain game (Eq. 9) and its exact expectations.

For player :math:`i` with value :math:`w_k` and price :math:`p` the gain (Eq. 8) is

.. math::  g_i(w_k,p) = w_k + \sum_l Q_{i,k,l}\,\mathbf 1\{u^*(i{+}1,l)\ge p\}\,
           \bigl(t_{i+1,i}\,p + A_{i+1}(l,i)\bigr),

where :math:`A_j(l,m)` is the expected reallocated profit player :math:`m` receives from trades
:math:`j+1..n` given that player :math:`j` holds the data with value :math:`w_l`, everyone
downstream playing the equilibrium. The equilibrium (Eq. 9, Algorithm 1) is
:math:`p^*(i,k)\in\arg\max_p g_i(w_k,p)` and :math:`u^*(i,k)=g_i(w_k,p^*(i,k))`, with
:math:`u^*(n,k)=w_k`.

Algorithms (:mod:`~datamarkets.models.chain_dp`, with the equations): ``method="fast"`` is one
backward pass that accumulates the future reallocated profit of all receivers at once,
:math:`O(n^2L^2 + nL^2\log L)`; ``method="reference"`` is the paper's literal Algorithms 1–3,
:math:`O(n^2L^4)` (:mod:`~datamarkets.models.chain_reference`). Both are followed by the exact
expectations of the equilibrium (forward propagation, :func:`~datamarkets.models.chain_dp.expectations`).

Tie rules (the same in every route of this package):

* a buyer buys iff its threshold is ``>=`` the price;
* candidate prices are the next player's non-negative thresholds; when there is none the price
  is 0 (and nobody buys);
* among the maximising candidate prices the lowest wins (``tie_rule="lowest"``, the default; with
  ``tie_rule="highest"`` the highest wins); gains within
  ``TIE_RTOL * (|w_k| + max_p (g_i(w_k, p) - w_k))`` of the maximum count as maximising. The
  tolerance absorbs round-off and is relative to the size of the terms summed into the gain (all
  terms after :math:`w_k` are non-negative), so the rule is scale-invariant: multiplying every
  value by :math:`a>0` multiplies thresholds and prices by :math:`a` and keeps every choice, as
  the homogeneity argument of Lemma C.2 / Theorem 4.4 requires. (An absolute floor such as
  ``max(1, |g|)`` would turn every price into a tie at values below ~1e-12, e.g. Model 1's low
  states at n = 50, and pick the lowest price there.)

Where gains tie the equilibrium is not unique (paper Model 2, n = 5, RAW: SW 0.2437 with the lowest
price, 0.2010 with the highest). Every solve counts its *tied decisions* (player/value pairs with at
least two distinct maximising prices, ``tie_count``) and reports ``sw_tie_range = [min, max]`` of the
welfare over the two selections (the whole game solved under each rule). Without a tie the two rules
make the same choices at every stage, so the range has zero width and the second solve is skipped.
The range covers the two rule-based selections, not every mixture of per-decision choices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.io import instance_hash
from datamarkets.models.chain_dp import (
    TIE_RTOL,
    acceptance_matrix,
    backward_dp,
    candidate_prices,
    check_deadline,
    choose_price,
    expectations,
)
from datamarkets.models.chain_game import TIE_RULES, ChainGame, check_tie_rule
from datamarkets.models.chain_reference import reference_expectations, solve_reference
from datamarkets.result import Certificate, Result, provenance
from datamarkets.status import Status

__all__ = [
    "METHODS",
    "TIE_RTOL",
    "TIE_RULES",
    "ChainEquilibrium",
    "acceptance_matrix",
    "candidate_prices",
    "choose_price",
    "expectations",
    "gain_for_prices",
    "solve_equilibrium",
]

METHODS = ("fast", "reference")
_ARRAY_KEYS = ("alive", "trade_success", "trade_success_conditional", "player_utility")


@dataclass(frozen=True, eq=False)
class ChainEquilibrium:
    """Sequential equilibrium of a :class:`ChainGame` with its exact expectations.

    Attributes
    ----------
    game : ChainGame
        The solved game.
    thresholds : ndarray, shape (n+1, L)
        Row 0: player 0's optimal gain :math:`g_0(w_k,p^*)`; row i: :math:`u^*(i,k)=\\tilde s_i(w_k)`.
    prices : ndarray, shape (n, L)
        Row i: :math:`p^*(i,k)`, the price player i posts as seller (i = 0..n-1).
    price_index : ndarray of int, shape (n, L)
        Smallest value index l with ``thresholds[i+1, l] == prices[i, k]``; -1 when the price is
        0 because player i+1 has no non-negative threshold.
    one_shot_profit : ndarray, shape (n, L)
        :math:`r^*(i,k)=p^*(i,k)\\Pr[\\text{buyer } i{+}1 \\text{ buys}\\mid v_i=w_k]` (Eq. 18).
    downstream_profit : ndarray, shape (n+1, L, n+1)
        ``A[j, l, m]``: expected reallocated profit to player m from trades j+1..n given player j
        holds the data with value w_l (equilibrium play downstream), for m <= j; entries with
        m > j are not computed and hold 0. ``A[n] = 0``.
    future_profit : ndarray, shape (n+1, L)
        ``R[i, k] = A[i, k, i] = thresholds[i, k] - w_k``: player i's expected reallocated profit
        from trades after i given v_i = w_k.
    alive : ndarray, shape (n+1, L)
        :math:`\\alpha_i(l)=\\Pr[\\text{trade } i \\text{ occurred}, v_i=w_l]` (row 0 = start distribution).
    trade_success : ndarray, shape (n,)
        :math:`\\Pr[\\text{trade } i \\text{ occurs}]` (unconditional), i = 1..n.
    trade_success_conditional : ndarray, shape (n,)
        :math:`\\Pr[\\text{trade } i \\mid \\text{trade } i-1]` (``nan`` when trade i-1 never occurs).
    player_utility : ndarray, shape (n+1,)
        Expected utility (Eq. 2) of each player.
    social_welfare : float
        Sum of expected utilities.
    transaction_volume : float
        Expected number of trades (§5.1).
    method : str
        ``"fast"`` or ``"reference"``.
    solve_seconds : float
        Wall time of the equilibrium solve alone.
    metrics_seconds : float
        Wall time of the forward propagation of expectations.
    tie_rule : {"lowest", "highest"}
        Which maximising price was chosen where gains tie.
    tie_count : int
        Number of tied decisions: (player, value) pairs whose gain is maximised (within the tie
        tolerance) by at least two distinct candidate prices.
    sw_tie_range : tuple of float
        ``(min, max)`` social welfare over the equilibria selected by the two tie rules; zero width
        when ``tie_count == 0``.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> eq = solve_equilibrium(paper_model("paper-1", 2, "raw"))
    >>> eq.n, eq.L, bool(abs(eq.social_welfare - eq.player_utility.sum()) < 1e-12)
    (2, 9, True)
    """

    game: ChainGame
    thresholds: np.ndarray
    prices: np.ndarray
    price_index: np.ndarray
    one_shot_profit: np.ndarray
    downstream_profit: np.ndarray
    future_profit: np.ndarray
    alive: np.ndarray
    trade_success: np.ndarray
    trade_success_conditional: np.ndarray
    player_utility: np.ndarray
    social_welfare: float
    transaction_volume: float
    method: str
    solve_seconds: float
    metrics_seconds: float = 0.0
    tie_rule: str = "lowest"
    tie_count: int = 0
    sw_tie_range: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        return self.game.n

    @property
    def L(self) -> int:
        return self.game.L

    def certificate(self) -> Certificate:
        """Internal consistency residuals (the LP certificate lives in ``formulations``).

        * ``player0_utility_vs_threshold``: :math:`|E[U_0]-\\pi\\cdot u^*(0,\\cdot)|`;
        * ``buyer_utility_vs_threshold_max``: :math:`\\max_i|E[U_i]-E[y_i(u^*(i,v_i)-p_{i-1})]|`;
        * ``welfare_identity``: :math:`|SW-\\sum_iE[v_iy_i]-\\sum_jE[p_{j-1}y_j](\\sum_m t_{jm}-1)|`;
        * ``probability_mass_excess``: how far any :math:`\\alpha_i` mass exceeds its predecessor.
        """
        g = self.game
        W, pi, t = g.values, g.start, g.t
        scale = float(np.abs(W).max()) * (g.n + 1) or 1.0  # |SW|, |E[U_i]| <= (n+1) max|w|
        cert = Certificate()
        cert.add(
            "player0_utility_vs_threshold",
            abs(self.player_utility[0] - pi @ self.thresholds[0]),
            1e-9 * scale,
        )
        gaps = [0.0]
        for i in range(1, g.n + 1):
            M = acceptance_matrix(g, self.thresholds, self.prices, i)
            surplus = self.thresholds[i][None, :] - self.prices[i - 1][:, None]
            direct = float(self.alive[i - 1] @ (M * surplus).sum(axis=1))
            gaps.append(abs(direct - self.player_utility[i]))
        cert.add("buyer_utility_vs_threshold_max", max(gaps), 1e-9 * scale)
        pay = np.einsum("il,il->i", self.alive[:-1], self.one_shot_profit)
        values = float(np.einsum("il,l->", self.alive, W))
        sw_id = values + float(pay @ (t.sum(axis=1) - 1.0))
        cert.add("welfare_identity", abs(self.social_welfare - sw_id), 1e-9 * scale)
        mass = self.alive.sum(axis=1)
        cert.add("probability_mass_excess", float(max(0.0, np.max(np.diff(mass), initial=0.0))), 1e-12)
        return cert

    def to_result(self) -> Result:
        """A :class:`~datamarkets.result.Result` of kind ``"chain-equilibrium"`` (issue-2 fields)."""
        g = self.game
        solution = {
            "n": g.n,
            "L": g.L,
            "label": g.label,
            "social_welfare": float(self.social_welfare),
            "transaction_volume": float(self.transaction_volume),
            "trade_success": self.trade_success,
            "trade_success_conditional": self.trade_success_conditional,
            "player_utility": self.player_utility,
            "thresholds": self.thresholds,
            "prices": self.prices,
            "values": g.values,
            "mechanism": g.t,
            "tie_rule": self.tie_rule,
            "tie_count": int(self.tie_count),
            "sw_tie_range": None if self.sw_tie_range is None else [float(x) for x in self.sw_tie_range],
        }
        return Result(
            kind="chain-equilibrium",
            status=Status.OPTIMAL,
            method=f"dp-{self.method}",
            solution=solution,
            certificate=self.certificate(),
            timings={"solve_seconds": self.solve_seconds, "metrics_seconds": self.metrics_seconds},
            meta={**provenance(), "instance_hash": instance_hash(g.to_dict()), "tie_rtol": TIE_RTOL},
        )

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: players, trades, strategies, mechanism, summary, certificate; see
        :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def gain_for_prices(
    game: ChainGame, eq: ChainEquilibrium, i: int, prices: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Player i's gain :math:`g_i(w_k,p)` (Eq. 8) for every value and every price, others at equilibrium.

    Parameters
    ----------
    game : ChainGame
    eq : ChainEquilibrium
        Supplies the downstream strategies (thresholds of i+1.., prices of i+1..) and ``A[i+1]``.
    i : int
        Seller index 0..n-1.
    prices : ndarray, optional
        Prices to evaluate (any non-negative reals). Default: :func:`candidate_prices` of player
        i+1, i.e. the finite set over which the maximum over :math:`\\mathbb R_+` is attained.

    Returns
    -------
    prices : ndarray, shape (m,)
    gains : ndarray, shape (L, m)
        ``gains[k, c] = w_k + sum_l Q[i,k,l] 1{u*(i+1,l) >= prices[c]} (t[i,i] prices[c] + A[i+1,l,i])``.

    Raises
    ------
    InvalidInputError
        If ``i`` is not a seller index.

    Examples
    --------
    The equilibrium threshold is the best gain over the candidate prices (Eq. 9):

    >>> from datamarkets.models.chain_valuations import paper_model
    >>> g = paper_model("paper-1", 3, "ave")
    >>> eq = solve_equilibrium(g)
    >>> prices, gains = gain_for_prices(g, eq, 0)
    >>> bool(np.allclose(gains.max(axis=1), eq.thresholds[0], rtol=1e-12))
    True
    """
    if not 0 <= i < game.n:
        raise InvalidInputError(f"seller index must be in 0..{game.n - 1!r}, got {i!r}")
    un = eq.thresholds[i + 1]
    p = candidate_prices(un) if prices is None else np.asarray(prices, dtype=float).ravel()
    accept = un[None, :] >= p[:, None]  # (m, L)
    Ai = eq.downstream_profit[i + 1, :, i]
    Qi = game.Q[i]
    gains = (
        game.values[:, None] + (Qi @ accept.T) * (game.t[i, i] * p)[None, :] + Qi @ (accept * Ai[None, :]).T
    )
    return p, gains


def _check_time_limit(time_limit: Any) -> float | None:
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"time_limit must be a number of seconds, got {time_limit!r}")
    if not (np.isfinite(time_limit) and time_limit >= 0):
        raise InvalidInputError(f"time_limit must be a finite number of seconds >= 0, got {time_limit!r}")
    return float(time_limit)


def _solve_once(
    game: ChainGame, method: str, tie_rule: str, deadline: float | None
) -> tuple[tuple[np.ndarray, ...], dict[str, Any], int, float, float]:
    t0 = time.perf_counter()
    if method == "fast":
        u_star, p_star, l_star, r_star, A, ties = backward_dp(game, tie_rule, deadline)
        solve_seconds = time.perf_counter() - t0
        check_deadline(deadline, "after the DP")
        t1 = time.perf_counter()
        ex = expectations(game, u_star, p_star)
    else:
        u_star, p_star, l_star, r_star, A, ties = solve_reference(
            game, tie_rule, deadline=deadline, return_ties=True
        )
        solve_seconds = time.perf_counter() - t0
        check_deadline(deadline, "after the DP")
        t1 = time.perf_counter()
        ex = reference_expectations(game, u_star, p_star)
    return (u_star, p_star, l_star, r_star, A), ex, int(ties), solve_seconds, time.perf_counter() - t1


def solve_equilibrium(
    game: ChainGame,
    method: str = "fast",
    *,
    tie_rule: str | None = None,
    tie_range: bool = True,
    time_limit: float | None = None,
) -> ChainEquilibrium:
    """Solve the chain game for its sequential equilibrium (Eq. 9) and exact expectations.

    Parameters
    ----------
    game : ChainGame
    method : {"fast", "reference"}
        ``"fast"``: backward accumulation of future profit, :math:`O(n^2L^2+nL^2\\log L)`.
        ``"reference"``: the paper's literal Algorithms 1–3, :math:`O(n^2L^4)`.
    tie_rule : {"lowest", "highest"}, optional
        Which maximising price wins a tie (default: the game's ``tie_rule``, itself ``"lowest"``
        unless set).
    tie_range : bool, default True
        Also solve under the other rule when a tie occurred, to report ``sw_tie_range``
        (``None`` when False and ties occurred; the single value when no tie occurred).
    time_limit : float, optional
        Wall-clock seconds for the whole call; the clock is checked between DP stages (players).

    Returns
    -------
    ChainEquilibrium

    Raises
    ------
    InvalidInputError
        Unknown ``method`` (also a ``ValueError``), not a ChainGame, an unknown tie rule, or a
        negative/non-finite ``time_limit``.
    SolverLimitError
        ``time_limit`` passed before the equilibrium was computed.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> eq = solve_equilibrium(paper_model("paper-1", 3, "ave"))
    >>> eq.thresholds.shape, eq.prices.shape
    ((4, 13), (3, 13))

    Paper Model 2 with RAW: prices tie, and the selection moves the welfare.

    >>> eq = solve_equilibrium(paper_model("paper-2", 5, "raw"))
    >>> eq.tie_count > 0, [round(x, 4) for x in eq.sw_tie_range]
    (True, [0.201, 0.2437])
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose one of {METHODS!r}")
    if not isinstance(game, ChainGame):
        raise InvalidInputError(f"expected a ChainGame, got {type(game).__name__!r}")
    rule = game.tie_rule if tie_rule is None else check_tie_rule(tie_rule)
    limit = _check_time_limit(time_limit)
    deadline = None if limit is None else time.perf_counter() + limit
    arrays, ex, ties, solve_seconds, metrics_seconds = _solve_once(game, method, rule, deadline)
    u_star, p_star, l_star, r_star, A = arrays
    sw = float(ex["social_welfare"])
    sw_range: tuple[float, float] | None = (sw, sw)
    if ties and tie_range:
        other = TIE_RULES[1 - TIE_RULES.index(rule)]
        sw_other = float(_solve_once(game, method, other, deadline)[1]["social_welfare"])
        sw_range = (min(sw, sw_other), max(sw, sw_other))
    elif ties:
        sw_range = None
    future = np.stack([A[i, :, i] for i in range(game.n + 1)])
    for arr in (u_star, p_star, l_star, r_star, A, future, *(ex[k] for k in _ARRAY_KEYS)):
        arr.setflags(write=False)
    return ChainEquilibrium(
        game=game,
        thresholds=u_star,
        prices=p_star,
        price_index=l_star,
        one_shot_profit=r_star,
        downstream_profit=A,
        future_profit=future,
        alive=ex["alive"],
        trade_success=ex["trade_success"],
        trade_success_conditional=ex["trade_success_conditional"],
        player_utility=ex["player_utility"],
        social_welfare=sw,
        transaction_volume=float(ex["transaction_volume"]),
        method=method,
        solve_seconds=solve_seconds,
        metrics_seconds=metrics_seconds,
        tie_rule=rule,
        tie_count=ties,
        sw_tie_range=sw_range,
    )
