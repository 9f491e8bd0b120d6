r"""Elastic valuations θ(z) of buyers in PSP auctions (Definition 2 of the data-share paper).

A valuation maps a data quantity :math:`z \ge 0` to money. Definition 2 ("elastic demand",
Lazar–Semret) asks for θ(0) = 0, θ differentiable with θ' ≥ 0 non-increasing and continuous, and
a curvature bound γ > 0: θ'(z) > 0 ⇒ θ'(z) ≤ θ'(η) − γ (z − η) for η < z. The classes here are

- :class:`QuadraticValuation` θ(z) = a z − b z²/2 up to its peak z̄ = a/b, flat (= a²/(2b)) after;
  elastic with γ = b.
- :class:`AlphaFairValuation` θ(d) = σ ((d+δ)^{1−α} − δ^{1−α})/(1−α) (α = 1: σ log(1 + d/δ)), the
  draft's eq. (1) with an **offset** δ > 0 (default 1, "at least one unit of data"): the printed form
  σ d^{1−α}/(1−α) has θ'(0) = ∞, which breaks the ε/θ'(0) term of the ε-best reply (draft eq. 3)
  and, for α ≥ 1, θ(0) = 0. For α < 1 the printed form exceeds ours by at most σ δ^{1−α}/(1−α).
  Elastic on every [0, D] with γ = α σ (D+δ)^{−α−1}.
- :class:`PiecewiseLinearValuation` (concave: slopes non-increasing) and its one-piece case
  :class:`LinearValuation` θ(z) = p · min(z, D) — "demand D at unit price p", Example 1's bids.
  These are concave and increasing but **not** elastic in the sense of Definition 2 (kinks, γ = 0);
  :attr:`Valuation.is_elastic` says so.

Conventions shared by all classes (``z`` and ``p`` may be scalars or numpy arrays):

- ``value(z)``; ``marginal(z, side="right")`` is the right derivative θ'_+(z) (``side="left"``
  gives θ'_-(z), with θ'_-(0) := θ'_+(0)); the two differ only at kinks of piecewise-linear ones.
- ``inverse_marginal(p, side="largest")`` is the demand at unit price p: a maximiser of
  θ(z) − p z over [0, ``peak``]. At a price equal to a slope of a piecewise-linear valuation the
  maximisers form an interval; ``side`` picks its largest or smallest point. The smallest
  maximiser equals sup{z : θ'(z) > p}, the quantity in the PSP best reply (draft eq. 3).
- ``peak`` (= ``max_useful``) is the smallest z beyond which θ is flat (∞ for α-fair).

JSON form: ``{"kind": "quadratic", "a": .., "b": ..}``, ``{"kind": "alpha_fair", "sigma": ..,
"alpha": .., "offset": ..}`` (offset optional, default 1), ``{"kind": "linear", "unit_price": ..,
"demand": ..}``, ``{"kind": "piecewise_linear", "breakpoints": [..], "slopes": [..]}``.

References
----------
A. A. Lazar, N. Semret, "Design and analysis of the progressive second price auction for network
bandwidth sharing", 1998. J. Blocher, F. C. Harris, "An equilibrium analysis of a secondary mobile
data-share market", Information 2021 (Definition 2).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from datamarkets.errors import InvalidInputError
from datamarkets.validation import is_real

__all__ = [
    "AlphaFairValuation",
    "LinearValuation",
    "PiecewiseLinearValuation",
    "QuadraticValuation",
    "Valuation",
    "as_valuation",
    "quadratic_demand",
    "quadratic_marginal",
    "quadratic_value",
    "stack_quadratic",
    "valuation_from_dict",
]


_is_real = is_real  # a real number, not a bool and not a string ("1" or True in a JSON file is bad input)


def _real_array(name: str, xs: Any) -> np.ndarray:
    """1-d float array from a sequence of real numbers (strings/bools rejected, not coerced)."""
    if isinstance(xs, np.ndarray):
        ok = xs.dtype.kind in "iuf"
    else:
        ok = isinstance(xs, Sequence) and not isinstance(xs, str) and all(_is_real(v) for v in xs)
    if not ok:
        raise InvalidInputError(f"{name} must be real numbers, got {xs!r}")
    return np.asarray(xs, dtype=float).ravel()


def _finite_number(name: str, x: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    if not _is_real(x):
        raise InvalidInputError(f"{name} must be a number, got {x!r}")
    try:
        v = float(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a number, got {x!r}") from exc
    except OverflowError:  # an integer beyond the float range
        v = math.inf
    if not math.isfinite(v):
        raise InvalidInputError(f"{name} must be finite, got {x!r}")
    if positive and not v > 0:
        raise InvalidInputError(f"{name} must be > 0, got {x!r}")
    if nonneg and not v >= 0:
        raise InvalidInputError(f"{name} must be >= 0, got {x!r}")
    return v


def _as_quantity(z: ArrayLike) -> tuple[np.ndarray, bool]:
    if type(z) is float or type(z) is int:  # scalar fast path (hot loops of the auctions)
        if not z >= 0:
            raise InvalidInputError(f"quantities must be >= 0 and not NaN, got {z!r}")
        return np.asarray(float(z)), True
    arr = np.asarray(z, dtype=float)
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise InvalidInputError(f"quantities must be >= 0 and not NaN, got {z!r}")
    return arr, arr.ndim == 0


def _as_price(p: ArrayLike) -> tuple[np.ndarray, bool]:
    arr = np.asarray(p, dtype=float)
    if np.any(np.isnan(arr)):
        raise InvalidInputError(f"prices must not be NaN, got {p!r}")
    return arr, arr.ndim == 0


def _ret(arr: np.ndarray, scalar: bool) -> Any:
    return float(arr) if scalar else arr


def _check_side(side: str, allowed: tuple[str, ...]) -> None:
    if side not in allowed:
        raise InvalidInputError(f"side must be one of {allowed!r}, got {side!r}")


class Valuation(ABC):
    """A concave, non-decreasing valuation θ: [0, ∞) → [0, ∞) with θ(0) = 0."""

    kind: str = ""
    #: program family: ``"quadratic"`` (QP), ``"pwl"`` (LP with segment columns; linear and
    #: piecewise-linear) or ``"alpha_fair"`` (cone program)
    family: str = ""

    @abstractmethod
    def value(self, z: ArrayLike) -> Any:
        """θ(z)."""

    @abstractmethod
    def marginal(self, z: ArrayLike, side: str = "right") -> Any:
        """θ'(z): right derivative (``side="right"``) or left derivative (``side="left"``)."""

    @abstractmethod
    def inverse_marginal(self, p: ArrayLike, side: str = "largest") -> Any:
        """Demand at unit price p: the largest/smallest maximiser of θ(z) − p z on [0, peak]."""

    @property
    @abstractmethod
    def peak(self) -> float:
        """Smallest z beyond which θ is flat (``inf`` when θ increases for ever)."""

    @property
    def max_useful(self) -> float:
        """Alias of :attr:`peak`: no buyer wants more than this."""
        return self.peak

    @property
    def marginal_at_zero(self) -> float:
        """θ'(0) (finite for every class here; the ε/θ'(0) term of draft eq. 3 needs it)."""
        return float(self.marginal(0.0))

    @property
    @abstractmethod
    def is_elastic(self) -> bool:
        """True when Definition 2 holds (differentiable, curvature γ > 0 on bounded intervals)."""

    @abstractmethod
    def elastic_gamma(self, D: float) -> float:
        """Largest γ of Definition 2 valid on [0, D] (0 when the valuation is not elastic)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"kind": .., ...}``; :func:`valuation_from_dict` inverts it."""

    def utility(self, z: ArrayLike, p: ArrayLike) -> Any:
        """Quasi-linear utility θ(z) − p z at unit price p."""
        return self.value(z) - np.asarray(p, dtype=float) * np.asarray(z, dtype=float)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Valuation) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{type(self).__name__}({params})"


