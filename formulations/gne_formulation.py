"""The ``gne`` formulation: competing data buyers' generalized Nash equilibrium as a plug-in.

Direct algorithm (``solver="direct"``): the Leontief system (26) of Theorem 1
(:func:`~datamarkets.formulations.gne_solve.solve_gne`). Declarative route (``"clarabel"``,
``"scs"``, ``"ecos"``): Gauss–Seidel iteration of every buyer's best-response program — an
exponential-cone program in cvxpy
(:func:`~datamarkets.formulations.gne_best_response.best_response_iteration`).
Both report ``d`` (K × N) and a point ``c`` of Theorem 1's c-polytope.

Certificate: :func:`~datamarkets.formulations.gne_certificate.certify_gne` (the one certificate of a
GNE answer, also applied by ``datamarkets gne solve/example`` and ``datamarkets verify``), from ``d``,
``c`` and the market only, with the tolerances of the result's kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.formulation import DIRECT, Formulation, check_params
from datamarkets.result import Certificate, Result
from datamarkets.status import Status
from datamarkets.validation import check_integer, check_seed

__all__ = ["GNEFormulation"]


class GNEFormulation(Formulation):
    """Generalized Nash equilibrium of buyers competing for data sources (Theorem 1).

    Parameters accepted by :meth:`instance`: ``market`` = ``"two-firm"`` (§IV: ``x1``, ``x2``,
    ``alpha``, ``delta``) or ``"random"`` (``size`` = sources, ``buyers``, ``degree``, ``seed``,
    ``delta``; see :func:`~datamarkets.models.estimators.random_estimation_market`).

    Attributes
    ----------
    tol : float
        Accuracy of the cone route's answers (1e-5; its backward-error tolerance).

    Tolerances are those of the result's kind
    (:data:`~datamarkets.formulations.gne_certificate.GNE_TOLERANCES`): the direct route's residuals
    are ~1e-16; the cone solvers' best responses are accurate to about 1e-6, and an iteration that
    stops when a sweep moves d by less than 1e-6 leaves a residual of about that size amplified by
    1/(1 − ρ(A)) (measured: 1.1e-6 on the two-firm market at x1 = 0.5, 1.0e-5 at ρ = 0.957).

    Examples
    --------
    >>> f = GNEFormulation()
    >>> r = f.solve(f.instance({"market": "two-firm", "x1": 0.5}))
    >>> r.certified, r.kind
    (True, 'gne')
    """

    name = "gne"
    summary = "Competing data buyers: generalized Nash equilibrium (Leontief system, Theorem 1)"
    kinds = ("gne", "gne-best-response")
    solvers = (DIRECT, "clarabel", "scs", "ecos")
    size_meaning = "data sources N (buyers = max(2, N // 25), polynomial degree 2)"
    parameters: ClassVar[dict[str, Any]] = {
        "market": "random",
        "size": 20,
        "buyers": 4,
        "degree": 2,
        "seed": 0,
        "x1": 0.5,
        "x2": 1.0,
        "alpha": 1.0,
        "delta": 0.0,
    }
    tol: float = 1e-5

    # ------------------------------------------------------------------ data
    def instance(self, params: Mapping[str, Any]) -> Any:
        from datamarkets.graphs.estimation_market import (
            two_firm_example,  # lazy: fast plug-in discovery
        )
        from datamarkets.models.estimators import (
            random_estimation_market,  # lazy: fast plug-in discovery
        )

        p = check_params(self.name, params, self.parameters)
        market = str(p["market"]).lower()
        if market == "two-firm":
            return two_firm_example(float(p["x1"]), float(p["x2"]), float(p["alpha"]), float(p["delta"]))
        if market == "random":
            ignored = sorted(k for k in ("x1", "x2", "alpha") if k in params)
            if ignored:  # they describe the two-firm market; a random one draws its own
                msg = f"gne parameter(s) {', '.join(ignored)} apply to market='two-firm' only"
                raise InvalidInputError(msg)
            return random_estimation_market(
                int(p["buyers"]), int(p["size"]), int(p["degree"]), int(p["seed"]), delta=float(p["delta"])
            )
        raise InvalidInputError(f"unknown gne market {p['market']!r}; choose two-firm or random")

    def generate(self, size: int, seed: int) -> Any:
        """A random market with ``size`` sources and max(2, size // 25) buyers: few buyers per
        source keep ρ(A) < 1 (an interior GNE) at every size (e.g. 4 buyers on 10 sources give
        ρ ≈ 2.3, no equilibrium)."""
        size = check_integer(size, "size")
        return self.instance({"size": size, "seed": check_seed(seed), "buyers": max(2, size // 25)})

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        from datamarkets.graphs.estimation_market import (
            estimation_market_to_dict,  # lazy: fast plug-in discovery
        )

        return estimation_market_to_dict(instance)

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        from datamarkets.graphs.estimation_market import (
            estimation_market_from_dict,  # lazy: fast plug-in discovery
        )

        return estimation_market_from_dict(d, "gne instance")

    # --------------------------------------------------------------- program
    def build(self, instance: Any, solver: str) -> Any:
        """The market's coefficients (γ, ξ, α) — the data of both the Leontief system and the
        buyers' best-response programs (built per buyer inside the iteration)."""
        from datamarkets.models.gne_inputs import (
            as_gne_inputs,  # lazy: fast plug-in discovery
        )

        return as_gne_inputs(instance)

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        from datamarkets.formulations.gne_solve import (
            solve_gne,  # lazy: fast plug-in discovery
        )

        if solver == DIRECT:
            # certify=False: Formulation.solve applies the same certify_gne once, outside the time limit
            res = solve_gne(program, time_limit=time_limit, certify=False)
            res.meta["solvers"] = {"numpy": np.__version__}
        else:
            from datamarkets.formulations.gne_best_response import (
                best_response_iteration,  # lazy: fast plug-in discovery
            )
            from datamarkets.models.gne_polytope import (
                c_polytope,  # lazy: fast plug-in discovery
            )

            res = best_response_iteration(
                program, backend="cvxpy", solver=solver.upper(), time_limit=time_limit
            )
            if res.status.has_solution:
                d = np.asarray(res.solution["d"], dtype=float)
                D = d.sum(axis=0)
                poly = c_polytope(program, d)
                share = np.where(program.uses, d / np.where(D > 0, D, 1.0)[None, :], 0.0)
                res.solution.update(
                    buyers=program.buyers,
                    sources=program.sources,
                    c_point=poly.point(share),
                    effort_equilibrium=poly.effort,
                )
            res.meta["solvers"] = {f"cvxpy+{solver}": res.meta.get("cvxpy", "")}
        if res.status.has_solution:
            res.solution["objective"] = float(np.sum(res.solution["d"]))
        return res

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        """:func:`~datamarkets.formulations.gne_certificate.certify_gne` with the tolerances of a
        direct (``"gne"``) answer."""
        from datamarkets.formulations.gne_certificate import (
            certify_gne,  # lazy: fast plug-in discovery
        )

        return certify_gne(instance, solution, kind="gne")

    def certify_result(self, instance: Any, result: Result) -> Certificate:
        """:func:`~datamarkets.formulations.gne_certificate.certify_gne` with the tolerances of the
        result's kind (``"gne"`` or ``"gne-best-response"``)."""
        from datamarkets.formulations.gne_certificate import (
            certify_gne,  # lazy: fast plug-in discovery
        )

        return certify_gne(instance, result.solution, kind=result.kind)

    def certify_no_solution(self, instance: Any, claimed: Result) -> Certificate | None:
        """Re-derive a saved "no equilibrium" claim: the Leontief analysis must reach the same
        cause (ρ(A) ≥ 1 or a negative equilibrium effort) on the instance."""
        from datamarkets.formulations.gne_solve import (
            solve_gne,  # lazy: fast plug-in discovery
        )

        if claimed.status is not Status.NO_EQUILIBRIUM:
            return None
        again = solve_gne(instance, welfare=False)
        cert = Certificate()
        same = again.status is Status.NO_EQUILIBRIUM and again.solution.get(
            "no_equilibrium_cause"
        ) == claimed.solution.get("no_equilibrium_cause")
        cert.add("no_equilibrium_not_confirmed", 0.0 if same else 1.0, 0.0)
        cert.details.update(
            recomputed_status=again.status.value,
            recomputed_cause=again.solution.get("no_equilibrium_cause"),
            spectral_radius_bounds=again.solution.get("spectral_radius_bounds"),
        )
        return cert

    def objective(self, result: Result) -> float | None:
        v = result.solution.get("objective")
        return None if v is None or result.status is not Status.OPTIMAL else float(v)
