r"""Best responses of competing data buyers as exponential-cone programs (cvxpy + Clarabel).

Variable: the induced variance :math:`s_q = \sigma_q^2(e_q^*) = 1/(2\alpha_q(d_q^k + D_q^{-k}))`
(18), a bijection :math:`d_q^k \in [0, \infty) \leftrightarrow s_q \in (0, \hat s_q]` with

.. math:: \hat s_q = \frac{1}{2\alpha_q D_q^{-k}}, \qquad D_q^{-k} = \sum_{j\ne k} d_q^j,

the variance the *other* buyers already induce (:math:`d_q^k \ge 0` ⇔ :math:`s_q \le \hat s_q`;
no bound when :math:`D_q^{-k} = 0`). Write :math:`\pi_i^k = c_i^k - d_i^k\sum_l \xi^k_{i,l}s_l`
for buyer :math:`k`'s expected payment; buyer :math:`k` chooses :math:`c^k`, i.e. :math:`\pi^k`
freely, and (after dividing (19) by :math:`\eta^k`) minimises
:math:`\sum_i \tilde\gamma_i^k s_i + \sum_i \pi_i^k` subject to (21) :math:`\pi_i^k \ge 0` and (20)
:math:`\pi_i^k \ge e_i(s) - P_i^{-k}(s)` where :math:`e_i(s) = -\ln(s_i)/(2\alpha_i)` and
:math:`P_i^{-k}(s) = \sum_{j\ne k} c_i^j - \sum_{j\ne k} d_i^j \sum_l \xi^j_{i,l} s_l` is what the
others pay in expectation.

**Lemma-1 program** (``mode="lemma1"``, depends on :math:`d^{-k}` only). With (20) tight,
:math:`\pi_i^k = e_i(s) - P_i^{-k}(s)`; summing over :math:`i` and swapping indices,

.. math::

    \min_{0 < s \le \hat s}\ \sum_q (\tilde\gamma_q^k + K_q^k)\, s_q - \frac{\ln s_q}{2\alpha_q},
    \qquad K_q^k = \sum_{j\ne k}\sum_{l \in U_k} d_l^j\,\xi^j_{l,q}

(:math:`U_k` = the sources buyer :math:`k` pays, all in the paper; including :math:`l = q`,
where :math:`\xi^j_{q,q} = 1`, so :math:`K_q^k \ge D_q^{-k}`), up to the constant
:math:`-\sum_{i \in U_k}\sum_{j\ne k} c_i^j`. Its minimiser
:math:`s_q = 1/(2\alpha_q(\tilde\gamma_q^k + K_q^k)) \le \hat s_q` (the bound never binds because
:math:`\tilde\gamma \ge 0`) gives :math:`d_q^k = \tilde\gamma_q^k + \sum_{j\ne k}\sum_{l\ne q,\, l \in U_k}
d_l^j\xi^j_{l,q}`, i.e. one block of (25): iterating these best responses is a block Jacobi /
Gauss–Seidel iteration on :math:`d = Ad + \tilde\gamma`, convergent iff :math:`\rho(A) < 1`
(Stein–Rosenberg for the sequential scheme).

**Exact program** (``mode="exact"``, depends on :math:`(c^{-k}, d^{-k})`): keep both (20) and (21),

.. math::

    \min_{s \le \hat s,\ t \ge 0}\ \sum_i \tilde\gamma_i^k s_i + \sum_i t_i
    \quad\text{s.t.}\quad t_i \ge -\frac{\ln s_i}{2\alpha_i} - \sum_{j\ne k}c_i^j
    + \sum_{j\ne k} d_i^j \sum_l \xi^j_{i,l} s_l,

convex because :math:`\max(0, \text{convex})` is convex. Its value is buyer :math:`k`'s best reply
cost against the profile; the **best-response gap** :math:`J^k(c, d) - \min` (relative to
:math:`\max(1, |J^k|)`) is :math:`\approx 0` at a GNE for every :math:`c` in the polytope, because
exact :math:`\ge` Lemma-1 objective everywhere, with equality at the equilibrium :math:`s^*`
(:math:`\pi^k \ge 0` there), and :math:`s^*` minimises the Lemma-1 objective. When
:math:`D_q^{-k} = 0` the bound is replaced by :math:`s_q \le 10^6 s_q^*` (stated cap).
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import InvalidInputError, SolverError, SolverLimitError
from datamarkets.models.gne_inputs import GNEInputs, as_gne_inputs, variance_response
from datamarkets.models.gne_leontief import solve_leontief
from datamarkets.result import Certificate, Result, provenance
from datamarkets.solvers import Deadline, solver_time_options
from datamarkets.status import Status, StatusGroup, status_from_cvxpy
from datamarkets.validation import check_time_limit

__all__ = [
    "BestResponse",
    "best_response_gaps",
    "best_response_iteration",
    "build_best_response",
    "buyer_cost",
    "lemma1_coefficients",
    "lemma1_value",
    "solve_best_response",
]

CLARABEL_OPTIONS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}
"""Tight Clarabel tolerances: the variance is recovered from a flat objective, so the default
1e-8 gap (≈ 1e-4 in ``s``) is too loose; with these ``d`` is accurate to ≈ 1e-6."""

S_CAP = 1e6
"""Cap on :math:`s_q/s_q^*` when no other buyer pays source ``q`` (exact program)."""


@dataclass(frozen=True)
class BestResponse:
    """One buyer's best response.

    Attributes
    ----------
    buyer : int
    status : Status
    value : float
        Optimal objective (same constant convention as :func:`buyer_cost`).
    variance : ndarray, shape (N,)
        :math:`s` at the optimum (fixed entries for sources the buyer does not use).
    d : ndarray, shape (N,)
        :math:`d^k = 1/(2\\alpha s) - D^{-k}` (0 where unused).
    mode : str
    """

    buyer: int
    status: Status
    value: float
    variance: NDArray[np.float64]
    d: NDArray[np.float64]
    mode: str

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: sources, summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def lemma1_coefficients(inp: GNEInputs, d: NDArray, k: int) -> tuple[NDArray, NDArray]:
    """:math:`(\\tilde\\gamma^k + K^k,\\ D^{-k})` of buyer ``k``'s Lemma-1 program, shape (N,) each."""
    dm = np.where(inp.uses, d, 0.0)
    u = inp.uses[k].astype(float)
    V = np.einsum("jl,jlq->lq", dm, inp.xi_full)  # V[l, q] = sum_j d_l^j xi^j_{l,q}
    K_q = u @ V - (dm[k] * u) @ inp.xi_full[k]  # sum over j != k, l in U_k
    D_minus = dm.sum(axis=0) - dm[k]
    return inp.gamma_tilde[k] + K_q, D_minus