class QuadraticValuation(Valuation):
    """θ(z) = a z − b z²/2 for z ≤ z̄ = a/b, and a²/(2b) (flat) beyond the peak z̄.

    Parameters
    ----------
    a : float
        Marginal value at zero, θ'(0) = a > 0.
    b : float
        Curvature b > 0 (the γ of Definition 2).

    Raises
    ------
    InvalidInputError
        If ``a`` or ``b`` is not a finite positive number (b = 0 is linear and has no finite demand).

    Examples
    --------
    >>> v = QuadraticValuation(2.0, 1.0)
    >>> v.value(1.0), v.marginal(1.0), v.inverse_marginal(0.5), v.peak
    (1.5, 1.0, 1.5, 2.0)
    """

    kind = "quadratic"
    family = "quadratic"

    def __init__(self, a: float, b: float) -> None:
        self.a = _finite_number("quadratic valuation 'a'", a, positive=True)
        self.b = _finite_number("quadratic valuation 'b'", b, positive=True)

    @property
    def peak(self) -> float:
        return self.a / self.b

    @property
    def is_elastic(self) -> bool:
        return True

    def elastic_gamma(self, D: float) -> float:
        return self.b

    def value(self, z: ArrayLike) -> Any:
        z, s = _as_quantity(z)
        zc = np.minimum(z, self.peak)
        return _ret(self.a * zc - 0.5 * self.b * zc * zc, s)

    def marginal(self, z: ArrayLike, side: str = "right") -> Any:
        _check_side(side, ("right", "left"))
        z, s = _as_quantity(z)
        return _ret(np.maximum(self.a - self.b * z, 0.0), s)

    def inverse_marginal(self, p: ArrayLike, side: str = "largest") -> Any:
        _check_side(side, ("largest", "smallest"))
        p, s = _as_price(p)
        return _ret(np.clip((self.a - p) / self.b, 0.0, self.peak), s)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b}


