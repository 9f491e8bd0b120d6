r"""PSP auction dynamics: rounds of ε-best replies until no bid moves.

Every buyer i holds a bid s_i^j = (p_i^j, d_i^j) at each seller j it is joined to (initially
(0, 0)). In a round, buyers are visited in a fixed order (``"asynchronous"``: each reply is
applied at once, Gauss–Seidel; ``"synchronous"``: all replies are computed against the profile
at the start of the round and applied together, Jacobi). A visited buyer computes its ε-best reply
t_i (:func:`datamarkets.models.psp.best_reply`, draft eqs. 3–4) and moves to it only when that
raises its utility u_i = θ_i(a_i(s)) − c_i(s), evaluated with the PSP allocation and
exclusion-compensation rules, by more than its bid fee ε_i (Lazar–Semret's ε-best reply dynamics).
The auction stops after the first round in which no bid moved: every buyer is then within ε_i
of its (ε-)best reply, an ε-Nash equilibrium of the PSP game.

``epsilon`` is absolute (``relative=False``) or relative (default): ε_i = ε · θ_i(z̄_i) with
z̄_i = min(peak_i, D_i, Σ_{j∈N(i)} Q^j) (min over the route's links for a route user), the largest
value buyer i can ever obtain; "ε = 10⁻³ relative" means no buyer can gain more than 0.1 % of that.

Messages: each accepted move sends one bid to each seller of the buyer and each of those sellers
notifies its other bidders of the new profile; ``messages`` counts both kinds. A buyer that is
skipped or declines to move sends nothing. ``evaluations`` counts the ε-best replies computed
(the buyer's decisions), not the skipped visits.

Speed (same rules, same ε-best reply, same stopping rule, same visit order):

- Event-driven scheduling (``skip_unchanged``, exact): every seller has a version counter, bumped
  when any bid on it changes. A buyer's reply depends only on the others' bids at its sellers, so a
  buyer whose sellers' versions are unchanged since its last evaluation (it declined, or moved to
  the reply it would compute again) is skipped as a no-move; "a round with no bid moving" is then
  "no buyer left to evaluate". Tested: on vs off give identical profiles, rounds and messages.
- Vectorised replies (:class:`_BipartiteReplies`, bipartite markets): the others' bids at a
  buyer's sellers are gathered through a static padded neighbour-index matrix and all its price
  curves, its merged curve, its reply and both utilities are computed with a fixed number of numpy
  calls. For all-quadratic markets the replies of the next 16 buyers of the visit order are
  computed in one batch against the current profile and used at a buyer's turn only if no bid at
  its sellers changed in between (else recomputed), so the sequence of decisions is the one-by-one
  sequence. Tested against the reference ``_reply`` (built from :func:`~datamarkets.models.psp.best_reply`).
- ε-scaling (``scaling``) cuts the O(1/ε) rounds of the creeping ε-best-reply dynamics: truthful
  replies raise a contested price by about b·ε/θ'(0) per move, so without it 50 × 10 at ε = 10⁻³
  takes 1602 rounds; with ``scaling=2`` 116 rounds. 1000 × 100 (5 edges per buyer, seed 0) at
  ε = 10⁻³ relative with ``scaling=2``: 309 rounds, 2.6·10⁵ replies, 31–34 s on a shared 2-core
  machine (139–150 s before the two changes above), welfare within 1.5·10⁻⁵ of the optimum.

Allocation and charge are read off the price curve (c_i = ∫_0^{a_i} P_i, exact without ties; on a
tie the allocation and exclusion-compensation rules are applied).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.graphs.market import MarketArrays, market_arrays
from datamarkets.graphs.valuations import QuadraticValuation
from datamarkets.models.psp import TIE_RTOL, PriceCurve, _price_curve_sorted, _sup_quantity, best_reply
from datamarkets.models.psp import _allocate as allocate
from datamarkets.models.psp_certificate import (
    buyer_epsilons,
    certify_psp,
    exact_best_replies,
    psp_outcome,
    psp_prices,
)
from datamarkets.progress import make_progress
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.solvers import Deadline
from datamarkets.status import Status
from datamarkets.validation import check_time_limit

__all__ = ["PSPState", "buyer_utilities", "psp_dynamics"]

_BATCH = 16  # buyers per speculative batch of replies (see psp_dynamics)
_FAST = True  # False: every reply by the reference ``_reply`` (tests)


@dataclass
class PSPState:
    """Bid profile of a PSP auction on a market (edges in :class:`MarketArrays` order)."""

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


def _alloc_cost(curve, Q, p_o, d_o, p_i: float, d_i: float) -> tuple[float, float]:
    """Allocation and charge of a bid (p_i, d_i) against the others' bids at one resource.

    Without a tie (no other bid at exactly p_i) the PSP rules reduce to a_i = min(d_i, D̄_i(p_i))
    and c_i = ∫_0^{a_i} P_i (Lazar–Semret; tested against the rules in ``tests/test_psp.py``), read
    off the price curve; with a tie the allocation and exclusion-compensation rules are applied.
    """
    if d_i <= 0:
        return 0.0, 0.0
    if np.any(np.abs(p_o - p_i) <= TIE_RTOL * abs(p_i)):  # a tie within TIE_RTOL
        return _tie_alloc_cost(Q, p_o, d_o, p_i, d_i)
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


def _tie_alloc_cost(
    Q: float, p_o: np.ndarray, d_o: np.ndarray, p_i: float, d_i: float
) -> tuple[float, float]:
    """a_i and c_i by the allocation and exclusion-compensation rules themselves (used on ties)."""
    p = np.append(p_o, p_i)
    d = np.append(d_o, d_i)
    d0 = np.append(d_o, 0.0)
    a = allocate(Q, p, d)
    a0 = allocate(Q, p, d0)
    return float(a[-1]), float(p_o @ (a0[:-1] - a[:-1]))


class _BipartiteReplies:
    """Vectorised ε-best replies of bipartite buyers (the hot loop of :func:`psp_dynamics`).

    Mathematically the same evaluation as :func:`_reply` (tested against it): for buyer i the
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
            a[r, t], c[r, t] = _tie_alloc_cost(
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
        n, K = nb.shape
        rows = np.arange(n)
        r2 = rows[:, None]
        p2, d2 = self.P[nb], self.D[nb]
        o = np.argsort(p2, axis=1, kind="stable")
        ps = p2[r2, o]
        cum = np.cumsum(d2[r2, o], axis=1)
        total = cum[:, -1]
        end = np.ones((n, K), dtype=bool)
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
                a[t], c[t] = _tie_alloc_cost(
                    float(Q[t % n]), p2[t % n, real], d2[t % n, real], float(pb[t]), float(db[t])
                )
        # sequential sums (cumsum), exactly as in the batched :meth:`replies`
        u_cur = float(v_i.value(float(np.cumsum(a[:n])[-1]))) - float(np.cumsum(c[:n])[-1])
        u_new = float(v_i.value(float(np.cumsum(a[n:])[-1]))) - float(np.cumsum(c[n:])[-1])
        return prices, q, u_cur, u_new


def _sorted_bids(st: PSPState, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bids at seller j sorted by price (cached until a bid there changes): (ps, ds, rank)."""
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


def _reply(st: PSPState, i: int, eps_i: float):
    """ε-best reply t_i of buyer i, its current utility u_i(s) and its utility u_i(t_i; s_{-i}),
    both by the PSP allocation and charge rules (see :func:`_alloc_cost`)."""
    m = st.market
    lo, hi = m.buyer_ptr[i], m.buyer_ptr[i + 1]
    route = m.kind == "routes"
    curves, cache = [], []
    a_cur, c_cur = [], 0.0
    for e in range(lo, hi):
        j = m.edge_seller[e]
        Q = m.supply[j]
        ps, ds, rank = _sorted_bids(st, j)
        k = rank[st.edge_pos[e]]
        p_o = np.delete(ps, k)
        d_o = np.delete(ds, k)
        curve = _price_curve_sorted(Q, p_o, d_o)
        curves.append(curve)
        a, c = _alloc_cost(curve, Q, p_o, d_o, float(st.price[e]), float(st.quantity[e]))
        a_cur.append(a)
        c_cur += c
        cache.append((curve, Q, p_o, d_o))
    v = m.valuations[i]
    agg = min if route else sum
    u_cur = float(v.value(agg(a_cur))) - c_cur
    r = best_reply(v, curves, eps_i, budget=m.budget[i], demand=m.demand[i], route=route)
    a_new, c_new = [], 0.0
    for t, (curve, Q, p_o, d_o) in enumerate(cache):
        a, c = _alloc_cost(curve, Q, p_o, d_o, float(r.prices[t]), float(r.quantities[t]))
        a_new.append(a)
        c_new += c
    u_new = float(v.value(agg(a_new))) - c_new
    return r, u_cur, u_new


def buyer_utilities(st: PSPState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-edge allocation a_e and charge c_e, per-buyer quantity A_i and utility u_i of a profile
    (:func:`~datamarkets.models.psp_certificate.psp_outcome` of the state's bids)."""
    return psp_outcome(st.market, st.price, st.quantity)


def psp_dynamics(
    G: nx.Graph,
    epsilon: float = 1e-3,
    *,
    relative: bool = True,
    order: str = "asynchronous",
    max_rounds: int = 1000,
    seed: int | None = None,
    scaling: float | None = None,
    start_epsilon: float = 0.1,
    skip_unchanged: bool = True,
    progress: bool = False,
    time_limit: float | None = None,
) -> Result:
    """Run PSP ε-best-reply dynamics on a market graph until no bid moves.

    Parameters
    ----------
    G : networkx.Graph
        A market (:mod:`datamarkets.graphs.market`), bipartite or routes.
    epsilon : float, default 1e-3
        Bid fee ε > 0, relative to each buyer's largest attainable value unless ``relative=False``.
    relative : bool, default True
        See the module docstring.
    order : {"asynchronous", "synchronous"}
        Visit order of a round.
    max_rounds : int, default 1000
        Round cap.
    seed : int, optional
        If given, buyers are visited in a random order, reshuffled each round (else index order).
    scaling : float, optional
        ε-scaling factor (> 1). If given, the auction first runs with bid fees ε·scaling^K (the
        largest not above ``start_epsilon``), then ε·scaling^{K−1}, ..., ε, each stage starting from
        the previous stage's bids. Only the last stage's stopping rule matters for the result (an
        ε-equilibrium at ε); ``rounds``/``messages`` count all stages. Default: one stage.
        Whatever ``scaling``, when the stage at fee ε stops where some buyer's *exact* best reply
        gains more than ε_i (possible: the ε-best reply leaves up to ε_i on the table), one more
        stage at fee ε/2 follows, so the result is an ε-Nash point by the exact best reply
        (:func:`~datamarkets.models.psp_certificate.certify_psp`).
    start_epsilon : float, default 0.1
        Upper bound of the first stage's (relative or absolute) ε when ``scaling`` is set.
    skip_unchanged : bool, default True
        Event-driven scheduling: skip a buyer when no bid at any of its sellers changed since its
        last evaluation (it would reproduce the same decision, a no-move). Exact: ``False`` gives the
        identical bid profile, rounds and messages, only more ``evaluations``.
    progress : bool
        Show a progress bar over rounds on stderr.
    time_limit : float, optional
        Wall-clock seconds for the whole run (build included); the clock is checked before every
        window of replies. When it runs out the result has status ``time_limit``, the bids reached
        so far and no reply-gain certificate (no ε-Nash claim is made).

    Returns
    -------
    Result
        ``kind="auction-psp"``, ``method="psp"``; solution keys ``welfare``, ``allocation`` (list of
        ``{"buyer", "seller", "amount"}``), ``prices`` (seller → lowest bid price with a positive
        allocation if the seller sold out up to the winners' ε_i/θ_i'(0) step-backs, else 0;
        with supply 0, max θ_i'(x_i) over its buyers), ``bids`` (per edge ``price``/``quantity``),
        ``payments`` (per edge), ``buyer_quantity``, ``utilities``, ``epsilons``, ``rounds``,
        ``stage_rounds``, ``messages``, ``evaluations`` (module docstring), ``order``.
        Certificate: :func:`~datamarkets.models.psp_certificate.certify_psp` (the exact best-reply
        gain of every buyer within ε_i, the final charges within the budgets, allocations within
        supply, every reported number recomputed).

    Raises
    ------
    InvalidInputError
        Bad ``epsilon``/``order``/``max_rounds``; :class:`~datamarkets.errors.GraphError` for a bad market.
    ConvergenceError
        If ``max_rounds`` rounds pass with bids still moving (carries ``iterations``).

    Examples
    --------
    >>> from datamarkets.graphs.market import single_resource
    >>> from datamarkets.graphs.valuations import QuadraticValuation
    >>> G = single_resource(2.0, [QuadraticValuation(3, 1), QuadraticValuation(3, 1)])
    >>> r = psp_dynamics(G, 1e-3)
    >>> abs(r.solution["welfare"] - 5.0) < 0.01  # optimum: 1 unit each, welfare 2·(3 − 1/2) = 5
    True
    """
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if order not in ("asynchronous", "synchronous"):
        raise InvalidInputError(f"order must be 'asynchronous' or 'synchronous', got {order!r}")
    if int(max_rounds) < 1:
        raise InvalidInputError(f"max_rounds must be >= 1, got {max_rounds!r}")
    if scaling is not None and not (math.isfinite(scaling) and scaling > 1):
        raise InvalidInputError(f"scaling must be a finite number > 1, got {scaling!r}")
    deadline = Deadline(check_time_limit(time_limit, "time_limit"))
    timer = Timer()
    with timer("build_seconds"):
        m = market_arrays(G)
        st = PSPState.empty(m)
        eps = buyer_epsilons(m, float(epsilon), relative)
        seller_deg = np.array([idx.size for idx in st.seller_edges])
        fast = _BipartiteReplies(st) if _FAST and m.kind == "bipartite" and m.n_edges else None
        use_batch = fast is not None and fast.quadratic and all(x is not None for x in fast.nb)
        batch = _BATCH if use_batch else 1
    rng = np.random.default_rng(seed) if seed is not None else None
    messages = 0
    evaluations = 0
    recomputed = 0
    rounds = 0
    timed_out = False
    stage_rounds: list[int] = []
    # ε-scaling (Bertsekas' remedy for the same creep in auction algorithms): optional coarse
    # stages ε·scaling^K, ..., ε·scaling, each warm-started from the previous profile; the
    # stopping rule of the last stage (ε itself) is unchanged, so the result is an ε-equilibrium.
    factors = [1.0]
    if scaling is not None:
        while (
            factors[-1] * float(epsilon) * float(scaling) <= max(float(start_epsilon), float(epsilon)) + 1e-15
        ):
            factors.append(factors[-1] * float(scaling))
    with timer("solve_seconds"), make_progress() as bar:
        task = bar.add_task("PSP rounds", total=max_rounds, visible=progress)
        stages = list(reversed(factors))
        k_stage = 0
        while k_stage < len(stages):
            f = stages[k_stage]
            k_stage += 1
            eps_stage = eps * f
            # a buyer whose sellers' bids did not change since it last declined to move would
            # compute the same reply and decline again: skip it (exactly the same dynamics)
            version = st.version
            seen = np.full(m.n_buyers, -1, dtype=np.int64)

            def _stamp(i: int, version: np.ndarray = version) -> int:
                return int(version[m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]].sum())

            converged = False
            r0 = rounds
            while rounds < max_rounds:
                rounds += 1
                visit = rng.permutation(m.n_buyers) if rng is not None else np.arange(m.n_buyers)
                moves = []
                pos = 0
                while pos < visit.size:
                    if deadline.expired:
                        timed_out = True
                        break
                    # a window of the visit order; replies of its buyers that are due now are
                    # computed in one batch against the current profile and used only if nothing
                    # changed at their sellers before their turn (else recomputed): identical to
                    # evaluating one buyer at a time
                    window = visit[pos : pos + batch]
                    pos += window.size
                    pre: dict[int, tuple] = {}
                    if use_batch:
                        due = [(int(i), _stamp(i)) for i in window]
                        due = [(i, s) for i, s in due if not (skip_unchanged and seen[i] == s)]
                        if due:
                            ids = np.array([i for i, _ in due])
                            res = fast.replies(m, ids, eps_stage[ids])
                            for r_, (i, s) in enumerate(due):
                                ni = int(m.buyer_ptr[i + 1] - m.buyer_ptr[i])
                                pre[i] = (s, res[0][r_, :ni], res[1][r_, :ni], res[2][r_], res[3][r_])
                    for i in window:
                        i = int(i)
                        sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
                        js = m.edge_seller[sl]
                        stamp = int(version[js].sum())
                        if skip_unchanged and seen[i] == stamp:  # nothing changed at its sellers
                            continue
                        evaluations += 1
                        got = pre.get(i)
                        if got is not None and got[0] == stamp:
                            _, b_p, b_q, u_cur, u_new = got
                        elif fast is not None:
                            recomputed += use_batch
                            b_p, b_q, u_cur, u_new = fast.reply(m, i, eps_stage[i])
                        else:
                            r, u_cur, u_new = _reply(st, i, eps_stage[i])
                            b_p, b_q = r.prices, r.quantities
                        if u_new > u_cur + eps_stage[i]:
                            if order == "asynchronous":
                                st.price[sl], st.quantity[sl] = b_p, b_q
                                version[js] += 1
                                moves.append(None)
                            else:
                                moves.append((sl, b_p, b_q, js))
                            messages += int(js.size + np.sum(seller_deg[js] - 1))
                            # its reply depends on the others' bids only: once applied, re-evaluating
                            # it against unchanged others gives u_new = u_cur, no move — unless another
                            # bid at one of its sellers changes (then the sum exceeds this stamp)
                            seen[i] = stamp + js.size
                        else:
                            seen[i] = stamp
                for mv in moves:
                    if mv is not None:
                        st.price[mv[0]], st.quantity[mv[0]] = mv[1], mv[2]
                        version[mv[3]] += 1
                bar.update(task, advance=1)
                if timed_out:
                    break
                if not moves:
                    converged = True
                    break
            stage_rounds.append(rounds - r0)
            if timed_out:
                break
            if not converged:
                raise ConvergenceError(f"PSP dynamics ({order}) still moving bids", rounds)
            if k_stage == len(stages) and f == 1.0 and _exact_gain_exceeds(m, st, eps):
                # the ε-best reply leaves up to ε_i on the table, so a stop at fee ε only bounds the
                # exact best-reply gain by 2ε_i; one more stage at fee ε/2 stops where every exact
                # gain is ≤ ε_i (an ε-Nash point; the ε/2-best reply is within ε/2 of the best)
                stages.append(0.5)
    a_e, c_e, A, U = buyer_utilities(st)
    welfare = float(sum(float(v.value(x)) for v, x in zip(m.valuations, A, strict=True)))
    prices = psp_prices(m, st.price, a_e, A, eps)
    B, S = m.buyers, m.sellers
    sol = {
        "welfare": welfare,
        "allocation": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(a_e[e])}
            for e in range(m.n_edges)
        ],
        "prices": prices,
        "bids": [
            {
                "buyer": B[m.edge_buyer[e]],
                "seller": S[m.edge_seller[e]],
                "price": float(st.price[e]),
                "quantity": float(st.quantity[e]),
            }
            for e in range(m.n_edges)
        ],
        "payments": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(c_e[e])}
            for e in range(m.n_edges)
        ],
        "buyer_quantity": {B[i]: float(A[i]) for i in range(m.n_buyers)},
        "utilities": {B[i]: float(U[i]) for i in range(m.n_buyers)},
        "epsilons": {B[i]: float(eps[i]) for i in range(m.n_buyers)},
        "epsilon": float(epsilon),
        "relative": bool(relative),
        "rounds": rounds,
        "stage_rounds": stage_rounds,
        "messages": messages,
        "evaluations": evaluations,
        "order": order,
    }
    meta = provenance()
    meta.update(
        {
            "market_kind": m.kind,
            "n_buyers": m.n_buyers,
            "n_sellers": m.n_sellers,
            "n_edges": m.n_edges,
            "batched_replies": bool(use_batch),
            "replies_recomputed": recomputed,
        }
    )
    if timed_out:
        meta["message"] = f"time limit of {time_limit:g} s reached after {rounds} rounds; bids still moving"
        meta["time_limit"] = time_limit
        # no ε-Nash claim after a time limit: no certificate (Result marks it as not passed)
        return Result("auction-psp", Status.TIME_LIMIT, "psp", sol, Certificate(), timer.seconds, meta)
    with timer("certificate_seconds"):  # the one PSP certificate (plug-in, CLI and verify apply it too)
        cert = certify_psp(m, sol, float(epsilon), relative=relative)
    return Result("auction-psp", Status.OPTIMAL, "psp", sol, cert, timer.seconds, meta)


def _exact_gain_exceeds(m: MarketArrays, st: PSPState, eps: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether some buyer's exact best-reply gain exceeds ε_i (the test of :func:`certify_psp`)."""
    _, _, _, U = psp_outcome(m, st.price, st.quantity)
    best, _ = exact_best_replies(m, st.price, st.quantity)
    return bool(np.any(best - U - eps > tol * np.maximum(1.0, np.abs(U))))
