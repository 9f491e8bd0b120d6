r"""The certified generalized Nash equilibrium of competing data buyers (:func:`solve_gne`).

It puts the model's pieces together — the Leontief system and its spectral radius
(:mod:`datamarkets.models.gne_leontief`), the c-polytope (:mod:`datamarkets.models.gne_polytope`) —
and certifies the answer, optionally against the formulations' independent checks: welfare and the
price of anarchy (:mod:`datamarkets.formulations.welfare_effort`), the payment range by LP
(:mod:`datamarkets.formulations.gne_lp`) and the buyers' exact best responses
(:mod:`datamarkets.formulations.gne_best_response`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.formulations.gne_certificate import certify_gne
from datamarkets.formulations.welfare_effort import welfare_summary
from datamarkets.models.gne_inputs import as_gne_inputs, variance_response
from datamarkets.models.gne_leontief import (
    COLLAPSE_MARGIN,
    LeontiefMethod,
    leontief_apply,
    leontief_matrix,
    leontief_operator,
    solve_leontief,
    spectral_radius,
)
from datamarkets.models.gne_polytope import c_polytope
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.solvers import Deadline
from datamarkets.status import Status
from datamarkets.validation import check_time_limit, check_tolerances

__all__ = ["METHODS", "solve_gne"]

METHODS = ("auto", "dense", "gmres", "neumann")
"""Linear solvers of (26) accepted by :func:`solve_gne`."""


def solve_gne(
    market: Any,
    *,
    method: LeontiefMethod = "auto",
    collapse_margin: float = COLLAPSE_MARGIN,
    best_response_gap: bool = False,
    welfare: bool = True,
    lp_check: bool = False,
    rtol: float = 1e-12,
    time_limit: float | None = None,
    certify: bool = True,
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
    time_limit : float, optional
        Wall-clock seconds for computing the equilibrium (validation, spectral radius, Leontief
        solve, condition estimate, polytope, welfare); the clock is checked between these phases
        and when it has run out the result has status ``time_limit``, no solution and a failing
        certificate. Certification (with the optional LP and best-response cross-checks) is not
        counted, as in :meth:`~datamarkets.formulation.Formulation.solve`.
    certify : bool, default True
        Return the one GNE certificate (:func:`~datamarkets.formulations.gne_certificate.certify_gne`);
        ``False`` leaves it to the caller (the ``gne`` plug-in's ``Formulation.solve`` applies it).

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
        Invalid coefficients (see :func:`as_gne_inputs`), an unknown ``method`` or a bad
        ``time_limit``.

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.ones((2, 2, 2)) * 0.5 + 0.5 * np.eye(2)
    >>> res = solve_gne(GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2)), welfare=False)
    >>> res.status.value, round(res.solution["spectral_radius"], 9), res.solution["d"].round(6).tolist()
    ('optimal', 0.5, [[2.0, 2.0], [2.0, 2.0]])
    """
    check_tolerances(collapse_margin=collapse_margin, rtol=rtol)
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    deadline = Deadline(check_time_limit(time_limit, "time_limit"))
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

    def out_of_time(phase: str) -> Result | None:
        if not deadline.expired:
            return None
        sol.update({"d": None, "reason": f"time limit of {time_limit:g} s reached before {phase}"})
        res = Result("gne", Status.TIME_LIMIT, "leontief", sol, cert, timer.seconds, meta)
        res.meta["time_limit"] = time_limit
        return res.mark_no_solution()

    def no_eq(reason: str, cause: str = "spectral_radius") -> Result:
        sol.update({"d": None, "reason": reason, "no_equilibrium_cause": cause})
        sol.setdefault("ill_conditioned", True)
        return Result("gne", Status.NO_EQUILIBRIUM, "leontief", sol, cert, timer.seconds, meta)

    if (stop := out_of_time("the Leontief solve")) is not None:
        return stop
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
    if (stop := out_of_time("the condition estimate")) is not None:
        return stop
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
    if (stop := out_of_time("the c-polytope")) is not None:
        return stop
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
        with timer("welfare_seconds"):
            sol.update(welfare_summary(inp, poly.effort, cert))
    if deadline.expired:  # computed, but late: never "optimal" after overrunning (the answer is kept)
        status = Status.TIME_LIMIT
        meta["time_limit"] = time_limit
        meta["message"] = (
            f"the equilibrium took {deadline.elapsed():.3g} s, over the time limit of {time_limit:g} s"
        )
    if not certify or status is Status.TIME_LIMIT:
        # the caller certifies (Formulation.solve applies the same certify_gne), or no answer in time
        return Result("gne", status, f"leontief-{info['method']}", sol, cert, timer.seconds, meta)
    with timer("certify_seconds"):
        # the one GNE certificate (plug-in, CLI and verify apply the same): every reported number
        # recomputed from d and the instance, with the optional LP and best-response cross-checks
        final = certify_gne(
            inp,
            sol,
            kind="gne",
            best_response=best_response_gap,
            lp_check=lp_check,
            collapse_margin=collapse_margin,
        )
    final.details = {**cert.details, **final.details}
    if "best_response_gap" in final.details:
        sol["best_response_gap"] = final.details["best_response_gap"]
    return Result("gne", status, f"leontief-{info['method']}", sol, final, timer.seconds, meta)
