"""The one certificate of an ``auction-optimum`` answer, whichever route produced it.

:func:`certify_auction_optimum` is applied by :func:`~datamarkets.formulations.welfare.solve_welfare`,
:func:`~datamarkets.formulations.kkt_mpec.solve_kkt`, the ``auction-welfare`` / ``auction-kkt``
plug-ins, the CLI and ``datamarkets verify``: the same answer carries the same residual names and
tolerances from every entry point. The producers pass their Lagrangian dual bound g(p, μ) ≥ W*
(:func:`certify_with_dual_bound`), so they solve no second program; verify, knowing only the saved
solution and the market, compares with an independently computed optimum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from datamarkets.claims import compare_claim, unlisted_fields
from datamarkets.errors import InvalidInputError
from datamarkets.formulations.auction_certificate import certify_allocation
from datamarkets.formulations.welfare_allocation import WelfareResult, allocation_vector
from datamarkets.formulations.welfare_kkt import _marginals, kkt_residuals, welfare_of
from datamarkets.graphs.market_data import MarketArrays, market_arrays
from datamarkets.result import Certificate
from datamarkets.validation import check_tolerances, real_number

__all__ = ["certify_auction_optimum", "certify_with_dual_bound"]


def certify_auction_optimum(
    market: Any, solution: Mapping[str, Any], *, tol: float = 1e-6, welfare_bound: float | None = None
) -> Certificate:
    """The one certificate of a welfare-optimal allocation (``auction-optimum`` results, whichever
    route computed them): the KKT certificate of the saved allocation (best-price LP + welfare gap
    to an independent optimum, :func:`~datamarkets.formulations.auction_certificate.certify_allocation`)
    and every other reported number recomputed (claimed prices as KKT multipliers, buyers' totals
    and marginal values, welfare, objective).

    Parameters
    ----------
    market : networkx.Graph or MarketArrays
    solution : mapping
        Needs ``allocation``.
    tol : float
        Relative tolerance (see :func:`certify_allocation`).
    welfare_bound : float, optional
        An upper bound on the optimal welfare (the producer's dual bound) instead of an independent
        optimum: same residuals and tolerances, the welfare gap judged against the bound.

    Examples
    --------
    >>> from datamarkets.formulations.auction_formulation import AuctionWelfareFormulation
    >>> f = AuctionWelfareFormulation()
    >>> G = f.instance({"market": "example1"})
    >>> r = f.solve(G, "highs")
    >>> certify_auction_optimum(G, r.solution).passed
    True
    """
    check_tolerances(tol=tol)
    if welfare_bound is not None:
        real_number(welfare_bound, "welfare_bound")
    if "allocation" not in solution:
        raise InvalidInputError("an auction-optimum solution needs an 'allocation'")
    # interior-point producers (Clarabel, SCS, ECOS) leave ~1e-6 relative flows on columns with
    # reduced cost ~1e-5: flows above 1e-5 count as active, complementarity is judged at 1e-5,
    # and optimality by the welfare gap at tol (see certify_allocation)
    c = certify_allocation(
        market,
        solution["allocation"],
        tol=tol,
        welfare_bound=welfare_bound,
        active_tol=1e-5,
        complementarity_tol=max(tol, 1e-5),
    )
    cert = c.certificate
    _certify_claims(market, solution, cert, tol)
    cert.details.update(
        welfare=c.solution["welfare"],
        welfare_optimum=c.solution["welfare_optimum"],
        welfare_gap=c.solution["welfare_gap"],
    )
    return cert


def _certify_claims(G: Any, solution: Mapping[str, Any], cert: Certificate, tol: float) -> None:
    """Every number an allocation result reports besides the allocation, recomputed and compared.

    ``prices`` and the buyers' demand-cap multipliers ``mu`` need not be unique (Example 1's clearing
    prices form intervals), so they are judged as KKT multipliers of the saved allocation (36)–(38)
    (:func:`~datamarkets.formulations.welfare.kkt_residuals` at the claimed prices): stationarity
    and dual feasibility within ``tol`` × pscale, natural complementarity within max(tol, 1e-5)
    (interior-point producers, as in :func:`certify_allocation`). Buyers' totals and marginal
    values θ_i'(x_i), the welfare and the objective are recomputed from the allocation.
    """
    M = G if isinstance(G, MarketArrays) else market_arrays(G)
    f = allocation_vector(M, solution["allocation"])
    x = M.B @ f
    W = welfare_of(M, x)
    compare_claim(cert, solution, "welfare", W, tol * 1e-3, floor=1.0)
    compare_claim(cert, solution, "objective", W, tol * 1e-3, floor=1.0)
    lo, _ = _marginals(M, x)
    buyers = solution.get("buyers")
    mu = np.zeros(M.n_buyers)
    if isinstance(buyers, list):
        try:
            mu_by = {str(r["buyer"]): float(r["mu"]) for r in buyers}
            mu = np.array([mu_by.get(str(b), 0.0) for b in M.buyers])
        except (KeyError, TypeError, ValueError):
            cert.add("claimed_buyers_rel", float("inf"), tol)
            mu_by = None
        if mu_by is not None:
            recomputed = [
                {"buyer": str(b), "total": float(x[i]), "marginal": float(lo[i]), "mu": float(mu[i])}
                for i, b in enumerate(M.buyers)
            ]
            claimed = [{**r, "buyer": str(r["buyer"])} for r in buyers]
            compare_claim(cert, {"buyers": claimed}, "buyers", recomputed, tol * 1e-3)
    prices = solution.get("prices")
    if isinstance(prices, Mapping) and prices:
        try:
            by = {str(k): float(v) for k, v in prices.items()}
            p = np.array([by[str(r)] for r in M.sellers])
        except (KeyError, TypeError, ValueError):
            cert.add("claimed_prices_kkt", float("inf"), tol)
        else:
            if len(by) != M.n_sellers or not np.all(np.isfinite(p)):
                cert.add("claimed_prices_kkt", float("inf"), tol)
            else:
                res = kkt_residuals(M, f, p, mu, active_tol=1e-5)
                cert.add("claimed_prices_stationarity", res["stationarity"], tol * res["pscale"])
                cert.add("claimed_prices_dual_feasibility", res["dual_feasibility"], tol * res["pscale"])
                cert.add("claimed_prices_complementarity", res["complementarity"], max(tol, 1e-5))
                cert.add("claimed_prices_negative", res["negative_price"], 0.0)
    unlisted_fields(cert, solution, {"allocation", "welfare", "objective", "buyers", "prices"})


def certify_with_dual_bound(M: MarketArrays, result: WelfareResult, tol: float) -> WelfareResult:
    """Give a producer's result the one certificate, in place, and return it.

    The producer's own KKT certificate (residuals at the solver's duals) moves to
    ``certificate.details["solver_kkt_residuals"]`` (with its tolerances and details); the welfare
    gap is judged against the producer's Lagrangian dual bound ``details["dual_bound"]``. The
    solution gains ``objective`` (= welfare), as from every other entry point.
    """
    if not result.status.has_solution:
        return result
    own = result.certificate
    result.solution["objective"] = result.solution.get("welfare")
    bound = own.details.get("dual_bound")
    cert = certify_auction_optimum(
        M, result.solution, tol=tol, welfare_bound=None if bound is None else float(bound)
    )
    cert.details = {
        **own.details,
        **cert.details,
        "solver_kkt_residuals": dict(own.residuals),
        "solver_kkt_tolerances": dict(own.tolerances),
    }
    result.certificate = cert
    return result
