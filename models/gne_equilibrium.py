r"""Generalized Nash equilibrium of competing data buyers: the direct (Leontief) algorithm.

Model (Westenbroek, Dong, Ratliff, Sastry, *Statistical estimation with strategic data sources in
competitive settings*, §II–III). Buyers :math:`k = 1..K` pay sources :math:`q = 1..N` with contracts
:math:`p_q^k = c_q^k - d_q^k (y_q - \hat f^k_{-q}(x_q))^2`; source :math:`q` has
:math:`\sigma_q(e) = \exp(-\alpha_q e)` (Assumption 2) and the estimators are separable
(Assumption 3) with coefficients :math:`\gamma_q^k`, :math:`\xi^k_{q,l}` (``xi[k, q, l]``, first
index = the left-out (paid) source, second = whose noise; :math:`\xi^k_{q,q} = 1`).

Source response (17)–(18). With :math:`D_q = \sum_j d_q^j` the source maximises
:math:`\sum_j c_q^j - D_q(\sigma_q^2(e) + \dots) - e`, so
:math:`e_q^* = \ln(2\alpha_q D_q)/(2\alpha_q)` and :math:`s_q := \sigma_q^2(e_q^*) = 1/(2\alpha_q D_q)`.

Derivation of :math:`A` in :math:`d = A d + \tilde\gamma` (25)–(26). Write buyer :math:`k`'s
expected payment to source :math:`i` as :math:`\pi_i^k = c_i^k - d_i^k \sum_l \xi^k_{i,l} s_l`
((21) says :math:`\pi_i^k \ge 0`). After dividing (19) by :math:`\eta^k`
(:math:`\tilde\gamma^k = \gamma^k/\eta^k`), buyer :math:`k` minimises
:math:`\sum_i \tilde\gamma_i^k s_i + \sum_i \pi_i^k` subject to (20)
:math:`\sum_j \pi_i^j \ge e_i^* = -\ln(s_i)/(2\alpha_i)`. Lemma 1: (20) is tight, so
:math:`\pi_i^k = -\ln(s_i)/(2\alpha_i) - \sum_{j\ne k} c_i^j + \sum_{j \ne k} d_i^j \sum_l \xi^j_{i,l} s_l`.
Summing over :math:`i` and swapping :math:`i \leftrightarrow l` in the last term, buyer
:math:`k`'s objective is, up to the constant :math:`-\sum_i\sum_{j\ne k} c_i^j`,

.. math::

    \sum_q \bigl(\tilde\gamma_q^k + K_q^k\bigr) s_q - \frac{\ln s_q}{2\alpha_q}, \qquad
    K_q^k = \sum_{j\ne k}\sum_{l} d_l^j \xi^j_{l,q} = D_q^{-k} + \sum_{j\ne k}\sum_{l\ne q} d_l^j \xi^j_{l,q}.

It is separable and strictly convex in :math:`s_q = 1/(2\alpha_q(d_q^k + D_q^{-k}))`; the
first-order condition :math:`\tilde\gamma_q^k + K_q^k = 1/(2\alpha_q s_q)` gives the minimiser
:math:`s_q = 1/(2\alpha_q(\tilde\gamma_q^k + K_q^k))` gives
:math:`d_q^k = \tilde\gamma_q^k + \sum_{j\ne k}\sum_{l\ne q} \xi^j_{l,q} d_l^j` (25), i.e.

.. math::

    A_{(k,q),(j,l)} = \xi^j_{l,q}\,[j \ne k]\,[l \ne q]\,[l \in U_k]
    \quad\text{(rows/columns only for used pairs)}.

When buyer :math:`k` does not contract with every source (``uses``), it has no payment
:math:`\pi_l^k` and no constraint (20) for :math:`l \notin U_k`, so the sums over :math:`i` above
run over :math:`U_k` only and :math:`K_q^k = \sum_{j\ne k}\sum_{l\in U_k} d_l^j\xi^j_{l,q}`: the
coupling flows only through sources buyer :math:`k` itself pays — hence the factor
:math:`[l \in U_k]` (invisible in the paper, whose buyers use every source).

Note the index order: row source :math:`q` collects :math:`\xi^j_{l,q}` (noise of :math:`q` in
:math:`j`'s leave-:math:`l`-out estimate). §IV's printed matrix (31) has :math:`\xi^1_{1,2}` in
row 2 where this derivation gives :math:`\xi^1_{2,1}`.

Existence and uniqueness (Theorem 1, [8]): for :math:`\tilde\gamma > 0` a non-negative solution
exists iff :math:`\rho(A) < 1`, and it is unique. ``A`` is never formed for large markets: with
:math:`w_{j,q} = \sum_{l \ne q} d_l^j \xi^j_{l,q}` (one batched matrix product),
:math:`(A d)_{k,q} = \sum_{l \in U_k} V_{l,q} - w_{k,q}` with
:math:`V_{l,q} = \sum_j d_l^j \xi^j_{l,q}`, so a product costs :math:`O(K N^2)`.
:math:`\rho(A)` is computed from ARPACK's dominant eigenvector (large :math:`A`) or a shifted
power iteration, always with the Collatz–Wielandt bracket
:math:`\min_i (Ax)_i/x_i \le \rho(A) \le \max_i (Ax)_i/x_i` (valid for any non-negative
:math:`A` and positive :math:`x`); the Leontief solution itself is a witness:
:math:`\rho(A) \le \max_i (A d)_i / d_i = \max_i (1 - \tilde\gamma_i/d_i) < 1`.

The c-polytope (Theorem 1 with Lemma 1). Given the unique :math:`d`, the equilibrium
:math:`c` are exactly :math:`\sum_{j} c_i^j = T_i := \sum_j L_i^j + e_i^*` and
:math:`c_i^k \ge L_i^k := d_i^k \sum_l \xi^k_{i,l} s_l`. It splits by source:
:math:`c_i^k \in [L_i^k, L_i^k + e_i^*]`, so it is non-empty **iff** every
:math:`e_i^* \ge 0` (i.e. :math:`2\alpha_i D_i \ge 1`). The paper does not state this
condition; when it fails the Leontief profile is not a GNE (buyer :math:`k`'s own constraint (21)
binds, which the derivation of (25) ignores) and the certificate reports it.

References
----------
.. [8] S. Stańczak, M. Wiczanowski, H. Boche, *On the positive solution to a linear system with
   nonnegative coefficients*, Springer 2006.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.status import Status

__all__ = [
    "COLLAPSE_MARGIN",
    "CPolytope",
    "GNEInputs",
    "SpectralRadius",
    "as_gne_inputs",
    "c_polytope",
    "effort_response",
    "leontief_apply",
    "leontief_matrix",
    "leontief_operator",
    "solve_gne",
    "solve_leontief",
    "spectral_radius",
    "variance_response",
]

COLLAPSE_MARGIN = 1e-6
"""Default margin :math:`1-\\rho(A)` below which the equilibrium is flagged ill-conditioned."""

DENSE_LIMIT = 1500
"""Above this many (buyer, source) pairs ``method="auto"`` solves matrix-free (GMRES)."""


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GNEInputs:
    """Validated coefficients of the buyers' game (arrays indexed [buyer k, source i(, source l)]).

    Attributes
    ----------
    gamma : ndarray, shape (K, N)
        :math:`\\gamma_i^k = \\beta_i^k - \\sum_{j\\ne k}\\delta^k_j\\beta_i^j`.
    xi : ndarray, shape (K, N, N)
        :math:`\\xi^k_{i,l}`, ``xi[k, i, i] = 1`` on used pairs.
    alpha : ndarray, shape (N,)
        Effort parameters :math:`\\alpha_i > 0`.
    eta : ndarray, shape (K,)
        Money-to-utility conversion :math:`\\eta^k > 0`.
    uses : ndarray of bool, shape (K, N)
        ``uses[k, i]``: buyer ``k`` contracts with source ``i`` (otherwise ``d[k, i] = c[k, i] = 0``).
    buyers, sources : list
        Names in index order.
    """

    gamma: NDArray[np.float64]
    xi: NDArray[np.float64]
    alpha: NDArray[np.float64]
    eta: NDArray[np.float64]
    uses: NDArray[np.bool_]
    buyers: list[Any]
    sources: list[Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def K(self) -> int:
        return self.gamma.shape[0]

    @property
    def N(self) -> int:
        return self.gamma.shape[1]

    @functools.cached_property
    def gamma_tilde(self) -> NDArray[np.float64]:
        """:math:`\\gamma^k/\\eta^k` on used pairs, 0 elsewhere (the normalisation of (19))."""
        return np.where(self.uses, self.gamma / self.eta[:, None], 0.0)

    @functools.cached_property
    def xi_off(self) -> NDArray[np.float64]:
        """:math:`\\xi^j_{l,q}` with the diagonal and unused pairs zeroed (the blocks of ``A``)."""
        x = self.xi * self.uses[:, :, None] * self.uses[:, None, :]
        idx = np.arange(self.N)
        x = x.copy()
        x[:, idx, idx] = 0.0
        return x

    @functools.cached_property
    def xi_full(self) -> NDArray[np.float64]:
        """:math:`\\xi^k_{i,l}` on used pairs with :math:`\\xi^k_{i,i}=1` (the payment kernel)."""
        x = self.xi_off.copy()
        idx = np.arange(self.N)
        x[:, idx, idx] = self.uses.astype(float)
        return x

    @classmethod
    def from_arrays(
        cls,
        gamma: ArrayLike,
        xi: ArrayLike,
        alpha: ArrayLike,
        eta: ArrayLike | None = None,
        uses: ArrayLike | None = None,
        buyers: list[Any] | None = None,
        sources: list[Any] | None = None,
    ) -> GNEInputs:
        """Validate plain arrays (see :func:`as_gne_inputs` for the checks)."""
        g = np.asarray(gamma, dtype=float)
        x = np.asarray(xi, dtype=float)
        a = np.asarray(alpha, dtype=float)
        if g.ndim != 2:
            raise InvalidInputError(f"gamma must have shape (K, N), got {g.shape!r}")
        K, N = g.shape
        if K < 1 or N < 1:
            raise InvalidInputError(f"need at least one buyer and one source, got gamma shape {g.shape!r}")
        if x.shape != (K, N, N):
            raise InvalidInputError(f"xi must have shape {(K, N, N)!r}, got {x.shape!r}")
        if a.shape != (N,):
            raise InvalidInputError(f"alpha must have shape {(N,)!r}, got {a.shape!r}")
        e = np.ones(K) if eta is None else np.asarray(eta, dtype=float)
        if e.shape != (K,):
            raise InvalidInputError(f"eta must have shape {(K,)!r}, got {e.shape!r}")
        u = np.ones((K, N), dtype=bool) if uses is None else np.asarray(uses, dtype=bool)
        if u.shape != (K, N):
            raise InvalidInputError(f"uses must have shape {(K, N)!r}, got {u.shape!r}")
        b = list(range(K)) if buyers is None else list(buyers)
        s = list(range(N)) if sources is None else list(sources)
        if len(b) != K or len(s) != N:
            raise InvalidInputError("buyers/sources names do not match the array shapes")
        for name, arr in (("gamma", g), ("xi", x), ("alpha", a), ("eta", e)):
            if not np.all(np.isfinite(arr)):
                bad = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
                raise InvalidInputError(f"{name} has a non-finite entry at index {bad!r}")
        if np.any(a <= 0):
            i = int(np.argmin(a))
            raise InvalidInputError(f"source {s[i]!r} has alpha {a[i]!r} <= 0 (Assumption 2)")
        if np.any(e <= 0):
            k = int(np.argmin(e))
            raise InvalidInputError(f"buyer {b[k]!r} has eta {e[k]!r} <= 0")
        xu = x * u[:, :, None] * u[:, None, :]
        if np.any(xu < 0):
            k, i, l = (int(v) for v in np.argwhere(xu < 0)[0])
            raise InvalidInputError(
                f"xi[{b[k]!r}, {s[i]!r}, {s[l]!r}] = {x[k, i, l]!r} < 0 (Assumption 3 needs h >= 0)"
            )
        gu = np.where(u, g, 0.0)
        if np.any(gu < 0):
            k, i = (int(v) for v in np.argwhere(gu < 0)[0])
            raise InvalidInputError(
                f"gamma of buyer {b[k]!r} at source {s[i]!r} is {g[k, i]!r} < 0: Theorem 1 assumes "
                "gamma >= 0 (competition delta outweighs the buyer's own estimation benefit)"
            )
        if np.any(np.where(u, 0.0, g) > 0):
            k, i = (int(v) for v in np.argwhere(np.where(u, 0.0, g) > 0)[0])
            raise InvalidInputError(
                f"buyer {b[k]!r} does not use source {s[i]!r} but has gamma {g[k, i]!r} > 0 there "
                "(beta is 0 on unused pairs, so gamma = -sum delta beta <= 0)"
            )
        unused = ~u.any(axis=0)
        if np.any(unused):
            i = int(np.argmax(unused))
            raise InvalidInputError(f"source {s[i]!r} is used by no buyer: nobody can pay its effort")
        return cls(g, x, a, e, u, b, s)


def as_gne_inputs(market: Any) -> GNEInputs:
    """Accept :class:`GNEInputs`, a ``MarketCoefficients``-like object, or an estimation-market graph.

    Parameters
    ----------
    market : GNEInputs or object with ``gamma, xi, alpha`` (and optionally ``eta, uses, buyers,
        sources``) or ``networkx.Graph``
        A graph is turned into coefficients with
        :func:`datamarkets.models.estimators.market_coefficients`.

    Returns
    -------
    GNEInputs

    Raises
    ------
    InvalidInputError
        Wrong shapes, non-finite values, ``alpha <= 0``, ``eta <= 0``, ``xi < 0``, ``gamma < 0`` on a
        used pair (Theorem 1's assumption), ``gamma > 0`` on an unused pair, or a source no buyer
        uses.
    """
    if isinstance(market, GNEInputs):
        return market
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover
        nx = None
    if nx is not None and isinstance(market, nx.Graph):
        from datamarkets.models.estimators import market_coefficients

        market = market_coefficients(market)
    if not all(hasattr(market, a) for a in ("gamma", "xi", "alpha")):
        raise InvalidInputError(
            f"cannot read coefficients from {type(market).__name__!r}: need gamma, xi and alpha"
        )
    inp = GNEInputs.from_arrays(
        market.gamma,
        market.xi,
        market.alpha,
        getattr(market, "eta", None),
        getattr(market, "uses", None),
        list(getattr(market, "buyers", [])) or None,
        list(getattr(market, "sources", [])) or None,
    )
    extra = {}
    for name in ("beta", "delta"):
        if getattr(market, name, None) is not None:
            extra[name] = np.asarray(getattr(market, name), dtype=float)
    if extra:
        inp.meta.update(extra)
    return inp


# --------------------------------------------------------------------------------------------
# source response (17)-(18)
# --------------------------------------------------------------------------------------------
def effort_response(d_total: ArrayLike, alpha: ArrayLike) -> NDArray[np.float64]:
    """Source effort :math:`e_q^* = \\ln(2\\alpha_q D_q)/(2\\alpha_q)` (17); ``-inf`` where ``D_q = 0``.

    Examples
    --------
    >>> float(effort_response([0.5], [1.0])[0])
    0.0
    """
    D = np.asarray(d_total, dtype=float)
    a = np.asarray(alpha, dtype=float)
    with np.errstate(divide="ignore"):
        return np.log(2.0 * a * D) / (2.0 * a)  # (17)


def variance_response(d_total: ArrayLike, alpha: ArrayLike) -> NDArray[np.float64]:
    """Induced variance :math:`s_q = \\sigma_q^2(e_q^*) = 1/(2\\alpha_q D_q)` (18).

    Examples
    --------
    >>> float(variance_response([2.0], [0.25])[0])
    1.0
    """
    D = np.asarray(d_total, dtype=float)
    a = np.asarray(alpha, dtype=float)
    with np.errstate(divide="ignore"):
        return 1.0 / (2.0 * a * D)  # (18)


# --------------------------------------------------------------------------------------------
# the Leontief operator (25)-(26)
# --------------------------------------------------------------------------------------------
def leontief_apply(xi_off: NDArray[np.float64], uses: NDArray[np.bool_], d: NDArray[np.float64]) -> NDArray:
    """:math:`(A d)_{k,q} = \\sum_{j\\ne k}\\sum_{l\\ne q,\\ l \\in U_k}\\xi^j_{l,q} d_l^j` for ``d`` (K, N).

    ``U_k`` are the sources buyer ``k`` uses (all of them in a complete market); ``xi_off`` has a
    zero diagonal and zeros on unused pairs (:attr:`GNEInputs.xi_off`).
    """
    dm = np.where(uses, d, 0.0)
    w = np.matmul(dm[:, None, :], xi_off)[:, 0, :]  # w[k, q] = sum_l d[k, l] xi[k, l, q]
    V = np.einsum("jl,jlq->lq", dm, xi_off)  # V[l, q] = sum_j d[j, l] xi[j, l, q]
    if uses.all():  # complete market: sum over l in U_k is the column sum
        return V.sum(axis=0)[None, :] - w  # (25)
    return np.where(uses, uses.astype(float) @ V - w, 0.0)  # (25)


def leontief_operator(market: Any) -> Any:
    """``A`` of (26) as a :class:`scipy.sparse.linalg.LinearOperator` on ``vec(d)`` (row-major (K, N))."""
    from scipy.sparse.linalg import LinearOperator

    inp = as_gne_inputs(market)
    X, U, K, N = inp.xi_off, inp.uses, inp.K, inp.N

    def mv(v: NDArray) -> NDArray:
        return leontief_apply(X, U, np.asarray(v, dtype=float).reshape(K, N)).ravel()

    return LinearOperator((K * N, K * N), matvec=mv, rmatvec=None, dtype=float)


def leontief_matrix(market: Any) -> NDArray[np.float64]:
    """Dense ``A`` of (26), shape (K·N, K·N), entry ``[(k,q),(j,l)] = xi[j,l,q]`` for j≠k, l≠q.

    For tests, LPs and small markets only (memory :math:`8K^2N^2` bytes).

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_equilibrium import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> leontief_matrix(inp)[0].tolist()  # row (k=0, q=0): xi^1_{1,0} at column (j=1, l=1)
    [0.0, 0.0, 0.0, 0.5]
    """
    inp = as_gne_inputs(market)
    K, N = inp.K, inp.N
    T = inp.xi_off.transpose(2, 0, 1)  # T[q, j, l] = xi[j, l, q]
    A4 = T[None, :, :, :] * (1.0 - np.eye(K))[:, None, :, None]
    A4 = A4 * inp.uses[:, :, None, None] * inp.uses[:, None, None, :]  # [k uses q][k uses l]
    return A4.reshape(K * N, K * N)


@dataclass(frozen=True)
class SpectralRadius:
    """Perron root of a non-negative matrix with a certified bracket.

    Attributes
    ----------
    value : float
        Estimate of :math:`\\rho(A)`.
    lower, upper : float
        Collatz–Wielandt bounds, :math:`lower \\le \\rho(A) \\le upper`.
    iterations : int
        Power iterations used.
    method : str
        ``"collatz-wielandt"`` (bracket closed), ``"arpack"`` or ``"dense"`` (fallback estimate).
    """

    value: float
    lower: float
    upper: float
    iterations: int
    method: str

    @property
    def margin(self) -> float:
        """:math:`1 - \\rho(A)`."""
        return 1.0 - self.value

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame

        return object_frame(self, table)


def _cw_bounds(matvec: Any, x: NDArray, floor_rel: float = 1e-13) -> tuple[float, float]:
    """Collatz–Wielandt lower/upper bounds for the non-negative operator at ``x >= 0``."""
    m = float(x.max())
    if m <= 0:
        return 0.0, float("inf")
    xs = np.where(x > floor_rel * m, x, 0.0)  # support for the lower bound
    y = matvec(xs)
    sup = xs > 0
    lo = float(np.min(y[sup] / xs[sup]))
    xp = np.maximum(x, floor_rel * m)  # positive vector for the upper bound
    yp = matvec(xp)
    hi = float(np.max(yp / xp))
    return max(lo, 0.0), hi


def spectral_radius(
    A: Any,
    n: int | None = None,
    *,
    rtol: float = 1e-10,
    max_iter: int = 3000,
) -> SpectralRadius:
    """Spectral radius of a non-negative matrix or operator, with a certified bracket.

    For operators of dimension > 400, ARPACK's dominant eigenvector is tried first and its
    Collatz–Wielandt bracket accepted when it closes to ``rtol``. Otherwise: shifted power
    iteration :math:`x \\leftarrow (A + cI)x` (the shift removes the periodicity
    of bipartite-like :math:`A`, e.g. eigenvalues :math:`\\pm\\rho`), with ``c`` the running
    estimate; every 10 steps the Collatz–Wielandt bracket is evaluated. If it does not close to
    ``rtol`` (reducible ``A``), ARPACK (or a dense eigensolver for small ``n``) supplies the
    estimate, clipped into the bracket.

    Parameters
    ----------
    A : ndarray or LinearOperator
        Non-negative square matrix, or an operator with ``matvec``.
    n : int, optional
        Dimension (taken from ``A.shape`` when omitted).
    rtol : float
        Relative width at which the bracket counts as closed.
    max_iter : int
        Power iterations before falling back.

    Returns
    -------
    SpectralRadius

    Examples
    --------
    >>> r = spectral_radius(np.array([[0.0, 0.5], [0.5, 0.0]]))
    >>> round(r.value, 12), r.lower <= 0.5 <= r.upper
    (0.5, True)
    """
    if isinstance(A, np.ndarray):
        M = A

        def matvec(v: NDArray) -> NDArray:
            return M @ v
    else:
        matvec = A.matvec
    n = int(n if n is not None else A.shape[0])
    x = np.full(n, 1.0 / n)
    lo, hi = _cw_bounds(matvec, x)
    if hi == 0.0:
        return SpectralRadius(0.0, 0.0, 0.0, 0, "collatz-wielandt")
    if n > 400 and hasattr(A, "matvec"):
        # Krylov (ARPACK) Perron vector first: its Collatz–Wielandt bracket is usually tight at once
        from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigs

        try:
            vals, vecs = eigs(A, k=1, which="LM", tol=1e-12, maxiter=max(1000, 20 * n))
            v = np.abs(vecs[:, 0].real)
            l2, h2 = _cw_bounds(matvec, v)
            lo, hi = max(lo, l2), min(hi, h2)
            if hi - lo <= rtol * max(hi, 1e-300):
                return SpectralRadius(0.5 * (lo + hi), lo, hi, 0, "arpack+collatz-wielandt")
            x = v / v.sum() + x  # keep it positive for the power iteration
            x /= x.sum()
        except (ArpackNoConvergence, ArpackError):
            pass
    c = hi
    est = hi
    it = 0
    while it < max_iter:
        for _ in range(10):
            y = matvec(x)
            est = float(y.sum() / x.sum())
            x = y + c * x
            x /= x.sum()
            it += 1
        l2, h2 = _cw_bounds(matvec, x)
        lo, hi = max(lo, l2), min(hi, h2)
        c = max(est, 1e-3 * hi)
        if hi - lo <= rtol * max(hi, 1e-300):
            return SpectralRadius(0.5 * (lo + hi), lo, hi, it, "collatz-wielandt")
    # bracket did not close (reducible A): take an eigensolver estimate inside the bracket
    if n <= 400 or not hasattr(A, "matvec"):
        dense = A if isinstance(A, np.ndarray) else np.column_stack([matvec(col) for col in np.eye(n)])
        value, method = float(np.max(np.abs(np.linalg.eigvals(dense)))), "dense"
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, eigs

        try:
            vals = eigs(A, k=1, which="LM", return_eigenvectors=False, maxiter=20 * n, tol=rtol)
            value, method = float(np.abs(vals[0])), "arpack"
        except ArpackNoConvergence:
            value, method = est, "power"
    return SpectralRadius(float(np.clip(value, lo, hi)), lo, hi, it, method)


def solve_leontief(
    market: Any,
    *,
    method: Literal["auto", "dense", "gmres", "neumann"] = "auto",
    rtol: float = 1e-12,
    max_iter: int | None = None,
    x0: NDArray | None = None,
    rhs: NDArray | None = None,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Solve :math:`(I - A) d = \\tilde\\gamma` (26).

    Parameters
    ----------
    market : GNEInputs or coefficients or graph
    method : {"auto", "dense", "gmres", "neumann"}
        ``"dense"`` LU of the explicit matrix; ``"gmres"`` matrix-free Krylov (restarted, warm
        started at :math:`\\tilde\\gamma`); ``"neumann"`` the fixed point :math:`d \\leftarrow Ad +
        \\tilde\\gamma` (= simultaneous best responses, converges at rate :math:`\\rho(A)`);
        ``"auto"`` dense up to :data:`DENSE_LIMIT` pairs, GMRES above.
    rtol : float
        Relative residual target :math:`\\|(I-A)d-\\tilde\\gamma\\|_2 \\le rtol\\,\\|\\tilde\\gamma\\|_2`.
    max_iter : int, optional
        Iteration cap for the iterative methods.
    x0 : ndarray, optional
        Warm start, shape (K, N).
    rhs : ndarray, optional
        Right-hand side, shape (K, N), instead of :math:`\\tilde\\gamma` (e.g. ones, to get
        :math:`\\|(I-A)^{-1}\\|_\\infty` since :math:`(I-A)^{-1} \\ge 0`).

    Returns
    -------
    d : ndarray, shape (K, N)
    info : dict
        ``method``, ``iterations``.

    Raises
    ------
    ValueError
        Unknown ``method``.
    ConvergenceError
        An iterative method hit ``max_iter``.

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_equilibrium import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> d, info = solve_leontief(inp)  # d = gamma + d/2  =>  d = 2
    >>> d.round(12).tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """
    inp = as_gne_inputs(market)
    K, N = inp.K, inp.N
    g = inp.gamma_tilde if rhs is None else np.where(inp.uses, np.asarray(rhs, dtype=float), 0.0)
    if method == "auto":
        method = "dense" if K * N <= DENSE_LIMIT else "gmres"
    if method == "dense":
        A = leontief_matrix(inp)
        used = inp.uses.ravel()
        B = np.eye(int(used.sum())) - A[np.ix_(used, used)]
        d = np.zeros(K * N)
        d[used] = np.linalg.solve(B, g.ravel()[used])
        return d.reshape(K, N), {"method": "dense", "iterations": 1}
    X, U = inp.xi_off, inp.uses
    if method == "neumann":
        d = g.copy() if x0 is None else np.asarray(x0, float).copy()
        cap = max_iter or 100_000
        gn = np.linalg.norm(g)
        for it in range(1, cap + 1):
            with np.errstate(over="ignore", invalid="ignore"):
                d_new = leontief_apply(X, U, d) + g  # (25) for every (k, q) at once
                residual = np.linalg.norm(d_new - leontief_apply(X, U, d_new) - g)
            if not (np.all(np.isfinite(d_new)) and np.isfinite(residual)):
                raise ConvergenceError("Neumann iteration diverged (rho(A) >= 1?)", it)
            if residual <= rtol * gn:
                return d_new, {"method": "neumann", "iterations": it}
            d = d_new
        raise ConvergenceError("Neumann (best-response) iteration on d = A d + gamma", cap)
    if method == "gmres":
        from scipy.sparse.linalg import LinearOperator, gmres

        def mv(v: NDArray) -> NDArray:
            dd = v.reshape(K, N)
            return (dd - leontief_apply(X, U, dd)).ravel()

        op = LinearOperator((K * N, K * N), matvec=mv, dtype=float)
        count = [0]

        def cb(_: Any) -> None:
            count[0] += 1

        restart = min(K * N, 60)
        cap = max_iter or 2000
        start = g.ravel() if x0 is None else np.asarray(x0, float).ravel()
        sol, flag = gmres(
            op,
            g.ravel(),
            x0=start,
            rtol=rtol,
            atol=0.0,
            restart=restart,
            maxiter=cap,
            callback=cb,
            callback_type="pr_norm",
        )
        if flag != 0:
            raise ConvergenceError("GMRES on (I - A) d = gamma", count[0])
        return np.where(U, sol.reshape(K, N), 0.0), {"method": "gmres", "iterations": count[0]}
    raise ValueError(f"unknown method {method!r}; use 'auto', 'dense', 'gmres' or 'neumann'")


# --------------------------------------------------------------------------------------------
# the c-polytope (Theorem 1, Lemma 1)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CPolytope:
    """The equilibrium c's for a given d: :math:`\\sum_j c_i^j = T_i`, :math:`c_i^k \\ge L_i^k`.

    Attributes
    ----------
    lower : ndarray, shape (K, N)
        :math:`L_i^k = d_i^k \\sum_l \\xi^k_{i,l} s_l` (the expected penalty; (21) is
        :math:`c_i^k \\ge L_i^k`); 0 on unused pairs, where ``c = 0`` is fixed.
    total : ndarray, shape (N,)
        :math:`T_i = \\sum_j L_i^j + e_i^*` ((20) tight, Lemma 1).
    effort : ndarray, shape (N,)
        :math:`e_i^*`, the slack each source's c's can share.
    uses : ndarray of bool, shape (K, N)
    """

    lower: NDArray[np.float64]
    total: NDArray[np.float64]
    effort: NDArray[np.float64]
    uses: NDArray[np.bool_]

    @property
    def nonempty(self) -> bool:
        """True iff every source's effort is finite and :math:`\\ge 0` (necessary and sufficient)."""
        return bool(np.all(np.isfinite(self.effort)) and np.all(self.effort >= 0))

    def upper(self) -> NDArray[np.float64]:
        """:math:`c_i^k \\le L_i^k + e_i^*` (the others pay only their :math:`L`)."""
        return np.where(self.uses, self.lower + np.maximum(self.effort, 0.0)[None, :], 0.0)

    def point(self, share: NDArray | None = None) -> NDArray[np.float64]:
        """A point of the polytope: :math:`c = L + e^* \\cdot` ``share`` (columns of ``share``
        sum to 1 over the users; default: proportional to :math:`d`, passed via ``share``, else
        equal split)."""
        if share is None:
            share = self.uses / self.uses.sum(axis=0, keepdims=True)
        return np.where(self.uses, self.lower + share * self.effort[None, :], 0.0)

    def residuals(self, c: NDArray) -> dict[str, float]:
        """Largest violation of the equality rows and of the lower bounds at ``c``."""
        eq = np.abs(np.where(self.uses, c, 0.0).sum(axis=0) - self.total)
        lb = np.maximum(np.where(self.uses, self.lower - c, 0.0), 0.0)
        return {"equality": float(eq.max(initial=0.0)), "lower": float(lb.max(initial=0.0))}

    def constraints(self, buyers: list[Any], sources: list[Any]) -> list[str]:
        """The polytope as readable constraint strings (one equality per source, one bound per pair)."""
        out = []
        for i, s in enumerate(sources):
            users = [k for k in range(len(buyers)) if self.uses[k, i]]
            lhs = " + ".join(f"c[{buyers[k]!r},{s!r}]" for k in users)
            out.append(f"{lhs} = {self.total[i]:.12g}")
            out += [f"c[{buyers[k]!r},{s!r}] >= {self.lower[k, i]:.12g}" for k in users]
        return out

    def payment_range(self) -> dict[str, NDArray[np.float64]]:
        """Per buyer, least and most of :math:`\\sum_i c_i^k` and of the expected payment
        :math:`\\sum_i (c_i^k - L_i^k)` over the polytope (closed form; the HiGHS LP in
        :mod:`datamarkets.formulations.gne_lp` is the cross-check).

        A buyer that is the only user of source ``i`` must pay all of :math:`e_i^*`; otherwise
        it can pay anything in :math:`[0, e_i^*]`.
        """
        e = np.maximum(self.effort, 0.0)
        sole = self.uses & (self.uses.sum(axis=0, keepdims=True) == 1)
        least_pay = (sole * e[None, :]).sum(axis=1)
        most_pay = (self.uses * e[None, :]).sum(axis=1)
        base = self.lower.sum(axis=1)
        return {
            "payment_least": least_pay,
            "payment_most": most_pay,
            "c_least": base + least_pay,
            "c_most": base + most_pay,
        }

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: pairs, sources, summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame

        return object_frame(self, table)


def c_polytope(market: Any, d: ArrayLike) -> CPolytope:
    """The c-polytope of Theorem 1 for the equilibrium ``d`` (shape (K, N)).

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_equilibrium import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> P = c_polytope(inp, np.full((2, 2), 2.0))  # D = 4, e* = ln(8)/2
    >>> P.nonempty, round(float(P.effort[0]), 12) == round(float(np.log(8) / 2), 12)
    (True, True)
    """
    inp = as_gne_inputs(market)
    d = np.where(inp.uses, np.asarray(d, dtype=float), 0.0)
    D = d.sum(axis=0)
    s = variance_response(D, inp.alpha)  # (18)
    e = effort_response(D, inp.alpha)  # (17)
    L = d * np.einsum("kil,l->ki", inp.xi_full, s)  # d_i^k sum_l xi^k_{i,l} s_l
    T = L.sum(axis=0) + e  # Lemma 1: (20) tight
    return CPolytope(L, T, e, inp.uses)


# --------------------------------------------------------------------------------------------
# the GNE
# --------------------------------------------------------------------------------------------
def _named(inp: GNEInputs, arr: NDArray) -> dict[str, dict[str, float]]:
    return {
        str(b): {str(s): float(arr[k, i]) for i, s in enumerate(inp.sources)}
        for k, b in enumerate(inp.buyers)
    }


def solve_gne(
    market: Any,
    *,
    method: Literal["auto", "dense", "gmres", "neumann"] = "auto",
    collapse_margin: float = COLLAPSE_MARGIN,
    best_response_gap: bool = False,
    welfare: bool = True,
    lp_check: bool = False,
    rtol: float = 1e-12,
) -> Result:
    """Generalized Nash equilibrium of the buyers' game by the Leontief system (Theorem 1).

    Parameters
    ----------
    market : GNEInputs, MarketCoefficients-like, or estimation-market graph
    method : {"auto", "dense", "gmres", "neumann"}
        Linear solver for (26), see :func:`solve_leontief`.
    collapse_margin : float
        Flag the equilibrium as ill-conditioned (certificate detail ``ill_conditioned``) when
        :math:`1 - \\rho(A)` is below this.
    best_response_gap : bool
        Also solve every buyer's exact best-response program (cvxpy/Clarabel) against the
        equilibrium and certify the gaps (see :mod:`datamarkets.formulations.gne_best_response`).
    welfare : bool
        Add welfare-optimal effort (28), social losses and the price of anarchy
        (:mod:`datamarkets.formulations.welfare_effort`).
    lp_check : bool
        Recompute ``payment_range`` with HiGHS LPs over the c-polytope
        (:func:`datamarkets.formulations.gne_lp.payment_range`) and certify the agreement.
    rtol : float
        Linear-solve residual target.

    Returns
    -------
    Result
        ``kind="gne"``. Status ``OPTIMAL`` with solution ``d`` (K, N), ``d_total``, ``variance``,
        ``effort_equilibrium``, ``c_lower``, ``c_total``, ``c_point`` (a polytope point, shares ∝ d),
        ``payment_range``, ``spectral_radius`` and bracket; or ``NO_EQUILIBRIUM`` (no exception,
        no NaN) with ``d = None``, a ``reason`` and ``no_equilibrium_cause``: ``"spectral_radius"``
        when :math:`\\rho(A) \\ge 1`, or ``"negative_effort"`` when the Leontief candidate
        (kept as ``d_candidate``/``effort_candidate``) gives some source :math:`e_i^* < 0`, so
        Theorem 1's c-polytope is empty and no interior GNE exists.

    Raises
    ------
    InvalidInputError
        Invalid coefficients (see :func:`as_gne_inputs`).

    Examples
    --------
    >>> import numpy as np
    >>> xi = np.ones((2, 2, 2)) * 0.5 + 0.5 * np.eye(2)
    >>> res = solve_gne(GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2)), welfare=False)
    >>> res.status.value, round(res.solution["spectral_radius"], 9), res.solution["d"].round(6).tolist()
    ('optimal', 0.5, [[2.0, 2.0], [2.0, 2.0]])
    """
    timer = Timer()
    with timer("validate_seconds"):
        inp = as_gne_inputs(market)
    K, N = inp.K, inp.N
    g = inp.gamma_tilde
    cert = Certificate()
    sol: dict[str, Any] = {
        "buyers": inp.buyers,
        "sources": inp.sources,
        "gamma": inp.gamma,
        "xi": inp.xi,
        "alpha": inp.alpha,
        "eta": inp.eta,
    }
    meta = provenance({"numpy": np.__version__})
    meta.update({"n_buyers": K, "n_sources": N, "pairs_used": int(inp.uses.sum())})

    with timer("spectral_seconds"):
        small = K * N <= 400
        rho = spectral_radius(leontief_matrix(inp) if small else leontief_operator(inp), K * N)
    sol.update(
        {
            "spectral_radius": rho.value,
            "spectral_radius_bounds": [rho.lower, rho.upper],
            "spectral_margin": rho.margin,
        }
    )
    cert.details["spectral_method"] = rho.method
    cert.details["spectral_iterations"] = rho.iterations

    def no_eq(reason: str, cause: str = "spectral_radius") -> Result:
        sol.update({"d": None, "reason": reason, "no_equilibrium_cause": cause})
        sol.setdefault("ill_conditioned", True)
        return Result("gne", Status.NO_EQUILIBRIUM, "leontief", sol, cert, timer.seconds, meta)

    if rho.lower >= 1.0:
        return no_eq(
            f"spectral radius of A is {rho.value:.12g} >= 1 (certified lower bound {rho.lower:.12g}): "
            "(I - A) d = gamma has no non-negative solution, so no GNE exists (Theorem 1)"
        )
    with timer("solve_seconds"):
        try:
            d, info = solve_leontief(inp, method=method, rtol=rtol)
        except (ConvergenceError, np.linalg.LinAlgError) as exc:
            if rho.upper < 1.0:
                raise
            return no_eq(
                f"spectral radius {rho.value:.12g} is not certifiably below 1 and the solve failed: {exc}"
            )
    # certificate of the linear system and of existence
    Ad = leontief_apply(inp.xi_off, inp.uses, d)
    r = d - Ad - g
    row_sum = float(leontief_apply(inp.xi_off, inp.uses, inp.uses.astype(float)).max())  # ||A||_inf
    d_inf = max(float(np.abs(d).max()), 1e-300)
    backward = float(np.abs(r).max()) / ((1.0 + row_sum) * d_inf + float(np.abs(g).max()))
    cert.add("leontief_backward_error", backward, 1e-11)
    cert.add("d_negativity", float(max(0.0, -d.min())) / d_inf, 1e-12)
    du = d[inp.uses]
    if np.all(du > 0):
        witness = float(np.max(Ad[inp.uses] / du))  # Collatz–Wielandt bound at x = d
        upper = min(rho.upper, witness)
    else:
        upper = rho.upper
    sol["spectral_radius_bounds"] = [rho.lower, upper]
    if upper >= 1.0 and (d.min() < 0 or rho.value >= 1.0):
        return no_eq(
            f"spectral radius of A is {rho.value:.12g} (bracket [{rho.lower:.6g}, {upper:.6g}]) "
            "and the Leontief solution is not non-negative: no GNE"
        )
    with timer("condition_seconds"):
        try:
            inv_ones, _ = solve_leontief(inp, method=method, rtol=1e-8, rhs=np.ones((K, N)))
            kappa = (1.0 + row_sum) * float(np.abs(inv_ones).max())  # exact: (I - A)^{-1} >= 0
        except (ConvergenceError, np.linalg.LinAlgError):
            kappa = float("inf")
    cert.add("forward_error_bound_rel", kappa * backward, 1e-6)
    cert.details["condition_number_inf"] = kappa
    cert.add("spectral_radius_upper_bound", upper, 1.0 - 1e-15)
    ill = rho.margin < collapse_margin
    cert.details["ill_conditioned"] = bool(ill)
    cert.details["solver"] = info
    d = np.maximum(d, 0.0) * inp.uses
    D = d.sum(axis=0)
    poly = c_polytope(inp, d)
    share = np.where(inp.uses, d / np.where(D > 0, D, 1.0)[None, :], 0.0)
    c_pt = poly.point(share)
    # Theorem 1's polytope is non-empty iff every equilibrium effort is >= 0
    neg = -np.min(np.where(np.isfinite(poly.effort), poly.effort, -np.inf))
    cert.add("c_polytope_negative_effort", float(max(0.0, neg)), 0.0)
    if not poly.nonempty:
        bad = int(np.argmin(np.where(np.isfinite(poly.effort), poly.effort, -np.inf)))
        n_bad = int(np.sum(~(poly.effort >= 0)))
        cert.details["c_polytope"] = (
            f"empty: source {inp.sources[bad]!r} has equilibrium effort {poly.effort[bad]!r} < 0 "
            f"(2 alpha D = {2 * inp.alpha[bad] * D[bad]!r} < 1), so (20) tight and (21) for every buyer "
            "cannot hold together; the Leontief d is then not a GNE (each buyer's own (21) binds)"
        )
        # Typed outcome, not an "optimal" result with a failed check: in ANY GNE (20) is tight
        # (Lemma 1) and every expected payment is >= 0 (21), so e_i = sum_j pi_i^j >= 0. The unique
        # interior candidate d of (25)-(26) has e_i < 0, hence it is not a GNE. Equilibria in which
        # some buyer's (21) binds (a complementarity problem) are not computed here.
        sol.update(
            {
                "d_candidate": d,
                "effort_candidate": poly.effort,
                "c_polytope_nonempty": False,
                "ill_conditioned": bool(ill),
            }
        )
        return no_eq(
            f"no interior GNE: the unique Leontief candidate d (rho(A) = {rho.value:.6g} < 1) gives "
            f"{n_bad} source(s) a negative effort, e.g. {inp.sources[bad]!r} with "
            f"e* = {poly.effort[bad]:.6g} "
            f"(2 alpha D = {2 * inp.alpha[bad] * D[bad]:.6g} < 1); every GNE has e >= 0 ((20) tight with "
            "(21) >= 0, Lemma 1), so this d is not one. Boundary equilibria where a buyer's (21) binds are "
            "not computed. Rescale: alpha_i ~ 1/(2 sum_k gamma_i^k) (gamma ~ 1/N^2 for N sources).",
            cause="negative_effort",
        )
    else:
        res_c = poly.residuals(c_pt)
        cert.add("c_point_equality", res_c["equality"] / max(1.0, float(np.abs(poly.total).max())), 1e-12)
        cert.add("c_point_lower", res_c["lower"], 1e-12)
    pr = poly.payment_range()
    sol.update(
        {
            "d": d,
            "d_total": D,
            "variance": variance_response(D, inp.alpha),
            "effort_equilibrium": poly.effort,
            "c_lower": poly.lower,
            "c_total": poly.total,
            "c_point": c_pt,
            "c_polytope_nonempty": poly.nonempty,
            "payment_range": {
                str(b): {
                    "least": float(pr["payment_least"][k]),
                    "most": float(pr["payment_most"][k]),
                    "c_least": float(pr["c_least"][k]),
                    "c_most": float(pr["c_most"][k]),
                }
                for k, b in enumerate(inp.buyers)
            },
            "ill_conditioned": bool(ill),
        }
    )
    status = Status.OPTIMAL
    if welfare:
        from datamarkets.formulations.welfare_effort import welfare_summary

        with timer("welfare_seconds"):
            sol.update(welfare_summary(inp, poly.effort, cert))
    if lp_check and poly.nonempty:
        from datamarkets.formulations.gne_lp import payment_range

        with timer("payment_lp_seconds"):
            lp = payment_range(inp, d)
        if lp.status is Status.OPTIMAL:
            cert.add(
                "payment_range_lp_vs_closed_form_rel", lp.certificate.residuals["lp_vs_closed_form_rel"], 1e-8
            )
        else:
            cert.add("payment_range_lp_vs_closed_form_rel", float("nan"), 1e-8)
            cert.details["payment_range_lp"] = lp.status.value
    if best_response_gap and poly.nonempty:
        from datamarkets.errors import SolverError
        from datamarkets.formulations.gne_best_response import best_response_gaps

        with timer("best_response_seconds"):
            try:
                gaps, values = best_response_gaps(inp, d, c_pt)
            except SolverError as exc:
                gaps, values = np.full(K, np.nan), None
                cert.details["best_response_error"] = str(exc)
        sol["best_response_gap"] = gaps
        cert.add("best_response_gap_rel_max", float(np.max(np.abs(gaps))), 1e-6)
        cert.details["best_response_value"] = values
    return Result("gne", status, f"leontief-{info['method']}", sol, cert, timer.seconds, meta)
