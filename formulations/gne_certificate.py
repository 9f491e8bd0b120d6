r"""The one certificate of a GNE answer (competing data buyers, Theorem 1).

:func:`certify_gne` is what every entry point applies to the same answer — the ``gne`` plug-in
(:meth:`~datamarkets.formulations.gne_formulation.GNEFormulation.certify`), ``datamarkets gne
solve/example``, ``datamarkets verify`` and (after the package split) ``solve_gne`` — so the answer
carries the same residual names and tolerances wherever it was computed. From the instance and the
saved ``d`` alone it checks:

- the Leontief system (26): backward error
  :math:`\|d - Ad - \tilde\gamma\|_\infty / ((1 + \|A\|_\infty)\|d\|_\infty + \|\tilde\gamma\|_\infty)`
  and the forward-error bound :math:`\kappa_\infty(I - A)` × backward error, with
  :math:`\|(I-A)^{-1}\|_\infty = \|(I-A)^{-1}\mathbf 1\|_\infty` exact since :math:`(I-A)^{-1} \ge 0`;
- existence: the certified upper bound on :math:`\rho(A)` (Collatz–Wielandt, also at :math:`x = d`)
  below 1, :math:`d \ge 0`, every equilibrium effort :math:`e^* \ge 0` (non-empty c-polytope);
- ``c_point`` in the c-polytope, Theorem 2's order of losses and efforts, every buyer's best-response
  gap (optional), the payment range by HiGHS LPs against its closed form (optional);
- every other reported number (``d_total``, ``variance``, efforts, ``c_lower``/``c_total``, payment
  range, ρ and its bracket, welfare fields, ``objective``, the instance coefficients) recomputed and
  compared (``claimed_<field>_rel``), or listed under ``details["not_checked"]`` with the reason.

Tolerances are those of the result's kind: ``"gne"`` (the direct Leontief solve, accurate to
rounding) or ``"gne-best-response"`` (cone-program best responses, accurate to ≈ 10⁻⁶).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from datamarkets.claims import compare_claim, not_checked, unlisted_fields
from datamarkets.errors import ConvergenceError, InvalidInputError, SolverError
from datamarkets.formulations.gne_best_response import best_response_gaps
from datamarkets.formulations.gne_lp import payment_range
from datamarkets.formulations.welfare_effort import welfare_summary
from datamarkets.models.gne_equilibrium import (
    COLLAPSE_MARGIN,
    as_gne_inputs,
    c_polytope,
    leontief_apply,
    leontief_matrix,
    leontief_operator,
    solve_leontief,
    spectral_radius,
    variance_response,
)
from datamarkets.result import Certificate
from datamarkets.validation import check_tolerances

__all__ = ["GNE_TOLERANCES", "certify_gne"]

GNE_TOLERANCES: dict[str, dict[str, float]] = {
    "gne": {
        "leontief_backward_error": 1e-11,
        "forward_error_bound_rel": 1e-6,
        "d_negativity": 1e-12,
        "c_point": 1e-12,
        "best_response_gap_rel_max": 1e-6,
        "payment_range_lp_vs_closed_form_rel": 1e-8,
        "claimed": 1e-9,
    },
    "gne-best-response": {
        "leontief_backward_error": 1e-5,
        "forward_error_bound_rel": 1e-4,
        "d_negativity": 1e-5,
        "c_point": 1e-5,
        "best_response_gap_rel_max": 1e-5,
        "payment_range_lp_vs_closed_form_rel": 1e-8,
        "claimed": 1e-9,
    },
}
"""Tolerances by result kind (see the module docstring)."""

# fields that are traces of the algorithm, not functions of the answer
_TRACE = {
    "iterations": "sweeps of the best-response iteration: a trace of the algorithm, not of the answer",
    "step_history": "steps of the best-response iteration: a trace of the algorithm, not of the answer",
    "programs_solved": "count of cone programs solved: a trace of the algorithm, not of the answer",
    "best_response_gap": "per-buyer gaps at solver precision (~1e-13): re-derived as "
    "best_response_gap_rel_max, not compared entry by entry",
}


def _array(solution: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        a = np.asarray(solution[key], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"a gne solution needs numeric 'd' and 'c_point' ({key!r}: {exc!r})") from exc
    if a.shape != shape:
        raise InvalidInputError(f"{key!r} must have shape {shape!r}, got {a.shape!r}")
    return a


def certify_gne(
    market: Any,
    solution: Mapping[str, Any],
    *,
    kind: str = "gne",
    best_response: bool = True,
    lp_check: bool = True,
    collapse_margin: float = COLLAPSE_MARGIN,
) -> Certificate:
    """Certificate of a GNE answer from the market and the saved solution alone.

    Parameters
    ----------
    market : GNEInputs, coefficients or estimation-market graph
    solution : mapping
        Needs ``d`` (K × N) and ``c_point`` (K × N); every other field present is compared.
    kind : {"gne", "gne-best-response"}
        Selects the tolerances (:data:`GNE_TOLERANCES`).
    best_response : bool
        Re-solve every buyer's best-response program (cvxpy) and certify the gaps.
    lp_check : bool
        Recompute the payment range by HiGHS LPs and certify the closed form against them.
    collapse_margin : float
        ``ill_conditioned`` is claimed iff :math:`1 - \\rho(A)` is below this.

    Returns
    -------
    Certificate

    Raises
    ------
    InvalidInputError
        Unknown kind, or ``d``/``c_point`` missing or of the wrong shape.

    Examples
    --------
    >>> from datamarkets.graphs.estimation_market import two_firm_example
    >>> from datamarkets.formulations.gne_solve import solve_gne
    >>> G = two_firm_example(0.5)
    >>> r = solve_gne(G)
    >>> cert = certify_gne(G, r.solution, best_response=False, lp_check=False)
    >>> cert.passed, cert.residuals["claimed_price_of_anarchy_rel"] == 0.0
    (True, True)
    """
    check_tolerances(collapse_margin=collapse_margin)
    if kind not in GNE_TOLERANCES:
        raise InvalidInputError(
            f"unknown gne result kind {kind!r}; expected one of {', '.join(GNE_TOLERANCES)}"
        )
    tol = GNE_TOLERANCES[kind]
    inp = as_gne_inputs(market)
    K, N = inp.K, inp.N
    d = np.where(inp.uses, _array(solution, "d", (K, N)), 0.0)
    c = _array(solution, "c_point", (K, N))
    g = inp.gamma_tilde
    cert = Certificate()
    cert.details["tolerances_of_kind"] = kind

    # (26): backward error and forward-error bound of the linear solve
    Ad = leontief_apply(inp.xi_off, inp.uses, d)
    r = d - Ad - g
    row_sum = float(
        leontief_apply(inp.xi_off, inp.uses, inp.uses.astype(float)).max(initial=0.0)
    )  # ||A||_inf
    d_inf = max(float(np.abs(d).max(initial=0.0)), 1e-300)
    backward = float(np.abs(r).max(initial=0.0)) / (
        (1.0 + row_sum) * d_inf + float(np.abs(g).max(initial=0.0))
    )
    cert.add("leontief_backward_error", backward, tol["leontief_backward_error"])
    cert.add("d_negativity", float(max(0.0, -d.min(initial=0.0))) / d_inf, tol["d_negativity"])
    try:
        inv_ones, _ = solve_leontief(inp, rtol=1e-8, rhs=np.ones((K, N)))
        kappa = (1.0 + row_sum) * float(np.abs(inv_ones).max(initial=0.0))  # exact: (I - A)^{-1} >= 0
    except (ConvergenceError, np.linalg.LinAlgError):
        kappa = float("inf")
    cert.add("forward_error_bound_rel", kappa * backward, tol["forward_error_bound_rel"])
    cert.details["condition_number_inf"] = kappa

    # existence: rho(A) < 1, certified by Collatz–Wielandt brackets (also at x = d)
    small = K * N <= 400
    rho = spectral_radius(leontief_matrix(inp) if small else leontief_operator(inp), K * N)
    du = d[inp.uses]
    upper = min(rho.upper, float(np.max(Ad[inp.uses] / du))) if du.size and np.all(du > 0) else rho.upper
    cert.add("spectral_radius_upper_bound", upper, 1.0 - 1e-15)
    ill = rho.margin < collapse_margin
    cert.details["ill_conditioned"] = bool(ill)
    cert.details["spectral_method"] = rho.method

    # the c-polytope (Theorem 1 with Lemma 1) and the point c in it
    dp = np.maximum(d, 0.0) * inp.uses
    D = dp.sum(axis=0)
    poly = c_polytope(inp, dp)
    neg = -np.min(np.where(np.isfinite(poly.effort), poly.effort, -np.inf), initial=np.inf)
    cert.add("c_polytope_negative_effort", float(max(0.0, neg)), 0.0)
    res_c = poly.residuals(c)
    e_scale = max(1.0, float(np.abs(poly.total).max(initial=0.0)))
    cert.add("c_point_equality", res_c["equality"] / e_scale, tol["c_point"])
    cert.add("c_point_lower", res_c["lower"] / e_scale, tol["c_point"])

    # Theorem 2 and the welfare fields (closed form (28))
    welfare = welfare_summary(inp, poly.effort, cert)

    # optional cross-checks
    if lp_check and poly.nonempty:
        lp = payment_range(inp, dp)
        v = lp.certificate.residuals.get("lp_vs_closed_form_rel", float("nan"))
        cert.add("payment_range_lp_vs_closed_form_rel", v, tol["payment_range_lp_vs_closed_form_rel"])
    else:
        not_checked(
            cert, "payment_range_lp", "HiGHS LP cross-check of the payment range not run (lp_check=False)"
        )
    if best_response and poly.nonempty:
        try:
            gaps, values = best_response_gaps(inp, dp, c)
            cert.details["best_response_gap"] = gaps
            cert.details["best_response_value"] = values
        except SolverError as exc:
            gaps = np.full(K, np.nan)
            cert.details["best_response_error"] = str(exc)
        cert.add(
            "best_response_gap_rel_max",
            float(np.max(np.abs(gaps), initial=0.0)),
            tol["best_response_gap_rel_max"],
        )
    else:
        not_checked(
            cert,
            "best_response_gap_rel_max",
            "buyers' best-response programs not re-solved (best_response=False)",
        )

    # every other reported number, recomputed from d and the instance
    ct = tol["claimed"]
    pr = poly.payment_range()
    claims: dict[str, Any] = {
        "buyers": [str(b) for b in inp.buyers],
        "sources": [str(s) for s in inp.sources],
        "gamma": inp.gamma,
        "xi": inp.xi,
        "alpha": inp.alpha,
        "eta": inp.eta,
        "d_total": D,
        "variance": variance_response(D, inp.alpha),
        "effort_equilibrium": poly.effort,
        "c_lower": poly.lower,
        "c_total": poly.total,
        "c_polytope_nonempty": bool(poly.nonempty),
        "payment_range": {
            str(b): {
                "least": float(pr["payment_least"][k]),
                "most": float(pr["payment_most"][k]),
                "c_least": float(pr["c_least"][k]),
                "c_most": float(pr["c_most"][k]),
            }
            for k, b in enumerate(inp.buyers)
        },
        "objective": float(np.sum(d)),
        **welfare,
    }
    sol = dict(solution)
    for key in ("buyers", "sources"):  # names: compared as strings (JSON keys)
        if key in sol and isinstance(sol[key], list):
            sol[key] = [str(x) for x in sol[key]]
    for key, value in claims.items():
        compare_claim(cert, sol, key, value, ct)
    # rho(A): the claimed value within the recomputed bracket, the claimed bracket equal to it
    if "spectral_radius" in sol:
        lo, hi = rho.lower, upper
        claimed = _num(sol["spectral_radius"])
        out = max(lo - claimed, claimed - hi, 0.0) if claimed is not None else float("inf")
        cert.add("claimed_spectral_radius_rel", out / max(hi, 1e-300), ct)
    if "spectral_margin" in sol:
        compare_claim(cert, sol, "spectral_margin", 1.0 - _num_or(sol.get("spectral_radius"), rho.value), ct)
    compare_claim(cert, sol, "spectral_radius_bounds", [rho.lower, upper], 1e-8)
    compare_claim(cert, sol, "ill_conditioned", bool(ill))
    if "d_leontief" in sol:
        try:
            d_ref, _ = solve_leontief(inp)
            compare_claim(cert, sol, "d_leontief", d_ref, 1e-8)
        except (ConvergenceError, np.linalg.LinAlgError):
            cert.add("claimed_d_leontief_rel", float("inf"), 1e-8)
    for key, why in _TRACE.items():
        if key in sol:
            not_checked(cert, key, why)
    checked = {
        "d",
        "c_point",
        "spectral_radius",
        "spectral_margin",
        "spectral_radius_bounds",
        "d_leontief",
        *claims,
    }
    unlisted_fields(cert, sol, checked)
    return cert


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _num_or(v: Any, default: float) -> float:
    x = _num(v)
    return default if x is None else x
