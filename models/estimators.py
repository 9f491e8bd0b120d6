r"""The coefficients β, ξ, γ of the competing-data-buyers game, computed from an estimation market,
and random estimation markets calibrated on them.

The estimators and distributions the buyer nodes carry are in :mod:`datamarkets.graphs.estimators`
(the identities behind β and ξ are explained there); this module assembles them over a market graph
(:mod:`datamarkets.graphs.estimation_market`): ``β_i^k = h_k(x_i, x, F_k)``, ``ξ^k_{i,l}`` from the
leave-one-out fits, and ``γ_i^k = β_i^k − Σ_{j≠k} δ^k_j β_i^j`` (Westenbroek et al., §III).

Examples
--------
>>> from datamarkets.graphs.estimation_market import two_firm_example
>>> market_coefficients(two_firm_example(x1=0.0)).gamma.shape
(2, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import InvalidInputError
from datamarkets.graphs import estimation_market as em
from datamarkets.graphs.estimators import distribution_from_spec, estimator_coefficients, estimator_from_spec
from datamarkets.validation import check_seed

__all__ = ["MarketCoefficients", "gamma_from_beta", "market_coefficients", "random_estimation_market"]

FloatArray = NDArray[np.float64]


# ------------------------------------------------------------------------------------ market level
@dataclass(frozen=True)
class MarketCoefficients:
    """β, ξ, γ of a market, indexed ``[buyer k, source i(, source l)]`` in ``buyers``/``sources`` order.

    Attributes
    ----------
    buyers, sources : list
        Node names; position in the list is the array index.
    beta : ndarray (K, N)
        ``beta[k, i] = β_i^k = h_k(x_i, x, F_k)``; 0 where ``uses[k, i]`` is False.
    xi : ndarray (K, N, N)
        ``xi[k, i, l] = ξ^k_{i,l}``: weight of ``σ_l²`` in ``E[(y_i − \\hat f^k_{-i}(x_i))²]``; the FIRST
        source index is the left-out (paid) source; ``xi[k, i, i] = 1``. Rows and columns of sources
        buyer ``k`` does not use are 0 (diagonal included).
    gamma : ndarray (K, N)
        ``gamma[k, i] = γ_i^k = β_i^k − Σ_{j≠k} δ^k_j β_i^j`` (``gamma = beta − delta @ beta``).
    alpha : ndarray (N,)
    eta : ndarray (K,)
    delta : ndarray (K, K)
        ``delta[k, j] = δ^k_j``, symmetric, zero diagonal.
    uses : ndarray of bool (K, N)
    loo_min_norm : ndarray of bool (K, N)
        Where buyer ``k``'s fit without source ``i`` is under-determined (minimum-norm ξ row).
    positions : ndarray (N, dim)
    """

    buyers: list[Any]
    sources: list[Any]
    beta: FloatArray
    xi: FloatArray
    gamma: FloatArray
    alpha: FloatArray
    eta: FloatArray
    delta: FloatArray
    uses: NDArray[np.bool_]
    loo_min_norm: NDArray[np.bool_]
    positions: FloatArray

    @property
    def n_buyers(self) -> int:
        return len(self.buyers)

    @property
    def n_sources(self) -> int:
        return len(self.sources)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested lists, keyed by the attribute names."""
        return {
            "buyers": list(self.buyers),
            "sources": list(self.sources),
            "beta": self.beta.tolist(),
            "xi": self.xi.tolist(),
            "gamma": self.gamma.tolist(),
            "alpha": self.alpha.tolist(),
            "eta": self.eta.tolist(),
            "delta": self.delta.tolist(),
            "uses": self.uses.tolist(),
            "loo_min_norm": self.loo_min_norm.tolist(),
            "positions": self.positions.tolist(),
        }


def gamma_from_beta(beta: ArrayLike, delta: ArrayLike) -> FloatArray:
    """``γ_i^k = β_i^k − Σ_{j≠k} δ^k_j β_i^j`` (definition after Assumption 3); the diagonal of ``delta``
    is ignored."""
    B = np.asarray(beta, dtype=float)
    D = np.asarray(delta, dtype=float)
    return B - (D - np.diag(np.diag(D))) @ B


