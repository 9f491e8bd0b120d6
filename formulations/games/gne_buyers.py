r"""The competing data buyers' game (Westenbroek et al., §III) written as a :class:`CvxpyGame`.

Buyer :math:`k` chooses its contract coefficients :math:`d^k \ge 0` on the sources it pays
(:math:`U_k`). By Lemma 1 (see :mod:`datamarkets.formulations.gne_best_response`) its best response
minimises, per source :math:`q`, :math:`c_q s_q - \ln(s_q)/(2\alpha_q)` in the induced variance
:math:`s_q = 1/(2\alpha_q t_q)`, :math:`t_q = d_q^k + D_q^{-k}`, with
:math:`c_q = \tilde\gamma_q^k + K_q^k` and :math:`K^k, D^{-k}` affine in the others' :math:`d^{-k}`.
In :math:`s` that program is convex but the others enter through :math:`d`; in the buyer's own
variable :math:`t` it is :math:`(c_q/t_q + \ln t_q)/(2\alpha_q)`, only quasi-convex, with the unique
minimiser :math:`t_q = c_q` (Lemma 1's first-order condition :math:`1/(2\alpha_q s_q) = c_q`). The
game below gives buyer :math:`k` the exponential-cone program with the same unique minimiser

.. math::

    \min_{\delta^k \ge 0,\ \tau^k}\ \sum_{q \in U_k} \tau_q - \frac{c_q}{r_q}\ln \tau_q
    \quad\text{s.t.}\quad \tau_q = \delta_q^k + D_q^{-k}/r_q,

in the scaled variables :math:`\delta^k = d^k/r`, :math:`\tau = t/r` (:math:`r_q = \sum_k
\tilde\gamma_q^k`, so both are O(1) whatever the market's scale). :math:`c_q/r_q` is affine in the
others' :math:`\delta^{-k}` with non-negative coefficients, so the program is DPP. Its best response
:math:`d_q^k = c_q - D_q^{-k} = \tilde\gamma_q^k + \sum_{j\ne k}\sum_{l\ne q, l\in U_k} d_l^j\xi^j_{l,q}`
is one block of (25); the best-response map, hence the set of Nash equilibria, is the buyers'
game's (the objective values are not Lemma 1's: certificate gaps are gaps of this program).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games.cvxpy_players import CvxpyGame, Player, cvxpy_game
from datamarkets.models.gne_equilibrium import as_gne_inputs

__all__ = ["buyers_d", "buyers_x", "gne_buyers_game"]


def gne_buyers_game(inputs: Any) -> CvxpyGame:
    """The buyers' game as cvxpy players (see module docstring).

    Parameters
    ----------
    inputs : GNEInputs, MarketCoefficients-like, or estimation-market graph

    Returns
    -------
    CvxpyGame
        Player ``k`` (named after the buyer) owns ``d[k]`` (:math:`\\delta^k = d^k/r` on
        :math:`U_k`, non-negative) and ``tau[k]``. ``game.meta`` holds ``inputs`` and ``r``; map
        profiles with :func:`buyers_d` / :func:`buyers_x`.

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_equilibrium import GNEInputs
    >>> from datamarkets.formulations.games.cvxpy_routes import solve_cvxpy_game
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)
    >>> game = gne_buyers_game(GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2)))
    >>> res = solve_cvxpy_game(game, x0=buyers_x(game, np.ones((2, 2))))
    >>> res.status.value, buyers_d(game, res.solution["x"]).round(6).tolist()
    ('optimal', [[2.0, 2.0], [2.0, 2.0]])
    """
    import cvxpy as cp

    inp = as_gne_inputs(inputs)
    K, U = inp.K, inp.uses
    g = inp.gamma_tilde
    r = g.sum(axis=0)
    pos = r[r > 0]
    r = np.where(r > 0, r, pos.mean() if pos.size else 1.0)
    idx = [np.flatnonzero(U[k]) for k in range(K)]
    delta = [cp.Variable(len(idx[k]), nonneg=True, name=f"d[{inp.buyers[k]}]") for k in range(K)]
    tau = [cp.Variable(len(idx[k]), name=f"tau[{inp.buyers[k]}]") for k in range(K)]
    xi = inp.xi_full  # xi^j_{l,q} on used pairs, 1 on the diagonal
    players = []
    for k in range(K):
        uk = idx[k]
        rk = r[uk]
        c_over_r: Any = g[k, uk] / rk  # (gamma_tilde + K)/r, affine in the others' delta
        D_over_r: Any = 0.0
        for j in range(K):
            if j == k:
                continue
            uj = idx[j]
            # K_q^k / r_q = sum_{l in U_k ∩ U_j} delta_l^j r_l xi^j_{l,q} / r_q
            M = (r[uj, None] * xi[j][np.ix_(uj, uk)] / rk[None, :]) * U[k, uj][:, None]
            if np.any(M):
                c_over_r = c_over_r + M.T @ delta[j]
            S = (uj[None, :] == uk[:, None]).astype(float)  # D_q^{-k}: q in U_k ∩ U_j
            if np.any(S):
                D_over_r = D_over_r + S @ delta[j]
        obj = cp.sum(tau[k]) - cp.sum(cp.multiply(c_over_r, cp.log(tau[k])))
        players.append(
            Player(
                [delta[k], tau[k]], cp.Minimize(obj), [tau[k] == delta[k] + D_over_r], name=str(inp.buyers[k])
            )
        )
    game = cvxpy_game(players)
    game.meta.update({"inputs": inp, "r": r, "uses_index": idx})
    return game


def buyers_d(game: CvxpyGame, x: ArrayLike) -> NDArray[np.float64]:
    """Contract coefficients ``d`` (K, N) of a profile of :func:`gne_buyers_game` (0 on unused pairs)."""
    inp, r, idx = game.meta["inputs"], game.meta["r"], game.meta["uses_index"]
    blocks = game.split(x)
    d = np.zeros((inp.K, inp.N))
    for k, uk in enumerate(idx):
        d[k, uk] = r[uk] * blocks[k][: len(uk)]
    return d


def buyers_x(game: CvxpyGame, d: ArrayLike) -> NDArray[np.float64]:
    """The stacked profile of :func:`gne_buyers_game` for contract coefficients ``d`` (K, N).

    Raises
    ------
    InvalidInputError
        ``d`` of the wrong shape or non-finite.
    """
    inp, r, idx = game.meta["inputs"], game.meta["r"], game.meta["uses_index"]
    d = np.asarray(d, dtype=float)
    if d.shape != (inp.K, inp.N) or not np.all(np.isfinite(d)):
        raise InvalidInputError(f"d must be a finite array of shape {(inp.K, inp.N)!r}")
    dm = np.where(inp.uses, d, 0.0)
    D = dm.sum(axis=0)
    parts = []
    for k, uk in enumerate(idx):
        parts += [dm[k, uk] / r[uk], D[uk] / r[uk]]  # delta^k, tau^k = (d^k + D^{-k})/r
    return np.concatenate(parts)