class AlphaFairValuation(Valuation):
    """α-fair valuation with offset: θ(d) = σ ((d+δ)^{1−α} − δ^{1−α})/(1−α); α = 1: σ log(1+d/δ).

    Parameters
    ----------
    sigma : float
        Scale σ > 0 (draft eq. 1).
    alpha : float
        Fairness α > 0 (α = 0 is linear without a finite demand — use :class:`LinearValuation`).
    offset : float, default 1.0
        δ > 0. The printed θ(d) = σ d^{1−α}/(1−α) has θ'(0) = ∞; shifting by δ gives θ(0) = 0 and
        θ'(0) = σ δ^{−α} < ∞ while keeping θ'(d) = σ (d+δ)^{−α}. For α < 1 the printed valuation
        exceeds this one by at most σ δ^{1−α}/(1−α) (attained as d → ∞).

    Raises
    ------
    InvalidInputError
        On non-finite or non-positive σ, α or δ.

    Examples
    --------
    >>> v = AlphaFairValuation(1.0, 1.0)
    >>> round(v.value(math.e - 1), 12), v.marginal(0.0), v.inverse_marginal(0.5)
    (1.0, 1.0, 1.0)
    """

    kind = "alpha_fair"
    family = "alpha_fair"

    def __init__(self, sigma: float, alpha: float, offset: float = 1.0) -> None:
        self.sigma = _finite_number("alpha-fair valuation 'sigma'", sigma, positive=True)
        self.alpha = _finite_number("alpha-fair valuation 'alpha'", alpha, positive=True)
        self.offset = _finite_number("alpha-fair valuation 'offset'", offset, positive=True)

    @property
    def peak(self) -> float:
        return math.inf

    @property
    def is_elastic(self) -> bool:
        return True

    def elastic_gamma(self, D: float) -> float:
        return self.alpha * self.sigma * (float(D) + self.offset) ** (-self.alpha - 1.0)

    def value(self, z: ArrayLike) -> Any:
        z, s = _as_quantity(z)
        d, a = self.offset, self.alpha
        if a == 1.0:
            out = self.sigma * np.log1p(z / d)
        else:
            out = self.sigma * ((z + d) ** (1.0 - a) - d ** (1.0 - a)) / (1.0 - a)
        return _ret(out, s)

    def marginal(self, z: ArrayLike, side: str = "right") -> Any:
        _check_side(side, ("right", "left"))
        z, s = _as_quantity(z)
        return _ret(self.sigma * (z + self.offset) ** (-self.alpha), s)

    def inverse_marginal(self, p: ArrayLike, side: str = "largest") -> Any:
        _check_side(side, ("largest", "smallest"))
        p, s = _as_price(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(p > 0, (self.sigma / np.where(p > 0, p, 1.0)) ** (1.0 / self.alpha), np.inf)
        return _ret(np.maximum(z - self.offset, 0.0), s)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sigma": self.sigma, "alpha": self.alpha, "offset": self.offset}


class PiecewiseLinearValuation(Valuation):
    """Concave piecewise-linear θ with slope ``slopes[m]`` on (x_{m−1}, x_m], x_0 = 0, flat after x_k.

    Parameters
    ----------
    breakpoints : sequence of float
        Segment right ends 0 < x_1 < ... < x_k.
    slopes : sequence of float
        Slopes s_1 ≥ s_2 ≥ ... ≥ s_k ≥ 0 (non-increasing: concavity).

    Raises
    ------
    InvalidInputError
        Empty or mismatched lists, non-increasing breakpoints, negative or increasing slopes.

    Examples
    --------
    >>> v = PiecewiseLinearValuation([1.0, 3.0], [2.0, 1.0])
    >>> v.value(2.0), v.marginal(1.0), v.marginal(1.0, side="left"), v.inverse_marginal(1.5)
    (3.0, 1.0, 2.0, 1.0)
    """

    kind = "piecewise_linear"
    family = "pwl"

    def __init__(self, breakpoints: Sequence[float], slopes: Sequence[float]) -> None:
        x = _real_array("breakpoints", breakpoints)
        sl = _real_array("slopes", slopes)
        if x.size == 0 or x.size != sl.size:
            raise InvalidInputError(
                f"piecewise-linear valuation needs as many breakpoints as slopes (≥ 1), got "
                f"{x.size} breakpoints and {sl.size} slopes"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(sl))):
            raise InvalidInputError(f"breakpoints {breakpoints!r} and slopes {slopes!r} must be finite")
        if x[0] <= 0 or np.any(np.diff(x) <= 0):
            raise InvalidInputError(
                f"breakpoints must be positive and strictly increasing, got {breakpoints!r}"
            )
        if np.any(sl < 0):
            raise InvalidInputError(f"slopes must be >= 0 (θ non-decreasing), got {slopes!r}")
        bad = np.flatnonzero(np.diff(sl) > 0)
        if bad.size:
            m = int(bad[0])
            raise InvalidInputError(
                f"valuation is not concave: slope index {m + 1!r} ({sl[m + 1]}) exceeds slope index "
                f"{m!r} ({sl[m]})"
            )
        self.breakpoints = x
        self.slopes = sl
        self._x0 = np.concatenate(([0.0], x[:-1]))
        self._v = np.concatenate(([0.0], np.cumsum(sl * (x - self._x0))))

    @property
    def lengths(self) -> np.ndarray:
        """Segment lengths x_m − x_{m−1} (x_0 = 0), one per slope."""
        return np.diff(np.concatenate(([0.0], self.breakpoints)))

    @property
    def peak(self) -> float:
        pos = np.flatnonzero(self.slopes > 0)
        return float(self.breakpoints[pos[-1]]) if pos.size else 0.0

    @property
    def is_elastic(self) -> bool:
        return False

    def elastic_gamma(self, D: float) -> float:
        return 0.0

    def value(self, z: ArrayLike) -> Any:
        z, s = _as_quantity(z)
        seg = np.clip(z[..., None] - self._x0, 0.0, self.breakpoints - self._x0)
        return _ret(seg @ self.slopes, s)

    def marginal(self, z: ArrayLike, side: str = "right") -> Any:
        _check_side(side, ("right", "left"))
        z, s = _as_quantity(z)
        k = self.slopes.size
        if side == "right":  # segment m with x_{m-1} <= z < x_m
            m = np.searchsorted(self.breakpoints, z, side="right")
        else:  # segment m with x_{m-1} < z <= x_m; θ'_-(0) := θ'_+(0)
            m = np.where(z > 0, np.searchsorted(self.breakpoints, z, side="left"), 0)
        slopes0 = np.concatenate((self.slopes, [0.0]))
        return _ret(slopes0[np.minimum(m, k)], s)

    def inverse_marginal(self, p: ArrayLike, side: str = "largest") -> Any:
        _check_side(side, ("largest", "smallest"))
        p, s = _as_price(p)
        ends = np.concatenate(([0.0], self.breakpoints))
        # Number of segments worth buying: slopes >= p (largest maximiser) or > p (smallest);
        # slopes are non-increasing, so that count is a searchsorted on the negated slopes.
        if side == "largest":
            n = np.searchsorted(-self.slopes, -p, side="right")
        else:
            n = np.searchsorted(-self.slopes, -p, side="left")
        out = np.minimum(ends[n], self.peak)
        return _ret(np.asarray(out, dtype=float), s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "breakpoints": [float(v) for v in self.breakpoints],
            "slopes": [float(v) for v in self.slopes],
        }