def market_coefficients(G: nx.Graph) -> MarketCoefficients:
    """Compute β, ξ and γ for every buyer and source of an estimation market.

    Parameters
    ----------
    G : networkx.Graph
        An estimation market (see :mod:`datamarkets.graphs.estimation_market`); validated first.

    Returns
    -------
    MarketCoefficients

    Raises
    ------
    GraphError
        Whatever :func:`~datamarkets.graphs.estimation_market.validate_estimation_market` raises
        (bad attributes, δ outside [0, 1], singular designs, …).

    Examples
    --------
    >>> from datamarkets.graphs.estimation_market import two_firm_example
    >>> C = market_coefficients(two_firm_example(x1=0.0))
    >>> C.xi[0].round(6).tolist()  # ξ_{1,2} = (x1 x2 + 1)² / (x2² + 1)², ξ_{2,1} = (x1 x2 + 1)² / (x1² + 1)²
    [[1.0, 0.25], [1.0, 1.0]]
    """
    em.validate_estimation_market(G)
    buyers = em.buyer_nodes(G)
    sources = em.source_nodes(G)
    X = em.source_positions(G, sources)
    dim = X.shape[1]
    K, N = len(buyers), len(sources)
    col = {s: i for i, s in enumerate(sources)}
    beta = np.zeros((K, N))
    xi = np.zeros((K, N, N))
    uses = np.zeros((K, N), dtype=bool)
    loo = np.zeros((K, N), dtype=bool)
    for k, b in enumerate(buyers):
        data = G.nodes[b]
        est = estimator_from_spec(data["estimator"], dim, node=b)
        F = distribution_from_spec(data["F"], dim, node=b)
        idx = np.array(sorted(col[s] for s in G.neighbors(b) if G.nodes[s]["role"] == "source"))
        uses[k, idx] = True
        b_k, xi_k, mn_k = estimator_coefficients(est, X[idx], F, node=b)
        beta[k, idx] = b_k
        if idx.size == N:
            xi[k] = xi_k
        else:
            xi[k][np.ix_(idx, idx)] = xi_k
        loo[k, idx] = mn_k
    alpha = np.array([float(G.nodes[s]["alpha"]) for s in sources])
    eta = np.array([float(G.nodes[b]["eta"]) for b in buyers])
    delta = em.delta_matrix(G, buyers)
    gamma = gamma_from_beta(beta, delta)
    return MarketCoefficients(
        buyers=list(buyers),
        sources=list(sources),
        beta=beta,
        xi=xi,
        gamma=gamma,
        alpha=alpha,
        eta=eta,
        delta=delta,
        uses=uses,
        loo_min_norm=loo,
        positions=X,
    )


