r"""The chain game's dynamic programs: the backward DP of the equilibrium and exact expectations.

Building blocks shared with the reference route (:mod:`~datamarkets.models.chain_reference`) and
the LP certificate: trade i's acceptance-weighted transition
:math:`M_{i-1}(k,l)=Q_{i-1,k,l}\,\mathbf 1\{u^*(i,l)\ge p^*(i-1,k)\}` (:func:`acceptance_matrix`),
the candidate prices (Eq. 17, :func:`candidate_prices`) and the tie rule (:func:`choose_price`,
relative tolerance :data:`TIE_RTOL`).

Fast algorithm (:func:`backward_dp`). The paper's Algorithm 3 recomputes the future reallocated
profit with a nested forward DP for every (player, value, candidate price): :math:`O(n^2L^4)`.
Here the future profit is accumulated backwards once for all receivers,

.. math::  A_j = r^*_j\,t_{j+1,\cdot}^{\top} + M_j A_{j+1}, \qquad
           M_j(l,l') = Q_{j,l,l'}\,\mathbf 1\{u^*(j{+}1,l')\ge p^*(j,l)\},\quad
           r^*_j(l) = p^*(j,l)\textstyle\sum_{l'}M_j(l,l') \quad\text{(Eq. 18)},

(:math:`O(nL^2)` per step), and the gains of all :math:`L` candidate prices of one player follow
from cumulative sums over the next player's thresholds sorted in decreasing order
(:math:`O(L^2+L\log L)`). Total :math:`O(n^2L^2 + nL^2\log L)`.

Exact expectations (:func:`expectations`) by forward propagation of
:math:`\alpha_i(l)=\Pr[\text{trade } i \text{ occurred}, v_i=w_l]` (:math:`\alpha_0=\pi`,
:math:`\alpha_i=\alpha_{i-1}M_{i-1}`): per-trade success :math:`\Pr[y_i=1]=\sum_l\alpha_i(l)`,
transaction volume :math:`TV=\sum_i\Pr[y_i=1]` (§5.1), per-player expected utility (Eq. 2, with
:math:`y_0=1`, :math:`p_{-1}=0`)
:math:`E[U_i]=\alpha_i\!\cdot\!W-\alpha_{i-1}\!\cdot\!r^*_{i-1}+\pi\!\cdot\!A_0(\cdot,i)`, and social
welfare :math:`SW=\sum_iE[U_i]` (§2.3).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.models.chain_game import ChainGame, check_tie_rule

__all__ = [
    "TIE_RTOL",
    "acceptance_matrix",
    "backward_dp",
    "candidate_prices",
    "check_deadline",
    "choose_price",
    "expectations",
]

#: Relative tolerance under which two gains count as a tie (the tie rule picks among them).
TIE_RTOL = 1e-12


# ----------------------------------------------------------------------------------------------
# building blocks shared with the reference route and the LP certificate
# ----------------------------------------------------------------------------------------------
def acceptance_matrix(game: ChainGame, thresholds: np.ndarray, prices: np.ndarray, i: int) -> np.ndarray:
    """Trade i's acceptance-weighted transition matrix.

    :math:`M(k,l)=Q_{i-1,k,l}\\mathbf 1\\{u^*(i,l)\\ge p^*(i-1,k)\\}`.

    Parameters
    ----------
    game : ChainGame
    thresholds, prices : ndarray
        ``(n+1, L)`` thresholds and ``(n, L)`` prices (e.g. ``eq.thresholds``, ``eq.prices``).
    i : int
        Trade index, 1..n.

    Returns
    -------
    ndarray, shape (L, L)

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> g = paper_model("paper-2", 2)
    >>> eq = solve_equilibrium(g)
    >>> M = acceptance_matrix(g, eq.thresholds, eq.prices, 1)
    >>> bool(np.all(M <= g.Q[0])), float(g.start @ M.sum(axis=1)) == float(eq.trade_success[0])
    (True, True)
    """
    if not 1 <= i <= game.n:
        raise InvalidInputError(f"trade index must be in 1..{game.n!r}, got {i!r}")
    return game.Q[i - 1] * (thresholds[i][None, :] >= prices[i - 1][:, None])


def candidate_prices(next_thresholds: np.ndarray) -> np.ndarray:
    r"""Distinct non-negative thresholds of the next player, decreasing; ``[0.0]`` if there is none.

    Parameters
    ----------
    next_thresholds : ndarray, shape (L,)
        Thresholds :math:`u^*(i+1,\cdot)` of the next player.

    Returns
    -------
    ndarray
        The candidate prices (Eq. 17), decreasing.

    Examples
    --------
    >>> candidate_prices(np.array([-1.0, 2.0, 0.5, 2.0])).tolist()
    [2.0, 0.5]
    >>> candidate_prices(np.array([-1.0, -2.0])).tolist()
    [0.0]
    """
    c = np.unique(next_thresholds[next_thresholds >= 0])[::-1]
    return c if c.size else np.zeros(1)


def choose_price(
    gains: np.ndarray, prices: np.ndarray, values: np.ndarray | None = None, tie_rule: str = "lowest"
) -> np.ndarray:
    """Index of the chosen price per row: the lowest (or highest) among gains within the tie
    tolerance of the max.

    Parameters
    ----------
    gains : ndarray, shape (L, m)
        Gain of each value (row) for each candidate price (column).
    prices : ndarray, shape (m,)
        Candidate prices.
    values : ndarray, shape (L,), optional
        The values :math:`w_k` inside the gains (Eq. 8); the tolerance is
        ``TIE_RTOL * (|w_k| + max_c (gains[k, c] - w_k))``. Omitted: ``TIE_RTOL * max_c |gains[k, c]|``.
    tie_rule : {"lowest", "highest"}, default "lowest"
        Which of the tied prices wins.

    Returns
    -------
    ndarray of int, shape (L,)

    Examples
    --------
    Gains that differ by less than the tolerance tie and the lower price wins, at any scale:

    >>> p = np.array([2.0, 1.0])
    >>> choose_price(np.array([[3.0, 3.0 - 1e-15], [3.0, 2.0]]), p).tolist()
    [1, 0]
    >>> choose_price(1e-20 * np.array([[3.0, 3.0 - 1e-15], [3.0, 2.0]]), p).tolist()
    [1, 0]
    >>> choose_price(np.array([[3.0, 3.0 - 1e-15], [3.0, 2.0]]), p, tie_rule="highest").tolist()
    [0, 0]
    """
    return _choose(gains, prices, values, tie_rule)[0]


def _choose(
    gains: np.ndarray, prices: np.ndarray, values: np.ndarray | None, tie_rule: str
) -> tuple[np.ndarray, np.ndarray]:
    """(chosen column per row, whether the row has at least two maximising prices)."""
    check_tie_rule(tie_rule)
    gmax = gains.max(axis=1, keepdims=True)
    if values is None:
        size = np.abs(gains).max(axis=1, keepdims=True)
    else:
        w = np.asarray(values, dtype=float)[:, None]
        size = np.abs(w) + np.abs(gains - w).max(axis=1, keepdims=True)
    tol = TIE_RTOL * size
    ok = gains >= gmax - tol
    tied = ok.sum(axis=1) >= 2  # candidate prices are distinct
    if tie_rule == "lowest":
        return np.argmin(np.where(ok, prices[None, :], np.inf), axis=1), tied
    return np.argmax(np.where(ok, prices[None, :], -np.inf), axis=1), tied


# ----------------------------------------------------------------------------------------------
# fast backward DP
# ----------------------------------------------------------------------------------------------
def check_deadline(deadline: float | None, where: str) -> None:
    """Raise :class:`SolverLimitError` when the wall clock has passed ``deadline`` (perf_counter).

    Parameters
    ----------
    deadline : float or None
        A :func:`time.perf_counter` reading; None: no limit.
    where : str
        Where the clock is read, for the message.

    Raises
    ------
    SolverLimitError
        The deadline has passed.
    """
    if deadline is not None and time.perf_counter() > deadline:
        raise SolverLimitError(f"time limit reached {where}")


def backward_dp(
    game: ChainGame, tie_rule: str = "lowest", deadline: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    r"""The equilibrium by one backward pass (Eq. 9, 17, 18): thresholds, prices and future profit.

    For i = n−1..0 the gains of all candidate prices (the next player's distinct non-negative
    thresholds, Eq. 17) follow from cumulative sums over those thresholds sorted in decreasing
    order; the tie rule picks the price (:func:`choose_price`); then
    :math:`A_i = r^*_i\,t_{i+1,\cdot}^{\top} + M_i A_{i+1}` accumulates the future reallocated profit
    of all receivers at once.

    Parameters
    ----------
    game : ChainGame
    tie_rule : {"lowest", "highest"}, default "lowest"
    deadline : float, optional
        :func:`time.perf_counter` reading checked before every player (:func:`check_deadline`).

    Returns
    -------
    tuple
        ``u_star`` (n+1, L) thresholds, ``p_star`` (n, L) prices, ``l_star`` (n, L) price indices,
        ``r_star`` (n, L) one-shot profits, ``A`` (n+1, L, n+1) downstream profits and the number
        of tied decisions (the fields of :class:`~datamarkets.models.chain_equilibrium.ChainEquilibrium`).

    Raises
    ------
    SolverLimitError
        The deadline passed.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> u_star, p_star, l_star, r_star, A, ties = backward_dp(paper_model("paper-1", 3, "ave"))
    >>> u_star.shape, p_star.shape, A.shape
    ((4, 13), (3, 13), (4, 13, 4))
    """
    n, L = game.n, game.L
    ties = 0
    W, Q, t = game.values, game.Q, game.t
    u_star = np.empty((n + 1, L))
    p_star = np.zeros((n, L))
    l_star = np.full((n, L), -1, dtype=np.int64)
    r_star = np.zeros((n, L))
    A = np.zeros((n + 1, L, n + 1))
    u_star[n] = W  # u*(n, k) = w_k
    for i in range(n - 1, -1, -1):
        check_deadline(deadline, f"in the DP before player {i}")
        un = u_star[i + 1]
        Qi = Q[i]
        if np.any(un >= 0):
            order = np.argsort(-un, kind="stable")  # decreasing thresholds of player i+1
            us = un[order]
            # a price equal to us[m] is accepted by every l up to the end of its tie group
            end = np.searchsorted(-us, -us, side="right") - 1
            cand = np.flatnonzero((us >= 0) & (np.arange(L) == end))  # one position per distinct price
            pc = us[cand]
            Qs = np.take(
                Qi, order, axis=1
            )  # C-ordered gather (fancy indexing of a broadcast view is F-ordered)
            acc = np.cumsum(Qs, axis=1)[:, cand]  # P(buyer accepts pc | v_i = w_k)
            fut = np.cumsum(Qs * A[i + 1, order, i][None, :], axis=1)[:, cand]
            gains = W[:, None] + t[i, i] * pc[None, :] * acc + fut  # Eq. 8 over candidates (Eq. 17)
            pick, tied = _choose(gains, pc, W, tie_rule)
            ties += int(tied.sum())
            u_star[i] = gains[np.arange(L), pick]
            p_star[i] = pc[pick]
            start = np.searchsorted(-us, -us, side="left")  # first position of each tie group
            l_star[i] = order[start[cand[pick]]]  # smallest value index holding the price
        else:
            u_star[i] = W  # nobody downstream buys: price 0, gain w_k
        M = Qi * (un[None, :] >= p_star[i][:, None])  # acceptance-weighted transition of trade i+1
        r_star[i] = p_star[i] * M.sum(axis=1)  # Eq. 18
        m = i + 1  # receivers 0..i are the only ones paid by trades i+1..n (Def. 2.6 keeps m <= i)
        # einsum, not BLAS: multithreaded BLAS on these thin products stalls on a loaded machine
        A[i, :, :m] = r_star[i][:, None] * t[i, :m][None, :] + np.einsum("kl,lm->km", M, A[i + 1, :, :m])
    return u_star, p_star, l_star, r_star, A, ties


# ----------------------------------------------------------------------------------------------
# exact expectations by forward propagation
# ----------------------------------------------------------------------------------------------
def expectations(game: ChainGame, thresholds: np.ndarray, prices: np.ndarray) -> dict[str, Any]:
    """Exact SW, TV, per-trade success and per-player utility of a threshold/price profile.

    Parameters
    ----------
    game : ChainGame
    thresholds : ndarray, shape (n+1, L)
    prices : ndarray, shape (n, L)
        Any threshold/price profile (not necessarily an equilibrium).

    Returns
    -------
    dict
        ``alive`` (n+1, L), ``trade_success`` (n,), ``trade_success_conditional`` (n,),
        ``payments`` (n,), ``player_utility`` (n+1,), ``social_welfare``, ``transaction_volume``,
        ``one_shot_profit`` (n, L).

    Examples
    --------
    A profile where nobody ever buys leaves player 0's value only:

    >>> from datamarkets.models.chain_valuations import paper_model
    >>> g = paper_model("paper-4", 2)
    >>> ex = expectations(g, np.full((3, g.L), -1.0), np.ones((2, g.L)))
    >>> ex["transaction_volume"], ex["social_welfare"]
    (0.0, 0.0)
    """
    n, L = game.n, game.L
    W, t = game.values, game.t
    alive = np.zeros((n + 1, L))
    alive[0] = game.start
    r = np.zeros((n, L))
    for i in range(1, n + 1):
        M = acceptance_matrix(game, thresholds, prices, i)
        r[i - 1] = prices[i - 1] * M.sum(axis=1)
        alive[i] = alive[i - 1] @ M
    success = alive[1:].sum(axis=1)
    prev = np.concatenate(([1.0], success[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = np.where(prev > 0, success / np.where(prev > 0, prev, 1.0), np.nan)
    payments = np.einsum("il,il->i", alive[:-1], r)  # E[p_{i-1} y_i], i = 1..n
    value = alive @ W  # E[v_i y_i]
    utility = value.copy()
    utility[1:] -= payments
    utility += payments @ t  # reallocated shares, Eq. 2
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
