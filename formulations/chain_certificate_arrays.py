r"""Chain LP certificate, sparse-array route: the per-player LP assembled as arrays for highspy.

The same LP as :func:`~datamarkets.formulations.chain_certificate_pyomo.build_certificate_lp`
(:mod:`~datamarkets.formulations.chain_certificate`, Eq. 7–9, 20–21), scaled the same way: the
policy-evaluation block :math:`I - C` is built once for all players (:class:`PolicyBlocks`), each
player takes its trailing principal block and adds one epigraph row per (value, candidate price)
(:func:`build_certificate_arrays`); :func:`solve_player_arrays` passes them to HiGHS with
``passModel`` and summarises the optimum. Model 1 at n = 50 (L = 201) builds and solves its 51
LPs in a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.chain_certificate_data import (
    LP_OPTIONS,
    ChainStrategyData,
    summarise_player,
    variable_scale,
)
from datamarkets.solvers import highs_model, solve_highs

__all__ = [
    "CertificateArrays",
    "PolicyBlocks",
    "build_certificate_arrays",
    "solve_player_arrays",
]


@dataclass
class CertificateArrays:
    """Player ``i``'s certificate LP as sparse arrays (scaled exactly as the Pyomo model).

    Columns: ``V[j, l]`` for ``j = i+1..n-1`` (index ``(j-i-1)*L + l``), then ``z[k]``. Rows: the
    policy-evaluation equalities in the same order, then one epigraph row per (value, candidate).

    Attributes
    ----------
    A : scipy.sparse.csr_matrix
        Constraint matrix.
    row_lower, row_upper, cost : ndarray
        Row bounds and the objective (``1`` on every ``z``).
    n_V : int
        Number of ``V`` columns.
    epi_k, epi_price : ndarray
        Value index and candidate price of every epigraph row.
    epi_rhs : ndarray
        Scaled right-hand side of every epigraph row.
    epi_G : scipy.sparse.csr_matrix
        ``q_{i+1,k,l'} sigma_{i+1}(l') / sigma_i(k)`` on ``V[i+1, l']`` per epigraph row (the
        scaled future-profit term of the gain).
    dp_row : ndarray of int
        Epigraph row of the claimed price of every value (``-1`` for the last player).
    tau : ndarray
        :math:`\\sigma_i(k)`.
    """

    A: Any
    row_lower: np.ndarray
    row_upper: np.ndarray
    cost: np.ndarray
    n_V: int
    epi_k: np.ndarray
    epi_price: np.ndarray
    epi_rhs: np.ndarray
    epi_G: Any
    dp_row: np.ndarray
    tau: np.ndarray


class PolicyBlocks:
    """The policy-evaluation rows shared by all players, built once (Eq. 20–21, scaled).

    ``P`` is the ``nL × nL`` block upper-bidiagonal matrix :math:`I - C` over ``(j, l)``,
    ``j = 0..n-1``, with :math:`C_j(l,l') = q_{j+1,l,l'}\\mathbf 1\\{s_{j+1}(l')\\ge p_j(l)\\}
    \\sigma_{j+1}(l')/\\sigma_j(l)` for ``j + 1 < n``; player ``i`` uses its trailing block from
    ``j = i+1``. ``prob[j, l]`` is the acceptance probability, whose right-hand side
    ``t[j, i] p_j(l) prob[j, l] / sigma_j(l)`` depends on the player only through ``t``.
    """

    def __init__(self, data: ChainStrategyData) -> None:
        import scipy.sparse as sp

        n, L = data.n, data.L
        self.sigma = variable_scale(data)
        Q, s, p = data.Q, data.s, data.p
        acc = (s[1:, None, :] >= p[:, :, None]) & (Q > 0)  # (n, L, L): buyer j+1's rule (Eq. 6)
        self.prob = (Q * acc).sum(axis=2)  # (n, L)
        off = []
        for j in range(n - 1):
            C = Q[j] * acc[j] * (self.sigma[j + 1][None, :] / self.sigma[j][:, None])
            off.append(sp.csr_matrix(C))
        I_nL = sp.identity(n * L, format="csr")
        if off:
            upper = sp.block_diag(off, format="csr")  # rows j = 0..n-2, cols j+1 = 1..n-1
            upper = sp.hstack([sp.csr_matrix(((n - 1) * L, L)), upper], format="csr")
            upper = sp.vstack([upper, sp.csr_matrix((L, n * L))], format="csr")
            self.P = (I_nL - upper).tocsr()
        else:
            self.P = I_nL


def _pruned_candidates(data: ChainStrategyData, i: int, prune: bool) -> tuple[np.ndarray, np.ndarray]:
    """(value index, price) of every candidate row of player ``i`` (< n), claimed price included,
    sorted by value then price.

    Vectorised version of :func:`_candidates`: with pruning, the highest price of each acceptance
    class is the reachable non-negative thresholds plus, when it exceeds them all, the highest
    candidate (whose class is empty).
    """
    L = data.L
    s_next = data.s[i + 1]
    cands = np.unique(np.concatenate([s_next[s_next >= 0], [0.0]]))
    top = cands[-1]
    if prune:
        kk, ll = np.nonzero((data.Q[i] > 0) & (s_next >= 0)[None, :])
        cc = s_next[ll]
        max_reach = np.full(L, -np.inf)
        np.maximum.at(max_reach, kk, cc)
        lacking = np.flatnonzero(top > max_reach)
        kk = np.concatenate([kk, lacking])
        cc = np.concatenate([cc, np.full(lacking.size, top)])
    else:
        kk = np.repeat(np.arange(L), cands.size)
        cc = np.tile(cands, L)
    kk = np.concatenate([kk, np.arange(L)])
    cc = np.concatenate([cc, data.p[i]])
    order = np.lexsort((cc, kk))
    kk, cc = kk[order], cc[order]
    keep = np.ones(kk.size, dtype=bool)
    keep[1:] = (kk[1:] != kk[:-1]) | (cc[1:] != cc[:-1])
    return kk[keep], cc[keep]


def build_certificate_arrays(
    data: ChainStrategyData, i: int, *, prune: bool = True, blocks: Any = None
) -> CertificateArrays:
    """Player ``i``'s certificate LP as sparse arrays (the same LP as :func:`build_certificate_lp`).

    Parameters
    ----------
    data : ChainStrategyData
    i : int
        Player, ``0 ≤ i ≤ n``.
    prune : bool, default True
        Keep only the highest candidate price of each acceptance class (exact).
    blocks : optional
        The shared policy-evaluation rows of all players (built here when omitted).

    Returns
    -------
    CertificateArrays

    Raises
    ------
    InvalidInputError
        ``i`` out of range.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> from datamarkets.formulations.chain_certificate_data import strategy_data
    >>> game = paper_model("paper-1", 3, "ave")
    >>> a = build_certificate_arrays(strategy_data(game, solve_equilibrium(game)), 0)
    >>> a.n_V, a.A.shape[1] - a.n_V  # V_j(l) for j = 1, 2; one gain per value
    (26, 13)
    """
    import scipy.sparse as sp

    n, L = data.n, data.L
    if not (0 <= int(i) <= n):
        raise InvalidInputError(f"player {i!r} is not in 0..{n}")
    i = int(i)
    blocks = blocks if blocks is not None else PolicyBlocks(data)
    sigma = blocks.sigma
    tau = sigma[i]
    n_V = max(n - 1 - i, 0) * L
    # policy evaluation: trailing principal block of I - C from j = i+1
    r0 = (i + 1) * L
    P = blocks.P[r0:, r0:] if n_V else sp.csr_matrix((0, 0))
    j_idx = np.arange(i + 1, n)
    pol_rhs = (data.t[j_idx, i][:, None] * data.p[j_idx] * blocks.prob[j_idx] / sigma[j_idx]).ravel()
    # epigraph rows z_k - sum q ratio V[i+1] >= (w_k + t_ii c prob) / tau_k   (Eq. 8)
    if i == n:
        epi_k = np.arange(L)
        epi_c = np.zeros(L)
        epi_rhs = data.W / tau
        G = sp.csr_matrix((L, 0))
        dp_row = np.full(L, -1, dtype=np.int64)
    else:
        epi_k, epi_c = _pruned_candidates(data, i, prune)
        q = data.Q[i][epi_k]  # (R, L)
        accept = (data.s[i + 1][None, :] >= epi_c[:, None]) & (q > 0)
        qa = q * accept
        epi_rhs = (data.W[epi_k] + data.t[i, i] * epi_c * qa.sum(axis=1)) / tau[epi_k]
        if i + 1 < n:
            G = sp.csr_matrix(qa * (sigma[i + 1][None, :] / tau[epi_k][:, None]))
        else:
            G = sp.csr_matrix((epi_k.size, 0))
        dp_row = np.full(L, -1, dtype=np.int64)
        hit = np.flatnonzero(epi_c == data.p[i, epi_k])
        dp_row[epi_k[hit]] = hit
    R = epi_k.size
    Zcol = sp.csr_matrix((np.ones(R), (np.arange(R), epi_k)), shape=(R, L))
    G_full = sp.hstack([-G, sp.csr_matrix((R, max(n_V - G.shape[1], 0)))], format="csr") if n_V else None
    if n_V:
        top = sp.hstack([P, sp.csr_matrix((n_V, L))], format="csr")
        bottom = sp.hstack([G_full, Zcol], format="csr")
        A = sp.vstack([top, bottom], format="csr")
    else:
        A = Zcol
    row_lower = np.concatenate([pol_rhs, epi_rhs])
    row_upper = np.concatenate([pol_rhs, np.full(R, np.inf)])
    cost = np.concatenate([np.zeros(n_V), np.ones(L)])
    return CertificateArrays(
        A=A,
        row_lower=row_lower,
        row_upper=row_upper,
        cost=cost,
        n_V=n_V,
        epi_k=epi_k,
        epi_price=epi_c,
        epi_rhs=epi_rhs,
        epi_G=G,
        dp_row=dp_row,
        tau=tau,
    )


def _solve_arrays(a: CertificateArrays, time_limit: float | None) -> tuple[Any, np.ndarray | None]:
    """Pass the arrays to HiGHS; return (SolveInfo, column values or None)."""
    n = a.cost.size
    h = highs_model(
        a.cost,
        np.full(n, -np.inf),
        np.full(n, np.inf),
        a.A,
        a.row_lower,
        a.row_upper,
        what="chain certificate LP",
        time_limit=time_limit,
        **LP_OPTIONS["highs"],
    )
    info = solve_highs(h)
    x = np.asarray(h.getSolution().col_value, dtype=float) if info.status.has_solution else None
    return info, x


def solve_player_arrays(
    data: ChainStrategyData,
    i: int,
    prune: bool,
    blocks: Any,
    tie_rule: str,
    time_limit: float | None,
) -> dict[str, Any]:
    """Build player ``i``'s LP as sparse arrays, solve it with HiGHS and summarise the optimum.

    Parameters
    ----------
    data : ChainStrategyData
    i : int
        The player, ``0 ≤ i ≤ n``.
    prune : bool
        Candidate pruning (exact).
    blocks : PolicyBlocks or None
        The shared policy-evaluation rows (built here when None).
    tie_rule : {"lowest", "highest"}
    time_limit : float or None
        Seconds for the solve.

    Returns
    -------
    dict
        ``status``, ``build_seconds``, ``solve_seconds``, ``rows``, ``solver_version`` and, when a
        solution is present, the entries of :func:`summarise_player`.
    """
    t0 = time.perf_counter()
    a = build_certificate_arrays(data, i, prune=prune, blocks=blocks)
    build_s = time.perf_counter() - t0
    info, x = _solve_arrays(a, time_limit)
    out: dict[str, Any] = {
        "status": info.status,
        "build_seconds": build_s,
        "solve_seconds": info.seconds,
        "rows": int(a.A.shape[0]),
        "solver_version": info.solver_version,
    }
    if x is None:
        return out
    z = a.tau * x[a.n_V :]
    V_next = x[: a.epi_G.shape[1]]  # V[i+1, .] is the first block
    gain = a.tau[a.epi_k] * (a.epi_rhs + a.epi_G @ V_next)
    out.update(summarise_player(data, i, z, a.epi_k, a.epi_price, gain, a.dp_row, tie_rule))
    return out