# ------------------------------------------------------------------------------------ random markets
def random_estimation_market(
    n_buyers: int,
    n_sources: int,
    degree: int = 2,
    seed: int | None = 0,
    *,
    dim: int = 1,
    delta: float = 0.0,
    alpha_range: tuple[float, float] | None = None,
    density: float = 1.0,
    effort_margin: tuple[float, float] = (1.0, 4.0),
) -> nx.Graph:
    """A random estimation market with polynomial-regression buyers.

    Sources ``"s0", "s1", …`` at positions uniform in ``[−1, 1]^dim``; buyers ``"b0", "b1", …``
    fit polynomials of ``degree`` with ``F`` uniform on a
    random sub-box ``[a, b]`` (``a ∈ [−1, −0.2]``, ``b ∈ [0.2, 1]`` per axis), ``η = 1``; ``δ^k_j``
    uniform in ``[0, delta]``. With ``density < 1`` each buyer uses a random subset of the sources of
    that expected fraction (at least as many as its features; every source kept by some buyer).

    Effort scale ``α``. The coefficients shrink with the number of sources: a least-squares hat
    weight is :math:`O(1/N)`, so :math:`\\beta_i^k = E_F[w_i^k(x^*)^2] = O(1/N^2)` and
    :math:`\\Gamma_i = \\sum_k \\gamma_i^k/\\eta^k = O(K/N^2)`. With a fixed ``α`` range the
    equilibrium efforts :math:`e_i^* = \\ln(2\\alpha_i D_i)/(2\\alpha_i)` (17) are then negative for
    large ``N`` and Theorem 1's c-polytope is empty (no interior GNE). By default
    (``alpha_range=None``) each source gets :math:`\\alpha_i = u_i/(2\\Gamma_i)` with ``u_i`` uniform
    in ``effort_margin`` (so ``α ∝ N²/K``); since the Leontief solution satisfies
    :math:`d \\ge \\tilde\\gamma` when :math:`\\rho(A) < 1`, :math:`2\\alpha_i D_i \\ge u_i \\ge 1`:
    every equilibrium effort and every welfare-optimal effort (28) is ``≥ 0`` whenever
    :math:`\\gamma > 0` (with ``δ > 0`` a source with :math:`\\Gamma_i \\le 0` falls back to
    :math:`\\sum_k \\beta_i^k`). Pass ``alpha_range=(lo, hi)`` for ``α`` uniform in it instead.

    Raises
    ------
    InvalidInputError
        Fewer sources than polynomial features, non-positive counts, ``delta`` outside [0, 1],
        ``density`` outside (0, 1], ``alpha_range`` not positive, ``effort_margin`` not
        ``1 ≤ lo ≤ hi``.

    Examples
    --------
    >>> G = random_estimation_market(3, 10, degree=2, seed=1)
    >>> len(em.buyer_nodes(G)), len(em.source_nodes(G))
    (3, 10)
    """
    if n_buyers < 1 or n_sources < 1:
        raise InvalidInputError(f"need n_buyers ≥ 1 and n_sources ≥ 1, got {n_buyers}, {n_sources}")
    if not (0.0 <= delta <= 1.0):
        raise InvalidInputError(f"delta bound must lie in [0, 1], got {delta!r}")
    if not (0.0 < density <= 1.0):
        raise InvalidInputError(f"density must lie in (0, 1], got {density!r}")
    if alpha_range is not None and not (0.0 < alpha_range[0] <= alpha_range[1]):
        raise InvalidInputError(f"alpha_range must satisfy 0 < lo <= hi, got {alpha_range!r}")
    if not (1.0 <= effort_margin[0] <= effort_margin[1] < math.inf):
        raise InvalidInputError(f"effort_margin must satisfy 1 <= lo <= hi, got {effort_margin!r}")
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
        raise InvalidInputError(f"polynomial degree must be an integer ≥ 0, got {degree!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise InvalidInputError(f"dim must be an integer ≥ 1, got {dim!r}")
    P = math.comb(dim + degree, degree)
    if n_sources < P:
        raise InvalidInputError(
            f"{n_sources} sources cannot identify {P} polynomial features of degree {degree}"
        )
    rng = np.random.default_rng(check_seed(seed))
    X = rng.uniform(-1.0, 1.0, size=(n_sources, dim))
    u01 = rng.uniform(0.0, 1.0, size=n_sources)  # same stream length whatever the α rule
    lo_a, hi_a = alpha_range if alpha_range is not None else (1.0, 1.0)
    alpha = lo_a + (hi_a - lo_a) * u01
    sources = {
        f"s{i}": {"x": float(X[i, 0]) if dim == 1 else X[i].tolist(), "alpha": float(alpha[i])}
        for i in range(n_sources)
    }
    buyers = {}
    for k in range(n_buyers):
        lo = rng.uniform(-1.0, -0.2, size=dim)
        hi = rng.uniform(0.2, 1.0, size=dim)
        F = (
            {"kind": "uniform", "low": float(lo[0]), "high": float(hi[0])}
            if dim == 1
            else {"kind": "uniform", "low": lo.tolist(), "high": hi.tolist()}
        )
        buyers[f"b{k}"] = {"estimator": {"kind": "polynomial", "degree": degree}, "F": F, "eta": 1.0}
    D = np.triu(rng.uniform(0.0, delta, size=(n_buyers, n_buyers)), 1)
    D = D + D.T
    uses = None
    if density < 1.0:
        names = list(sources)
        m = max(P + 1, round(density * n_sources))
        uses = {
            b: [names[i] for i in sorted(rng.choice(n_sources, size=min(m, n_sources), replace=False))]
            for b in buyers
        }
        covered = {s for u in uses.values() for s in u}
        for i, s in enumerate(names):
            if s not in covered:
                uses[f"b{i % n_buyers}"].append(s)
    G = em.estimation_market(sources, buyers, delta=D, uses=uses)
    if alpha_range is None:  # α_i = u_i / (2 Γ_i): interior equilibria (see above)
        C = market_coefficients(G)
        Gam = (np.maximum(C.gamma, 0.0) / C.eta[:, None]).sum(axis=0)
        Gam = np.where(Gam > 0.0, Gam, C.beta.sum(axis=0))
        Gam = np.maximum(Gam, np.finfo(float).tiny)
        u = effort_margin[0] + (effort_margin[1] - effort_margin[0]) * u01
        for i, s in enumerate(C.sources):
            G.nodes[s]["alpha"] = float(u[i] / (2.0 * Gam[i]))
    return G
