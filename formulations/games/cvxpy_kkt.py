r"""KKT systems of cvxpy players, derived from cvxpy's canonical (conic) form.

**Conic KKT** (any player). With the others fixed, cvxpy compiles player :math:`i`'s program for
Clarabel into :math:`\min \tfrac12 z^T P z + q^T z` s.t. :math:`Az + s = b`, :math:`s \in K`
(zero, non-negative, second-order, PSD, exponential and power cones), :math:`z` the canonical
variables (the player's own, vectorised, plus auxiliaries). Its KKT conditions are

.. math:: Pz + q + A^T y = 0, \quad s = b - Az \in K, \quad y \in K^*, \quad s^T y = 0,

and any :math:`(z, y)` with :math:`y \in K^*` and stationarity gives the Wolfe dual value
:math:`-\tfrac12 z^T P z - b^T y \le` the optimum: :func:`conic_kkt` measures all four residuals and
both objective values.

**Linear-quadratic extraction** (:func:`lq_args`). The compiled program is affine in the
parameters (DPP): cvxpy keeps the tensors :math:`q(\theta), A(\theta), b(\theta), P(\theta)` with
one column per parameter entry plus a constant column. For an LQ player :math:`P` and :math:`A` do
not depend on :math:`\theta` (the others' variables) and all cones are zero or non-negative.
Auxiliary canonical variables :math:`t` (e.g. from ``sum_squares(M @ x - h)``) are eliminated with
the equality rows that define them, :math:`t = T(x, 1)`; then with :math:`w = (x, 1)` and
:math:`z = S w` the cost is :math:`\tfrac12 w^T H w` with
:math:`H = S^T P S + S^T L + L^T S + \ell e^T + e \ell^T`, whence :math:`Q_i = H_{xx}`,
:math:`c_i = H_{x1}`. The result is checked against cvxpy's own compiled data at random
parameter values and against the objective evaluated by cvxpy at a random profile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from datamarkets.errors import NotLinearQuadraticError, SolverError

if TYPE_CHECKING:
    from datamarkets.formulations.games.cvxpy_players import CvxpyGame

__all__ = ["cone_violation", "conic_kkt", "lq_args"]


# ---------------------------------------------------------------------------- cone residuals
def _exp_primal(v: NDArray) -> float:
    x, y, z = v
    if y > 0:
        with np.errstate(over="ignore"):
            ez = y * np.exp(x / y)
        dz = max(0.0, ez - z)
        dx = max(0.0, x - y * np.log(z / y)) if z > 0 else np.inf
        return float(min(dz, dx, y + max(x, 0.0) + max(-z, 0.0)))
    return float(-y + max(x, 0.0) + max(-z, 0.0))


def _exp_dual(v: NDArray) -> float:
    u, w1, w = v
    if u < 0:
        with np.errstate(over="ignore"):
            lhs = -u * np.exp(w1 / u)
        dw = max(0.0, (lhs - np.e * w) / np.e)
        dv = max(0.0, u * np.log(np.e * w / -u) - w1) if w > 0 else np.inf
        return float(min(dw, dv, -u + max(-w1, 0.0) + max(-w, 0.0)))
    return float(u + max(-w1, 0.0) + max(-w, 0.0))


def _pow(v: NDArray, a: float, dual: bool) -> float:
    x, y, z = v
    if dual:
        xs, ys = max(x, 0.0) / a, max(y, 0.0) / (1 - a)
    else:
        xs, ys = max(x, 0.0), max(y, 0.0)
    return float(max(-x, -y, abs(z) - xs**a * ys ** (1 - a), 0.0))


def _psd(v: NDArray, d: int) -> float:
    M = np.zeros((d, d))
    iu = np.triu_indices(d)
    # Clarabel's PSDTriangleCone: upper triangle by columns, off-diagonals scaled by sqrt(2)
    cols, rows = iu[1], iu[0]
    order = np.lexsort((rows, cols))
    r, c = rows[order], cols[order]
    vals = np.where(r == c, v, v / np.sqrt(2.0))
    M[r, c] = vals
    M[c, r] = vals
    return float(max(0.0, -np.linalg.eigvalsh(M)[0]))


def cone_violation(v: NDArray, dims: Any, *, dual: bool) -> NDArray[np.float64]:
    """Per-block violation of ``v ∈ K`` (``dual=False``) or ``v ∈ K*`` (``dual=True``).

    ``dims`` is cvxpy's ``ConeDims`` in Clarabel's order (zero, non-negative, SOC, PSD, exp,
    3-d power). Zero cone: ``|v|`` (primal) / free (dual); others: an upper bound on the
    distance obtained by moving one coordinate. Generalised power cones give NaN (not checked).
    """
    out: list[float] = []
    k = int(dims.zero)
    out.extend(np.abs(v[:k]).tolist() if not dual else [0.0] * k)
    m = int(dims.nonneg)
    out.extend(np.maximum(-v[k : k + m], 0.0).tolist())
    k += m
    for d in dims.soc:
        t, rest = v[k], v[k + 1 : k + d]
        out.append(max(0.0, float(np.linalg.norm(rest)) - t))
        k += d
    for d in dims.psd:
        m = d * (d + 1) // 2
        out.append(_psd(v[k : k + m], d))
        k += m
    for _ in range(int(dims.exp)):
        out.append((_exp_dual if dual else _exp_primal)(v[k : k + 3]))
        k += 3
    for a in dims.p3d:
        out.append(_pow(v[k : k + 3], float(a), dual))
        k += 3
    if k < v.size:  # generalised power cones: not checked
        out.append(float("nan"))
    return np.asarray(out, dtype=float)


def conic_kkt(raw: dict[str, Any], z: NDArray | None = None, y: NDArray | None = None) -> dict[str, float]:
    """KKT residuals and objective values of a canonical program (see module docstring).

    Parameters
    ----------
    raw : dict
        From :meth:`CvxpyGame.solve_player`: ``P, q, A, b, dims, z, y, offset``.
    z, y : ndarray, optional
        Primal / dual point (default: Clarabel's solution).

    Returns
    -------
    dict
        ``stationarity`` :math:`\\|Pz + q + A^Ty\\|_\\infty / \\max(1, \\|q\\|_\\infty)`,
        ``primal_cone`` (max violation of :math:`b - Az \\in K`, relative to
        :math:`\\max(1, \\|b\\|_\\infty)`), ``dual_cone`` (violation of :math:`y \\in K^*`, relative to
        :math:`\\max(1, \\|y\\|_\\infty)`), ``complementarity`` :math:`|s^Ty|/\\max(1, |primal|)`,
        ``primal`` and ``dual`` objective values (canonical, *without* the offset).
    """
    z = raw["z"] if z is None else z
    y = raw["y"] if y is None else y
    q, A, b = raw["q"], sp.csc_array(raw["A"]), raw["b"]
    P = raw["P"]
    Pz = np.zeros_like(q) if P is None else np.asarray(sp.csc_array(P) @ z)
    s = b - A @ z
    grad = Pz + q + A.T @ y
    primal = 0.5 * float(z @ Pz) + float(q @ z)
    dual = -0.5 * float(z @ Pz) - float(b @ y)
    pc = cone_violation(s, raw["dims"], dual=False)
    dc = cone_violation(y, raw["dims"], dual=True)
    return {
        "stationarity": float(np.max(np.abs(grad), initial=0.0))
        / max(1.0, float(np.max(np.abs(q), initial=0.0))),
        "primal_cone": float(np.max(pc, initial=0.0)) / max(1.0, float(np.max(np.abs(b), initial=0.0))),
        "dual_cone": float(np.max(dc, initial=0.0)) / max(1.0, float(np.max(np.abs(y), initial=0.0))),
        "complementarity": abs(float(s @ y)) / max(1.0, abs(primal)),
        "primal": primal,
        "dual": dual,
    }


# ---------------------------------------------------------------------------- LQ extraction
def _plain_copy(vars_: list[Any], where: str) -> tuple[dict[int, Any], list[Any]]:
    """Attribute-free copies of variables (so cvxpy keeps their ids) plus their sign/bound rows."""
    import cvxpy as cp

    subst: dict[int, Any] = {}
    cons: list[Any] = []
    for v in vars_:
        w = cp.Variable(v.shape, name=v.name())
        subst[id(v)] = w
        at = v.attributes
        other = [k for k, val in at.items() if val and k not in ("nonneg", "pos", "nonpos", "neg", "bounds")]
        if other:
            raise NotLinearQuadraticError(f"{where}: variable {v.name()!r} has attribute(s) {other!r}")
        if at.get("nonneg") or at.get("pos"):
            cons.append(w >= 0)
        if at.get("nonpos") or at.get("neg"):
            cons.append(w <= 0)
        if at.get("bounds"):
            lo, hi = at["bounds"]
            if lo is not None:
                cons.append(w >= lo)
            if hi is not None:
                cons.append(w <= hi)
    return subst, cons


def _affine_canonical(
    prob: Any, var_cols: dict[int, slice], par_cols: dict[int, slice], n: int, where: str
) -> tuple[NDArray, NDArray, NDArray]:
    """``H`` ((n+1)×(n+1)), equality rows ``E`` and inequality rows ``G`` ((·, n+1)) of an LQ program.

    Cost :math:`\\tfrac12 w^THw`, constraints :math:`E w = 0`, :math:`G w \\ge 0`, :math:`w = (x, 1)`.
    """
    import cvxpy as cp

    data, _, _ = prob.get_problem_data(cp.CLARABEL)
    pp = data[cp.settings.PARAM_PROB]
    dims = pp.cone_dims
    cones = {
        "soc": dims.soc,
        "psd": dims.psd,
        "exp": dims.exp,
        "p3d": dims.p3d,
        "pnd": getattr(dims, "pnd", []),
    }
    bad = [k for k, v in cones.items() if v]
    if bad:
        raise NotLinearQuadraticError(f"{where}: canonical form has {bad} cone(s); not linear-quadratic")
    nz, mp = int(pp.x.size), int(pp.total_param_size)
    m = int(dims.zero + dims.nonneg)
    # parameter columns: the others' variables -> stacked columns; user parameters -> constants
    pcol = np.full(mp + 1, -1)
    pval = np.zeros(mp + 1)
    pval[mp] = 1.0
    pcol[mp] = n
    for par in pp.parameters:
        c0 = pp.param_id_to_col[par.id]
        if par.id in par_cols:
            pcol[c0 : c0 + par.size] = np.arange(n)[par_cols[par.id]]
        else:
            pcol[c0 : c0 + par.size] = n
            pval[c0 : c0 + par.size] = np.asarray(par.value, dtype=float).ravel(order="F")
    is_theta = np.zeros(mp + 1, dtype=bool)
    is_theta[:mp] = pcol[:mp] < n
    # canonical columns: user variables -> stacked columns, the rest auxiliaries
    zcol = np.full(nz, -1)
    for vid, c0 in pp.var_id_to_col.items():
        if vid in var_cols:
            sl = var_cols[vid]
            zcol[c0 : c0 + (sl.stop - sl.start)] = np.arange(n)[sl]
    aux = np.flatnonzero(zcol < 0)
    na = aux.size

    def fold(T: Any, rows: int) -> tuple[NDArray, NDArray]:
        """Split a tensor into its theta part (rows × n, stacked columns) and constant (rows,)."""
        T = sp.coo_array(T)
        r, c, v = T.row, T.col, T.data
        th = is_theta[c]
        M = np.zeros((rows, n))
        np.add.at(M, (r[th], pcol[c[th]]), v[th])
        const = np.zeros(rows)
        np.add.at(const, r[~th], v[~th] * pval[c[~th]])
        return M, const

    # objective: q tensor (nz + 1 rows: q then offset d)
    Qth, q0 = fold(pp.q, nz + 1)
    # constraints: A tensor rows r = row + m * col over [A | b] (column-major), A z + b in K
    At = sp.coo_array(pp.A)
    rr, cc = At.row % m, At.row // m
    th = is_theta[At.col]
    if np.any(th & (cc < nz) & (At.data != 0)):
        raise NotLinearQuadraticError(f"{where}: a constraint multiplies the player's variables by another's")
    A0 = np.zeros((m, nz))
    Bth = np.zeros((m, n))
    b0 = np.zeros(m)
    isA = cc < nz
    np.add.at(A0, (rr[isA & ~th], cc[isA & ~th]), At.data[isA & ~th] * pval[At.col[isA & ~th]])
    np.add.at(Bth, (rr[~isA & th], pcol[At.col[~isA & th]]), At.data[~isA & th])
    np.add.at(b0, rr[~isA & ~th], At.data[~isA & ~th] * pval[At.col[~isA & ~th]])
    P0 = np.zeros((nz, nz))
    if pp.P is not None and nz:
        Pt = sp.coo_array(pp.P)
        if np.any(is_theta[Pt.col] & (Pt.data != 0)):
            raise NotLinearQuadraticError(
                f"{where}: the quadratic term depends on another player's variables"
            )
        keep = ~is_theta[Pt.col]
        np.add.at(P0, (Pt.row[keep] % nz, Pt.row[keep] // nz), Pt.data[keep] * pval[Pt.col[keep]])
        if not np.allclose(P0, P0.T, atol=1e-12 * max(1.0, np.abs(P0).max())):
            P0 = P0 + np.triu(P0, 1).T if np.allclose(np.tril(P0, -1), 0) else 0.5 * (P0 + P0.T)
    _verify_tensors(prob, data, A0, Bth, b0, P0, Qth, q0, par_cols, nz, where)
    # rows over (x, 1): user columns of A0 scattered, theta from B, constant b
    user = zcol >= 0
    R = np.zeros((m, n + 1))
    R[:, zcol[user]] += A0[:, user]
    R[:, :n] += Bth
    R[:, n] += b0
    Ct = A0[:, aux]
    S = np.zeros((nz, n + 1))
    S[np.flatnonzero(user), zcol[user]] = 1.0
    if na:
        zr = np.arange(int(dims.zero))
        defining = zr[np.any(Ct[zr] != 0, axis=1)]
        E = Ct[defining]
        if np.linalg.matrix_rank(E) < na:
            raise NotLinearQuadraticError(
                f"{where}: auxiliary canonical variables are not fixed by equalities (an epigraph such as "
                "abs, max or a norm): not linear-quadratic"
            )
        T = -np.linalg.lstsq(E, R[defining], rcond=None)[0]  # t = T (x, 1)
        R = R + Ct @ T
        S[aux] = T
    L = np.zeros((nz, n + 1))
    L[:, :n] = Qth[:nz]
    L[:, n] = q0[:nz]
    ell = np.zeros(n + 1)
    ell[:n] = Qth[nz]
    ell[n] = q0[nz]
    H = S.T @ P0 @ S + S.T @ L + L.T @ S
    H[:, n] += ell
    H[n, :] += ell
    scale = max(1.0, float(np.abs(R).max(initial=0.0)))
    R[np.abs(R) <= 1e-13 * scale] = 0.0
    nzr = np.any(R != 0, axis=1)
    zero = np.arange(m) < dims.zero
    return H, R[zero & nzr], R[~zero & nzr]


def _verify_tensors(
    prob: Any,
    data: dict,
    A0: NDArray,
    Bth: NDArray,
    b0: NDArray,
    P0: NDArray,
    Qth: NDArray,
    q0: NDArray,
    par_cols: dict[int, slice],
    nz: int,
    where: str,
) -> None:
    """Re-compile at random parameter values and compare with the tensor reconstruction."""
    import cvxpy as cp

    pars = [p for p in prob.parameters() if p.id in par_cols]
    if not pars:
        theta = np.zeros(Bth.shape[1])
        dA, db, dq = data["A"], data["b"], data["c"]
    else:
        rng = np.random.default_rng(12345)
        old = {p.id: p.value for p in pars}
        theta = np.zeros(Bth.shape[1])
        for p in pars:
            val = rng.uniform(0.5, 1.5, p.shape)
            p.value = -val if (p.attributes.get("nonpos") or p.attributes.get("neg")) else val
            theta[par_cols[p.id]] = np.asarray(p.value).ravel(order="F")
        d2, _, _ = prob.get_problem_data(cp.CLARABEL)
        dA, db, dq = d2["A"], d2["b"], d2["c"]
        for p in pars:
            p.value = old[p.id]
    errs = [
        np.abs(sp.csc_array(dA).toarray() + A0).max(initial=0.0),
        np.abs(np.asarray(db) - (b0 + Bth @ theta)).max(initial=0.0),
        np.abs(np.asarray(dq) - (q0[:nz] + Qth[:nz] @ theta)).max(initial=0.0),
    ]
    if "P" in data and data["P"] is not None and nz:
        errs.append(np.abs(sp.csc_array(data["P"]).toarray() - P0).max(initial=0.0))
    ref = max(1.0, np.abs(A0).max(initial=0.0), np.abs(b0).max(initial=0.0), np.abs(q0).max(initial=0.0))
    if max(errs) > 1e-9 * ref:
        raise SolverError(
            f"{where}: cvxpy's parametrised tensors do not reproduce its compiled data ({max(errs):.3g})"
        )


def lq_args(game: CvxpyGame, *, check: bool = True) -> dict[str, Any]:
    """Arguments of ``lq_game`` for a linear-quadratic cvxpy game, derived from cvxpy's canonical form.

    Player ``i``'s cost (``-objective`` for ``Maximize``) becomes :math:`\\tfrac12 x^TQ_ix + c_i^Tx`
    (+ a constant, dropped) in the stacked profile. A player's own constraints that involve only its
    own variables become bounds ``lb``/``ub`` (one variable) or rows of ``A, b`` / ``Aeq, beq``:
    a row touching only player ``i``'s block is the same constraint for ``i`` and vacuous for the
    others, so the equilibrium set (and the variational equilibrium: its multiplier only enters
    player ``i``'s stationarity) is unchanged. Shared constraints become ``A x <= b``, ``Aeq x = beq``.

    Parameters
    ----------
    game : CvxpyGame
    check : bool
        Compare each cost with cvxpy's evaluation of the objective at a random profile.

    Returns
    -------
    dict
        ``sizes, Q (list of (n, n)), c (list of (n,)), A, b, Aeq, beq`` (``None`` when empty),
        ``lb, ub`` (``±inf`` where unbounded), ``names``.

    Raises
    ------
    NotLinearQuadraticError
        A non-quadratic objective, a non-affine constraint, a quadratic term or constraint matrix
        depending on another player's variables, or a player's own constraint coupling other
        players (declare it as ``shared``).
    """
    import cvxpy as cp

    n = game.n
    Q, c, consts = [], [], []
    A_rows: list[Any] = []
    Aeq_rows: list[Any] = []
    lb, ub = np.full(n, -np.inf), np.full(n, np.inf)

    def add_rows(E: NDArray, G: NDArray) -> None:
        for row in E:  # E w = 0, signed so that the first coefficient is positive
            nzc = np.flatnonzero(row[:n])
            Aeq_rows.append(-row if nzc.size and row[nzc[0]] < 0 else row)
        A_rows.extend(-G)  # G w >= 0  <=>  -G_x x <= G_1

    for i, pl in enumerate(game.players):
        where = f"player {game.names[i]!r}"
        subst, attr_cons = _plain_copy(game.variables[i], where)
        subst.update({id(game.var_by_id[vid]): par for vid, par in game.params[i].items()})
        obj = pl.objective.tree_copy(id_objects=subst)
        cons = [con.tree_copy(id_objects=subst) for con in pl.constraints] + attr_cons
        var_cols = {subst[id(v)].id: game.slices[v.id] for v in game.variables[i]}
        par_cols = {par.id: game.slices[vid] for vid, par in game.params[i].items()}
        for par in game.params[i].values():
            if par.value is None:
                par.value = _zero_like(par)
        H, E, G = _affine_canonical(cp.Problem(obj, cons), var_cols, par_cols, n, where)
        Q.append(H[:n, :n])
        c.append(H[:n, n])
        consts.append(0.5 * H[n, n])
        own = np.zeros(n + 1, dtype=bool)
        own[game.offsets[i] : game.offsets[i + 1]] = True
        own[n] = True
        for rows in (E, G):
            if rows.size and np.any(rows[:, ~own] != 0):
                raise NotLinearQuadraticError(
                    f"{where}: an own constraint involves other players' variables; lq_game has only shared "
                    "coupling constraints, so declare it in `shared`"
                )
        single = np.count_nonzero(G[:, :n], axis=1) == 1 if G.size else np.zeros(0, dtype=bool)
        for row in G[single]:
            j = int(np.flatnonzero(row[:n])[0])
            bound = -row[n] / row[j] + 0.0  # row[j] x_j + row[n] >= 0
            if row[j] > 0:
                lb[j] = max(lb[j], bound)
            else:
                ub[j] = min(ub[j], bound)
        add_rows(E, G[~single] if G.size else G)
    if game.shared:
        allv = sorted({v.id: v for con in game.shared for v in con.variables()}.items())
        subst, _ = _plain_copy([v for _, v in allv], "shared constraints")
        cons = [con.tree_copy(id_objects=subst) for con in game.shared]
        var_cols = {subst[id(v)].id: game.slices[v.id] for _, v in allv}
        _, E, G = _affine_canonical(cp.Problem(cp.Minimize(0), cons), var_cols, {}, n, "shared constraints")
        add_rows(E, G)
    if check:
        _check_costs(game, Q, c, consts)

    def split(rows: list[NDArray]) -> tuple[NDArray | None, NDArray | None]:
        if not rows:
            return None, None
        M = np.asarray(rows)
        return M[:, :n], -M[:, n]

    A, b = split(A_rows)  # rows stored as (-G_x, -G_1): -G_x x <= G_1
    Aeq, beq = split(Aeq_rows)
    return {
        "sizes": list(game.sizes),
        "Q": Q,
        "c": c,
        "A": A,
        "b": b,
        "Aeq": Aeq,
        "beq": beq,
        "lb": lb,
        "ub": ub,
        "names": list(game.names),
    }


def _zero_like(par: Any) -> NDArray:
    v = np.zeros(par.shape)
    if par.attributes.get("pos"):
        v += 1.0
    if par.attributes.get("neg"):
        v -= 1.0
    return v


def _check_costs(game: CvxpyGame, Q: list[NDArray], c: list[NDArray], consts: list[float]) -> None:
    rng = np.random.default_rng(2024)
    x = rng.uniform(0.5, 1.5, game.n)
    for i in range(game.N):
        want = game.cost(i, x)
        got = 0.5 * x @ Q[i] @ x + c[i] @ x + consts[i]
        if not abs(got - want) <= 1e-8 * max(1.0, abs(want), float(np.abs(Q[i]).sum() + np.abs(c[i]).sum())):
            raise SolverError(
                f"player {game.names[i]!r}: extracted (Q, c) give cost {got!r} at a random profile, "
                f"cvxpy {want!r}"
            )