def buyer_cost(inp: GNEInputs, d: NDArray, c: NDArray, k: int) -> float:
    """Buyer ``k``'s cost (19)/η^k at the profile (c, d).

    :math:`\\sum_i \\tilde\\gamma_i^k s_i + \\pi_i^k` with :math:`\\pi` its expected payments.
    """
    d = np.where(inp.uses, d, 0.0)
    s = variance_response(d.sum(axis=0), inp.alpha)
    L = d[k] * (inp.xi_full[k] @ s)
    pi = np.where(inp.uses[k], c[k] - L, 0.0)
    return float(inp.gamma_tilde[k] @ s + pi.sum())


@functools.lru_cache(maxsize=16)
def _lemma1_template(n: int) -> tuple[Any, dict[str, Any]]:
    """``min a·z − Σ w log z + const  s.t.  b ∘ z ≤ 1`` with parameters a, b, w ≥ 0, const."""
    import cvxpy as cp

    z = cp.Variable(n, pos=True, name="variance_scaled")
    a = cp.Parameter(n, nonneg=True, name="a")
    b = cp.Parameter(n, nonneg=True, name="b")
    w = cp.Parameter(n, nonneg=True, name="w")
    const = cp.Parameter(name="const")
    prob = cp.Problem(
        cp.Minimize(a @ z - cp.sum(cp.multiply(w, cp.log(z))) + const), [cp.multiply(b, z) <= 1.0]
    )
    return prob, {"a": a, "b": b, "w": w, "const": const}


