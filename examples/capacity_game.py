r"""Data sellers sharing bandwidth: a generalized Nash game with shared capacity constraints.

No paper of the project covers this market; it is written here in a few lines on the games layer
(cvxpy players), to show what the layer does for a model nobody hand-derived.

Model
-----
Seller ``i`` streams data at rate ``x_i ≥ 0`` into one data market with linear inverse demand
``P(X) = a − b X``, ``X = Σ_j x_j``, at cost ``c_i x_i + d_i x_i²/2``. Its data travels over the links
of its route ``L_i``; link ``ℓ`` has bandwidth ``C_ℓ`` shared by every seller routed over it::

    max_{x_i ≥ 0}  (a − b X) x_i − c_i x_i − d_i x_i²/2     s.t.  Σ_{j : ℓ ∈ L_j} x_j ≤ C_ℓ  ∀ℓ ∈ L_i.

The capacity rows couple the sellers' *feasible sets*: a generalized Nash game, with a continuum
of equilibria in general. The *variational* equilibrium (``variational=True``) is the one where
every seller on a link faces the same shadow price ``λ_ℓ`` — a congestion price a link operator
could charge — and it is unique here (the pseudo-gradient ``b(I + 11ᵀ) + diag(d)`` is positive
definite). The layer's certificate checks exactly that: KKT residuals of every seller plus
``multiplier_spread_max`` (equal multipliers on each shared row).

Symmetric closed form (one link, ``n`` identical sellers): the unconstrained Cournot rate is
``q* = (a − c)/(b(n + 1) + d)``; if ``n q* > C`` the link binds, ``x_i = C/n`` and, from each
seller's first-order condition ``a − bX − b x_i − c − d x_i = λ``, ``λ = a − c − bC − (b + d)C/n``.

Examples
--------
>>> r = solve_capacity_game(capacity_game([[0], [0], [0]], [3.0], a=10, b=1, cost=1))
>>> [round(v, 6) for v in r.solution["x"]], [round(v, 6) for v in r.solution["lambda"]], r.certified
([1.0, 1.0, 1.0], [5.0], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cvxpy as cp
import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games import CvxpyGame, Player, cvxpy_game, solve_cvxpy_game
from datamarkets.result import Result

__all__ = ["capacity_game", "solve_capacity_game", "symmetric_capacity_equilibrium"]


def capacity_game(
    routes: Sequence[Sequence[int]],
    capacity: Sequence[float],
    *,
    a: float,
    b: float,
    cost: Any = 0.0,
    quad_cost: Any = 0.0,
) -> CvxpyGame:
    """The bandwidth-sharing game (module docstring): seller ``i`` uses the links ``routes[i]``.

    Raises
    ------
    InvalidInputError
        A route naming an unknown link, ``b ≤ 0``, negative costs or capacities.
    """
    N, C = len(routes), np.asarray(capacity, dtype=float)
    c, d = np.broadcast_to(np.asarray(cost, float), N), np.broadcast_to(np.asarray(quad_cost, float), N)
    if b <= 0 or np.any(C < 0) or np.any(c < 0) or np.any(d < 0):
        raise InvalidInputError("need b > 0 and non-negative capacities and costs")
    if any(not 0 <= ell < C.size for r in routes for ell in r):
        raise InvalidInputError(f"a route names a link outside 0..{C.size - 1}")
    x = [cp.Variable(nonneg=True, name=f"rate{i}") for i in range(N)]

    def profit(i: int) -> Any:  # (a − b X) x_i − c_i x_i − d_i x_i²/2, written DCP in x_i
        others = sum(x[j] for j in range(N) if j != i)
        return (a - c[i]) * x[i] - (b + d[i] / 2) * cp.square(x[i]) - b * others * x[i]

    players = [Player([x[i]], cp.Maximize(profit(i))) for i in range(N)]
    links = [ell for ell in range(C.size) if any(ell in r for r in routes)]
    shared = [cp.sum(cp.hstack([x[i] for i in range(N) if ell in routes[i]])) <= C[ell] for ell in links]
    return cvxpy_game(players, shared, names=[f"seller{i}" for i in range(N)])


def solve_capacity_game(game: CvxpyGame, **options: Any) -> Result:
    """The variational equilibrium with its certificate (``solve_cvxpy_game(..., variational=True)``)."""
    return solve_cvxpy_game(game, "auto", variational=True, **options)


def symmetric_capacity_equilibrium(
    n: int, *, a: float, b: float, c: float, d: float = 0.0, capacity: float
) -> dict[str, float]:
    """Closed form for ``n`` identical sellers on one link: rate per seller and the link price λ.

    Examples
    --------
    >>> symmetric_capacity_equilibrium(3, a=10, b=1, c=1, capacity=3)
    {'rate': 1.0, 'link_price': 5.0}
    """
    q = max(0.0, a - c) / (b * (n + 1) + d)
    if n * q <= capacity:
        return {"rate": q, "link_price": 0.0}
    return {"rate": capacity / n, "link_price": a - c - b * capacity - (b + d) * capacity / n}
