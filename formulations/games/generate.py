"""Random strongly monotone LQ games with sparse couplings and shared constraints (benchmark family)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games.lq import LQGame, lq_game
from datamarkets.validation import check_seed

__all__ = ["random_lq_game"]


def random_lq_game(
    n: int,
    *,
    players: int | None = None,
    seed: int = 0,
    shared: int | None = None,
    coupling: float = 0.4,
    per_row: int = 6,
) -> LQGame:
    """A random strongly monotone LQ game, feasible by construction.

    Players sit on a ring. Player i's own block is ``B_i = R_iR_iᵀ/k + I`` (so ``B_i ⪰ I``); its
    coupling to its ring neighbours (i ± 1, i + 2) is a sparse random matrix scaled so that every
    row and column of the whole off-block part ``C`` has absolute sum ≤ ``coupling`` < 1. Then
    ``sym(M) ⪰ (1 − coupling) I``: strongly monotone, the VE is unique, and best-response maps
    contract (``‖B_i⁻¹‖ ≤ 1``, ``‖C‖₂ ≤ coupling``). Bounds
    ``0 ≤ x ≤ ub`` (ub ∈ [2, 10]); ``shared`` rows ``A x ≤ b`` with nonnegative coefficients on
    ``per_row`` variables of 3 consecutive players and ``b = 0.1·A ub > 0`` (x = 0 is strictly
    feasible); linear terms ``q ∈ [−5, −1]`` push production up so the shared rows bind.

    Parameters
    ----------
    n : int
        Variables in all (≥ 2).
    players : int, optional
        Default ``max(2, n // 10)``.
    seed : int
    shared : int, optional
        Shared rows (default ``max(1, n // 20)``; 0 = a Nash game without coupling constraints).
    coupling : float
        Off-block row/column absolute-sum bound, in [0, 1).
    per_row : int
        Variables per shared row.

    Returns
    -------
    LQGame

    Examples
    --------
    >>> g = random_lq_game(20, seed=1)
    >>> g.N, g.n, g.m, g.monotonicity_min_eig >= 0.6 - 1e-12
    (2, 20, 1, True)
    """
    if int(n) < 2:
        raise InvalidInputError(f"a random game needs n ≥ 2 variables, got {n}")
    if not 0 <= coupling < 1:
        raise InvalidInputError(f"coupling must be in [0, 1), got {coupling}")
    n = int(n)
    N = max(2, n // 10) if players is None else int(players)
    if not 2 <= N <= n:
        raise InvalidInputError(f"players must be between 2 and n = {n}, got {N}")
    m = max(1, n // 20) if shared is None else int(shared)
    rng = np.random.default_rng(check_seed(seed))
    sizes = np.full(N, n // N)
    sizes[: n % N] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)])
    owner = np.repeat(np.arange(N), sizes)
    # own blocks B_i = R Rᵀ/k + I
    blocks = []
    for k in sizes:
        R = rng.standard_normal((k, k))
        blocks.append(R @ R.T / k + np.eye(k))
    Bd = sp.block_diag(blocks, format="csr")
    # sparse off-block couplings, 3 per row
    # each variable couples to 3 random variables of the neighbouring players on a ring (i ± 1, i + 2):
    # a network game; local couplings keep sparse factorisations cheap (random all-to-all couplings
    # form an expander graph whose Cholesky/LDL factors fill in)
    rows = np.repeat(np.arange(n), 3)
    nbr = (owner[rows] + rng.choice([-1, 1, 2], rows.size)) % N
    cols = starts[nbr] + rng.integers(0, sizes[nbr])
    keep = owner[rows] != owner[cols]
    C = sp.csr_array((rng.uniform(-1, 1, keep.sum()), (rows[keep], cols[keep])), shape=(n, n))
    C.sum_duplicates()
    if C.nnz:
        s = max(float(abs(C).sum(axis=1).max()), float(abs(C).sum(axis=0).max()))
        C = C * (coupling / s)
    M = sp.csr_array(Bd + C)
    # Q_i: block row i of M, mirrored into block column i (symmetric; its [−i, −i] block is 0)
    Mc = sp.coo_array(M)
    own = owner[Mc.row] == owner[Mc.col]
    Q = []
    order = np.argsort(owner[Mc.row], kind="stable")
    bounds = np.searchsorted(owner[Mc.row][order], np.arange(N + 1))
    for i in range(N):
        sel = order[bounds[i] : bounds[i + 1]]
        r, cidx, v, o = Mc.row[sel], Mc.col[sel], Mc.data[sel], own[sel]
        rows_i = np.concatenate([r, cidx[~o]])
        cols_i = np.concatenate([cidx, r[~o]])
        vals_i = np.concatenate([v, v[~o]])
        Q.append(sp.csr_array((vals_i, (rows_i, cols_i)), shape=(n, n)))
    q = -rng.uniform(1.0, 5.0, n)
    c = np.zeros((N, n))
    c[owner, np.arange(n)] = q
    ub = rng.uniform(2.0, 10.0, n)
    lb = np.zeros(n)
    if m > 0:
        ar, ac = [], []
        for r in range(m):
            first = int(rng.integers(0, N))  # a window of 3 consecutive players on the ring
            window = np.concatenate(
                [np.arange(starts[(first + k) % N], starts[(first + k) % N + 1]) for k in range(3)]
            )
            chosen = rng.choice(np.unique(window), size=min(per_row, np.unique(window).size), replace=False)
            if np.unique(owner[chosen]).size < 2:  # make it coupling: add a variable of another player
                other = np.flatnonzero(owner != owner[chosen[0]])
                chosen = np.append(chosen[:-1], rng.choice(other))
            ar += [r] * chosen.size
            ac += chosen.tolist()
        A = sp.csr_array((rng.uniform(0.5, 1.5, len(ar)), (ar, ac)), shape=(m, n))
        b = 0.1 * (A @ ub)
    else:
        A, b = None, None
    return lq_game(sizes.tolist(), Q, c, A, b, lb=lb, ub=ub)
