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

This module holds the validated inputs and the sources' response; the Leontief system is in
:mod:`datamarkets.models.gne_leontief`, the c-polytope in :mod:`datamarkets.models.gne_polytope` and
the certified equilibrium (:func:`~datamarkets.formulations.gne_solve.solve_gne`) in
:mod:`datamarkets.formulations.gne_solve`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import InvalidInputError
from datamarkets.models.estimators import market_coefficients

__all__ = ["GNEInputs", "as_gne_inputs", "effort_response", "variance_response"]


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
