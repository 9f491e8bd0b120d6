r"""The auction market as a generic game on the layer: welfare KKT = variational equilibrium.

A market of :mod:`datamarkets.formulations.welfare_program` (bipartite or routes) with quadratic
valuations ``θ_i(x) = a_i x − b_i x²/2`` becomes a linear-quadratic generalized Nash game
(:func:`~datamarkets.formulations.games.lq.lq_game`): buyer ``i`` owns the flows ``f_e`` of its
columns and minimises ``−θ_i(x_i)``, ``x_i = Σ_{e∈i} f_e``, over ``f_i ≥ 0``, its demand cap
``x_i ≤ D_i`` (a row involving only its own flows) and the *shared* supply rows ``R f ≤ cap``.
The pseudo-gradient matrix ``M = Bᵀ diag(b) B`` is symmetric PSD, so this is a potential game with
potential ``−Σ_i θ_i(x_i)``: its variational equilibrium (one common multiplier per shared row) is
the welfare optimum, and those multipliers are the market's prices — the KKT system (36)–(38) of
:mod:`~datamarkets.formulations.kkt_mpec` term by term (λ_j = p_j, own-row multipliers = μ_i).

``θ_i`` is flat beyond its peak ``a_i/b_i`` while ``−a_i x + b_i x²/2`` rises again there; a buyer
never goes past the peak in either model (its marginal value there is ≤ 0 ≤ any price), so the
game's allocation is the welfare allocation clipped to the peaks and the welfare is the same.

Examples
--------
>>> import networkx as nx
>>> from datamarkets.formulations.games import solve_game
>>> G = nx.Graph()
>>> G.add_node("s", role="seller", supply=1.0)
>>> G.add_node("b", role="buyer", valuation={"kind": "quadratic", "a": 4.0, "b": 1.0})
>>> G.add_edge("b", "s")
>>> r = solve_game(auction_lq_game(G))
>>> sol = auction_game_solution(G, r.solution)
>>> round(sol["prices"]["s"], 9), round(sol["welfare"], 9), r.certified
(3.0, 3.5, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.games.lq import LQGame, lq_game
from datamarkets.formulations.welfare_kkt import welfare_of
from datamarkets.graphs.market_data import MarketArrays, market_arrays

__all__ = ["auction_game_solution", "auction_lq_game"]


def _arrays(G: nx.Graph | MarketArrays) -> MarketArrays:
    M = G if isinstance(G, MarketArrays) else market_arrays(G)
    other = sorted(M.kinds() - {"quadratic"})
    if other:
        raise InvalidInputError(f"auction_lq_game needs quadratic valuations; the market has {other}")
    return M


def _layout(M: MarketArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column order grouped by buyer, the buyers with columns, the used resources, capped buyers."""
    order = np.argsort(M.col_buyer, kind="stable")
    players = np.unique(M.col_buyer)
    used = np.flatnonzero(np.asarray(abs(M.R).sum(axis=1)).ravel() > 0)
    capped = players[np.isfinite(M.demand[players])]
    return order, players, used, capped


def auction_lq_game(G: nx.Graph | MarketArrays) -> LQGame:
    """The quadratic-valuation market ``G`` as an LQ potential game (see the module docstring).

    Variables are the flow columns grouped by buyer (buyers without columns are left out);
    shared rows are the supplies (capacities) of the resources with columns, then one row
    ``x_i ≤ D_i`` per capped buyer.

    Raises
    ------
    InvalidInputError
        A valuation that is not quadratic (or any invalid market).
    """
    M = _arrays(G)
    order, players, used, capped = _layout(M)
    Bc, Rc = sp.csr_array(M.B[:, order]), sp.csr_array(M.R[:, order])
    _, a, b = M.quad_params()  # every buyer is quadratic: indices 0..I-1
    n = order.size
    Q, c = [], np.zeros((players.size, n))
    for k, i in enumerate(players):
        Bi = Bc[[i]]
        Q.append(b[i] * (Bi.T @ Bi))  # −θ_i = −a_i x_i + (b_i/2) x_i²
        c[k] = -a[i] * Bi.toarray().ravel()
    A = sp.vstack([Rc[used], Bc[capped]]).tocsr()
    rhs = np.concatenate([M.supply[used], M.demand[capped]])
    return lq_game(
        np.bincount(M.col_buyer, minlength=M.n_buyers)[players],
        Q,
        c,
        A=A if A.shape[0] else None,
        b=rhs if A.shape[0] else None,
        lb=0,
        names=[str(M.buyers[i]) for i in players],
    )


def auction_game_solution(G: nx.Graph | MarketArrays, solution: Mapping[str, Any]) -> dict[str, Any]:
    """The market's quantities from a game solution of :func:`auction_lq_game`.

    Returns
    -------
    dict
        ``flows`` (E,) in the market's column order, ``x`` (I,) buyer totals, ``prices``
        (resource → shared multiplier; 0 for resources without columns), ``mu`` (I,) demand-cap
        multipliers and ``welfare`` Σ θ_i(x_i).
    """
    M = _arrays(G)
    order, _, used, capped = _layout(M)
    f = np.zeros(M.n_columns)
    f[order] = np.asarray(solution["x"], dtype=float)
    lam = np.asarray(solution.get("lambda", np.zeros(used.size + capped.size)), dtype=float)
    p, mu = np.zeros(M.n_sellers), np.zeros(M.n_buyers)
    p[used], mu[capped] = lam[: used.size], lam[used.size :]
    x = np.asarray(M.B @ f).ravel()
    return {
        "flows": f,
        "x": x,
        "prices": {r: float(p[j]) for j, r in enumerate(M.sellers)},
        "price_vector": p,
        "mu": mu,
        "welfare": welfare_of(M, x),
    }
