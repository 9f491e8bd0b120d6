r"""The paper's literal Algorithms 1–3 (Appendix B): the reference route, :math:`O(n^2L^4)`.

Algorithm 1 runs the backward DP over players :math:`i=n-1,\dots,0` and values :math:`k`; for each it
calls Algorithm 2, which enumerates the candidate prices :math:`u^*(i+1,k')\ge 0` and evaluates each
with Algorithm 3: a forward DP over :math:`s_{i,k,k'}(j,l)=\Pr[Y(j,l)]` (Eq. 22–23) followed by the
one-shot and future reallocated profit (Eq. 19–21, 25). Only the innermost sums over
:math:`l,l'` (line 8 of Algorithm 3) are vectorised, as one vector–matrix product per step. Nothing
here is shared with the fast route (:mod:`datamarkets.models.chain_equilibrium`): the argmax of
Algorithm 2 line 11 applies the package's tie rules by its own loop.

Index conventions and printed typos. The paper writes :math:`q_{i,k,l}` for trade :math:`i`
(:math:`v_i` given :math:`v_{i-1}`); our ``Q[i-1]``. Algorithm 1 line 9 and Eq. 18 print
:math:`r^*(i,k)=p^*(i,k)\sum_l q_{i,k,l}\mathbf 1\{\dots\}`, but player :math:`i` sells in trade
:math:`i+1`, whose transition is :math:`q_{i+1,k,l}` (as in Eq. 22, 24's first line and Algorithm 3
lines 3, 8, 13); we use :math:`q_{i+1}` (``Q[i]``). The two readings coincide when all trades share one
transition matrix (every §5.1 model). Eq. 24 (middle line) and Eq. 41 print a strict
:math:`u^*(j+1,l')>p^*(j,l)`; Eq. 6, Eq. 22–23 and Algorithm 3 use :math:`\ge`, which we follow.

Tie rules (as in the fast route): a buyer buys iff threshold :math:`\ge` price; candidates are the
next player's non-negative thresholds (price 0 when there is none); among gains within
``TIE_RTOL * (|w_k| + max(g - w_k))`` of the maximum the lowest price wins (``tie_rule="lowest"``) or
the highest (``tie_rule="highest"``), and among equal prices the smallest index :math:`k'`. This
module exists to be compared against the fast route; do not use it for large games.

Examples
--------
>>> from datamarkets.models.chain_valuations import paper_model
>>> u_star, p_star, l_star, r_star, A = solve_reference(paper_model("paper-1", 2, "ave"))
>>> u_star.shape, p_star.shape, A.shape
((3, 9), (2, 9), (3, 9, 3))
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.models.chain_game import ChainGame

__all__ = ["TIE_RTOL", "expected_utility", "optimal_strategy", "reference_expectations", "solve_reference"]

#: Relative tolerance under which two gains tie (the same value as the fast route's, kept separately).
TIE_RTOL = 1e-12


def _maximiser(
    gains: list[float], prices: list[float], w_k: float, tie_rule: str = "lowest"
) -> tuple[int, bool]:
    """Algorithm 2 line 11 with the tie rules: lowest (or highest) price among near-maximal gains,
    then first index; and whether at least two distinct prices were near-maximal.

    Gains within ``TIE_RTOL * (|w_k| + max(g - w_k))`` of the best tie (scale-invariant).
    """
    if tie_rule not in ("lowest", "highest"):
        raise InvalidInputError(f"tie_rule must be 'lowest' or 'highest', got {tie_rule!r}")
    best = max(gains)
    tol = TIE_RTOL * (abs(w_k) + max(abs(g - w_k) for g in gains))
    pick = -1
    maximising: set[float] = set()
    for c, (g, price) in enumerate(zip(gains, prices, strict=True)):
        if g >= best - tol:
            maximising.add(price)
            better = price < prices[pick] if tie_rule == "lowest" else price > prices[pick]
            if pick < 0 or better:
                pick = c
    return pick, len(maximising) >= 2


def expected_utility(
    game: ChainGame, i: int, k: int, kp: int, u_star: np.ndarray, p_star: np.ndarray, r_star: np.ndarray
) -> float:
    r"""Algorithm 3 (ExpectedUtility): :math:`u(i,k,k')=g_i(w_k,u^*(i+1,k'))` by the nested forward DP.

    Parameters
    ----------
    game : ChainGame
        The game (``Q[j-1]`` is the paper's :math:`q_{j,\cdot,\cdot}`, ``t[j-1, m]`` its :math:`t_{jm}`).
    i, k, kp : int
        Seller :math:`0\le i<n`, its value index, and the index :math:`k'` of the candidate price
        :math:`u^*(i+1,k')`.
    u_star, p_star, r_star : ndarray
        Thresholds ``(n+1, L)``, prices ``(n, L)`` and one-shot profits ``(n, L)`` (Eq. 18), already
        computed for the players after ``i``.

    Returns
    -------
    float
        One-shot profit plus future reallocated profit (lines 13–15), including :math:`w_k`.

    Examples
    --------
    One trade, seller value 0, buyer value 1 or 3 with probability 1/2 each: price 3 earns 1.5.

    >>> from datamarkets.models.chain_game import ChainGame
    >>> g = ChainGame([0.0, 1.0, 3.0], 0, [[[0.0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]]], [[1.0, 0.0]])
    >>> u = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    >>> expected_utility(g, 0, 0, 2, u, np.zeros((1, 3)), np.zeros((1, 3)))
    1.5
    """
    n = game.n
    Q, t, W = game.Q, game.t, game.values
    price = u_star[i + 1, kp]
    # lines 2-4: s_{i,k,k'}(i+1, l) = 1{u*(i+1,l) >= u*(i+1,k')} q_{i+1,k,l}
    s = (u_star[i + 1] >= price) * Q[i, k]
    future = 0.0
    for j in range(i + 1, n):  # lines 6-12 (trade j+1 has seller j, transition q_{j+1} = Q[j])
        # line 15, term j: sum_l s(j, l) t_{j+1,i} r*(j, l)   (Eq. 21 with Eq. 25)
        future += t[j, i] * float(s @ r_star[j])
        # lines 7-8 for all l' at once: s(j+1, l') = sum_l s(j, l) q_{j+1,l,l'} 1{u*(j+1,l') >= p*(j,l)}
        s = s @ (Q[j] * (u_star[j + 1][None, :] >= p_star[j][:, None]))
    # line 13: success rate = sum_l q_{i+1,k,l} 1{u*(i+1,l) >= u*(i+1,k')}
    success = float(np.sum(Q[i, k] * (u_star[i + 1] >= price)))
    one_shot = W[k] + t[i, i] * price * success  # line 14
    return float(one_shot + future)


def optimal_strategy(
    game: ChainGame,
    i: int,
    k: int,
    u_star: np.ndarray,
    p_star: np.ndarray,
    r_star: np.ndarray,
    tie_rule: str = "lowest",
) -> tuple[float, int]:
    """Algorithm 2 (OptimalStrategy): best candidate price of player ``i`` at value ``w_k``.

    Parameters
    ----------
    game : ChainGame
    i, k : int
        Seller index (``0 <= i < n``) and value index.
    u_star, p_star, r_star : ndarray
        As in :func:`expected_utility`.
    tie_rule : {"lowest", "highest"}, default "lowest"
        Which maximising price wins a tie.

    Returns
    -------
    tuple of (float, int)
        ``(u*(i,k), l*(i,k))``; ``l* = -1`` when player i+1 has no non-negative threshold.

    Examples
    --------
    >>> from datamarkets.models.chain_game import ChainGame
    >>> g = ChainGame([0.0, 1.0, 3.0], 0, [[[0.0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]]], [[1.0, 0.0]])
    >>> u = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    >>> optimal_strategy(g, 0, 0, u, np.zeros((1, 3)), np.zeros((1, 3)))  # price u*(1, 2) = 3
    (1.5, 2)
    """
    u, l, _ = _optimal(game, i, k, u_star, p_star, r_star, tie_rule)
    return u, l


def _optimal(
    game: ChainGame,
    i: int,
    k: int,
    u_star: np.ndarray,
    p_star: np.ndarray,
    r_star: np.ndarray,
    tie_rule: str,
) -> tuple[float, int, bool]:
    """Algorithm 2 and whether its argmax was a tie."""
    cands = [l for l in range(game.L) if u_star[i + 1, l] >= 0]  # line 2: the set script-L
    if not cands:
        return float(game.values[k]), -1, False  # lines 3-4
    gains = [expected_utility(game, i, k, kp, u_star, p_star, r_star) for kp in cands]  # lines 6-8
    prices = [float(u_star[i + 1, kp]) for kp in cands]
    pick, tied = _maximiser(gains, prices, float(game.values[k]), tie_rule)  # line 11
    return float(gains[pick]), int(cands[pick]), tied  # line 12


def solve_reference(
    game: ChainGame,
    tie_rule: str = "lowest",
    *,
    deadline: float | None = None,
    return_ties: bool = False,
) -> tuple[Any, ...]:
    """Algorithm 1: exact sequential equilibrium by the backward DP with nested forward DPs.

    Parameters
    ----------
    game : ChainGame
    tie_rule : {"lowest", "highest"}, default "lowest"
        Which maximising price wins a tie.
    deadline : float, optional
        ``time.perf_counter()`` value after which :class:`SolverLimitError` is raised (checked
        between (player, value) decisions).
    return_ties : bool, default False
        Append the number of tied decisions (at least two distinct maximising prices).

    Returns
    -------
    tuple of ndarray
        ``(u_star, p_star, l_star, r_star, A)`` with the shapes of the fast route: thresholds
        ``(n+1, L)`` (row 0 = player 0's gain), prices ``(n, L)``, price indices ``(n, L)`` (-1 when
        the price is 0 for lack of a non-negative threshold), one-shot profits ``(n, L)`` (Eq. 18)
        and the downstream reallocated profit ``A`` ``(n+1, L, n+1)``, obtained here by forward
        propagation of the trade-alive distribution from every (player, value), independently of
        the fast route's backward accumulation. With ``return_ties``, a sixth entry: the tie count.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> u_star, p_star, l_star, r_star, A = solve_reference(paper_model("paper-2", 2, "ave"))
    >>> bool(np.all(u_star[2] == np.arange(5) / 4))  # u*(n, k) = w_k (line 2)
    True
    """
    n, L = game.n, game.L
    Q, W = game.Q, game.values
    u_star = np.empty((n + 1, L))
    p_star = np.zeros((n, L))
    l_star = np.full((n, L), -1, dtype=np.int64)
    r_star = np.zeros((n, L))
    u_star[n] = W  # line 2
    ties = 0
    for i in range(n - 1, -1, -1):  # line 3
        for k in range(L):  # line 4
            if deadline is not None and time.perf_counter() > deadline:
                raise SolverLimitError(f"time limit reached in the reference DP at player {i}")
            u_star[i, k], l_star[i, k], tied = _optimal(game, i, k, u_star, p_star, r_star, tie_rule)
            ties += int(tied)
            if l_star[i, k] != -1:  # line 7-9
                p_star[i, k] = u_star[i + 1, l_star[i, k]]
                r_star[i, k] = p_star[i, k] * float(Q[i, k] @ (u_star[i + 1] >= p_star[i, k]))
            else:  # line 11-13
                p_star[i, k] = 0.0
                r_star[i, k] = 0.0
    A = _downstream_forward(game, p_star, u_star, r_star)
    if return_ties:
        return u_star, p_star, l_star, r_star, A, ties
    return u_star, p_star, l_star, r_star, A


def _downstream_forward(
    game: ChainGame, p_star: np.ndarray, u_star: np.ndarray, r_star: np.ndarray
) -> np.ndarray:
    n, L = game.n, game.L
    A = np.zeros((n + 1, L, n + 1))
    M = [game.Q[j] * (u_star[j + 1][None, :] >= p_star[j][:, None]) for j in range(n)]
    for j in range(n):
        S = np.eye(L)  # S[l, l'] = Pr[player j' holds data with w_l' | player j holds w_l]
        for jp in range(j, n):
            A[j, :, : j + 1] += np.outer(S @ r_star[jp], game.t[jp, : j + 1])
            S = S @ M[jp]
    return A


def reference_expectations(game: ChainGame, u_star: np.ndarray, p_star: np.ndarray) -> dict:
    """Exact expectations by explicit loops over (k, l) pairs, summing Eq. 2 trade by trade.

    Parameters
    ----------
    game : ChainGame
    u_star, p_star : ndarray
        Thresholds ``(n+1, L)`` and prices ``(n, L)`` of any strategy profile.

    Returns
    -------
    dict
        The keys of :func:`datamarkets.models.chain_equilibrium.expectations`.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> g = paper_model("paper-2", 2, "ave")
    >>> u, p, *_ = solve_reference(g)
    >>> ex = reference_expectations(g, u, p)
    >>> bool(abs(ex["social_welfare"] - ex["player_utility"].sum()) < 1e-12)
    True
    """
    n, L = game.n, game.L
    Q, W, t = game.Q, game.values, game.t
    alive = np.zeros((n + 1, L))
    alive[0] = game.start
    r = np.zeros((n, L))
    payments = np.zeros(n)
    for i in range(1, n + 1):
        for k in range(L):
            if alive[i - 1, k] == 0.0:
                for l in range(L):
                    if u_star[i, l] >= p_star[i - 1, k]:
                        r[i - 1, k] += p_star[i - 1, k] * Q[i - 1, k, l]
                continue
            for l in range(L):
                if u_star[i, l] >= p_star[i - 1, k]:
                    mass = alive[i - 1, k] * Q[i - 1, k, l]
                    alive[i, l] += mass
                    payments[i - 1] += mass * p_star[i - 1, k]
                    r[i - 1, k] += p_star[i - 1, k] * Q[i - 1, k, l]
    success = alive[1:].sum(axis=1)
    utility = np.zeros(n + 1)
    for i in range(n + 1):
        utility[i] = float(alive[i] @ W) - (payments[i - 1] if i >= 1 else 0.0)
        for j in range(i + 1, n + 1):
            utility[i] += t[j - 1, i] * payments[j - 1]
    prev = np.concatenate(([1.0], success[:-1]))
    cond = np.array([s / q if q > 0 else np.nan for s, q in zip(success, prev, strict=True)])
    return {
        "alive": alive,
        "one_shot_profit": r,
        "trade_success": success,
        "trade_success_conditional": cond,
        "payments": payments,
        "player_utility": utility,
        "social_welfare": float(utility.sum()),
        "transaction_volume": float(success.sum()),
    }
