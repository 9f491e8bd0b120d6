r"""Welfare-optimal effort, social loss and the price of anarchy (Definition 2, Theorem 2).

With :math:`\eta^j = 1` (Definition 2) payments are lossless transfers and the ex-ante social loss
is, by Assumption 3 and :math:`\sum_j \gamma_i^j = \sum_j (\beta_i^j - \sum_{k\ne j}\delta^j_k\beta_i^k)`,

.. math::

    \mathcal L(e) = \sum_i \Gamma_i\,\sigma_i^2(e_i) + \sum_i e_i
                  = \sum_i \Gamma_i e^{-2\alpha_i e_i} + e_i,
    \qquad \Gamma_i = \sum_j \gamma_i^j.   \tag{27}

First-order condition: :math:`-2\alpha_q\Gamma_q e^{-2\alpha_q e_q} + 1 = 0`, so for
:math:`\Gamma_q > 0`

.. math::  \hat e_q = \frac{\ln(2\alpha_q \Gamma_q)}{2\alpha_q},      \tag{28}

the unique minimiser (each term is strictly convex). Efforts are real numbers in the paper
(§II-B, :math:`e_i \in \mathbb R`), so :math:`\hat e_q < 0` when :math:`2\alpha_q\Gamma_q < 1`;
with ``effort_floor`` (e.g. 0) the minimiser is :math:`\max(\text{floor}, (28))` by convexity.
If :math:`\Gamma_q \le 0` and efforts are unrestricted the loss is unbounded below.

Minimal loss: :math:`\mathcal L(\hat e) = \sum_q (1 + \ln(2\alpha_q\Gamma_q))/(2\alpha_q)`, which
is :math:`\le 0` when the :math:`\Gamma` are small — then :math:`\mathcal L(e^*)/\mathcal L(\hat e)`
is not a price of anarchy (the sign flips or it divides by ~0) and we report the difference
:math:`\mathcal L(e^*) - \mathcal L(\hat e) \ge 0` instead.

The convex program :math:`\min_e \sum_i \Gamma_i \exp(-2\alpha_i e_i) + \sum_i e_i` is solved by
cvxpy with an exponential cone (Clarabel) and checked against (28).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.gne_best_response import CLARABEL_OPTIONS
from datamarkets.models.gne_inputs import as_gne_inputs
from datamarkets.result import Certificate, Result, provenance
from datamarkets.status import status_from_cvxpy

__all__ = [
    "PriceOfAnarchy",
    "build_welfare_program",
    "optimal_effort",
    "price_of_anarchy",
    "social_loss",
    "solve_welfare_effort",
    "welfare_summary",
]

POA_UNDEFINED_REASON = (
    "L(e_hat) <= 0: the social loss contains -ln terms from effort (efforts are real numbers in the "
    "model) and competition terms, so it is not a positive cost and the ratio L(e*)/L(e_hat) is not "
    "a price of anarchy; use social_loss_gap = L(e*) - L(e_hat) >= 0"
)


def _Gamma(gamma: ArrayLike) -> NDArray[np.float64]:
    g = np.asarray(gamma, dtype=float)
    return g.sum(axis=0) if g.ndim == 2 else g


def optimal_effort(gamma: ArrayLike, alpha: ArrayLike, effort_floor: float | None = None) -> NDArray:
    """Welfare-optimal effort (28), :math:`\\hat e_q = \\ln(2\\alpha_q\\Gamma_q)/(2\\alpha_q)`.

    Parameters
    ----------
    gamma : array, shape (K, N) or (N,)
        :math:`\\gamma_i^j` (summed over buyers) or :math:`\\Gamma_i` directly.
    alpha : array, shape (N,)
    effort_floor : float, optional
        Lower bound on effort (``None``: efforts are real, as in the paper).

    Raises
    ------
    InvalidInputError
        :math:`\\Gamma_q \\le 0` with no floor: the loss is unbounded below.

    Examples
    --------
    >>> float(optimal_effort([[0.25], [0.25]], [1.0])[0])  # 2 alpha Gamma = 1
    0.0
    """
    G = _Gamma(gamma)
    a = np.asarray(alpha, dtype=float)
    if effort_floor is None and np.any(G <= 0):
        q = int(np.argmin(G))
        raise InvalidInputError(
            f"source {q!r} has sum of gamma {G[q]!r} <= 0: with unrestricted effort the social loss is "
            "unbounded below; pass effort_floor"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(G > 0, np.log(2.0 * a * np.where(G > 0, G, 1.0)) / (2.0 * a), -np.inf)  # (28)
    if effort_floor is not None:
        e = np.maximum(e, effort_floor)
    return e


def social_loss(effort: ArrayLike, gamma: ArrayLike, alpha: ArrayLike) -> float:
    """Ex-ante social loss (27), :math:`\\sum_i \\Gamma_i e^{-2\\alpha_i e_i} + e_i`.

    Examples
    --------
    >>> round(social_loss([0.0], [[0.5], [0.5]], [1.0]), 12)
    1.0
    """
    e = np.asarray(effort, dtype=float)
    G = _Gamma(gamma)
    a = np.asarray(alpha, dtype=float)
    return float(np.sum(G * np.exp(-2.0 * a * e) + e))  # (27)


@dataclass(frozen=True)
class PriceOfAnarchy:
    """:math:`\\mathcal L(e^*)/\\mathcal L(\\hat e)` when defined, always the difference.

    Attributes
    ----------
    ratio : float or None
        ``None`` when :math:`\\mathcal L(\\hat e) \\le 0` (see ``reason``).
    difference : float
        :math:`\\mathcal L(e^*) - \\mathcal L(\\hat e)`.
    defined : bool
    reason : str
    """

    ratio: float | None
    difference: float
    defined: bool
    reason: str

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def price_of_anarchy(loss_equilibrium: float, loss_optimal: float) -> PriceOfAnarchy:
    """Typed price of anarchy (ratio only when :math:`\\mathcal L(\\hat e) > 0`).

    Examples
    --------
    >>> price_of_anarchy(3.0, 2.0).ratio
    1.5
    >>> price_of_anarchy(1.0, -0.5).ratio is None
    True
    """
    diff = float(loss_equilibrium - loss_optimal)
    if loss_optimal > 0:
        return PriceOfAnarchy(float(loss_equilibrium / loss_optimal), diff, True, "")
    return PriceOfAnarchy(None, diff, False, POA_UNDEFINED_REASON)


def build_welfare_program(gamma: ArrayLike, alpha: ArrayLike, effort_floor: float | None = None) -> Any:
    """cvxpy program :math:`\\min_e \\sum_i \\Gamma_i \\exp(-2\\alpha_i e_i) + \\sum_i e_i`.

    Returns
    -------
    problem : cvxpy.Problem
        With ``problem.var_dict["effort"]``.
    """
    import cvxpy as cp

    G = _Gamma(gamma)
    a = np.asarray(alpha, dtype=float)
    if np.any(G < 0) or (effort_floor is None and np.any(G <= 0)):
        raise InvalidInputError("welfare program needs Gamma > 0 (or Gamma >= 0 with an effort floor)")
    e = cp.Variable(G.shape[0], name="effort")
    obj = cp.sum(cp.multiply(G, cp.exp(cp.multiply(-2.0 * a, e)))) + cp.sum(e)
    cons = [] if effort_floor is None else [e >= effort_floor]
    return cp.Problem(cp.Minimize(obj), cons)


def solve_welfare_effort(
    market: Any, *, effort_floor: float | None = None, solver: str = "CLARABEL"
) -> Result:
    """Welfare-optimal effort by the convex program, certified against the closed form (28).

    Parameters
    ----------
    market : GNEInputs / coefficients / graph
    effort_floor : float, optional
    solver : str
        cvxpy solver with exponential cones.

    Returns
    -------
    Result
        ``kind="welfare-effort"``, solution ``effort_optimal`` (program), ``effort_closed_form``,
        ``social_loss_optimal``.

    Raises
    ------
    InvalidInputError
        :math:`\\Gamma_q \\le 0` without a floor.

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> r = solve_welfare_effort(inp)  # (28): e_hat = ln(2 alpha Gamma)/(2 alpha) = ln(4)/2
    >>> bool(np.allclose(r.solution["effort_optimal"], np.log(4) / 2, atol=1e-6))
    True
    """

    inp = as_gne_inputs(market)
    t0 = time.perf_counter()
    e_cf = optimal_effort(inp.gamma, inp.alpha, effort_floor)
    prob = build_welfare_program(inp.gamma, inp.alpha, effort_floor)
    t1 = time.perf_counter()

    prob.solve(solver=solver, **(CLARABEL_OPTIONS if solver == "CLARABEL" else {}))
    t2 = time.perf_counter()
    status = status_from_cvxpy(prob.status)
    cert = Certificate()
    sol: dict[str, Any] = {
        "effort_closed_form": e_cf,
        "social_loss_closed_form": social_loss(e_cf, inp.gamma, inp.alpha),
    }
    if status.has_solution:
        e = np.asarray(prob.var_dict["effort"].value, dtype=float)
        sol["effort_optimal"] = e
        sol["social_loss_optimal"] = social_loss(e, inp.gamma, inp.alpha)
        # an objective gap g leaves |de| <~ sqrt(2 g / curvature), curvature 2*alpha at the optimum:
        # with Clarabel's 1e-12 gap on an O(N) objective that is a few 1e-6
        cert.add("effort_program_vs_closed_form_abs_max", float(np.max(np.abs(e - e_cf))), 2e-5)
        cert.add(
            "loss_program_minus_closed_form_rel",
            (sol["social_loss_optimal"] - sol["social_loss_closed_form"])
            / max(1.0, abs(sol["social_loss_closed_form"])),
            1e-8,
        )
    import cvxpy as cp

    meta = provenance({"cvxpy": cp.__version__, "solver": solver})
    return Result(
        "welfare-effort",
        status,
        f"cvxpy-{solver.lower()}",
        sol,
        cert,
        {"build_seconds": t1 - t0, "solve_seconds": t2 - t1},
        meta,
    )


def welfare_summary(inp: Any, effort_equilibrium: NDArray, cert: Certificate | None = None) -> dict[str, Any]:
    """Welfare fields of a GNE result (closed form (28); efforts real as in the paper).

    Adds to ``cert`` the Theorem 2 check :math:`e^* \\ge \\hat e` and :math:`\\mathcal L(e^*) \\ge
    \\mathcal L(\\hat e)`. Returns ``effort_optimal``, ``social_loss_equilibrium``,
    ``social_loss_optimal``, ``social_loss_gap``, ``price_of_anarchy`` (None when undefined),
    ``price_of_anarchy_defined`` and ``price_of_anarchy_reason``; when :math:`\\Gamma_q \\le 0`
    for some source, the welfare fields are ``None`` with ``welfare_reason``.
    """
    G = _Gamma(inp.gamma)
    out: dict[str, Any] = {"welfare_assumes_eta_one": bool(np.allclose(inp.eta, 1.0))}
    if np.any(G <= 0) or not np.all(np.isfinite(effort_equilibrium)):
        out.update(
            {
                "effort_optimal": None,
                "social_loss_equilibrium": None,
                "social_loss_optimal": None,
                "social_loss_gap": None,
                "price_of_anarchy": None,
                "price_of_anarchy_defined": False,
                "price_of_anarchy_reason": "some source has sum of gamma <= 0 or infinite equilibrium "
                "effort: the social loss is unbounded below when efforts are unrestricted",
            }
        )
        return out
    e_hat = optimal_effort(G, inp.alpha)
    L_star = social_loss(effort_equilibrium, G, inp.alpha)
    L_hat = social_loss(e_hat, G, inp.alpha)
    poa = price_of_anarchy(L_star, L_hat)
    if cert is not None:
        scale = max(1.0, abs(L_hat))
        cert.add("theorem2_loss_order", max(0.0, (L_hat - L_star) / scale), 1e-12)
        if out["welfare_assumes_eta_one"]:
            cert.add("theorem2_effort_order", float(max(0.0, np.max(e_hat - effort_equilibrium))), 1e-9)
    out.update(
        {
            "effort_optimal": e_hat,
            "social_loss_equilibrium": L_star,
            "social_loss_optimal": L_hat,
            "social_loss_gap": poa.difference,
            "price_of_anarchy": poa.ratio,
            "price_of_anarchy_defined": poa.defined,
            "price_of_anarchy_reason": poa.reason,
        }
    )
    return out
