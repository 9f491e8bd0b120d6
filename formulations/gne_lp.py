r"""HiGHS linear programs for the buyers' GNE: existence and "who pays".

**Existence** (Theorem 1). The GNE's :math:`d` is a non-negative solution of the Leontief system
(26); as a feasibility LP over the used (buyer, source) pairs

.. math:: (I - A)\,d = \tilde\gamma, \qquad d \ge 0,

which for :math:`\tilde\gamma > 0` is feasible iff :math:`\rho(A) < 1` (a non-negative solution
:math:`d` gives :math:`Ad = d - \tilde\gamma < d`, a Collatz–Wielandt witness; conversely the
Neumann series :math:`\sum_t A^t\tilde\gamma` converges). ``A`` is assembled explicitly
(:math:`\approx K^2N^2` non-zeros), so this route is for small and medium markets; the direct
algorithm in :mod:`datamarkets.models.gne_leontief` is matrix-free.

**Who pays** (Theorem 1's polytope). For the equilibrium :math:`d`, the c's form
:math:`\{c : \sum_j c_i^j = T_i,\ c_i^k \ge L_i^k\}` (one equality per source, a bound per used
pair). For each buyer :math:`k` the LP

.. math:: \min / \max\ \sum_i c_i^k \quad \text{over the polytope}

gives the least and the most it can bear; subtracting :math:`\sum_i L_i^k` gives its expected
total payment :math:`\sum_i \mathbb E[p_i^k]`. The closed form (a source's slack :math:`e_i^*` can be
carried by any one of its users) is in :meth:`~datamarkets.models.gne_polytope.CPolytope.payment_range`
and is the test oracle.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from datamarkets.errors import InvalidInputError
from datamarkets.models.gne_inputs import as_gne_inputs
from datamarkets.models.gne_leontief import leontief_matrix
from datamarkets.models.gne_polytope import c_polytope
from datamarkets.result import Certificate, Result, provenance
from datamarkets.solvers import highs_model, highs_version, solve_highs
from datamarkets.status import Status

__all__ = ["build_existence_lp", "build_payment_lp", "leontief_feasibility", "payment_range"]

_OPTS: dict[str, Any] = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}

MAX_EXISTENCE_PAIRS = 4000
"""Largest number of used (buyer, source) pairs for the dense-A existence LP."""


def build_existence_lp(market: Any) -> tuple[Any, np.ndarray]:
    """HiGHS model of :math:`(I-A)d = \\tilde\\gamma,\\ d \\ge 0` (objective :math:`\\min \\sum d`).

    Returns
    -------
    h : highspy.Highs
    used : ndarray of bool, shape (K·N,)
        Which entries of ``vec(d)`` are columns.

    Raises
    ------
    InvalidInputError
        More than :data:`MAX_EXISTENCE_PAIRS` used pairs (use the matrix-free direct solve).
    """
    import scipy.sparse as sp

    inp = as_gne_inputs(market)
    used = inp.uses.ravel()
    n = int(used.sum())
    if n > MAX_EXISTENCE_PAIRS:
        raise InvalidInputError(
            f"existence LP assembles A densely; {n} pairs > {MAX_EXISTENCE_PAIRS}: "
            "use the matrix-free solve_gne"
        )
    A = leontief_matrix(inp)[np.ix_(used, used)]
    B = sp.identity(n, format="csr") - sp.csr_matrix(A)
    g = inp.gamma_tilde.ravel()[used]
    h = highs_model(np.ones(n), np.zeros(n), np.full(n, np.inf), B, g, g, what="existence LP", **_OPTS)
    return h, used


def leontief_feasibility(market: Any) -> Result:
    """Existence of a GNE as LP feasibility of the Leontief system (HiGHS).

    Returns
    -------
    Result
        ``kind="gne-existence-lp"``; ``OPTIMAL`` with ``d`` (K, N) when feasible,
        ``NO_EQUILIBRIUM`` when HiGHS proves the LP infeasible (no non-negative solution, so no GNE),
        other statuses as mapped from HiGHS. Certificate: residual of :math:`(I-A)d=\\tilde\\gamma`.

    Raises
    ------
    InvalidInputError
        Market too large for the dense LP (see :func:`build_existence_lp`).

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> leontief_feasibility(inp).status.value
    'optimal'
    """
    inp = as_gne_inputs(market)
    t0 = time.perf_counter()
    h, used = build_existence_lp(inp)
    t1 = time.perf_counter()
    info = solve_highs(h)
    status = info.status
    sol: dict[str, Any] = {"feasible": status.has_solution, "highs_status": info.raw_status}
    cert = Certificate()
    if status.has_solution:
        d_flat = np.zeros(inp.K * inp.N)
        d_flat[used] = np.asarray(h.getSolution().col_value, dtype=float)
        d = d_flat.reshape(inp.K, inp.N)
        A = leontief_matrix(inp)
        r = d.ravel() - A @ d.ravel() - inp.gamma_tilde.ravel()
        cert.add(
            "leontief_residual_rel",
            float(np.abs(r[used]).max()) / max(float(inp.gamma_tilde.max()), 1e-300),
            1e-7,
        )
        cert.add("d_negativity", float(max(0.0, -d.min())), 1e-9)
        sol["d"] = d
    elif status in (Status.INFEASIBLE, Status.INFEASIBLE_OR_UNBOUNDED):
        status = Status.NO_EQUILIBRIUM
        sol["reason"] = "HiGHS: (I - A) d = gamma has no non-negative solution"
    meta = provenance({"highs": highs_version()})
    return Result(
        "gne-existence-lp",
        status,
        "lp-highs",
        sol,
        cert,
        {"build_seconds": t1 - t0, "solve_seconds": info.seconds},
        meta,
    )


def build_payment_lp(market: Any, d: ArrayLike) -> tuple[Any, np.ndarray, Any]:
    """HiGHS model of the c-polytope for the equilibrium ``d`` (zero objective).

    Returns
    -------
    h : highspy.Highs
    used : ndarray of bool, shape (K·N,)
        Columns are ``c[k, i]`` for used pairs, in row-major order.
    polytope : CPolytope
    """
    import scipy.sparse as sp

    inp = as_gne_inputs(market)
    poly = c_polytope(inp, d)
    used = inp.uses.ravel()
    cols = np.flatnonzero(used)
    src = cols % inp.N
    n = cols.size
    E = sp.csr_matrix((np.ones(n), (src, np.arange(n))), shape=(inp.N, n))  # sum_k c_i^k
    T = poly.total
    h = highs_model(
        np.zeros(n), poly.lower.ravel()[used], np.full(n, np.inf), E, T, T, what="payment LP", **_OPTS
    )
    return h, used, poly


def payment_range(market: Any, d: ArrayLike) -> Result:
    """Least and most each buyer can bear over the c-polytope, by 2K HiGHS LPs.

    Parameters
    ----------
    market : GNEInputs / coefficients / graph
    d : array, shape (K, N)
        The equilibrium ``d`` (from :func:`~datamarkets.formulations.gne_solve.solve_gne`).

    Returns
    -------
    Result
        ``kind="gne-payment-range"``, solution ``payment_range`` = {buyer: {least, most, c_least,
        c_most}} (``least``/``most`` = expected total payment :math:`\\sum_i(c_i^k - L_i^k)`);
        ``INFEASIBLE`` when the polytope is empty (some equilibrium effort < 0). Certificate:
        LP vs closed form.

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> r = payment_range(inp, np.full((2, 2), 2.0))  # each buyer bears 0 .. e*_1 + e*_2
    >>> r.status.value
    'optimal'
    """
    inp = as_gne_inputs(market)
    t0 = time.perf_counter()
    h, used, poly = build_payment_lp(inp, d)
    t1 = time.perf_counter()
    cols = np.flatnonzero(used)
    buyer_of = cols // inp.N
    n = cols.size
    base = poly.lower.sum(axis=1)
    closed = poly.payment_range()
    out: dict[str, dict[str, float]] = {}
    cert = Certificate()
    status = Status.OPTIMAL
    solve_s = 0.0
    worst = 0.0
    for k, b in enumerate(inp.buyers):
        vals = []
        for sign in (1.0, -1.0):
            cost = np.where(buyer_of == k, sign, 0.0)
            h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
            info = solve_highs(h)
            solve_s += info.seconds
            if not info.status.has_solution:
                status = (
                    Status.INFEASIBLE if info.status.group.value == "infeasible_or_unbounded" else info.status
                )
                break
            vals.append(sign * float(h.getInfo().objective_function_value))
        if status is not Status.OPTIMAL:
            break
        c_least, c_most = vals
        out[str(b)] = {
            "least": c_least - base[k],
            "most": c_most - base[k],
            "c_least": c_least,
            "c_most": c_most,
        }
        scale = max(1.0, abs(c_most))
        worst = max(
            worst,
            abs(c_least - closed["c_least"][k]) / scale,
            abs(c_most - closed["c_most"][k]) / scale,
        )
    sol: dict[str, Any] = {"payment_range": out if status is Status.OPTIMAL else None}
    if status is Status.OPTIMAL:
        cert.add("lp_vs_closed_form_rel", worst, 1e-8)
    else:
        sol["reason"] = "the c-polytope is empty (some equilibrium effort is negative)"
    meta = provenance({"highs": highs_version()})
    return Result(
        "gne-payment-range",
        status,
        "lp-highs",
        sol,
        cert,
        {"build_seconds": t1 - t0, "solve_seconds": solve_s},
        meta,
    )
