"""Cournot competition among data sellers on the games layer — the short version.

The same economics as :mod:`datamarkets.examples.cournot_sellers` (read its docstring for the model;
that module is the long, hand-derived version: potential QP, KKT MILP, best responses and a
certificate written by hand). Here the user writes only the players' costs: seller ``s`` owns the
quantities ``q_sb ≥ 0`` on its edges and minimises its negative profit ::

    −π_s(q) = Σ_{e∈s} (b_e Q_{b(e)} − a_e + c_s) q_e + (d_s/2) q_s²,     s.t.  q_s ≤ k_s,

a linear-quadratic cost in the whole profile ``q``: ``½ qᵀ Q_s q + c_sᵀ q``. Only the rows of
``Q_s`` on s's own edges matter (they are the gradient of s's cost): the rows of
``H = diag(b_e)(BᵀB + I) + Sᵀ diag(d) S`` on s's edges, handed to :func:`lq_game` in its compact
form (one row block per seller, sparse). The capacity row involves s's own quantities only, so
as a "shared" row of the layer its multiplier is s's own λ_s. The layer finds that the game is a
potential game (its pseudo-gradient matrix is symmetric), solves it by the vi route and certifies
it; one line makes it the plug-in ``cournot-game`` (entry point in ``pyproject.toml``).

Examples
--------
>>> from datamarkets.examples.cournot_sellers import symmetric_cournot_graph
>>> from datamarkets.formulations.games import solve_game
>>> r = solve_game(cournot_game(symmetric_cournot_graph(2, a=10, b=1, c=1)))
>>> [round(v, 6) for v in r.solution["x"]], r.solution["route"], r.certified
([3.0, 3.0], 'vi', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.examples.cournot_sellers import (
    cournot_arrays,
    random_cournot_graph,
)
from datamarkets.formulations.games import LQGame, lq_game
from datamarkets.formulations.games.plugin import game_formulation

__all__ = ["CournotGame", "cournot_game", "cournot_game_from_params"]


def cournot_game(G: nx.Graph) -> LQGame:
    """The Cournot sellers' game of market graph ``G`` (see the module docstring) as an LQ game.

    Variables are the edge quantities in :func:`cournot_arrays` order, one player per seller.
    """
    A = cournot_arrays(G)
    # ∂(−π_s)/∂q_e = b_m (Q_m + q_e) − a_e + c_s + d_s q_s: Hessian rows H, one block per seller
    H = sp.csr_array(
        sp.diags_array(A.b[A.market_of]) @ (A.B.T @ A.B + sp.eye_array(A.n_edges))
        + A.S.T @ sp.diags_array(A.d) @ A.S
    )
    players = np.flatnonzero(np.diff(A.seller_ptr) > 0)  # a seller without markets sells nothing
    ip = H.indptr  # edges are sorted by seller: seller s's rows are one slice of H
    Q = [
        sp.csr_array(
            (H.data[ip[lo] : ip[hi]], H.indices[ip[lo] : ip[hi]], ip[lo : hi + 1] - ip[lo]),
            shape=(hi - lo, H.shape[1]),
        )
        for lo, hi in zip(A.seller_ptr[players], A.seller_ptr[players + 1], strict=True)
    ]
    c = (A.c[A.seller_of] - A.a[A.market_of]) * (A.seller_of[None, :] == players[:, None])
    cap = players[np.isfinite(A.k[players])]  # one capacity row S_s q ≤ k_s per capacitated seller
    return lq_game(
        np.diff(A.seller_ptr)[players].tolist(),
        Q,
        c,
        A=A.S[cap] if cap.size else None,
        b=A.k[cap] if cap.size else None,
        lb=0,
        names=[str(A.sellers[s]) for s in players],
    )


def cournot_game_from_params(p: Mapping[str, Any]) -> LQGame:
    """``size`` random sellers (:func:`random_cournot_graph`, ``seed``, ``capacity_share``)."""
    return cournot_game(
        random_cournot_graph(int(p["size"]), int(p["seed"]), capacity_share=p["capacity_share"])
    )


CournotGame = game_formulation(
    "cournot-game",
    cournot_game_from_params,
    parameters={"size": 20, "seed": 0, "capacity_share": 0.3},
    summary="Cournot data sellers on the games layer (the short version of cournot-sellers)",
    size_meaning="sellers (markets = sellers/5, 2 markets per seller, 30% of sellers capacitated)",
)
