r"""Continuous Markov valuations and their Algorithm-4 discretisation (paper §3.3, Appendix C.4).

Two walks on a support :math:`[L_0,H_0]` (the same for every player, Theorem 3.8):

* :class:`LogNormalWalk` — multiplicative: :math:`\ln v_i=\ln v_{i-1}+\mu+\sigma Z`, truncated to
  :math:`[L_0,H_0]` with :math:`L_0>0`;
* :class:`TruncatedNormalWalk` — additive: :math:`v_i=v_{i-1}+\mu+\sigma Z`, truncated to
  :math:`[L_0,H_0]`.

Algorithm 4 with the proof's (C.4) indexing: grid step

.. math::  \varepsilon_0=\frac{\min(\varepsilon,1)}{4(1+nK_0)(1+\max(0,-L_0))}\ (H_0>0),\qquad
           \varepsilon_0=\varepsilon/2\ (H_0\le 0),

grid size :math:`L=\lfloor (H_0-L_0)/\varepsilon_0\rfloor+1`, points :math:`w_l=L_0+l\varepsilon_0`
(:math:`l=0..L-1`), cells :math:`I_l=[w_l,w_{l+1})` (the last one closed at :math:`H_0`) and
:math:`q_{k,l}=F(w_{l+1}\mid w_k)-F(w_l\mid w_k)` with :math:`F(w_0\mid\cdot)=0`, :math:`F(w_L\mid\cdot)=1`.
The printed Algorithm 4 (line 10, 1-based) assigns :math:`(w_{l-1},w_l]` to :math:`w_l`; we follow the
proof, whose left-endpoint cells match the lifting :math:`k(v)=\lfloor(v-L_0)/\varepsilon_0\rfloor` of
Eq. 26. The paper's case split is ":math:`H_0>0`" in Algorithm 4 and ":math:`H_0\ge 0`" in the proof;
we use :math:`H_0>0`.

:math:`K_0` is the log-Lipschitz constant of Def. 3.7,
:math:`\sup_{v,a\in[L_0,H_0]}|\partial_a\ln f(v\mid a)|`. For both walks
:math:`\partial_a\ln f` is monotone in :math:`v` (so the sup over :math:`v` is at an end point) and we
take the sup over :math:`a` on a dense grid (``K0_GRID`` points) — a numerical supremum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from datamarkets.errors import InvalidInputError
from datamarkets.models.chain_game import ChainGame, MechanismSpec, mechanism_from_spec

__all__ = [
    "K0_GRID",
    "DiscretizedGame",
    "LogNormalWalk",
    "TruncatedNormalWalk",
    "discretize",
    "grid_step",
    "lift",
]

#: Number of points on which the supremum over the conditioning value a is taken for K_0.
K0_GRID = 4097
_SQRT2PI = math.sqrt(2.0 * math.pi)


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / _SQRT2PI


def _check_walk(mu: float, sigma: float, low: float, high: float) -> None:
    for name, x in (("mu", mu), ("sigma", sigma), ("low", low), ("high", high)):
        if not isinstance(x, (int, float, np.floating, np.integer)) or not math.isfinite(float(x)):
            raise InvalidInputError(f"walk parameter {name!r} must be a finite number, got {x!r}")
    if sigma <= 0:
        raise InvalidInputError(f"walk parameter 'sigma' must be positive, got {sigma!r}")
    if not low < high:
        raise InvalidInputError(f"support needs low < high, got low={low!r}, high={high!r}")


@dataclass(frozen=True)
class _TruncatedWalk:
    r"""A normal step in some coordinate :math:`z(v, a)`, truncated to ``[low, high]``.

    Subclasses give :math:`z` and :math:`c(a) = \partial z/\partial a` (constant in ``v``). With
    :math:`\alpha = z(L_0, a)`, :math:`\beta = z(H_0, a)` and :math:`Z = \Phi(\beta) - \Phi(\alpha)`,
    :math:`\ln f(v\mid a) = -z^2/2 + \ln \partial_v z - \ln Z + \text{const}`, so
    :math:`\partial_a \ln f = -c(a)\,(z - (\varphi(\alpha) - \varphi(\beta))/Z)`.
    """

    mu: float
    sigma: float
    low: float
    high: float

    def __post_init__(self) -> None:
        _check_walk(self.mu, self.sigma, self.low, self.high)

    def _z(self, v: Any, a: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _dz_da(self, a: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf(self, v: Any, a: Any) -> np.ndarray:
        r"""Conditional CDF :math:`F(v\mid a)` (broadcasting)."""
        v, a = np.asarray(v, float), np.asarray(a, float)
        lo, hi = ndtr(self._z(self.low, a)), ndtr(self._z(self.high, a))
        vv = np.clip(v, self.low, self.high)
        return (ndtr(self._z(vv, a)) - lo) / (hi - lo)

    def dlogf_da(self, v: Any, a: Any) -> np.ndarray:
        r""":math:`\partial_a \ln f(v\mid a)`."""
        v, a = np.asarray(v, float), np.asarray(a, float)
        al, be = self._z(self.low, a), self._z(self.high, a)
        Z = ndtr(be) - ndtr(al)
        return -self._dz_da(a) * (self._z(v, a) - (_phi(al) - _phi(be)) / Z)

    def log_lipschitz(self) -> float:
        """:math:`K_0` of Def. 3.7 (numerical supremum, see module docstring)."""
        return _k0(self)


@dataclass(frozen=True)
class TruncatedNormalWalk(_TruncatedWalk):
    r"""Additive walk :math:`v_i = v_{i-1} + \mu + \sigma Z` truncated to ``[low, high]``.

    Parameters
    ----------
    mu, sigma : float
        Drift and standard deviation of the step (``sigma > 0``).
    low, high : float
        Support :math:`[L_0, H_0]`.

    Raises
    ------
    InvalidInputError
        Non-finite parameters, ``sigma <= 0`` or ``low >= high``.

    Examples
    --------
    >>> w = TruncatedNormalWalk(0.0, 1.0, -1.0, 1.0)
    >>> float(w.cdf(0.0, 0.0))  # symmetric truncation around the conditioning value
    0.5
    """

    def _z(self, v: Any, a: Any) -> np.ndarray:
        return (v - a - self.mu) / self.sigma

    def _dz_da(self, a: np.ndarray) -> np.ndarray:
        return np.full_like(a, -1.0 / self.sigma)


@dataclass(frozen=True)
class LogNormalWalk(_TruncatedWalk):
    r"""Multiplicative walk :math:`\ln v_i=\ln v_{i-1}+\mu+\sigma Z` truncated to ``[low, high]``.

    Needs ``low > 0``.

    Parameters
    ----------
    mu, sigma : float
        Drift and standard deviation of the log-step (``sigma > 0``).
    low, high : float
        Support :math:`[L_0, H_0]`, ``0 < low < high``.

    Raises
    ------
    InvalidInputError
        Non-finite parameters, ``sigma <= 0``, ``low <= 0`` or ``low >= high``.

    Examples
    --------
    >>> w = LogNormalWalk(0.0, 0.5, 0.5, 2.0)
    >>> round(float(w.cdf(1.0, 1.0)), 12)  # log-symmetric support around a = 1
    0.5
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low <= 0:
            raise InvalidInputError(f"a log-normal walk needs a positive support, got low={self.low!r}")

    def _z(self, v: Any, a: Any) -> np.ndarray:
        return (np.log(v) - np.log(a) - self.mu) / self.sigma

    def _dz_da(self, a: np.ndarray) -> np.ndarray:
        return -1.0 / (self.sigma * a)


