r"""Monte Carlo cross-check of the separable losses g_j and the contract penalties against β and ξ.

For given efforts ``e`` the sources report ``y_i = f(x_i) + ε_i`` with ``ε_i ~ N(0, σ_i²)``,
``σ_i = exp(−α_i e_i)`` (Assumption 2); every buyer receives the same reading (Proposition 1). Each
replication draws fresh noise, *fits* every buyer's estimator by ``numpy.linalg.lstsq`` (minimum-norm
least squares; no coefficient formula is used) and measures

* the loss (3): ``(\hat f^k(x^*) − f(x^*))²`` at one fresh ``x^* ~ F_k`` per replication, an unbiased
  sample of ``g_k``; the analytic value is ``Σ_i β_i^k σ_i²`` plus the squared bias
  ``E_F[(φ(x^*)^T X^+ f(X) − f(x^*))²]`` (zero when ``f`` lies in the span of the features);
* the expected penalty of contract (8): ``(y_q − \hat f^k_{−q}(x_q))²``; analytic value
  ``Σ_l ξ^k_{q,l} σ_l²`` plus the squared bias ``(f(x_q) − φ(x_q)^T X_{−q}^+ f(X_{−q}))²``. The bias is
  zero when the fit without ``q`` is identified and ``f`` is in the span; when it is under-determined
  (the minimum-norm rows of §IV's two-firm example) it is generally *not* zero — the paper's
  ``E[p] = c − d Σ ξ σ²`` silently assumes it away.

Replications are i.i.d., so each measured mean has standard error ``s/√R`` and a normal confidence
interval; the certificate records the largest ``|z| = |mean − analytic| / stderr`` against ``z_tol``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.estimators import UniformDistribution, distribution_from_spec, estimator_from_spec
from datamarkets.io import to_jsonable
from datamarkets.models.estimators import market_coefficients
from datamarkets.result import Certificate, Timer
from datamarkets.validation import check_seed

__all__ = ["EstimationSimulation", "simulate_estimation_market"]

FloatArray = NDArray[np.float64]
TrueFunction = Callable[[FloatArray], ArrayLike]


@dataclass
class EstimationSimulation:
    """Measured versus analytic losses and penalties, with confidence intervals.

    Arrays are indexed like :class:`~datamarkets.models.estimators.MarketCoefficients`: ``[k]`` per buyer,
    ``[k, q]`` per buyer and (left-out) source; entries for sources a buyer does not use are NaN.

    Attributes
    ----------
    buyers, sources : list
    efforts, sigma2 : ndarray (N,)
        Efforts used and the induced variances ``σ_i² = exp(−2 α_i e_i)``.
    g_variance, g_bias2, g_analytic : ndarray (K,)
        ``Σ_i β_i^k σ_i²``, the squared bias over ``F_k``, and their sum.
    g_mean, g_stderr, g_z : ndarray (K,)
    g_ci : ndarray (K, 2)
    penalty_variance, penalty_bias2, penalty_analytic : ndarray (K, N)
        ``Σ_l ξ^k_{q,l} σ_l²``, squared leave-one-out bias at ``x_q``, and their sum.
    penalty_mean, penalty_stderr, penalty_z : ndarray (K, N)
    penalty_ci : ndarray (K, N, 2)
    n_rep : int
    confidence : float
    z_tol : float
    certificate : Certificate
        ``g_z_max`` and ``penalty_z_max`` against ``z_tol``.
    timings : dict
    """

    buyers: list[Any]
    sources: list[Any]
    efforts: FloatArray
    sigma2: FloatArray
    g_variance: FloatArray
    g_bias2: FloatArray
    g_analytic: FloatArray
    g_mean: FloatArray
    g_stderr: FloatArray
    g_ci: FloatArray
    g_z: FloatArray
    penalty_variance: FloatArray
    penalty_bias2: FloatArray
    penalty_analytic: FloatArray
    penalty_mean: FloatArray
    penalty_stderr: FloatArray
    penalty_ci: FloatArray
    penalty_z: FloatArray
    n_rep: int
    confidence: float
    z_tol: float
    seed: int | None
    certificate: Certificate = field(default_factory=Certificate)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every measured mean within ``z_tol`` standard errors of its analytic value."""
        return self.certificate.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN → ``None`` through :func:`datamarkets.io.to_jsonable`)."""

        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("certificate",)}
        out["certificate"] = self.certificate.to_dict()
        out["passed"] = self.passed
        return to_jsonable(out)

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: buyers, pairs, sources, summary, certificate; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def _efforts(G: nx.Graph, sources: list[Any], efforts: ArrayLike | Mapping[Any, float] | None) -> FloatArray:
    if efforts is None:
        return np.zeros(len(sources))
    if isinstance(efforts, Mapping):
        unknown = set(efforts) - set(sources)
        if unknown:
            raise InvalidInputError(f"efforts name unknown sources {sorted(map(repr, unknown))}")
        e = np.array([float(efforts.get(s, 0.0)) for s in sources])
    else:
        e = np.asarray(efforts, dtype=float)
        if e.shape != (len(sources),):
            raise InvalidInputError(f"efforts must have shape ({len(sources)},), got {e.shape!r}")
    if not np.all(np.isfinite(e)):
        bad = sources[int(np.flatnonzero(~np.isfinite(e))[0])]
        raise InvalidInputError(f"effort of source {bad!r} is not finite")
    return e


def _evaluate_f(f: TrueFunction, X: FloatArray) -> FloatArray:
    v = np.asarray(f(X), dtype=float)
    if v.shape != (X.shape[0],):
        raise InvalidInputError(f"f must map (m, dim) positions to shape (m,), got {v.shape!r}")
    if not np.all(np.isfinite(v)):
        raise InvalidInputError("f returned non-finite values")
    return v


def _zero(X: FloatArray) -> FloatArray:
    return np.zeros(X.shape[0])


def simulate_estimation_market(
    G: nx.Graph,
    efforts: ArrayLike | Mapping[Any, float] | None = None,
    *,
    f: TrueFunction | None = None,
    n_rep: int = 20_000,
    seed: int | None = 0,
    confidence: float = 0.95,
    z_tol: float = 4.0,
    n_quad: int = 64,
) -> EstimationSimulation:
    """Draw readings, fit every buyer's estimator, and compare measured and analytic errors.

    Parameters
    ----------
    G : networkx.Graph
        An estimation market (validated).
    efforts : array_like (N,) or mapping source → effort, optional
        Source efforts ``e_i`` (graph order); 0 when omitted (``σ_i = 1``).
    f : callable, optional
        The true function, ``f(X)`` for ``X`` of shape ``(m, dim)`` returning ``(m,)``; ``f ≡ 0`` when
        omitted (the error of an unbiased linear estimator does not depend on ``f`` in its span).
    n_rep : int
        Replications ``R`` (≥ 2).
    seed : int or None
    confidence : float
        Level of the reported normal confidence intervals, in (0, 1).
    z_tol : float
        Certificate tolerance on ``|z|``.
    n_quad : int
        Gauss–Legendre nodes per axis for the squared bias under a uniform ``F``.

    Returns
    -------
    EstimationSimulation

    Raises
    ------
    InvalidInputError
        Bad ``efforts`` / ``f`` / ``n_rep`` / ``confidence`` / ``z_tol``.
    GraphError
        Anything the market validator raises.

    Examples
    --------
    >>> from datamarkets.graphs.estimation_market import two_firm_example
    >>> sim = simulate_estimation_market(two_firm_example(0.0), n_rep=4000, seed=1)
    >>> bool(sim.passed), sim.g_analytic.round(4).tolist()
    (True, [1.6667, 1.6667])
    """

    if isinstance(n_rep, bool) or not isinstance(n_rep, (int, np.integer)) or n_rep < 2:
        raise InvalidInputError(f"n_rep must be an integer ≥ 2, got {n_rep!r}")
    if not (0.0 < confidence < 1.0):
        raise InvalidInputError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not (z_tol > 0):
        raise InvalidInputError(f"z_tol must be > 0, got {z_tol!r}")
    timer = Timer()
    with timer("coefficients_seconds"):
        C = market_coefficients(G)
    sources, buyers = C.sources, C.buyers
    X = C.positions
    dim = X.shape[1]
    e = _efforts(G, sources, efforts)
    alpha = C.alpha
    sigma2 = np.exp(-2.0 * alpha * e)  # Assumption 2: σ_i = exp(−α_i e_i)
    f = _zero if f is None else f
    fX = _evaluate_f(f, X)
    K, N = len(buyers), len(sources)
    rng = np.random.default_rng(check_seed(seed))
    zq = float(norm.ppf(0.5 + confidence / 2.0))

    g_var = C.beta @ sigma2  # (3) with Assumption 3
    g_b2 = np.zeros(K)
    g_mean, g_se = np.zeros(K), np.zeros(K)
    p_var = np.full((K, N), np.nan)
    p_b2 = np.full((K, N), np.nan)
    p_mean = np.full((K, N), np.nan)
    p_se = np.full((K, N), np.nan)

    with timer("simulation_seconds"):
        Y = fX[:, None] + np.sqrt(sigma2)[:, None] * rng.standard_normal((N, n_rep))  # (N, R)
        for k, b in enumerate(buyers):
            data = G.nodes[b]
            est = estimator_from_spec(data["estimator"], dim, node=b)
            F = distribution_from_spec(data["F"], dim, node=b)
            idx = np.flatnonzero(C.uses[k])
            Phi = est.features(X[idx])
            # ---- loss g_k: one fresh x* ~ F_k per replication
            theta = np.linalg.lstsq(Phi, Y[idx], rcond=None)[0]  # (P, R)
            x_star = F.sample(rng, n_rep)
            err2 = (np.einsum("rp,pr->r", est.features(x_star), theta) - _evaluate_f(f, x_star)) ** 2
            g_mean[k], g_se[k] = err2.mean(), err2.std(ddof=1) / np.sqrt(n_rep)
            # ---- squared bias of the full fit over F_k
            theta_f = np.linalg.lstsq(Phi, fX[idx], rcond=None)[0]
            if isinstance(F, UniformDistribution):
                nodes, w = F.gauss_legendre(n_quad)
            else:
                nodes, w = F.points, F.weights
            g_b2[k] = float(w @ (est.features(nodes) @ theta_f - _evaluate_f(f, nodes)) ** 2)
            # ---- penalties: leave q out, predict at x_q
            for r, q in enumerate(idx):
                keep = np.delete(idx, r)
                phi_q = est.features(X[q : q + 1])[0]
                if keep.size:
                    Phi_loo = est.features(X[keep])
                    theta_loo = np.linalg.lstsq(Phi_loo, Y[keep], rcond=None)[0]
                    pred = phi_q @ theta_loo
                    bias = fX[q] - phi_q @ np.linalg.lstsq(Phi_loo, fX[keep], rcond=None)[0]
                else:  # nothing left: the minimum-norm fit is the zero function
                    pred = np.zeros(n_rep)
                    bias = fX[q]
                pen = (Y[q] - pred) ** 2
                p_mean[k, q], p_se[k, q] = pen.mean(), pen.std(ddof=1) / np.sqrt(n_rep)
                p_var[k, q] = C.xi[k, q] @ sigma2  # E[(y_q − f̂_{−q}(x_q))²] = Σ_l ξ_{q,l} σ_l²
                p_b2[k, q] = bias**2

    g_an = g_var + g_b2
    p_an = p_var + p_b2
    with np.errstate(invalid="ignore", divide="ignore"):
        g_z = (g_mean - g_an) / g_se
        p_z = (p_mean - p_an) / p_se
    cert = Certificate()
    cert.add("g_z_max", float(np.max(np.abs(g_z))), z_tol)
    cert.add("penalty_z_max", float(np.nanmax(np.abs(p_z))), z_tol)
    cert.details["g_rel_err_max"] = float(np.max(np.abs(g_mean - g_an) / g_an)) if np.all(g_an > 0) else None
    cert.details["n_rep"] = int(n_rep)
    return EstimationSimulation(
        buyers=list(buyers),
        sources=list(sources),
        efforts=e,
        sigma2=sigma2,
        g_variance=g_var,
        g_bias2=g_b2,
        g_analytic=g_an,
        g_mean=g_mean,
        g_stderr=g_se,
        g_ci=np.stack([g_mean - zq * g_se, g_mean + zq * g_se], axis=1),
        g_z=g_z,
        penalty_variance=p_var,
        penalty_bias2=p_b2,
        penalty_analytic=p_an,
        penalty_mean=p_mean,
        penalty_stderr=p_se,
        penalty_ci=np.stack([p_mean - zq * p_se, p_mean + zq * p_se], axis=2),
        penalty_z=p_z,
        n_rep=int(n_rep),
        confidence=float(confidence),
        z_tol=float(z_tol),
        seed=seed,
        certificate=cert,
        timings=timer.seconds,
    )
