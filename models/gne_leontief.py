r"""Generalized Nash equilibrium of competing data buyers: the Leontief system and its spectral radius.

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

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.models.gne_inputs import as_gne_inputs
from datamarkets.validation import check_integer, check_tolerances, real_array

__all__ = [
    "COLLAPSE_MARGIN",
    "DENSE_LIMIT",
    "LeontiefMethod",
    "LeontiefSolution",
    "SpectralRadius",
    "leontief_apply",
    "leontief_matrix",
    "leontief_operator",
    "solve_leontief",
    "spectral_radius",
]

COLLAPSE_MARGIN = 1e-6
"""Default margin :math:`1-\\rho(A)` below which the equilibrium is flagged ill-conditioned."""

DENSE_LIMIT = 1500
"""Above this many (buyer, source) pairs ``method="auto"`` solves matrix-free (GMRES)."""

LeontiefMethod = Literal["auto", "dense", "gmres", "neumann"]
"""The linear solvers accepted as ``method`` by :func:`solve_leontief` and ``solve_gne``."""


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
    >>> from datamarkets.models.gne_inputs import GNEInputs
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


class LeontiefSolution(NamedTuple):
    """What :func:`solve_leontief` returns: the data volumes and how they were found."""

    d: NDArray[np.float64]
    """Data volumes :math:`d_{k,q}` (26), shape (K, N)."""
    info: dict[str, Any]
    """``method`` and ``iterations``."""


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
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

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
    method: LeontiefMethod = "auto",
    rtol: float = 1e-12,
    max_iter: int | None = None,
    x0: NDArray | None = None,
    rhs: NDArray | None = None,
) -> LeontiefSolution:
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
    LeontiefSolution
        A named pair ``(d, info)``: ``d`` of shape (K, N) and ``info`` with ``method`` and
        ``iterations``; unpacks as ``d, info = solve_leontief(...)``.

    Raises
    ------
    InvalidInputError
        Unknown ``method``.
    ConvergenceError
        An iterative method hit ``max_iter``.

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> d, info = solve_leontief(inp)  # d = gamma + d/2  =>  d = 2
    >>> d.round(12).tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """
    check_tolerances(rtol=rtol)
    if max_iter is not None:
        check_integer(max_iter, "max_iter", 1)
    inp = as_gne_inputs(market)
    K, N = inp.K, inp.N
    for name, v in (("x0", x0), ("rhs", rhs)):
        arr = None if v is None else real_array(v, name)
        if arr is not None and (arr.size != K * N or not np.all(np.isfinite(arr))):
            raise InvalidInputError(f"{name} must hold K·N = {K * N} finite numbers, got shape {arr.shape}")
    g = inp.gamma_tilde if rhs is None else np.where(inp.uses, np.asarray(rhs, dtype=float), 0.0)
    if method == "auto":
        method = "dense" if K * N <= DENSE_LIMIT else "gmres"
    if method == "dense":
        A = leontief_matrix(inp)
        used = inp.uses.ravel()
        B = np.eye(int(used.sum())) - A[np.ix_(used, used)]
        d = np.zeros(K * N)
        d[used] = np.linalg.solve(B, g.ravel()[used])
        return LeontiefSolution(d.reshape(K, N), {"method": "dense", "iterations": 1})
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
                return LeontiefSolution(d_new, {"method": "neumann", "iterations": it})
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
        return LeontiefSolution(
            np.where(U, sol.reshape(K, N), 0.0), {"method": "gmres", "iterations": count[0]}
        )
    raise InvalidInputError(f"unknown method {method!r}; choose one of auto, dense, gmres, neumann")
