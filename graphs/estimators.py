r"""Separable estimators and distributions of the competing-data-buyers game (the specs an
estimation market's buyer nodes carry); the market-level coefficients β, ξ, γ are computed from them
by :func:`datamarkets.models.estimators.market_coefficients`.

Model (Westenbroek, Dong, Ratliff, Sastry, *Statistical estimation with strategic data sources in
competitive settings*, §II–III). Source ``i`` reports ``y_i = f(x_i) + ε_i`` with
``ε_i ~ N(0, σ_i²)``. Buyer ``k`` fits a *linear* estimator

.. math::  \hat f^k(x^*) = \sum_i w^k_i(x^*)\, y_i, \qquad w^k(x^*)^T = \varphi(x^*)^T X^+ ,

(least squares on features ``φ``; ``X`` is the design, one row ``φ(x_i)^T`` per source the buyer uses,
and ``X^+`` its Moore–Penrose pseudo-inverse). When ``f`` lies in the span of the features and ``X`` has
full column rank the estimator is unbiased, so the loss (3) is

.. math::  g_k(\vec x, F, \vec\sigma^2) = E_{x^*\sim F}\,E\big[(\hat f^k(x^*) - f(x^*))^2\big]
           = \sum_i \underbrace{E_{x^*\sim F}[w^k_i(x^*)^2]}_{h_k(x_i, \vec x, F)} \sigma_i^2 ,

which is Assumption 3 (separability, ``h ≥ 0``). With ``M_F = E_F[φ φ^T]`` this is
``h = diag((X^+)^T M_F X^+)``. The game's coefficients (§III, after Assumption 3) are

* ``β_i^k = h_k(x_i, x, F_k)``  — weight of source ``i``'s variance in buyer ``k``'s loss;
* ``ξ^k_{i,l} = h_k(x_l, x_{-i}, δ_{x_i}) = (w^{k,(-i)}_l(x_i))²`` for ``l ≠ i`` and ``ξ^k_{i,i} = 1``, where
  ``w^{k,(-i)}`` are the hat weights of buyer ``k``'s estimator refitted *without* source ``i``; so that
  ``E[(y_i − \hat f^k_{-i}(x_i))²] = Σ_l ξ^k_{i,l} σ_l²`` (the expected penalty in contract (8));
* ``γ_i^k = β_i^k − Σ_{j≠k} δ^k_j β_i^j``.

β is computed *exactly* for polynomial features under a uniform (box) or discrete ``F``: ``M_F`` by
tensor Gauss–Legendre with ``degree + 1`` nodes per axis (exact up to per-axis degree ``2·degree + 1``).
For the Gaussian finite-kernel basis under a uniform ``F`` it is computed by adaptive quadrature
(``scipy.integrate.quad_vec``, one axis at a time: the kernel is a product over axes).

ξ uses the leave-one-out identity ``w^{(-i)}_l(x_i) = H_{il} / (1 − H_{ii})`` (``H = X X^+``, the hat
matrix, from a Householder QR) wherever source ``i`` has leverage ``1 − H_ii > 1e-4``; the other rows
are refitted directly, ``w^{(-i)}(x_i)^T = φ(x_i)^T (X_{-i})^+`` (Moore–Penrose pseudo-inverse by SVD,
numpy's default ``rtol = max(n, P)·eps``). When that design is rank-deficient (source ``i`` is needed for
identifiability) this is the minimum-norm least-squares fit.
This is what §IV's printed ξ of the two-firm example needs: a line through a single point.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import GraphError, InvalidInputError
from datamarkets.validation import real_array, real_number

if TYPE_CHECKING:
    pass

__all__ = [
    "LOO_LEVERAGE_TOL",
    "MAX_POLYNOMIAL_DEGREE",
    "DiscreteDistribution",
    "KernelLeastSquares",
    "PolynomialLeastSquares",
    "SeparableEstimator",
    "UniformDistribution",
    "as_positions",
    "distribution_from_spec",
    "estimator_coefficients",
    "estimator_from_spec",
    "polynomial_exponents",
]

#: Rows with ``1 − H_ii`` at or below this are refitted directly (SVD pseudo-inverse of the design
#: without source ``i``) instead of by the leave-one-out identity ``H_il / (1 − H_ii)``, whose
#: cancellation in ``1 − H_ii`` costs about ``eps / (1 − H_ii)`` relative accuracy. The direct refit
#: is also what decides (by numpy's rank tolerance) whether that design is under-determined.
LOO_LEVERAGE_TOL = 1e-4

FloatArray = NDArray[np.float64]


def _where(node: Any) -> str:
    return "" if node is None else f"buyer {node!r}: "


def as_positions(x: ArrayLike, dim: int | None = None, *, what: str = "positions") -> FloatArray:
    """Return positions as a float array of shape ``(n, dim)``.

    A 1-d input is read as ``n`` scalar positions when ``dim`` is ``None`` or 1, and as one point
    when ``dim == len(x) > 1``.

    Raises
    ------
    InvalidInputError
        Non-finite entries or a dimension different from ``dim``.
    """
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1) if (dim is not None and dim > 1 and a.size == dim) else a.reshape(-1, 1)
    elif a.ndim != 2:
        raise InvalidInputError(f"{what} must be scalars or vectors, got shape {a.shape!r}")
    if dim is not None and a.shape[1] != dim:
        raise InvalidInputError(f"{what} have dimension {a.shape[1]}, expected {dim}")
    if not np.all(np.isfinite(a)):
        raise InvalidInputError(f"{what} contain non-finite values")
    return a


# --------------------------------------------------------------------------------------- distributions
@dataclass(frozen=True)
class UniformDistribution:
    """Uniform distribution on the box ``[low, high]`` (one interval per axis).

    Parameters
    ----------
    low, high : array_like of shape (dim,)
        Box corners with ``low < high`` on every axis.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
            raise InvalidInputError(f"uniform F: low {self.low!r} and high {self.high!r} must match")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
            raise InvalidInputError(f"uniform F needs finite low < high, got {self.low!r}, {self.high!r}")

    @property
    def dim(self) -> int:
        return len(self.low)

    def gauss_legendre(self, n: int) -> tuple[FloatArray, FloatArray]:
        """Tensor Gauss–Legendre rule with ``n`` nodes per axis, weights summing to 1.

        Exact for every polynomial of degree ≤ ``2n − 1`` in each coordinate.
        """
        t, w = np.polynomial.legendre.leggauss(n)
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        axes = [0.5 * (hi[a] - lo[a]) * t + 0.5 * (hi[a] + lo[a]) for a in range(self.dim)]
        nodes = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
        weights = np.ones(1)
        for _ in range(self.dim):
            weights = np.multiply.outer(weights, w / 2.0).ravel()
        return nodes, weights

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Draw ``size`` points, shape ``(size, dim)``."""
        return rng.uniform(self.low, self.high, size=(size, self.dim))


@dataclass(frozen=True)
class DiscreteDistribution:
    """Finitely supported distribution ``Σ_m w_m δ_{p_m}`` (weights normalised to sum to 1).

    Parameters
    ----------
    points : array_like of shape (m,) or (m, dim)
    weights : array_like of shape (m,), optional
        Non-negative with a positive sum; uniform when omitted.
    """

    points: FloatArray
    weights: FloatArray

    def __init__(self, points: ArrayLike, weights: ArrayLike | None = None, dim: int | None = None) -> None:
        P = as_positions(points, dim, what="discrete F points")
        w = np.ones(P.shape[0]) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (P.shape[0],):
            raise InvalidInputError(f"discrete F: {w.size} weights for {P.shape[0]} points")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise InvalidInputError("discrete F weights must be finite, non-negative, with a positive sum")
        object.__setattr__(self, "points", P)
        object.__setattr__(self, "weights", w / w.sum())

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Draw ``size`` points, shape ``(size, dim)``."""
        return self.points[rng.choice(self.points.shape[0], size=size, p=self.weights)]