class LinearValuation(PiecewiseLinearValuation):
    """θ(z) = p · min(z, D): "demand D at unit price p" (the bids of Example 1).

    Parameters
    ----------
    unit_price : float
        p > 0.
    demand : float
        D > 0.

    Examples
    --------
    >>> v = LinearValuation(1.2, 40)
    >>> v.value(50), v.inverse_marginal(1.0), v.inverse_marginal(1.2, side="smallest")
    (48.0, 40.0, 0.0)
    """

    kind = "linear"

    def __init__(self, unit_price: float, demand: float) -> None:
        self.unit_price = _finite_number("linear valuation 'unit_price'", unit_price, positive=True)
        self.demand = _finite_number("linear valuation 'demand'", demand, positive=True)
        super().__init__([self.demand], [self.unit_price])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "unit_price": self.unit_price, "demand": self.demand}


_KINDS: dict[str, tuple[type[Valuation], tuple[str, ...], tuple[str, ...]]] = {
    "quadratic": (QuadraticValuation, ("a", "b"), ()),
    "alpha_fair": (AlphaFairValuation, ("sigma", "alpha"), ("offset",)),
    "linear": (LinearValuation, ("unit_price", "demand"), ()),
    "piecewise_linear": (PiecewiseLinearValuation, ("breakpoints", "slopes"), ()),
}