Walk = TruncatedNormalWalk | LogNormalWalk


def _k0(walk: _TruncatedWalk) -> float:
    a = np.linspace(walk.low, walk.high, K0_GRID)
    return float(max(np.abs(walk.dlogf_da(walk.low, a)).max(), np.abs(walk.dlogf_da(walk.high, a)).max()))


def grid_step(eps: float, n: int, K0: float, low: float, high: float) -> float:
    """Algorithm 4 lines 2–6: the grid step :math:`\\varepsilon_0` for accuracy ``eps``.

    Parameters
    ----------
    eps : float
        Requested accuracy (Def. 3.6).
    n : int
        Number of trades.
    K0 : float
        Log-Lipschitz constant (Def. 3.7).
    low, high : float
        Support :math:`[L_0, H_0]`.

    Returns
    -------
    float
        :math:`\varepsilon_0`.

    Raises
    ------
    InvalidInputError
        If ``eps <= 0`` or ``K0 < 0``.

    Examples
    --------
    >>> grid_step(0.5, 2, 1.0, 0.0, 1.0)  # 0.5 / (4 (1 + 2·1) (1 + 0))
    0.041666666666666664
    >>> grid_step(0.3, 5, 2.0, -3.0, -1.0)  # H0 <= 0: eps / 2
    0.15
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise InvalidInputError(f"eps must be a positive number, got {eps!r}")
    if K0 < 0:
        raise InvalidInputError(f"K0 must be non-negative, got {K0!r}")
    if high > 0:
        return min(eps, 1.0) / (4.0 * (1.0 + n * K0) * (1.0 + max(0.0, -low)))
    return eps / 2.0


@dataclass(frozen=True, eq=False)
class DiscretizedGame:
    """Algorithm 4's discretised model with the accuracy it guarantees.

    Attributes
    ----------
    game : ChainGame
        The finite game on the grid (one transition matrix shared by all trades).
    walk : TruncatedNormalWalk or LogNormalWalk
    eps : float or None
        Accuracy of Def. 3.6 guaranteed by Theorem 3.8 for this grid (``None`` when the grid is too
        coarse for the theorem's formula, i.e. the implied ε exceeds 1 with :math:`H_0>0`).
    eps0 : float
        Grid step.
    K0 : float
        Log-Lipschitz constant used.
    grid : ndarray
        The grid points (``game.values``).
    """

    game: ChainGame
    walk: Walk
    eps: float | None
    eps0: float
    K0: float

    @property
    def grid(self) -> np.ndarray:
        return self.game.values

    @property
    def L(self) -> int:
        return self.game.L


def discretize(
    walk: Walk,
    n: int,
    v0: float,
    eps: float | None = None,
    mechanism: MechanismSpec = "raw",
    L: int | None = None,
    K0: float | None = None,
    max_grid: int = 5000,
) -> DiscretizedGame:
    """Algorithm 4: discretise a continuous walk to a :class:`ChainGame` for accuracy ``eps``.

    Parameters
    ----------
    walk : TruncatedNormalWalk or LogNormalWalk
    n : int
        Number of trades.
    v0 : float
        Player 0's value, in ``[walk.low, walk.high]``; it is rounded down to its grid cell.
    eps : float, optional
        Requested accuracy (Def. 3.6). Exactly one of ``eps`` and ``L`` must be given.
    mechanism : str, mapping or array_like
        Reallocation mechanism.
    L : int, optional
        Grid size instead of ``eps``; the step is then ``(high - low)/(L - 1)`` and the guaranteed
        ε is computed back from Theorem 3.8 (``None`` if the formula gives none).
    K0 : float, optional
        Log-Lipschitz constant; computed with ``walk.log_lipschitz()`` when omitted.
    max_grid : int
        Largest grid accepted (memory grows as L²); a larger requirement raises.

    Returns
    -------
    DiscretizedGame

    Raises
    ------
    InvalidInputError
        Both or neither of ``eps``/``L``, ``L < 2``, ``v0`` outside the support, bad ``n``, or a
        grid larger than ``max_grid`` (the message gives the size Theorem 3.8 needs).
    MechanismError
        The mechanism breaks Def. 2.5 / 2.6.

    Examples
    --------
    >>> d = discretize(TruncatedNormalWalk(0.0, 0.5, 0.0, 2.0), n=3, v0=1.0, L=41)
    >>> d.L, round(d.eps0, 3)
    (41, 0.05)
    """
    if (eps is None) == (L is None):
        raise InvalidInputError("give exactly one of eps and L")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"chain length n must be a positive integer, got {n!r}")
    lo, hi = float(walk.low), float(walk.high)
    if not (isinstance(v0, (int, float, np.floating)) and lo <= float(v0) <= hi):
        raise InvalidInputError(f"v0 must lie in the support [{lo!r}, {hi!r}], got {v0!r}")
    K = float(walk.log_lipschitz() if K0 is None else K0)
    scale = 4.0 * (1.0 + n * K) * (1.0 + max(0.0, -lo))
    if eps is not None:
        eps0 = grid_step(eps, int(n), K, lo, hi)
        size = math.floor((hi - lo) / eps0) + 1  # Algorithm 4 line 7
        if size > max_grid:
            raise InvalidInputError(
                f"eps={eps!r} needs a grid of L={size!r} points (K0={K:.4g}, n={n!r}), above max_grid="
                f"{max_grid!r}; raise max_grid or pass L= and read the guaranteed eps back"
            )
        eps_out: float | None = float(eps)
    else:
        if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2:
            raise InvalidInputError(f"grid size L must be an integer >= 2, got {L!r}")
        size = int(L)
        eps0 = (hi - lo) / (size - 1)
        if hi > 0:
            implied = eps0 * scale
            eps_out = implied if implied <= 1.0 else None
        else:
            eps_out = 2.0 * eps0
    W = lo + eps0 * np.arange(size)  # w_l = L0 + l·eps0, l = 0..L-1
    W = W[W <= hi + 1e-12 * max(1.0, abs(hi))]
    size = W.size
    edges = np.append(W[1:], np.inf)  # right ends w_{l+1}; F(w_L | ·) = 1
    F = walk.cdf(np.minimum(edges, hi)[None, :], W[:, None])
    F[:, -1] = 1.0
    Q1 = np.diff(np.concatenate([np.zeros((size, 1)), F], axis=1), axis=1)
    Q1 = np.maximum(Q1, 0.0)
    Q1 /= Q1.sum(axis=1, keepdims=True)
    k0 = min(math.floor((float(v0) - lo) / eps0), size - 1)
    t = mechanism_from_spec(mechanism, int(n))
    label = f"{type(walk).__name__}(mu={walk.mu}, sigma={walk.sigma}, [{lo}, {hi}])/L={size}"
    pi = np.zeros(size)
    pi[k0] = 1.0  # v_0 sits in cell k0
    game = ChainGame(W, pi, np.broadcast_to(Q1, (int(n), size, size)), t, label=label)
    return DiscretizedGame(game=game, walk=walk, eps=eps_out, eps0=float(eps0), K0=K)


def lift(disc: DiscretizedGame, strategy: np.ndarray, v: Any) -> np.ndarray:
    """Eq. 26: evaluate a grid strategy (a row of thresholds or prices) at continuous values ``v``.

    Parameters
    ----------
    disc : DiscretizedGame
    strategy : ndarray, shape (L,)
        E.g. ``eq.thresholds[i]`` or ``eq.prices[i]``.
    v : array_like
        Values in the support.

    Returns
    -------
    ndarray
        ``strategy[k(v)]`` with :math:`k(v)=\\lfloor (v-L_0)/\\varepsilon_0\\rfloor` (clipped to the grid).

    Raises
    ------
    InvalidInputError
        Values outside the support or a strategy of the wrong length.

    Examples
    --------
    >>> d = discretize(TruncatedNormalWalk(0.0, 0.5, 0.0, 2.0), n=2, v0=1.0, L=5)
    >>> lift(d, np.arange(5.0), [0.0, 0.49, 0.5, 2.0]).tolist()
    [0.0, 0.0, 1.0, 4.0]
    """
    v = np.asarray(v, float)
    lo, hi = disc.walk.low, disc.walk.high
    if np.any((v < lo) | (v > hi)) or not np.all(np.isfinite(v)):
        raise InvalidInputError(f"values to lift must lie in [{lo!r}, {hi!r}]")
    s = np.asarray(strategy)
    if s.shape != (disc.L,):
        raise InvalidInputError(f"strategy must have shape {(disc.L,)!r}, got {s.shape!r}")
    k = np.clip(np.floor((v - lo) / disc.eps0).astype(np.int64), 0, disc.L - 1)
    return s[k]
