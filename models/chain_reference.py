r"""The paper's literal Algorithms 1–3 (Appendix B): the reference route, :math:`O(n^2L^4)`.

Algorithm 1 runs the backward DP over players :math:`i=n-1,\dots,0` and values :math:`k`; for each it
calls Algorithm 2, which enumerates the candidate prices :math:`u^*(i+1,k')\ge 0` and evaluates each
with Algorithm 3: a forward DP over :math:`s_{i,k,k'}(j,l)=\Pr[Y(j,l)]` (Eq. 22–23) followed by the
one-shot and future reallocated profit (Eq. 19–21, 25). Only the innermost sums over
:math:`l,l'` (line 8 of Algorithm 3) are vectorised, as one vector–matrix product per step.

Tie rules are those of :mod:`datamarkets.models.chain_equilibrium` (lowest maximising price,
``TIE_RTOL``). This module exists to be compared against the fast route; do not use it for
large games.
"""

from __future__ import annotations

import numpy as np

from datamarkets.models.chain_equilibrium import choose_price
from datamarkets.models.chain_game import ChainGame

__all__ = ["expected_utility", "optimal_strategy", "reference_expectations", "solve_reference"]


def expected_utility(
    game: ChainGame, i: int, k: int, kp: int, u_star: np.ndarray, p_star: np.ndarray, r_star: np.ndarray
) -> float:
    """Algorithm 3: :math:`u(i,k,k')=g_i(w_k,u^*(i+1,k'))` by the nested forward DP.

    Parameters
    ----------
    game : ChainGame
    i, k, kp : int
        Seller, its value index, and the index k' of the candidate price :math:`u^*(i+1,k')`.
    u_star, p_star, r_star : ndarray
        Thresholds, prices and one-shot profits already computed for players > i.

    Returns
    -------
    float
        One-shot profit plus future reallocated profit (lines 13–15), including :math:`w_k`.
    """
    n = game.n
    Q, t, W = game.Q, game.t, game.values
    price = u_star[i + 1, kp]
    # line 2-3: s(i+1, l) = 1{u*(i+1,l) >= u*(i+1,k')} q_{i+1,k,l}
    s = (u_star[i + 1] >= price) * Q[i, k]
    success = float(s.sum())  # line 13
    one_shot = W[k] + t[i, i] * price * success  # line 14
    future = 0.0
    for j in range(i + 1, n):  # line 6-12 and 15 (trade j+1 has seller j)
        future += float(s @ r_star[j]) * t[j, i]
        s = s @ (Q[j] * (u_star[j + 1][None, :] >= p_star[j][:, None]))  # line 8
    return one_shot + future


def optimal_strategy(
    game: ChainGame, i: int, k: int, u_star: np.ndarray, p_star: np.ndarray, r_star: np.ndarray
) -> tuple[float, int]:
    """Algorithm 2: best candidate price of player i at value w_k.

    Returns
    -------
    tuple of (float, int)
        ``(u*(i,k), l*(i,k))``; ``l* = -1`` when player i+1 has no non-negative threshold.
    """
    cands = np.flatnonzero(u_star[i + 1] >= 0)  # line 2
    if cands.size == 0:
        return float(game.values[k]), -1  # line 3-4
    gains = np.array([expected_utility(game, i, k, kp, u_star, p_star, r_star) for kp in cands])
    pick = int(choose_price(gains[None, :], u_star[i + 1, cands])[0])  # line 11, lowest price on ties
    return float(gains[pick]), int(cands[pick])


def solve_reference(game: ChainGame) -> tuple[np.ndarray, ...]:
    """Algorithm 1. Returns ``(u_star, p_star, l_star, r_star, A)`` like the fast route.

    ``A`` (downstream reallocated profit, shape (n+1, L, n+1)) is obtained here by forward
    propagation of the trade-alive distribution from every (player, value), independently of the
    fast route's backward accumulation.
    """
    n, L = game.n, game.L
    Q, W = game.Q, game.values
    u_star = np.empty((n + 1, L))
    p_star = np.zeros((n, L))
    l_star = np.full((n, L), -1, dtype=np.int64)
    r_star = np.zeros((n, L))
    u_star[n] = W  # line 2
    for i in range(n - 1, -1, -1):  # line 3
        for k in range(L):  # line 4
            u_star[i, k], l_star[i, k] = optimal_strategy(game, i, k, u_star, p_star, r_star)
            if l_star[i, k] != -1:  # line 7-9
                p_star[i, k] = u_star[i + 1, l_star[i, k]]
                r_star[i, k] = p_star[i, k] * float(Q[i, k] @ (u_star[i + 1] >= p_star[i, k]))
            else:  # line 11-13
                p_star[i, k] = 0.0
                r_star[i, k] = 0.0
    A = _downstream_forward(game, p_star, u_star, r_star)
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

    Returns
    -------
    dict
        The keys of :func:`datamarkets.models.chain_equilibrium.expectations`.
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