def valuation_from_dict(d: Mapping[str, Any]) -> Valuation:
    """Build a valuation from its JSON form (inverse of :meth:`Valuation.to_dict`).

    Raises
    ------
    InvalidInputError
        Not a mapping, unknown ``kind``, missing or unknown keys, or bad parameters.

    Examples
    --------
    >>> valuation_from_dict({"kind": "linear", "unit_price": 2, "demand": 20})
    LinearValuation(unit_price=2.0, demand=20.0)
    """
    if not isinstance(d, Mapping):
        raise InvalidInputError(f"a valuation must be a dict with a 'kind', got {d!r}")
    kind = d.get("kind")
    if kind not in _KINDS:
        raise InvalidInputError(f"unknown valuation kind {kind!r}; known: {sorted(_KINDS)!r}")
    cls, required, optional = _KINDS[kind]
    missing = [k for k in required if k not in d]
    if missing:
        raise InvalidInputError(f"valuation of kind {kind!r} is missing {missing!r}")
    unknown = sorted(set(d) - {"kind", *required, *optional})
    if unknown:
        raise InvalidInputError(f"valuation of kind {kind!r} has unknown keys {unknown!r}")
    return cls(**{k: d[k] for k in (*required, *optional) if k in d})


def as_valuation(v: Valuation | Mapping[str, Any]) -> Valuation:
    """Return ``v`` if it is a :class:`Valuation`, else parse it with :func:`valuation_from_dict`."""
    if isinstance(v, Valuation):
        return v
    return valuation_from_dict(v)


# ----------------------------------------------------------------- vectorised quadratic buyers
def stack_quadratic(valuations: Sequence[Valuation]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``(a, b)`` of a list of quadratic valuations.

    Raises
    ------
    InvalidInputError
        If some valuation is not a :class:`QuadraticValuation` (its index is named).
    """
    a = np.empty(len(valuations))
    b = np.empty(len(valuations))
    for i, v in enumerate(valuations):
        if not isinstance(v, QuadraticValuation):
            raise InvalidInputError(f"valuation at index {i!r} is {v!r}, not quadratic")
        a[i], b[i] = v.a, v.b
    return a, b


def quadratic_value(a: ArrayLike, b: ArrayLike, z: ArrayLike) -> np.ndarray:
    """θ_i(z_i) = a_i z_i − b_i z_i²/2 capped at the peak a_i/b_i, elementwise."""
    a, b, z = (np.asarray(v, dtype=float) for v in (a, b, z))
    zc = np.minimum(z, a / b)
    return a * zc - 0.5 * b * zc * zc


def quadratic_marginal(a: ArrayLike, b: ArrayLike, z: ArrayLike) -> np.ndarray:
    """θ'_i(z_i) = max(a_i − b_i z_i, 0), elementwise."""
    a, b, z = (np.asarray(v, dtype=float) for v in (a, b, z))
    return np.maximum(a - b * z, 0.0)


def quadratic_demand(a: ArrayLike, b: ArrayLike, p: ArrayLike) -> np.ndarray:
    """Demand at unit price p: clip((a_i − p)/b_i, 0, a_i/b_i), elementwise."""
    a, b, p = (np.asarray(v, dtype=float) for v in (a, b, p))
    return np.clip((a - p) / b, 0.0, a / b)