def build_best_response(
    market: Any,
    k: int,
    d: ArrayLike,
    c: ArrayLike | None = None,
    *,
    mode: Literal["lemma1", "exact"] = "lemma1",
) -> tuple[Any, dict[str, Any]]:
    """Buyer ``k``'s best-response program as a cvxpy problem.

    The variable is ``variance_scaled`` :math:`z` with :math:`s = s_{ref} z`, where
    :math:`s_{ref}` is the variance the profile ``d`` induces (returned in ``data``).

    Returns
    -------
    problem : cvxpy.Problem
    data : dict
        ``used`` (bool mask of the variable's sources), ``s_fixed`` (variance of the others),
        ``s_ref``, ``D_minus``, the constant added to the objective and ``objective_scale``
        (the program minimises objective / scale, so that the log terms have weight ≤ 1).

    Raises
    ------
    InvalidInputError
        ``mode="exact"`` without ``c``; bad shapes.
        Also an unknown ``mode`` (an ``InvalidInputError`` is a ``ValueError``).
    """
    import cvxpy as cp

    inp = as_gne_inputs(market)
    d = np.asarray(d, dtype=float)
    if d.shape != (inp.K, inp.N):
        raise InvalidInputError(f"d must have shape {(inp.K, inp.N)!r}, got {d.shape!r}")
    if not 0 <= k < inp.K:
        raise InvalidInputError(f"buyer index {k!r} out of range")
    used = inp.uses[k]
    a = inp.alpha[used]
    coef, D_minus = lemma1_coefficients(inp, d, k)
    inv_bound = 2.0 * inp.alpha * D_minus  # s <= 1/(2 alpha D^-k)  <=>  inv_bound * s <= 1
    with np.errstate(divide="ignore"):
        s_fixed = np.where(D_minus > 0, 1.0 / np.where(inv_bound > 0, inv_bound, 1.0), np.inf)
    # scale s = s_ref * z with s_ref the variance the current profile induces (or, where nobody
    # pays yet, the unconstrained minimiser's order 1/(2 alpha coef)); z is O(1), which keeps the
    # interior-point solve accurate when d is huge near collapse
    dm = np.where(inp.uses, d, 0.0)
    D_now = dm.sum(axis=0)
    s_ref = np.where(D_now > 0, 1.0 / (2.0 * inp.alpha * np.where(D_now > 0, D_now, 1.0)), 0.0)
    s_ref = np.where(s_ref > 0, s_ref, 1.0 / (2.0 * inp.alpha * np.maximum(coef, 1e-300)))
    r = s_ref[used]
    z = cp.Variable(int(used.sum()), pos=True, name="variance_scaled")
    log_s = cp.log(z) + np.log(r)
    s_other = np.where(used, 0.0, np.where(np.isfinite(s_fixed), s_fixed, 0.0))
    const = float(inp.gamma_tilde[k] @ s_other)  # sources k does not pay still enter its loss
    data: dict[str, Any] = {
        "used": used,
        "s_fixed": s_fixed,
        "s_ref": s_ref,
        "D_minus": D_minus,
        "constant": const,
    }
    if mode == "lemma1":
        # parametrised (DPP) program, compiled once per size and re-used by every buyer/iteration
        prob, par = _lemma1_template(int(used.sum()))
        w = 1.0 / (2.0 * a)
        f = float(np.max(w))  # objective scale: the program minimises objective / f
        data["objective_scale"] = f
        par["a"].value = coef[used] * r / f
        par["b"].value = inv_bound[used] * r
        par["w"].value = w / f
        par["const"].value = (const - float(w @ np.log(r))) / f
        del z, log_s
        return prob, data
    if mode == "exact":
        if c is None:
            raise InvalidInputError("the exact best-response program needs the others' c")
        c = np.asarray(c, dtype=float)
        if c.shape != (inp.K, inp.N):
            raise InvalidInputError(f"c must have shape {(inp.K, inp.N)!r}, got {c.shape!r}")
        cm = np.where(inp.uses, c, 0.0)
        cap = np.where(np.isfinite(s_fixed), s_fixed, S_CAP * s_ref)
        cons = [z <= cap[used] / r]
        P = cm.sum(axis=0) - cm[k]  # others' fixed parts
        M = np.einsum("ji,jil->il", np.delete(dm, k, axis=0), np.delete(inp.xi_full, k, axis=0))
        Mu, Mo = M[np.ix_(used, used)], M[np.ix_(used, ~used)]
        so = s_other[~used]
        f = float(np.max(1.0 / (2.0 * a)))  # objective scale: the program minimises objective / f
        data["objective_scale"] = f
        t = cp.Variable(int(used.sum()), nonneg=True, name="payment")  # expected payment / f
        lin = (Mu * r[None, :] / f) @ z + (Mo @ so - P[used]) / f
        cons.append(t >= -cp.multiply(1.0 / (2.0 * a * f), log_s) + lin)
        obj = (inp.gamma_tilde[k][used] * r / f) @ z + cp.sum(t) + const / f
        return cp.Problem(cp.Minimize(obj), cons), data
    raise InvalidInputError(f"unknown mode {mode!r}; use 'lemma1' or 'exact'")


