r"""The welfare program (see :mod:`datamarkets.formulations.welfare`) as data: the standard-form arrays
``min ½ vᵀ P v + cᵀ v`` the backends solve, built from the market's one array view
:class:`~datamarkets.graphs.market_data.MarketArrays` (flow columns in its edge order)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.market_data import MarketArrays

__all__ = [
    "KINK_TOL",
    "WelfareArrays",
    "build_welfare_arrays",
]

KINK_TOL = 1e-7  # relative distance at which a quantity counts as sitting on a valuation's kink


# ---------------------------------------------------------------------------------------------
# Program builders: standard form  min ½ vᵀ P v + cᵀ v  s.t.  A_eq v = 0, A_ub v ≤ b_ub, l ≤ v ≤ u
# ---------------------------------------------------------------------------------------------


@dataclass
class WelfareArrays:
    """The welfare program in array form over ``v = [f (E), x (I), y (K segments)]``."""

    M: MarketArrays
    P_diag: np.ndarray  # Hessian diagonal (only on quadratic buyers' x)
    c: np.ndarray  # linear cost (minimisation of −welfare)
    A_eq: sp.csr_array  # x − B f = 0 ; Σ_k y_ik − x_i = 0 (pwl buyers)
    A_ub: sp.csr_array  # R f ≤ cap
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    n_f: int
    n_x: int
    n_y: int
    quad_const: float = 0.0


def define_flow_and_totals(M: MarketArrays) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """Columns ``f ≥ 0`` and ``0 ≤ x ≤ D_i`` with ``x − B f = 0`` (buyer totals, one row each)."""
    E, I = M.n_columns, M.n_buyers
    A = sp.hstack([-M.B, sp.identity(I, format="csr")], format="csr")
    lb = np.zeros(E + I)
    ub = np.concatenate([np.full(E, np.inf), M.demand])
    return sp.csr_array(A), lb, ub


def define_valuations(M: MarketArrays) -> tuple[np.ndarray, np.ndarray, sp.csr_array, np.ndarray]:
    """Objective pieces: −(a x − b x²/2) on quadratic buyers; −Σ_k s_k y_ik on segment columns with
    ``Σ_k y_ik = x_i`` and ``0 ≤ y_ik ≤ L_ik`` for piecewise-linear buyers."""
    E, I = M.n_columns, M.n_buyers
    owner, slope, length = M.segments()
    K = owner.size
    qi, a, b = M.quad_params()
    P_diag = np.zeros(E + I + K)
    c = np.zeros(E + I + K)
    P_diag[E + qi] = b
    c[E + qi] = -a
    c[E + I :] = -slope
    pwl_buyers = np.unique(owner)
    rows = np.searchsorted(pwl_buyers, owner)
    Ay = sp.csr_array((np.ones(K), (rows, E + I + np.arange(K))), shape=(pwl_buyers.size, E + I + K))
    Ax = sp.csr_array(
        (-np.ones(pwl_buyers.size), (np.arange(pwl_buyers.size), E + pwl_buyers)), shape=Ay.shape
    )
    return P_diag, c, sp.csr_array(Ay + Ax), length


def define_supply(M: MarketArrays, n_cols: int) -> tuple[sp.csr_array, np.ndarray]:
    """Seller supply / link capacity rows ``Σ_e R_je f_e ≤ D^j`` (dual: price p_j)."""
    A = sp.hstack([M.R, sp.csr_array((M.n_sellers, n_cols - M.n_columns))], format="csr")
    return sp.csr_array(A), M.supply.copy()


def build_welfare_arrays(M: MarketArrays) -> WelfareArrays:
    """Assemble the welfare QP/LP as sparse arrays (validate → variables → constraints → objective).

    Raises
    ------
    InvalidInputError
        α-fair valuations (use :func:`build_welfare_cvxpy`).
    """
    if "alpha_fair" in M.kinds():
        raise InvalidInputError("α-fair valuations need a cone program: choose method cvxpy or auto")
    E, I = M.n_columns, M.n_buyers
    A_link, lb, ub = define_flow_and_totals(M)
    P_diag, c, A_seg, seg_len = define_valuations(M)
    n = P_diag.size
    K = n - E - I
    A_link = sp.hstack([A_link, sp.csr_array((I, K))], format="csr")
    A_eq = sp.csr_array(sp.vstack([A_link, A_seg], format="csr"))
    A_ub, b_ub = define_supply(M, n)
    lb = np.concatenate([lb, np.zeros(K)])
    ub = np.concatenate([ub, seg_len])
    return WelfareArrays(M, P_diag, c, A_eq, A_ub, b_ub, lb, ub, E, I, K)