Distribution = UniformDistribution | DiscreteDistribution


def distribution_from_spec(spec: Mapping[str, Any], dim: int, *, node: Any = None) -> Distribution:
    """Build ``F`` from a spec dict.

    ``{"kind": "uniform", "low": a, "high": b}`` (``a``, ``b`` scalars in 1-d, lists for a box) or
    ``{"kind": "discrete", "points": [...], "weights": [...]}`` (weights optional, normalised).

    Raises
    ------
    GraphError
        Unknown kind or keys, wrong dimension, empty or inverted box, bad weights; names ``node``.
    """
    where = _where(node)
    if not isinstance(spec, Mapping):
        raise GraphError(f"{where}F must be a dict, got {type(spec).__name__!r}")
    kind = spec.get("kind")
    allowed = {"uniform": {"kind", "low", "high"}, "discrete": {"kind", "points", "weights"}}
    if kind not in allowed:
        raise GraphError(f"{where}unknown F kind {kind!r} (expected 'uniform' or 'discrete')")
    extra = set(spec) - allowed[kind]
    if extra:
        raise GraphError(f"{where}unknown F keys {sorted(extra)!r} for kind {kind!r}")
    try:
        if kind == "uniform":
            if "low" not in spec or "high" not in spec:
                raise GraphError(f"{where}uniform F needs 'low' and 'high'")
            lo = np.atleast_1d(real_array(spec["low"], "F low"))
            hi = np.atleast_1d(real_array(spec["high"], "F high"))
            if lo.shape != (dim,) or hi.shape != (dim,):
                raise GraphError(f"{where}uniform F bounds must have dimension {dim}")
            return UniformDistribution(tuple(lo.tolist()), tuple(hi.tolist()))
        if "points" not in spec:
            raise GraphError(f"{where}discrete F needs 'points'")
        weights = spec.get("weights")
        return DiscreteDistribution(
            real_array(spec["points"], "F points"),
            None if weights is None else real_array(weights, "F weights"),
            dim=dim,
        )
    except GraphError:
        raise
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise GraphError(f"{where}{exc}") from exc