def solve_best_response(
    market: Any,
    k: int,
    d: ArrayLike,
    c: ArrayLike | None = None,
    *,
    mode: Literal["lemma1", "exact"] = "lemma1",
    solver: str = "CLARABEL",
    time_limit: float | None = None,
) -> BestResponse:
    """Solve buyer ``k``'s best-response program (see module docstring).

    ``time_limit`` (seconds) is passed to the solver under its own keyword
    (:func:`~datamarkets.solvers.solver_time_options`).

    Raises
    ------
    SolverError
        The solver returned no solution.
    SolverLimitError
        The solver stopped at ``time_limit`` without a solution.
    """
    inp = as_gne_inputs(market)
    prob, data = build_best_response(inp, k, d, c, mode=mode)
    try:
        with warnings.catch_warnings():
            # with the tight tolerances Clarabel may stop "almost solved": kept as OPTIMAL_INACCURATE
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            opts = {
                **(CLARABEL_OPTIONS if solver == "CLARABEL" else {}),
                **solver_time_options(solver, time_limit),
            }
            prob.solve(solver=solver, **opts)
    except Exception as exc:  # cvxpy.SolverError and friends
        raise SolverError(f"best response of buyer {inp.buyers[k]!r}: {exc}") from exc
    status = status_from_cvxpy(prob.status)
    if not status.has_solution and status.group is StatusGroup.LIMIT:
        raise SolverLimitError(f"best response of buyer {inp.buyers[k]!r}: solver status {prob.status!r}")
    if not status.has_solution:
        raise SolverError(f"best response of buyer {inp.buyers[k]!r}: solver status {prob.status!r}")
    used = data["used"]
    s = np.where(np.isfinite(data["s_fixed"]), data["s_fixed"], np.inf)
    s[used] = data["s_ref"][used] * np.asarray(prob.var_dict["variance_scaled"].value, dtype=float)
    dk = np.zeros(inp.N)
    dk[used] = np.maximum(1.0 / (2.0 * inp.alpha[used] * s[used]) - data["D_minus"][used], 0.0)
    return BestResponse(k, status, float(prob.value) * data["objective_scale"], s, dk, mode)


EXACT_GAP_MAX_SOURCES = 60
"""``mode="auto"`` uses the exact programs up to this many sources (their dense coupling matrix
makes cvxpy's compilation O(N²) per buyer), the Lemma-1 programs above."""


