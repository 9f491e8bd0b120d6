r"""PSP bid profiles and the buyers' ε-best replies against them (the inner loop of the dynamics).

:class:`PSPState` holds a bid profile s = (p_e, d_e) per edge of a market with a version counter per
seller. Against the others' bids s_{-i} at its sellers, buyer i's ε-best reply t_i (draft eqs.
3–4, :func:`~datamarkets.models.psp.best_reply`) and its utilities

    u_i(s) = θ_i(a_i(s)) − c_i(s),      a_i = min(d_i, D̄_i(p_i)),   c_i = ∫_0^{a_i} P_i

(the PSP allocation and exclusion-compensation rules, read off the price curve P_i; on a tie the
rules themselves, :func:`tie_alloc_cost`) are evaluated two ways: :func:`reference_reply`, one
bid at a time from :mod:`datamarkets.models.psp`, and :class:`BipartiteReplies`, the vectorised
evaluation of bipartite buyers (one or a batch of buyers in a fixed number of numpy calls), tested
against it. :func:`~datamarkets.models.psp_dynamics.psp_dynamics` runs the rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.market import MarketArrays
from datamarkets.graphs.valuations import QuadraticValuation
from datamarkets.models.psp import (
    TIE_RTOL,
    BestReply,
    PriceCurve,
    _price_curve_sorted,
    _sup_quantity,
    best_reply,
)
from datamarkets.models.psp import _allocate as allocate

__all__ = [
    "BipartiteReplies",
    "PSPState",
    "alloc_cost",
    "reference_reply",
    "sorted_bids",
    "tie_alloc_cost",
]


@dataclass
@dataclass
class PSPState:
    """Bid profile of a PSP auction on a market (edges in :class:`MarketArrays` order).

    Examples
    --------
    >>> from datamarkets.graphs.market import market_arrays, single_resource
    >>> from datamarkets.graphs.valuations import QuadraticValuation
    >>> st = PSPState.empty(market_arrays(single_resource(2.0, [QuadraticValuation(3, 1)] * 2)))
    >>> st.price.tolist(), st.quantity.tolist()
    ([0.0, 0.0], [0.0, 0.0])
    """

    market: MarketArrays
    price: np.ndarray  # p_e, bid unit price on edge e = (buyer, seller)
    quantity: np.ndarray  # d_e, bid quantity on edge e
    seller_edges: list[np.ndarray]
    edge_pos: np.ndarray  # position of edge e in seller_edges[seller(e)]
    # bumped whenever a bid at the seller changes (one counter per seller; filled in when empty)
    version: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sorted_cache: dict[int, Any] = field(default_factory=dict)  # seller → (version, sorted bids)

    def __post_init__(self) -> None:
        if self.version.size != len(self.seller_edges):
            self.version = np.zeros(len(self.seller_edges), dtype=np.int64)

    @classmethod
    def empty(cls, m: MarketArrays) -> PSPState:
        """The profile of no bids: (p, d) = (0, 0) on every edge."""
        order = np.argsort(m.edge_seller, kind="stable")
        sptr = np.searchsorted(m.edge_seller[order], np.arange(m.n_sellers + 1))
        seller_edges = [order[sptr[j] : sptr[j + 1]] for j in range(m.n_sellers)]
        pos = np.empty(m.n_edges, dtype=np.int64)
        for idx in seller_edges:
            pos[idx] = np.arange(idx.size)
        return cls(
            m,
            np.zeros(m.n_edges),
            np.zeros(m.n_edges),
            seller_edges,
            pos,
            np.zeros(m.n_sellers, dtype=np.int64),
            {},
        )

    def to_frame(self, table: str | None = None) -> object:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: bids; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def alloc_cost(
    curve: PriceCurve, Q: float, p_o: np.ndarray, d_o: np.ndarray, p_i: float, d_i: float
) -> tuple[float, float]:
    """Allocation and charge of a bid (p_i, d_i) against the others' bids at one resource.

    Without a tie (no other bid at exactly p_i) the PSP rules reduce to a_i = min(d_i, D̄_i(p_i))
    and c_i = ∫_0^{a_i} P_i (Lazar–Semret; tested against the rules in ``tests/test_psp.py``), read
    off the price curve; with a tie the allocation and exclusion-compensation rules are applied.

    Parameters
    ----------
    curve : PriceCurve
        Market price curve P_i of the others' bids (:func:`~datamarkets.models.psp.price_curve`).
    Q : float
        Supply of the resource.
    p_o, d_o : ndarray
        The others' bid prices and quantities.
    p_i, d_i : float
        The bid.

    Returns
    -------
    (float, float)
        Allocation a_i and charge c_i.
    """
    if d_i <= 0:
        return 0.0, 0.0
    if np.any(np.abs(p_o - p_i) <= TIE_RTOL * abs(p_i)):  # a tie within TIE_RTOL
        return tie_alloc_cost(Q, p_o, d_o, p_i, d_i)
    lv, w = curve.levels, curve.widths
    k = int(np.searchsorted(lv, p_i, side="right"))  # levels ≤ p_i
    avail = float(w[:k].sum())  # D̄_i(p_i)
    a = min(d_i, avail)
    ends = np.cumsum(w[:k])
    m = int(np.searchsorted(ends, a, side="left"))
    if m >= k:
        m = k - 1
    before = float(ends[m - 1]) if m > 0 else 0.0
    cost = float(lv[:m] @ w[:m]) + float(lv[m]) * (a - before) if k > 0 and a > 0 else 0.0
    return a, cost


def tie_alloc_cost(Q: float, p_o: np.ndarray, d_o: np.ndarray, p_i: float, d_i: float) -> tuple[float, float]:
    """a_i and c_i by the allocation and exclusion-compensation rules themselves (used on ties).

    Parameters
    ----------
    Q : float
        Supply of the resource.
    p_o, d_o : ndarray
        The others' bid prices and quantities.
    p_i, d_i : float
        The bid.

    Returns
    -------
    (float, float)
        Allocation a_i and charge c_i.
    """
    p = np.append(p_o, p_i)
    d = np.append(d_o, d_i)
    d0 = np.append(d_o, 0.0)
    a = allocate(Q, p, d)
    a0 = allocate(Q, p, d0)
    return float(a[-1]), float(p_o @ (a0[:-1] - a[:-1]))


class BipartiteReplies:
    """Vectorised ε-best replies of bipartite buyers (the hot loop of :func:`psp_dynamics`).

    Mathematically the same evaluation as :func:`reference_reply` (tested against it): for buyer i the
    others' bids at its n_i sellers are gathered into one padded n_i × K_i matrix (static
    neighbour edge indices, padding = a bid (∞, 0) that never counts), sorted per row, and every
    seller's market price curve P_i^j (:func:`~datamarkets.models.psp.price_curve`) is built for all
    rows at once; the merged curve, the reply (eqs. 3–4) and the allocations/charges of the current
    bid and of the reply (c_i = ∫_0^{a_i} P_i without ties, the rules on a tie) follow with a fixed
    number of numpy calls per buyer instead of a few per bid.
    """

    def __init__(self, st: PSPState) -> None:
        m = st.market
        E = m.n_edges
        # price/quantity live in arrays with one extra sentinel bid (p, d) = (∞, 0) at index E
        self.P = np.append(st.price, np.inf)
        self.D = np.append(st.quantity, 0.0)
        st.price, st.quantity = self.P[:E], self.D[:E]  # views: the dynamics write through them
        self.nb: list[np.ndarray | None] = []
        for i in range(m.n_buyers):
            lo, hi = int(m.buyer_ptr[i]), int(m.buyer_ptr[i + 1])
            if hi == lo:
                self.nb.append(None)
                continue
            rows = [st.seller_edges[m.edge_seller[e]] for e in range(lo, hi)]
            K = max(1, max(r.size for r in rows) - 1)
            nb = np.full((hi - lo, K), E, dtype=np.int64)
            for t, (e, r) in enumerate(zip(range(lo, hi), rows, strict=True)):
                o = r[r != e]  # the others at seller j, in edge order (= stable-sort tie order)
                nb[t, : o.size] = o
            self.nb.append(nb)
        self.Q = [m.supply[m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]] for i in range(m.n_buyers)]
        self.quadratic = all(isinstance(v, QuadraticValuation) for v in m.valuations)
        if self.quadratic:
            self.a, self.b = m.quadratic_params()
        self.budget, self.demand = m.budget, m.demand

    def replies(self, m: MarketArrays, ids: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`reply` for a batch of quadratic buyers at once (every array gains a batch axis).

        Each buyer's numbers are those of a batch of one: the padding (sentinel bids, zero-supply
        rows) adds exact zeros, float sums are sequential (``cumsum``) and sorts are stable, so the
        result does not depend on which buyers share the batch.

        Returns ``prices`` (k, n), ``quantities`` (k, n), ``u_cur`` (k,), ``u_new`` (k,), where n is the
        largest degree in the batch (a buyer's first n_i columns are its edges in edge order).
        """
        E = self.P.size - 1
        k = ids.size
        if k == 0:
            return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), np.zeros(0)
        n = max(self.nb[i].shape[0] for i in ids)
        K = max(self.nb[i].shape[1] for i in ids)
        nb = np.full((k, n, K), E, dtype=np.int64)
        Q = np.zeros((k, n))
        ed = np.full((k, n), E, dtype=np.int64)
        for r, i in enumerate(ids):
            x = self.nb[i]
            nb[r, : x.shape[0], : x.shape[1]] = x
            Q[r, : x.shape[0]] = self.Q[i]
            ed[r, : x.shape[0]] = np.arange(m.buyer_ptr[i], m.buyer_ptr[i + 1])
        a_, b_, eps_ = self.a[ids][:, None], self.b[ids][:, None], eps[:, None]
        p2, d2 = self.P[nb], self.D[nb]
        o = np.argsort(p2, axis=2, kind="stable")
        ps = np.take_along_axis(p2, o, 2)
        cum = np.cumsum(np.take_along_axis(d2, o, 2), axis=2)
        total = cum[:, :, -1]
        end = np.ones((k, n, K), dtype=bool)
        with np.errstate(invalid="ignore"):  # ∞ − ∞ between padding sentinels: nan, no new level
            np.greater(ps[:, :, 1:] - ps[:, :, :-1], TIE_RTOL * np.abs(ps[:, :, :-1]), out=end[:, :, :-1])
        last = np.minimum.accumulate(np.where(end, np.arange(K), K)[:, :, ::-1], axis=2)[:, :, ::-1]
        above = total[:, :, None] - np.take_along_axis(cum, last, 2)  # Σ_{k≠i: p_k > p} d_k
        zero = ps <= 0
        npos = zero.sum(axis=2)
        cz = np.take_along_axis(cum, np.maximum(npos - 1, 0)[:, :, None], 2)[:, :, 0]
        D0 = np.maximum(Q - (total - np.where(npos > 0, cz, 0.0)), 0.0)  # D̄(0)
        Dl = np.where(zero, D0[:, :, None], np.maximum(Q[:, :, None] - above, 0.0))  # D̄(p_k)
        W = np.empty((k, n, K + 1))
        W[:, :, 0] = D0
        np.subtract(Dl[:, :, 1:], Dl[:, :, :-1], out=W[:, :, 2:])  # step widths of P_i^j
        np.subtract(Dl[:, :, 0], D0, out=W[:, :, 1])
        keep = W > 0
        keep[:, :, 1:] &= ~zero & (ps < np.inf)
        W[~keep] = 0.0
        Lfull = np.zeros((k, n, K + 1))
        Lfull[:, :, 1:] = ps
        L = np.where(keep, Lfull, 0.0)  # step levels (0 where no step)
        # merged curve P̄_i: steps sorted by level, ties in seller order (merge_curves); no-steps last
        S = n * (K + 1)
        key = np.where(keep, L, np.inf).reshape(k, S)
        om = np.argsort(key, axis=1, kind="stable")
        lv = np.take_along_axis(key, om, 1)
        wd = np.take_along_axis(W.reshape(k, S), om, 1)
        owner = om // (K + 1)
        valid = lv < np.inf
        # eq. (3) without ε: sup{z ≤ D_i : θ'(z) > P̄(z), ∫_0^z P̄ ≤ b_i} (_sup_quantity)
        Z = np.cumsum(wd, axis=1)
        Zprev = np.zeros((k, S))
        Zprev[:, 1:] = Z[:, :-1]
        g = np.clip((a_ - lv) / b_, 0.0, a_ / b_)  # inverse_marginal(level, "smallest")
        ok = (g > Zprev) & valid
        z = np.where(ok.any(axis=1), np.max(np.where(ok, np.minimum(Z, g), -np.inf), axis=1), 0.0)
        lvz = np.where(valid, lv, 0.0)
        budget = self.budget[ids]
        if np.isfinite(budget).any():
            C = np.cumsum(lvz * wd, axis=1)
            over = C > budget[:, None]
            mm = np.argmax(over, axis=1)
            rk = np.arange(k)
            Cprev = np.where(mm > 0, C[rk, np.maximum(mm - 1, 0)], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                zb = Zprev[rk, mm] + (budget - Cprev) / lv[rk, mm]
            z = np.where(over.any(axis=1), np.minimum(z, zb), z)
        zsup = np.minimum(np.minimum(z, self.demand[ids]), Z[:, -1])
        v = np.maximum(zsup - eps_[:, 0] / a_[:, 0], 0.0)  # (3), θ'(0) = a
        w = np.maximum(a_[:, 0] - b_[:, 0] * v, 0.0)  # (4)
        take = np.where(v[:, None] > 0, np.clip(v[:, None] - Zprev, 0.0, wd), 0.0)
        q = np.bincount((owner + n * np.arange(k)[:, None]).ravel(), weights=take.ravel(), minlength=k * n)
        q = q.reshape(k, n)
        prices = np.repeat(w[:, None], n, axis=1)
        # allocation a = min(d, D̄(p)) and charge ∫_0^a P of the current bid (rows :n) and of the
        # reply (rows n:), both at once
        pb = np.concatenate((self.P[ed], prices), axis=1)
        db = np.concatenate((self.D[ed], q), axis=1)
        CW = np.cumsum(W, axis=2)
        CW = np.concatenate((CW, CW), axis=1)
        CC = np.cumsum(L * W, axis=2)
        CC = np.concatenate((CC, CC), axis=1)
        L2 = np.concatenate((L, L), axis=1)
        kc = (np.concatenate((Lfull, Lfull), axis=1) <= pb[:, :, None]).sum(axis=2)  # levels ≤ p
        a = np.minimum(db, np.take_along_axis(CW, (kc - 1)[:, :, None], 2)[:, :, 0])
        j = np.argmax(CW >= a[:, :, None], axis=2)[:, :, None]
        jm = np.maximum(j - 1, 0)
        has = (j > 0)[:, :, 0]
        before = np.where(has, np.take_along_axis(CW, jm, 2)[:, :, 0], 0.0)
        c = np.where(has, np.take_along_axis(CC, jm, 2)[:, :, 0], 0.0)
        c = c + np.take_along_axis(L2, j, 2)[:, :, 0] * (a - before)  # ∫_0^a P
        pos = db > 0
        a = np.where(pos, a, 0.0)
        c = np.where(pos & (a > 0), c, 0.0)
        p22 = np.concatenate((p2, p2), axis=1)
        with np.errstate(invalid="ignore"):  # the sentinel ∞ never ties
            tie = pos & np.any(np.abs(p22 - pb[:, :, None]) <= TIE_RTOL * np.abs(pb[:, :, None]), axis=2)
        for r, t in zip(*np.nonzero(tie), strict=True):  # a tie: the allocation and charge rules
            real = nb[r, t % n] < E
            a[r, t], c[r, t] = tie_alloc_cost(
                float(Q[r, t % n]), p2[r, t % n, real], d2[r, t % n, real], float(pb[r, t]), float(db[r, t])
            )
        A = np.cumsum(a[:, :n], axis=1)
        Cs = np.cumsum(c[:, :n], axis=1)

        def value(x: np.ndarray) -> np.ndarray:  # θ(x) = a x − b x²/2 up to the peak a/b
            xc = np.minimum(x, a_[:, 0] / b_[:, 0])
            return a_[:, 0] * xc - 0.5 * b_[:, 0] * xc * xc

        u_cur = value(A[:, n - 1]) - Cs[:, n - 1]
        u_new = value(np.cumsum(a[:, n:], axis=1)[:, -1]) - np.cumsum(c[:, n:], axis=1)[:, -1]
        return prices, q, u_cur, u_new

    def reply(self, m: MarketArrays, i: int, eps_i: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(prices, quantities) of buyer i's ε-best reply, its utility now and after the reply."""
        nb, Q = self.nb[i], self.Q[i]
        if nb is None:  # market_arrays rejects isolated buyers
            raise InvalidInputError(f"buyer index {i!r} has no seller to reply at")
        n, K = nb.shape
        rows = np.arange(n)
        r2 = rows[:, None]
        p2, d2 = self.P[nb], self.D[nb]
        o = np.argsort(p2, axis=1, kind="stable")
        ps = p2[r2, o]
        cum = np.cumsum(d2[r2, o], axis=1)
        total = cum[:, -1]
        end = np.ones((n, K), dtype=bool)
        with np.errstate(invalid="ignore"):  # ∞ − ∞ between padding sentinels: nan, no new level
            np.greater(ps[:, 1:] - ps[:, :-1], TIE_RTOL * np.abs(ps[:, :-1]), out=end[:, :-1])
        last = np.minimum.accumulate(np.where(end, np.arange(K), K)[:, ::-1], axis=1)[:, ::-1]
        above = total[:, None] - cum[r2, last]  # Σ_{k≠i: p_k > p} d_k
        zero = ps <= 0
        npos = zero.sum(axis=1)
        D0 = np.maximum(Q - (total - np.where(npos > 0, cum[rows, npos - 1], 0.0)), 0.0)  # D̄(0)
        Dl = np.where(zero, D0[:, None], np.maximum(Q[:, None] - above, 0.0))  # D̄(p_k)
        W = np.empty((n, K + 1))
        W[:, 0] = D0
        np.subtract(Dl[:, 1:], Dl[:, :-1], out=W[:, 2:])  # step widths of P_i^j
        np.subtract(Dl[:, 0], D0, out=W[:, 1])
        keep = W > 0
        keep[:, 1:] &= ~zero & (ps < np.inf)
        W[~keep] = 0.0
        Lfull = np.zeros((n, K + 1))
        Lfull[:, 1:] = ps
        L = np.where(keep, Lfull, 0.0)  # step levels (0 where no step)
        # merged curve P̄_i: all steps sorted by level, ties in seller order (merge_curves)
        own = np.nonzero(keep)[0]
        lv, wd = L[keep], W[keep]
        om = np.argsort(lv, kind="stable")
        curve = PriceCurve(lv[om], wd[om], own[om])
        v_i = m.valuations[i]
        zsup = _sup_quantity(v_i, curve, float(m.budget[i]), float(m.demand[i]))
        v = max(zsup - eps_i / v_i.marginal_at_zero, 0.0)  # (3)
        w = float(v_i.marginal(v))  # (4)
        q: np.ndarray
        if v > 0:
            Z = np.cumsum(curve.widths)
            take = np.clip(v - np.concatenate(([0.0], Z[:-1])), 0.0, curve.widths)
            q = np.bincount(curve.owner, weights=take, minlength=n)
        else:
            q = np.zeros(n)
        prices = np.full(n, w)
        # allocation a = min(d, D̄(p)) and charge ∫_0^a P of the current bid (rows :n) and of the
        # reply (rows n:), both at once
        lo, hi = m.buyer_ptr[i], m.buyer_ptr[i + 1]
        pb = np.concatenate((self.P[lo:hi], prices))
        db = np.concatenate((self.D[lo:hi], q))
        CW = np.cumsum(W, axis=1)
        CC = np.cumsum(L * W, axis=1)
        rr = np.concatenate((rows, rows))
        kc = (Lfull[rr] <= pb[:, None]).sum(axis=1)  # steps at levels ≤ p (a prefix)
        a = np.minimum(db, CW[rr, kc - 1])
        j = np.argmax(CW[rr] >= a[:, None], axis=1)
        jm = np.maximum(j - 1, 0)
        has = j > 0
        c = np.where(has, CC[rr, jm], 0.0) + L[rr, j] * (a - np.where(has, CW[rr, jm], 0.0))
        pos = db > 0
        a = np.where(pos, a, 0.0)
        c = np.where(pos & (a > 0), c, 0.0)
        with np.errstate(invalid="ignore"):  # the sentinel ∞ never ties
            tie = pos & np.any(np.abs(p2[rr] - pb[:, None]) <= TIE_RTOL * np.abs(pb[:, None]), axis=1)
        if tie.any():  # a tie with another bid: the allocation and exclusion-compensation rules
            for t in np.flatnonzero(tie):
                real = nb[t % n] < self.P.size - 1
                a[t], c[t] = tie_alloc_cost(
                    float(Q[t % n]), p2[t % n, real], d2[t % n, real], float(pb[t]), float(db[t])
                )
        # sequential sums (cumsum), exactly as in the batched :meth:`replies`
        u_cur = float(v_i.value(float(np.cumsum(a[:n])[-1]))) - float(np.cumsum(c[:n])[-1])
        u_new = float(v_i.value(float(np.cumsum(a[n:])[-1]))) - float(np.cumsum(c[n:])[-1])
        return prices, q, u_cur, u_new


def sorted_bids(st: PSPState, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bids at seller j sorted by price (cached until a bid there changes).

    Parameters
    ----------
    st : PSPState
    j : int
        Seller index.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        Sorted prices ``ps``, their quantities ``ds`` and each bid's ``rank`` in that order.
    """
    cache = st.sorted_cache.get(j)
    if cache is not None and cache[0] == st.version[j]:
        return cache[1]
    idx = st.seller_edges[j]
    p = st.price[idx]
    order = np.argsort(p, kind="stable")
    rank = np.empty(idx.size, dtype=np.int64)
    rank[order] = np.arange(idx.size)
    out = (p[order], st.quantity[idx][order], rank)
    st.sorted_cache[j] = (st.version[j], out)
    return out


def reference_reply(st: PSPState, i: int, eps_i: float) -> tuple[BestReply, float, float]:
    """ε-best reply t_i of buyer i, its current utility u_i(s) and its utility u_i(t_i; s_{-i}),
    both by the PSP allocation and charge rules (see :func:`alloc_cost`).

    The reference the vectorised :class:`BipartiteReplies` is tested against, built from
    :func:`~datamarkets.models.psp.best_reply` and :func:`~datamarkets.models.psp.price_curve`; also
    the evaluator of route markets.

    Parameters
    ----------
    st : PSPState
        The bid profile.
    i : int
        Buyer index.
    eps_i : float
        The buyer's bid fee ε_i.

    Returns
    -------
    (BestReply, float, float)
        The reply (eqs. 3–4), u_i now and u_i after the reply.
    """
    m = st.market
    lo, hi = m.buyer_ptr[i], m.buyer_ptr[i + 1]
    route = m.kind == "routes"
    curves, cache = [], []
    a_cur, c_cur = [], 0.0
    for e in range(lo, hi):
        j = m.edge_seller[e]
        Q = m.supply[j]
        ps, ds, rank = sorted_bids(st, j)
        k = rank[st.edge_pos[e]]
        p_o = np.delete(ps, k)
        d_o = np.delete(ds, k)
        curve = _price_curve_sorted(Q, p_o, d_o)
        curves.append(curve)
        a, c = alloc_cost(curve, Q, p_o, d_o, float(st.price[e]), float(st.quantity[e]))
        a_cur.append(a)
        c_cur += c
        cache.append((curve, Q, p_o, d_o))
    v = m.valuations[i]
    agg = min if route else sum
    u_cur = float(v.value(agg(a_cur))) - c_cur
    r = best_reply(v, curves, eps_i, budget=m.budget[i], demand=m.demand[i], route=route)
    a_new, c_new = [], 0.0
    for t, (curve, Q, p_o, d_o) in enumerate(cache):
        a, c = alloc_cost(curve, Q, p_o, d_o, float(r.prices[t]), float(r.quantities[t]))
        a_new.append(a)
        c_new += c
    u_new = float(v.value(agg(a_new))) - c_new
    return r, u_cur, u_new