# ----------------------------------------------------------------------------------------- estimators
def polynomial_exponents(dim: int, degree: int) -> NDArray[np.int64]:
    """Exponents of all monomials of total degree ≤ ``degree`` in ``dim`` variables, graded order.

    Row ``r`` holds the exponents of feature ``r``; the constant comes first. In 1-d the features
    are ``1, x, x², …``.

    Examples
    --------
    >>> polynomial_exponents(2, 1).tolist()
    [[0, 0], [1, 0], [0, 1]]
    """
    rows: list[tuple[int, ...]] = []
    for total in range(degree + 1):
        for c in itertools.combinations_with_replacement(range(dim), total):
            e = [0] * dim
            for a in c:
                e[a] += 1
            rows.append(tuple(e))
    return np.array(rows, dtype=np.int64).reshape(-1, dim)


class SeparableEstimator:
    """Least squares on a finite feature map ``φ``: ``\\hat f(x^*) = φ(x^*)^T X^+ y`` (Assumption 3).

    Subclasses implement :meth:`features` and :meth:`second_moment`.
    """

    dim: int
    underdetermined: str

    @property
    def n_features(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def features(self, x: ArrayLike) -> FloatArray:  # pragma: no cover - overridden
        """Feature matrix ``Φ`` of shape ``(n, P)`` at positions ``x`` (``(n, dim)``)."""
        raise NotImplementedError

    def second_moment(self, F: Distribution) -> FloatArray:  # pragma: no cover - overridden
        """``M_F = E_{x^*∼F}[φ(x^*) φ(x^*)^T]`` of shape ``(P, P)``."""
        raise NotImplementedError

    # -- shared linear algebra -------------------------------------------------------------------
    def design(self, X: ArrayLike, *, node: Any = None) -> FloatArray:
        """Design matrix for source positions ``X``; checks the rank when ``underdetermined='raise'``.

        Raises
        ------
        GraphError
            ``underdetermined == 'raise'`` and the design has rank below the number of features
            (too few distinct source positions, e.g. coincident sources).
        """
        Phi = self.features(X)
        if self.underdetermined == "raise":
            rank = int(np.linalg.matrix_rank(Phi))
            if rank < Phi.shape[1]:
                raise GraphError(
                    f"{_where(node)}design of {type(self).__name__} has rank {rank} < {Phi.shape[1]} "
                    f"features ({Phi.shape[0]} sources): the estimator is not identified (coincident or "
                    "too few sources); use 'underdetermined': 'min_norm' to accept the minimum-norm fit"
                )
        return Phi

    def hat_weights(self, X: ArrayLike, x_star: ArrayLike) -> FloatArray:
        """Weights ``w(x^*)`` with ``\\hat f(x^*) = Σ_i w_i(x^*) y_i``; shape ``(m, n)``."""
        Xp = as_positions(X, self.dim)
        Phi = self.design(Xp)
        return self.features(as_positions(x_star, self.dim)) @ np.linalg.pinv(Phi)

    def fit_predict(self, X: ArrayLike, y: ArrayLike, x_star: ArrayLike) -> FloatArray:
        """Least-squares (minimum-norm) fit on ``(X, y)`` evaluated at ``x_star`` via ``lstsq``.

        ``y`` may be ``(n,)`` or ``(n, r)`` (``r`` replications fitted at once); result ``(m,)`` /
        ``(m, r)``.
        """
        Phi = self.features(as_positions(X, self.dim))
        theta = np.linalg.lstsq(Phi, np.asarray(y, dtype=float), rcond=None)[0]
        return self.features(as_positions(x_star, self.dim)) @ theta

    def beta(self, X: ArrayLike, F: Distribution, *, node: Any = None) -> FloatArray:
        """``β_i = h(x_i, x, F) = E_F[w_i(x^*)²] = ((X^+)^T M_F X^+)_{ii}``; shape ``(n,)``."""
        Phi = self.design(as_positions(X, self.dim), node=node)
        Xp = np.linalg.pinv(Phi)  # (P, n)
        M = self.second_moment(F)
        return np.einsum("pi,pq,qi->i", Xp, M, Xp)

    def xi(self, X: ArrayLike, *, node: Any = None) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Leave-one-out weights ``ξ_{i,l} = (w^{(-i)}_l(x_i))²`` (``l ≠ i``), ``ξ_{i,i} = 1``.

        Returns
        -------
        xi : ndarray of shape (n, n)
        min_norm : ndarray of bool, shape (n,)
            ``True`` where the design without source ``i`` is rank-deficient, so the leave-one-out
            estimate is the minimum-norm least-squares fit.
        """
        Phi = self.design(as_positions(X, self.dim), node=node)
        n, P = Phi.shape
        min_norm = np.zeros(n, dtype=bool)
        if n == 1:
            return np.ones((1, 1)), min_norm
        if int(np.linalg.matrix_rank(Phi)) == P:
            Q = np.linalg.qr(Phi, mode="reduced")[0]  # orthonormal basis of range(X) (Householder)
            one_minus_h = 1.0 - np.einsum("ip,ip->i", Q, Q)
            direct = one_minus_h <= LOO_LEVERAGE_TOL
            # leave-one-out identity: w^{(-i)}_l(x_i) = H_il / (1 − H_ii), H = Q Qᵀ the hat matrix;
            # rows in ``direct`` are overwritten below
            xi = np.einsum("ip,lp->il", Q, Q)  # (no BLAS: threads only hurt at rank P)
            with np.errstate(divide="ignore", invalid="ignore"):
                xi /= one_minus_h[:, None]
            np.square(xi, out=xi)
        else:
            xi = np.zeros((n, n))
            direct = np.ones(n, dtype=bool)
        idx = np.flatnonzero(direct)
        if idx.size:
            keep = ~np.eye(n, dtype=bool)[idx]  # (r, n)
            Phi_loo = np.stack([Phi[k] for k in keep])  # (r, n−1, P)
            pinv_loo = np.linalg.pinv(Phi_loo)  # (r, P, n−1)
            w = np.einsum("rp,rpm->rm", Phi[idx], pinv_loo)  # (r, n−1)
            ranks = np.linalg.matrix_rank(Phi_loo)
            min_norm[idx] = np.atleast_1d(ranks) < P
            for r, i in enumerate(idx):
                xi[i, keep[r]] = w[r] ** 2
        np.fill_diagonal(xi, 1.0)  # convention ξ_{i,i} = 1
        return xi, min_norm


def _check_underdetermined(value: Any, node: Any) -> str:
    if value not in ("raise", "min_norm"):
        raise GraphError(f"{_where(node)}'underdetermined' must be 'raise' or 'min_norm', got {value!r}")
    return str(value)


MAX_POLYNOMIAL_DEGREE = 100
"""Highest polynomial degree accepted (a file asking for degree 10⁶ would hang the quadrature)."""


@dataclass(frozen=True)
class PolynomialLeastSquares(SeparableEstimator):
    """Least squares on all monomials of total degree ≤ ``degree`` (constant included).

    Parameters
    ----------
    degree : int
        Polynomial degree ``p ≥ 0`` (``p = 1`` is the paper's linear regression).
    dim : int
        Dimension of the feature space ``D``.
    underdetermined : {"raise", "min_norm"}
        What a rank-deficient *full* design means: an error (default), or accept the minimum-norm
        fit (then β is the variance part of the loss only; the bias is not separable).

    Notes
    -----
    Minimum norm means the smallest Euclidean norm of the coefficients on the *unscaled monomial*
    basis ``1, x, x², …``. A minimum-norm fit depends on the basis (rescaling ``x`` or using Legendre
    polynomials changes it); this basis reproduces the printed ξ of §IV. Fully identified fits do
    not depend on the basis.

    Examples
    --------
    >>> est = PolynomialLeastSquares(degree=1)
    >>> F = UniformDistribution((-1.0,), (1.0,))
    >>> est.beta([0.0, 1.0], F).round(6).tolist()  # (1/3 + x_other²) / (x1 − x2)²
    [1.333333, 0.333333]
    """

    degree: int
    dim: int = 1
    underdetermined: str = "raise"

    def __post_init__(self) -> None:
        if isinstance(self.degree, bool) or not isinstance(self.degree, (int, np.integer)) or self.degree < 0:
            raise InvalidInputError(f"polynomial degree must be an integer ≥ 0, got {self.degree!r}")
        if self.degree > MAX_POLYNOMIAL_DEGREE:
            raise InvalidInputError(
                f"polynomial degree must be at most {MAX_POLYNOMIAL_DEGREE}, got {self.degree!r} (the exact "
                "M_F uses degree + 1 Gauss–Legendre nodes per axis, at a cost cubic in the degree)"
            )
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)) or self.dim < 1:
            raise InvalidInputError(f"dimension must be an integer ≥ 1, got {self.dim!r}")
        _check_underdetermined(self.underdetermined, None)

    @property
    def exponents(self) -> NDArray[np.int64]:
        return polynomial_exponents(self.dim, int(self.degree))

    @property
    def n_features(self) -> int:
        return math.comb(int(self.dim) + int(self.degree), int(self.degree))

    def features(self, x: ArrayLike) -> FloatArray:
        X = as_positions(x, self.dim)
        E = self.exponents
        return np.prod(X[:, None, :] ** E[None, :, :], axis=2)

    def second_moment(self, F: Distribution) -> FloatArray:
        """Exact ``M_F``: Gauss–Legendre with ``degree + 1`` nodes per axis, or the discrete sum."""
        if isinstance(F, UniformDistribution):
            nodes, w = F.gauss_legendre(int(self.degree) + 1)
        else:
            nodes, w = F.points, F.weights
        Phi = self.features(nodes)
        return (Phi * w[:, None]).T @ Phi


@dataclass(frozen=True)
class KernelLeastSquares(SeparableEstimator):
    """Finite-kernel regression: least squares on ``φ_m(x) = exp(−‖x − z_m‖² / (2 h²))``.

    The finite basis of Gaussian bumps at fixed ``centers`` ``z_1..z_P`` with bandwidth ``h``.
    ``M_F`` is computed by adaptive quadrature for a uniform ``F`` (exact sum for a discrete one).

    Parameters
    ----------
    centers : array_like of shape (P,) or (P, dim)
        Stored as a tuple of ``P`` tuples of length ``dim`` (hashable, like the dataclass).
    bandwidth : float
        ``h > 0``.
    dim : int
    underdetermined : {"raise", "min_norm"}
    """

    centers: ArrayLike  # any array_like in; a tuple of tuples once constructed (__post_init__)
    bandwidth: float
    dim: int = 1
    underdetermined: str = "raise"
    quad_epsrel: float = field(default=1e-12, repr=False)

    def __post_init__(self) -> None:
        Z = as_positions(self.centers, self.dim, what="kernel centers")
        if Z.shape[0] == 0:
            raise InvalidInputError("kernel estimator needs at least one center")
        object.__setattr__(self, "centers", tuple(map(tuple, Z.tolist())))
        h = float(self.bandwidth)
        if not (math.isfinite(h) and h > 0):
            raise InvalidInputError(f"kernel bandwidth must be > 0, got {self.bandwidth!r}")
        _check_underdetermined(self.underdetermined, None)

    @property
    def n_features(self) -> int:
        return len(np.asarray(self.centers))

    def features(self, x: ArrayLike) -> FloatArray:
        X = as_positions(x, self.dim)
        Z = np.asarray(self.centers)
        sq = ((X[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-sq / (2.0 * float(self.bandwidth) ** 2))

    def second_moment(self, F: Distribution) -> FloatArray:
        """``M_F`` by adaptive quadrature (per axis; the Gaussian kernel is a product over axes)."""
        if isinstance(F, DiscreteDistribution):
            Phi = self.features(F.points)
            return (Phi * F.weights[:, None]).T @ Phi
        from scipy.integrate import quad_vec

        Z = np.asarray(self.centers)
        h2 = 2.0 * float(self.bandwidth) ** 2
        M = np.ones((Z.shape[0], Z.shape[0]))
        for a in range(self.dim):
            lo, hi = F.low[a], F.high[a]
            z = Z[:, a]

            def integrand(t: float, z: FloatArray = z) -> FloatArray:
                v = np.exp(-((t - z) ** 2) / h2)
                return np.outer(v, v)

            # split at the centers inside the interval so the adaptive rule sees every bump
            pts = np.unique(np.clip(z, lo, hi))
            val, _err = quad_vec(integrand, lo, hi, epsabs=0.0, epsrel=self.quad_epsrel, points=pts)
            M *= val / (hi - lo)
        return M


def estimator_from_spec(spec: Mapping[str, Any], dim: int, *, node: Any = None) -> SeparableEstimator:
    """Build an estimator from a spec dict.

    ``{"kind": "polynomial", "degree": p}`` or ``{"kind": "kernel", "kernel": "gaussian",
    "bandwidth": h, "centers": [...]}``; both accept ``"underdetermined": "raise" | "min_norm"``.

    Raises
    ------
    GraphError
        Unknown kind, unknown keys, bad degree/bandwidth/centers; names ``node``.
    """
    where = _where(node)
    if not isinstance(spec, Mapping):
        raise GraphError(f"{where}estimator must be a dict, got {type(spec).__name__!r}")
    kind = spec.get("kind")
    allowed = {
        "polynomial": {"kind", "degree", "underdetermined"},
        "kernel": {"kind", "kernel", "bandwidth", "centers", "underdetermined"},
    }
    if kind not in allowed:
        raise GraphError(f"{where}unknown estimator kind {kind!r} (expected 'polynomial' or 'kernel')")
    extra = set(spec) - allowed[kind]
    if extra:
        raise GraphError(f"{where}unknown estimator keys {sorted(extra)!r} for kind {kind!r}")
    under = _check_underdetermined(spec.get("underdetermined", "raise"), node)
    try:
        if kind == "polynomial":
            if "degree" not in spec:
                raise GraphError(f"{where}polynomial estimator needs 'degree'")
            return PolynomialLeastSquares(degree=spec["degree"], dim=dim, underdetermined=under)
        if spec.get("kernel", "gaussian") != "gaussian":
            raise GraphError(f"{where}unknown kernel {spec.get('kernel')!r} (only 'gaussian')")
        if "bandwidth" not in spec or "centers" not in spec:
            raise GraphError(f"{where}kernel estimator needs 'bandwidth' and 'centers'")
        return KernelLeastSquares(
            centers=real_array(spec["centers"], "kernel centers"),
            bandwidth=real_number(spec["bandwidth"], "kernel bandwidth"),
            dim=dim,
            underdetermined=under,
        )
    except GraphError:
        raise
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise GraphError(f"{where}{exc}") from exc


def estimator_coefficients(
    estimator: SeparableEstimator, X: ArrayLike, F: Distribution, *, node: Any = None
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """β (``(n,)``), ξ (``(n, n)``) and the leave-one-out minimum-norm flags of one estimator.

    Raises
    ------
    GraphError
        Rank-deficient design with ``underdetermined='raise'``.
    """
    beta = estimator.beta(X, F, node=node)
    xi, min_norm = estimator.xi(X, node=node)
    return beta, xi, min_norm