def lemma1_value(inp: GNEInputs, d: NDArray, k: int, s: NDArray) -> float:
    """Objective of buyer ``k``'s Lemma-1 program at the variances ``s`` (shape (N,))."""
    coef, _ = lemma1_coefficients(inp, d, k)
    u = inp.uses[k]
    return float(
        coef[u] @ s[u] - np.sum(np.log(s[u]) / (2.0 * inp.alpha[u])) + inp.gamma_tilde[k][~u] @ s[~u]
    )


def best_response_gaps(
    market: Any,
    d: ArrayLike,
    c: ArrayLike,
    *,
    mode: Literal["auto", "exact", "lemma1"] = "auto",
    solver: str = "CLARABEL",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Relative best-response gap of every buyer at the profile ``(c, d)``.

    ``mode="exact"`` compares :func:`buyer_cost` with the exact program's minimum. ``"lemma1"``
    compares the Lemma-1 objective at the profile's variances with its minimum; for ``c`` in the
    c-polytope (certified separately) this bounds the exact gap, because the exact objective is
    :math:`\ge` the Lemma-1 objective (+ constant) everywhere and equal at the profile.
    ``"auto"``: exact up to :data:`EXACT_GAP_MAX_SOURCES` sources.

    Returns
    -------
    gaps : ndarray, shape (K,)
        :math:`(J^k - \min \text{BR}^k)/\max(1, |J^k|)`; ≈ 0 at a GNE, > 0 if buyer ``k`` can
        profit by deviating.
    values : ndarray, shape (K, 2)
        ``[J^k at the profile, min BR^k]`` (in the chosen mode's convention).
    """
    inp = as_gne_inputs(market)
    d = np.asarray(d, dtype=float)
    c = np.asarray(c, dtype=float)
    if mode == "auto":
        mode = "exact" if inp.N <= EXACT_GAP_MAX_SOURCES else "lemma1"
    if mode not in ("exact", "lemma1"):
        raise InvalidInputError(f"unknown mode {mode!r}; use 'auto', 'exact' or 'lemma1'")
    s_star = variance_response(np.where(inp.uses, d, 0.0).sum(axis=0), inp.alpha)
    gaps = np.zeros(inp.K)
    values = np.zeros((inp.K, 2))
    for k in range(inp.K):
        J = buyer_cost(inp, d, c, k) if mode == "exact" else lemma1_value(inp, d, k, s_star)
        br = solve_best_response(inp, k, d, c, mode=mode, solver=solver)
        values[k] = (J, br.value)
        gaps[k] = (J - br.value) / max(1.0, abs(J))
    return gaps, values


def _closed_form_br(inp: GNEInputs, d: NDArray, k: int) -> NDArray:
    coef, D_minus = lemma1_coefficients(inp, d, k)
    return np.where(inp.uses[k], np.maximum(coef - D_minus, 0.0), 0.0)


def best_response_iteration(
    market: Any,
    *,
    backend: Literal["cvxpy", "closed"] = "cvxpy",
    scheme: Literal["gauss-seidel", "jacobi"] = "gauss-seidel",
    tol: float | None = None,
    max_iter: int = 500,
    d0: ArrayLike | None = None,
    solver: str = "CLARABEL",
    time_limit: float | None = None,
) -> Result:
    """Iterate the buyers' Lemma-1 best responses until :math:`d` stops moving.

    Parameters
    ----------
    market : GNEInputs / coefficients / graph
    backend : {"cvxpy", "closed"}
        Solve each best response as the exponential-cone program, or by its closed-form
        minimiser (the two agree; the closed form is the fast baseline).
    scheme : {"gauss-seidel", "jacobi"}
        Sequential (use the newest d of buyers already updated) or simultaneous updates.
    tol : float, optional
        Stop when :math:`\\max |d^{t+1} - d^t| / \\max |d^t| \\le tol` (default 1e-6 for
        ``"cvxpy"``, whose best responses are accurate to ≈ 1e-6, and 1e-10 for ``"closed"``).
    max_iter : int
        Sweeps over all buyers.
    d0 : array, optional
        Start (default :math:`\\tilde\\gamma`).
    solver : str, default "CLARABEL"
        cvxpy solver of the best-response programs.
    time_limit : float, optional
        Wall-clock seconds: checked before every best response, the remainder passed to the solver.
        When it runs out the status is ``TIME_LIMIT`` (with the last ``d``).

    Returns
    -------
    Result
        ``kind="gne-best-response"``; ``OPTIMAL`` when converged (certificate: agreement with the
        direct Leontief solve), ``ITERATION_LIMIT`` otherwise (e.g. :math:`\\rho(A) \\ge 1`), with
        ``d``, ``iterations``, ``step_history``; ``TIME_LIMIT`` when ``time_limit`` ran out.

    Raises
    ------
    InvalidInputError
        Unknown ``backend`` or ``scheme`` (also a ``ValueError``).

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> r = best_response_iteration(inp, backend="closed")
    >>> r.solution["d"].round(8).tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """
    if backend not in ("cvxpy", "closed"):
        raise InvalidInputError(f"unknown backend {backend!r}")
    if scheme not in ("gauss-seidel", "jacobi"):
        raise InvalidInputError(f"unknown scheme {scheme!r}")
    inp = as_gne_inputs(market)
    if tol is None:
        tol = 1e-6 if backend == "cvxpy" else 1e-10
    t0 = time.perf_counter()
    deadline = Deadline(check_time_limit(time_limit, "time_limit"), start=t0)
    d = inp.gamma_tilde.copy() if d0 is None else np.where(inp.uses, np.asarray(d0, float), 0.0)
    steps: list[float] = []
    status = Status.ITERATION_LIMIT
    iterations = 0
    n_programs = 0
    for it in range(1, max_iter + 1):
        iterations = it
        base = d.copy()
        new = d.copy()
        for k in range(inp.K):
            if deadline.expired:
                status = Status.TIME_LIMIT
                break
            src = new if scheme == "gauss-seidel" else base
            if backend == "closed":
                new[k] = _closed_form_br(inp, src, k)
            else:
                try:
                    new[k] = solve_best_response(
                        inp, k, src, mode="lemma1", solver=solver, time_limit=deadline.solver_limit()
                    ).d
                except (SolverLimitError, SolverError) as exc:
                    if isinstance(exc, SolverError) and not deadline.expired:
                        raise
                    status = Status.TIME_LIMIT  # a solver cut off by the limit (some report a failure)
                    break
                n_programs += 1
        if status is Status.TIME_LIMIT:  # the sweep is incomplete: keep the last complete d
            break
        if not np.all(np.isfinite(new)) or np.max(np.abs(new)) > 1e300:
            break
        step = float(np.max(np.abs(new - base)) / max(float(np.max(np.abs(base))), 1e-300))
        steps.append(step)
        d = new
        if step <= tol:
            status = Status.OPTIMAL
            break
    t1 = time.perf_counter()
    cert = Certificate()
    sol: dict[str, Any] = {
        "d": d,
        "iterations": iterations,
        "step_history": steps,
        "programs_solved": n_programs,
    }
    if status is Status.OPTIMAL:
        d_ref, _ = solve_leontief(inp)
        rel = float(np.max(np.abs(d - d_ref)) / max(float(np.abs(d_ref).max()), 1e-300))
        sol["d_leontief"] = d_ref
        # fixed-point error <= step * rho/(1-rho) (sup-norm, Jacobi); the exp-cone solves add ~1e-6
        cert.add("best_response_vs_leontief_rel", rel, 1e-4 if backend == "cvxpy" else 1e-8)
    import cvxpy as cp

    meta = provenance({"cvxpy": cp.__version__, "solver": solver} if backend == "cvxpy" else {})
    meta.update({"backend": backend, "scheme": scheme, "tol": tol})
    return Result(
        "gne-best-response",
        status,
        f"best-response-{scheme}-{backend}",
        sol,
        cert,
        {"solve_seconds": t1 - t0},
        meta,
    )
