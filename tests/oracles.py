"""Independent reference implementations (oracles) shared by the tests.

Each oracle recomputes a quantity the package computes, from the paper's definition and by a second
algorithm (bisection instead of a QP, explicit loops instead of vectorised operators, enumeration of
every path instead of dynamic programming). None of them imports or calls ``datamarkets``: they read
plain arrays, or the public data attributes of the objects they are given (a valuation's ``a``, ``b``,
``unit_price`` and ``demand``; a chain game's ``n``, ``L``, ``values``, ``start``, ``Q``, ``t``), so a
bug in the code under test cannot leak into the expected value.

Papers (``shared/papers``): *psp-data-share-market* (auction welfare), *competing-data-buyers-gne*
(Leontief system (25)-(26)), *chain-data-trading-profit-reallocation* (utilities (2), Eqs. (8)-(9)).

Import from a test file as ``from oracles import ...`` (``tests/`` has no ``__init__.py``: pytest puts
it on ``sys.path``, as for ``conftest.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "chain_brute_force_equilibrium",
    "chain_brute_force_expectations",
    "chain_path_gain",
    "greedy_linear_welfare",
    "highest_argmax",
    "leontief_matrix_by_loops",
    "leontief_solution_dense",
    "lowest_argmax",
    "quadratic_water_filling",
    "two_firm_closed_form",
    "two_firm_social_losses",
    "water_fill_price",
]


# ---------------------------------------------------------------------------- auction welfare
def water_fill_price(demand_at: Callable[[float], Iterable[float]], S: float, p_hi: float) -> float:
    """Common clearing price of one resource of supply ``S``, by bisection.

    The welfare optimum of buyers sharing one resource (psp-data-share-market, §4.3.3) prices it at
    the λ where the buyers' demands exhaust the supply, ``Σ_i z_i(λ) = S``, or at 0 when the demands at
    price 0 fit (``Σ_i z_i(0) ≤ S``): the KKT conditions of ``max Σ_i v_i(z_i)``, ``Σ_i z_i ≤ S``.

    Parameters
    ----------
    demand_at : callable
        ``demand_at(λ)`` → the buyers' demands at unit price λ (non-increasing in λ).
    S : float
        Supply.
    p_hi : float
        A price at which the total demand is at most ``S`` (the bisection's upper end).

    Returns
    -------
    float
        λ, within ``p_hi · 2**-200`` (200 bisection steps).
    """
    if sum(demand_at(0.0)) <= S:
        return 0.0
    lo, hi = 0.0, p_hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if sum(demand_at(mid)) > S:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def quadratic_water_filling(a: Any, b: Any, S: float) -> tuple[float, float, np.ndarray]:
    """Welfare optimum of quadratic buyers sharing one supply, by water-filling.

    ``max Σ_i a_i x_i − b_i x_i²/2`` subject to ``Σ_i x_i ≤ S``, ``x ≥ 0`` (each valuation flat past
    its satiation ``a_i/b_i``): ``x_i(λ) = max(0, (a_i − λ)/b_i)`` at the clearing price λ of
    :func:`water_fill_price`.

    Parameters
    ----------
    a, b : array_like
        Marginal values at zero and curvatures (``b > 0``).
    S : float
        Supply.

    Returns
    -------
    welfare : float
        ``Σ_i a_i x_i − b_i x_i²/2`` at the optimum.
    price : float
        The clearing price λ.
    x : numpy.ndarray
        The optimal amounts.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def demand(lam: float) -> np.ndarray:
        return np.maximum(0.0, (a - lam) / b)

    lam = water_fill_price(demand, S, float(a.max()))
    x = demand(lam)
    return float(np.sum(a * x - b * x**2 / 2)), lam, x


def greedy_linear_welfare(valuations: Iterable[Any], S: float) -> float:
    """Welfare optimum of linear buyers sharing one supply: serve the highest unit prices first.

    ``max Σ_i p_i min(x_i, D_i)`` subject to ``Σ_i x_i ≤ S`` is a fractional knapsack, solved exactly
    by the greedy order of unit prices.

    Parameters
    ----------
    valuations : iterable
        Objects with ``unit_price`` (p_i) and ``demand`` (D_i).
    S : float
        Supply.

    Returns
    -------
    float
        The optimal welfare.
    """
    left, W = float(S), 0.0
    for v in sorted(valuations, key=lambda v: -v.unit_price):
        q = min(v.demand, left)
        W += v.unit_price * q
        left -= q
    return W


# ---------------------------------------------------------------------------- GNE: Leontief system
def leontief_matrix_by_loops(gamma: Any, xi: Any, uses: Any = None) -> np.ndarray:
    """The matrix A of the Leontief system, entry by entry from Eq. (25) (competing-data-buyers-gne).

    ``d_q^k = γ_q^k + Σ_{j≠k} Σ_{l≠q, l ∈ U_k} ξ^j_{l,q} d_l^j``: row ``k·N + q`` (buyer k, source q)
    has ``ξ^j_{l,q}`` in column ``j·N + l`` for every other buyer j and other source l that buyers k
    and j both use (and j uses q); rows of sources k does not use are zero.

    Parameters
    ----------
    gamma : array_like
        ``(K, N)``; only its shape is read.
    xi : array_like
        ``(K, N, N)`` noise coefficients ``ξ^j_{l,q}``.
    uses : array_like of bool, optional
        ``(K, N)`` which buyer uses which source (default: every one).

    Returns
    -------
    numpy.ndarray
        ``(K·N, K·N)`` matrix A.
    """
    K, N = np.shape(gamma)
    xi = np.asarray(xi, dtype=float)
    U = np.ones((K, N), bool) if uses is None else np.asarray(uses, bool)
    A = np.zeros((K * N, K * N))
    for k in range(K):
        for q in range(N):
            if not U[k, q]:
                continue
            for j in range(K):
                for l in range(N):
                    if j != k and l != q and U[k, l] and U[j, l] and U[j, q]:
                        A[k * N + q, j * N + l] = xi[j, l, q]
    return A


def leontief_solution_dense(gamma: Any, xi: Any, uses: Any = None) -> np.ndarray:
    """Demands d solving Eq. (26), ``(I − A) d = γ``, by a dense solve with A of Eq. (25).

    Parameters
    ----------
    gamma : array_like
        ``(K, N)`` right-hand side (the normalised ``γ̃`` when the buyers' ``η`` differ).
    xi : array_like
        ``(K, N, N)`` noise coefficients.
    uses : array_like of bool, optional
        ``(K, N)`` which buyer uses which source (default: every one).

    Returns
    -------
    numpy.ndarray
        ``(K, N)`` demands ``d``.
    """
    gamma = np.asarray(gamma, dtype=float)
    K, N = gamma.shape
    A = leontief_matrix_by_loops(gamma, xi, uses)
    return np.linalg.solve(np.eye(K * N) - A, gamma.reshape(-1)).reshape(K, N)


def two_firm_closed_form(x1: Any, x2: Any = 1) -> dict[str, Any]:
    """The two-firm example of §IV (competing-data-buyers-gne) derived by hand.

    Two symmetric firms fit a line through sources at ``x1`` and ``x2`` (test points uniform on
    [-1, 1], α = 1, δ = 0): the weights of the interpolating line give
    ``γ_1 = (1/3 + x2²)/(x1 − x2)²`` and ``γ_2 = (1/3 + x1²)/(x1 − x2)²``; the minimum-norm fit
    through one source gives ``ξ_{1,2} = (x1 x2 + 1)²/(x2² + 1)²`` and
    ``ξ_{2,1} = (x1 x2 + 1)²/(x1² + 1)²``; Eq. (25) for symmetric firms reads
    ``d_1 = γ_1 + ξ_{2,1} d_2``, ``d_2 = γ_2 + ξ_{1,2} d_1``, and ``ρ(A) = sqrt(ξ_{1,2} ξ_{2,1})``.

    Parameters
    ----------
    x1, x2 : float or mpmath.mpf
        Source locations; the arithmetic is that of ``x1`` (pass ``mpmath.mpf`` near collapse).

    Returns
    -------
    dict
        ``g1``, ``g2``, ``xi12``, ``xi21``, ``d1``, ``d2`` (each firm's demand from sources 1 and 2)
        and ``rho``.
    """
    third = (x1 - x1 + 1) / 3  # 1/3 in x1's arithmetic
    g1 = (third + x2**2) / (x1 - x2) ** 2  # E[(x* - x2)^2]/(x1 - x2)^2
    g2 = (third + x1**2) / (x1 - x2) ** 2
    xi12 = (x1 * x2 + 1) ** 2 / (x2**2 + 1) ** 2  # noise of s2 in the fit through s2 alone, at x1
    xi21 = (x1 * x2 + 1) ** 2 / (x1**2 + 1) ** 2
    d1 = (g1 + xi21 * g2) / (1 - xi12 * xi21)
    d2 = g2 + xi12 * d1
    return {"g1": g1, "g2": g2, "xi12": xi12, "xi21": xi21, "d1": d1, "d2": d2, "rho": (xi12 * xi21) ** 0.5}


def two_firm_social_losses(x1: Any, x2: Any = 1) -> tuple[Any, Any, Any]:
    """Social loss at the GNE and at the optimum, and the price of anarchy, of the two-firm example.

    From the definitions, in ``mpmath``: d from :func:`two_firm_closed_form`, the equilibrium efforts
    of (17) and the optimal efforts of (28), the loss of Definition 2 with α = 1, δ = 0, η = 1. With
    two firms, each source's Γ = 2γ and D = 2d, so the loss per source is ``Γ/(2D) + ln(2D)/2`` at
    the equilibrium and ``1/2 + ln(2Γ)/2`` at the optimum.

    Parameters
    ----------
    x1, x2 : float or mpmath.mpf
        Source locations.

    Returns
    -------
    tuple of mpmath.mpf
        ``(L(e*), L(ê), L(e*)/L(ê))``.
    """
    import mpmath as mp

    c = two_firm_closed_form(mp.mpf(x1), mp.mpf(x2))
    loss_eq = loss_opt = mp.mpf(0)
    for g, d in ((c["g1"], c["d1"]), (c["g2"], c["d2"])):
        G, D = 2 * g, 2 * d  # two firms
        loss_eq += G / (2 * D) + mp.log(2 * D) / 2  # Gamma sigma^2(e*) + e*
        loss_opt += mp.mpf(1) / 2 + mp.log(2 * G) / 2  # at (28): Gamma sigma^2 = 1/2
    return loss_eq, loss_opt, loss_eq / loss_opt


# ---------------------------------------------------------------------------- chain equilibrium
def lowest_argmax(gains: Sequence[float], prices: Sequence[float], w: float) -> float:
    """The documented tie rule of Eq. (9): gains within ``1e-12 (|w| + max|g − w|)`` tie; lowest price wins.

    Parameters
    ----------
    gains, prices : sequence of float
        ``g_i(v_i, p)`` for each candidate price ``p``.
    w : float
        The player's own value ``v_i`` (the scale of the tolerance).

    Returns
    -------
    float
        The selected price.
    """
    m = max(gains)
    tol = 1e-12 * (abs(w) + max(abs(g - w) for g in gains))
    return min(p for g, p in zip(gains, prices, strict=True) if g >= m - tol)


def highest_argmax(gains: Sequence[float], prices: Sequence[float], w: float) -> float:
    """The other selection of Eq. (9): ties as in :func:`lowest_argmax`, highest price wins.

    Parameters
    ----------
    gains, prices : sequence of float
        ``g_i(v_i, p)`` for each candidate price ``p``.
    w : float
        The player's own value.

    Returns
    -------
    float
        The selected price.
    """
    m = max(gains)
    tol = 1e-12 * (abs(w) + max(abs(g - w) for g in gains))
    return max(p for g, p in zip(gains, prices, strict=True) if g >= m - tol)


def chain_path_gain(game: Any, T: np.ndarray, P: np.ndarray, i: int, k: int, p: float) -> float:
    """``g_i(v_i = W_k, p_i = p)`` of Eq. (8) by enumerating every path ``v_{i+1..n}``.

    Downstream players play thresholds ``T`` (a trade succeeds when the buyer's threshold is at least
    the price) and prices ``P``; player i receives ``t_{j,i} p_{j−1}`` from each later trade j that
    succeeds along with every trade before it.

    Parameters
    ----------
    game : object
        With ``n``, ``L``, ``values`` (W), ``Q`` (transition matrices) and ``t`` (mechanism).
    T : numpy.ndarray
        ``(n+1, L)`` thresholds ``s̃_j`` of players ``j > i``.
    P : numpy.ndarray
        ``(n, L)`` prices ``p̃_j`` of players ``j > i``.
    i, k : int
        Player and index of its value.
    p : float
        Player i's price.

    Returns
    -------
    float
        The expected gain.
    """
    n, L, W, Q, t = game.n, game.L, game.values, game.Q, game.t
    total = float(W[k])
    for path in itertools.product(range(L), repeat=n - i):
        prob, prev, alive, price, ret = 1.0, k, True, p, 0.0
        for step, l in enumerate(path):
            j = i + 1 + step  # buyer of trade j
            prob *= Q[j - 1, prev, l]
            alive = alive and T[j, l] >= price
            if alive:
                ret += t[j - 1, i] * price
            if j < n:
                price = P[j, l]
            prev = l
        total += prob * ret
    return total


def chain_brute_force_equilibrium(game: Any, rule: str = "lowest") -> tuple[np.ndarray, np.ndarray]:
    """Chain equilibrium by backward induction, Eq. (8) by path enumeration and Eq. (9) over the
    candidate prices (the next player's non-negative thresholds, or 0).

    Parameters
    ----------
    game : object
        As in :func:`chain_path_gain`.
    rule : {"lowest", "highest"}
        Tie rule (:func:`lowest_argmax` or :func:`highest_argmax`).

    Returns
    -------
    T : numpy.ndarray
        ``(n+1, L)`` thresholds ``s̃_i(W_k)``.
    P : numpy.ndarray
        ``(n, L)`` prices ``p̃_i(W_k)``.
    """
    n, L, W = game.n, game.L, game.values
    T = np.zeros((n + 1, L))
    P = np.zeros((n, L))
    T[n] = game.values
    for i in range(n - 1, -1, -1):
        nxt = T[i + 1]
        cands = sorted({float(x) for x in nxt if x >= 0}) or [0.0]
        for k in range(L):
            gains = [chain_path_gain(game, T, P, i, k, p) for p in cands]
            P[i, k] = (
                lowest_argmax(gains, cands, W[k]) if rule == "lowest" else highest_argmax(gains, cands, W[k])
            )
            T[i, k] = gains[cands.index(P[i, k])]
    return T, P


def chain_brute_force_expectations(game: Any, T: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected utilities ``E[U_i]`` (Eq. 2) and per-trade success by enumerating full paths v_0..v_n.

    Parameters
    ----------
    game : object
        As in :func:`chain_path_gain`, plus ``start`` (the distribution of v_0).
    T, P : numpy.ndarray
        Thresholds and prices, as returned by :func:`chain_brute_force_equilibrium`.

    Returns
    -------
    U : numpy.ndarray
        ``(n+1,)`` expected utilities (their sum is the social welfare).
    success : numpy.ndarray
        ``(n,)`` probability that trades 1..j all succeed, for each j.
    """
    n, L, W, Q, t = game.n, game.L, game.values, game.Q, game.t
    U = np.zeros(n + 1)
    succ = np.zeros(n)
    for path in itertools.product(range(L), repeat=n + 1):
        prob = game.start[path[0]]
        for j in range(1, n + 1):
            prob *= Q[j - 1, path[j - 1], path[j]]
        if prob == 0:
            continue
        y = [True]
        pay = [0.0]
        for j in range(1, n + 1):
            price = P[j - 1, path[j - 1]]
            y.append(y[-1] and T[j, path[j]] >= price)
            pay.append(price if y[-1] else 0.0)
        for i in range(n + 1):
            u = (W[path[i]] - pay[i]) * y[i] + sum(t[j - 1, i] * pay[j] for j in range(i + 1, n + 1))
            U[i] += prob * u
        succ += prob * np.array(y[1:], dtype=float)
    return U, succ
