"""The GNE model of competing data buyers, by concern (this module re-exports them):

* :mod:`datamarkets.models.gne_inputs` — validated coefficients (:class:`GNEInputs`) and the
  sources' response (17)–(18);
* :mod:`datamarkets.models.gne_leontief` — the Leontief system (25)–(26), :math:`\\rho(A)`;
* :mod:`datamarkets.models.gne_polytope` — the c-polytope (Theorem 1, Lemma 1).

The certified equilibrium, :func:`datamarkets.formulations.gne_solve.solve_gne`, sits a layer up: it
also runs the formulations' independent checks.

Examples
--------
>>> from datamarkets.graphs.estimation_market import two_firm_example
>>> d, info = solve_leontief(two_firm_example(x1=0.5))
>>> d.shape, info["method"]
((2, 2), 'dense')
"""

from __future__ import annotations

from datamarkets.models.gne_inputs import GNEInputs, as_gne_inputs, effort_response, variance_response
from datamarkets.models.gne_leontief import (
    COLLAPSE_MARGIN,
    SpectralRadius,
    leontief_apply,
    leontief_matrix,
    leontief_operator,
    solve_leontief,
    spectral_radius,
)
from datamarkets.models.gne_polytope import CPolytope, c_polytope

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
    "solve_leontief",
    "spectral_radius",
    "variance_response",
]
