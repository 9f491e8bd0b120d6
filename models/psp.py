r"""The Lazar–Semret progressive second price (PSP) rules, as printed in the draft (§1.1, eqs. 3–4).

At one resource with quantity Q every bidder k holds a bid s_k = (p_k, d_k) (unit price, quantity).
For bidder i facing the others' bids s_{-i}:

- available quantity at price y:  D̄_i(y, s_{-i}) = [Q − Σ_{k≠i: p_k > y} d_k]^+;
- market price function:          P_i(z, s_{-i}) = inf{y ≥ 0 : D̄_i(y, s_{-i}) ≥ z}  (∞ for z > Q);
- allocation (Tuffin's revision, ties split in proportion to quantities):
  a_i(s) = min{d_i, d_i / Σ_{k: p_k = p_i} d_k · D̄_i(p_i, s_{-i})};
- exclusion-compensation cost:    c_i(s) = Σ_{k≠i} p_k (a_k(0; s_{-i}) − a_k(s_i; s_{-i})),
  which equals ∫_0^{a_i} P_i(z) dz when no other bid ties with p_i (Lazar–Semret, Prop. 1);
- budget-constrained ε-best reply (draft eqs. 3–4):
  v_i = sup{z ≥ 0 : θ_i'(z) > P_i(z), ∫_0^z P_i ≤ b_i} − ε/θ_i'(0)  (clipped at 0),  w_i = θ_i'(v_i).

Several resources. A buyer of the bipartite data-share market may split its quantity across its
sellers; the cheapest way to obtain z is to buy the cheapest units first, so its market price
function is the *merged* step curve P̄_i (all sellers' price steps sorted by price) and its reply
is one coordinated price w_i at every seller (Lemma 3/5 of the paper) with per-seller quantities
read off the merged curve. A user on a route needs the same quantity on every resource, so its
market price is the *sum* along the route, P̃_i(z) = Σ_l P_i^l(z) (draft §1.1); it bids v_i on
every link and, our reading of the draft's ambiguous route price, the link price
w_i^l = P_i^l(v_i) + (θ_i'(v_i) − P̃_i(v_i))/L, so that Σ_l w_i^l = θ_i'(v_i) and each w_i^l beats
the link's market price. Its allocation is the thinnest one, min_l a_i^l, and its cost Σ_l c_i^l.

References
----------
A. A. Lazar, N. Semret, "Design and analysis of the progressive second price auction for network
bandwidth sharing", 1998; B. Tuffin, "Revisited progressive second price auction for charging
telecommunication networks", INRIA RR-4176, 2001.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.valuations import Valuation

__all__ = [
    "TIE_RTOL",
    "BestReply",
    "PriceCurve",
    "allocate",
    "available_quantity",
    "best_reply",
    "exclusion_cost",
    "exclusion_costs",
    "market_price",
    "merge_curves",
    "price_curve",
    "price_curve_sorted",
    "price_integral",
    "route_curve",
    "tie_levels",
]


TIE_RTOL = 1e-12
"""Bid prices within this relative distance of each other (chained through sorted neighbours) are
one price level: mathematically equal prices that differ in the last bits tie (Tuffin's proportional
split) instead of ordering arbitrarily. The same relative tolerance as the chain DP's ``TIE_RTOL``."""


def tie_levels(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Price levels of bids ``p`` and each bid's level index, ties within :data:`TIE_RTOL`.

    Like ``np.unique(p, return_inverse=True)``, but a sorted price within ``TIE_RTOL`` (relative) of
    its predecessor joins its level; a level's price is that of its lowest bid.

    Examples
    --------
    >>> lv, inv = tie_levels(np.array([0.1 + 0.2, 0.3, 1.0]))
    >>> lv.tolist(), inv.tolist()
    ([0.3, 1.0], [0, 0, 1])
    """
    if p.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    new = np.ones(ps.size, dtype=bool)
    new[1:] = ps[1:] - ps[:-1] > TIE_RTOL * np.abs(ps[:-1])
    group = np.cumsum(new) - 1
    inv = np.empty(p.size, dtype=np.int64)
    inv[order] = group
    return ps[new], inv


def _bids(Q: float, p: ArrayLike, d: ArrayLike) -> tuple[float, np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float).ravel()
    d = np.asarray(d, dtype=float).ravel()
    if p.shape != d.shape:
        raise InvalidInputError(f"bid prices and quantities differ in length: {p.size} vs {d.size}")
    if not (math.isfinite(Q) and Q >= 0):
        raise InvalidInputError(f"resource quantity Q must be finite and >= 0, got {Q!r}")
    if p.size and (np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(~np.isfinite(d)) or np.any(d < 0)):
        raise InvalidInputError("bids must have finite prices >= 0 and finite quantities >= 0")
    return float(Q), p, d


def available_quantity(y: ArrayLike, Q: float, p_others: ArrayLike, d_others: ArrayLike) -> np.ndarray:
    """D̄_i(y, s_{-i}) = [Q − Σ_{k: p_k > y} d_k]^+ (draft §1.1), vectorised in ``y``."""
    Q, p, d = _bids(Q, p_others, d_others)
    y = np.asarray(y, dtype=float)
    above = (p[None, :] > y.reshape(-1, 1)) @ d
    return np.maximum(Q - above, 0.0).reshape(y.shape)


@dataclass(frozen=True)
class PriceCurve:
    """The step function P_i(z) as price ``levels`` (ascending) with segment ``widths``.

    P_i(z) = levels[m] for z in (Z_{m−1}, Z_m], Z = cumsum(widths), and ∞ beyond Z[-1] = Q.
    ``owner`` tags each segment with a resource index (used by :func:`merge_curves`).
    """

    levels: np.ndarray
    widths: np.ndarray
    owner: np.ndarray

    @property
    def ends(self) -> np.ndarray:
        return np.cumsum(self.widths)

    @property
    def total(self) -> float:
        return float(self.widths.sum())

    def __call__(self, z: ArrayLike) -> np.ndarray:
        """P(z), with P(0) = 0 and P(z) = ∞ for z > total."""
        z = np.asarray(z, dtype=float)
        if self.levels.size == 0:
            return np.where(z > 0, np.inf, 0.0)
        idx = np.searchsorted(self.ends, z, side="left")
        lv = np.concatenate((self.levels, [np.inf]))
        out = lv[np.minimum(idx, self.levels.size)]
        return np.where(z > 0, out, 0.0)

    def integral(self, z: ArrayLike) -> np.ndarray:
        """∫_0^z P(x) dx (∞ beyond the total quantity)."""
        z = np.asarray(z, dtype=float)
        Z = np.concatenate(([0.0], self.ends))
        C = np.concatenate(([0.0], np.cumsum(self.levels * self.widths)))
        idx = np.clip(np.searchsorted(Z, z, side="left"), 1, max(Z.size - 1, 1))
        if self.levels.size == 0:
            return np.where(z > 0, np.inf, 0.0)
        out = C[idx - 1] + self.levels[idx - 1] * (z - Z[idx - 1])
        return np.where(z > Z[-1] * (1 + 1e-15), np.inf, np.where(z > 0, out, 0.0))


def price_curve(Q: float, p_others: ArrayLike, d_others: ArrayLike, owner: int = 0) -> PriceCurve:
    """The market price function P_i(·, s_{-i}) of one resource as a :class:`PriceCurve`.

    Units free at price 0 are those not claimed by any positive-price bid, [Q − Σ_{p_k>0} d_k]^+;
    the next units displace the lowest bids first.

    Examples
    --------
    >>> c = price_curve(10.0, [3.0, 1.0], [4.0, 4.0])
    >>> c.levels.tolist(), c.widths.tolist()
    ([0.0, 1.0, 3.0], [2.0, 4.0, 4.0])
    """
    Q, p, d = _bids(Q, p_others, d_others)
    return _price_curve(Q, p, d, owner)


def _price_curve(Q: float, p: np.ndarray, d: np.ndarray, owner: int = 0) -> PriceCurve:
    """:func:`price_curve` without input checks (hot loop of the dynamics)."""
    keep = d > 0
    p, d = p[keep], d[keep]
    lv, inv = tie_levels(p)
    gsum = np.bincount(inv, weights=d, minlength=lv.size)
    above = gsum.sum() - np.cumsum(gsum)  # Σ_{p_k > L_m} d_k at each level L_m
    Dbar = np.maximum(Q - above, 0.0)  # D̄(L_m)
    pos = lv > 0
    D0 = max(Q - float(gsum[pos].sum()), 0.0)  # D̄(0)
    levels = np.concatenate(([0.0], lv[pos]))
    Dl = np.concatenate(([D0], Dbar[pos]))
    widths = np.diff(np.concatenate(([0.0], Dl)))
    nz = widths > 0
    return PriceCurve(levels[nz], widths[nz], np.full(int(nz.sum()), owner, dtype=np.int64))


def price_curve_sorted(Q: float, ps: np.ndarray, ds: np.ndarray) -> PriceCurve:
    """:func:`price_curve` from bids already sorted by ascending price (hot loop; no checks).

    D̄ at a bid price p_m is Q − Σ_{p > p_m} d; tied prices share one value (zero-width steps,
    dropped), and so do zero-quantity bids.

    Parameters
    ----------
    Q : float
        Available quantity of the resource.
    ps : numpy.ndarray
        The other bids' unit prices, sorted ascending (not checked).
    ds : numpy.ndarray
        Their quantities, in the same order (not checked).

    Returns
    -------
    PriceCurve
        The same curve as :func:`price_curve` ``(Q, ps, ds)``.

    Examples
    --------
    >>> c = price_curve_sorted(10.0, np.array([1.0, 3.0]), np.array([4.0, 4.0]))
    >>> c.levels.tolist(), c.widths.tolist()
    ([0.0, 1.0, 3.0], [2.0, 4.0, 4.0])
    """
    if ps.size == 0:
        return PriceCurve(
            np.array([0.0]) if Q > 0 else np.zeros(0),
            np.array([Q]) if Q > 0 else np.zeros(0),
            np.zeros(1 if Q > 0 else 0, dtype=np.int64),
        )
    cum = np.cumsum(ds)
    total = cum[-1]
    # last index of each bid's tie level (prices within TIE_RTOL are one level)
    end = np.ones(ps.size, dtype=bool)
    end[:-1] = ps[1:] - ps[:-1] > TIE_RTOL * np.abs(ps[:-1])
    last = np.minimum.accumulate(np.where(end, np.arange(ps.size), ps.size)[::-1])[::-1]
    Dbar = np.maximum(Q - (total - cum[last]), 0.0)
    npos = int(np.searchsorted(ps, 0.0, side="right"))  # bids at price 0 are not "above" 0
    D0 = max(Q - (total - (cum[npos - 1] if npos > 0 else 0.0)), 0.0)
    levels = np.concatenate(([0.0], ps[npos:]))
    widths = np.diff(np.concatenate(([0.0, D0], Dbar[npos:])))
    nz = widths > 0
    return PriceCurve(levels[nz], widths[nz], np.zeros(int(nz.sum()), dtype=np.int64))


_price_curve_sorted = price_curve_sorted  # the name models/psp_dynamics.py imports


def market_price(z: ArrayLike, Q: float, p_others: ArrayLike, d_others: ArrayLike) -> np.ndarray:
    """P_i(z, s_{-i}) = inf{y ≥ 0 : D̄_i(y, s_{-i}) ≥ z} (∞ for z > Q), vectorised in ``z``."""
    return price_curve(Q, p_others, d_others)(z)


def price_integral(z: ArrayLike, Q: float, p_others: ArrayLike, d_others: ArrayLike) -> np.ndarray:
    """∫_0^z P_i(x, s_{-i}) dx: the PSP charge for quantity z when nobody ties."""
    return price_curve(Q, p_others, d_others).integral(z)


def allocate(Q: float, p: ArrayLike, d: ArrayLike) -> np.ndarray:
    """PSP allocation with Tuffin's proportional tie splitting, for every bidder at once.

    a_i = min{d_i, d_i / Σ_{k: p_k = p_i} d_k · [Q − Σ_{k: p_k > p_i} d_k]^+}, prices equal within
    :data:`TIE_RTOL` (relative) counting as equal.

    Examples
    --------
    >>> allocate(10.0, [3.0, 2.0, 2.0, 1.0], [4.0, 6.0, 3.0, 5.0]).tolist()
    [4.0, 4.0, 2.0, 0.0]
    """
    Q, p, d = _bids(Q, p, d)
    return _allocate(Q, p, d)


def _allocate(Q: float, p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """:func:`allocate` without input checks (hot loop of the dynamics)."""
    if p.size == 0:
        return np.zeros(0)
    lv, inv = tie_levels(p)
    gsum = np.bincount(inv, weights=d, minlength=lv.size)
    above = gsum.sum() - np.cumsum(gsum)
    avail = np.maximum(Q - above[inv], 0.0)
    tie = gsum[inv]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(d > 0, d / np.where(tie > 0, tie, 1.0) * avail, 0.0)
    return np.minimum(d, share)


def exclusion_cost(Q: float, p: ArrayLike, d: ArrayLike, i: int) -> float:
    """c_i(s) = Σ_{k≠i} p_k (a_k(0; s_{-i}) − a_k(s)): what i's presence costs the others."""
    Q, p, d = _bids(Q, p, d)
    a = allocate(Q, p, d)
    d0 = d.copy()
    d0[i] = 0.0
    a0 = allocate(Q, p, d0)
    mask = np.ones(p.size, dtype=bool)
    mask[i] = False
    return float(p[mask] @ (a0[mask] - a[mask]))


def exclusion_costs(Q: float, p: ArrayLike, d: ArrayLike) -> np.ndarray:
    """:func:`exclusion_cost` for every bidder (O(n² log n))."""
    Q, p, d = _bids(Q, p, d)
    return np.array([exclusion_cost(Q, p, d, i) for i in range(p.size)])


def merge_curves(curves: list[PriceCurve]) -> PriceCurve:
    """The merged price curve P̄_i of a buyer that may split its quantity across resources.

    Segments of all curves sorted by price (stable, so ties keep resource order); ``owner`` of a
    segment is the position of its curve in ``curves``.
    """
    if not curves:
        return PriceCurve(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    levels = np.concatenate([c.levels for c in curves])
    widths = np.concatenate([c.widths for c in curves])
    owner = np.concatenate([np.full(c.levels.size, k, dtype=np.int64) for k, c in enumerate(curves)])
    order = np.argsort(levels, kind="stable")
    return PriceCurve(levels[order], widths[order], owner[order])


def route_curve(curves: list[PriceCurve]) -> PriceCurve:
    """The summed market price P̃_i(z) = Σ_l P_i^l(z) of a route (defined up to min_l Q^l)."""
    if not curves:
        return PriceCurve(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    cap = min(c.total for c in curves)
    Z = np.unique(np.concatenate([c.ends for c in curves]))
    Z = Z[(Z > 0) & (Z <= cap)]
    if cap > 0 and (Z.size == 0 or Z[-1] < cap):
        Z = np.append(Z, cap)
    levels = np.sum([c(Z) for c in curves], axis=0) if Z.size else np.zeros(0)
    widths = np.diff(np.concatenate(([0.0], Z)))
    return PriceCurve(np.asarray(levels, dtype=float), widths, np.full(Z.size, -1, dtype=np.int64))


@dataclass(frozen=True)
class BestReply:
    """An ε-best reply (draft eqs. 3–4).

    Attributes
    ----------
    quantity : float
        v_i, the total quantity (bipartite) or the route quantity.
    price : float
        w_i = θ_i'(v_i).
    quantities : ndarray
        Per-resource bid quantities (sum to v_i in a bipartite market; all v_i on a route).
    prices : ndarray
        Per-resource bid prices (all w_i in a bipartite market; P^l(v) + margin/L on a route).
    sup : float
        sup{z : θ'(z) > P(z), ∫_0^z P ≤ b} before the ε/θ'(0) step back.
    predicted_utility : float
        θ_i(v_i) − ∫_0^{v_i} P(z) dz.
    """

    quantity: float
    price: float
    quantities: np.ndarray
    prices: np.ndarray
    sup: float
    predicted_utility: float


def _sup_quantity(valuation: Valuation, curve: PriceCurve, budget: float, cap: float) -> float:
    """sup{z ≤ cap : θ'(z) > P(z), ∫_0^z P ≤ budget} for a step curve P (eq. 3 without ε)."""
    if curve.levels.size == 0:
        return 0.0
    Z = curve.ends
    Zprev = np.concatenate(([0.0], Z[:-1]))
    g = np.asarray(valuation.inverse_marginal(curve.levels, side="smallest"), dtype=float)
    ok = g > Zprev  # θ' > level somewhere in the segment (a prefix of segments, by monotonicity)
    z = float(np.max(np.minimum(Z, g)[ok])) if np.any(ok) else 0.0
    if math.isfinite(budget):
        C = np.cumsum(curve.levels * curve.widths)
        over = np.flatnonzero(C > budget)
        if over.size:
            m = int(over[0])
            Cprev = C[m - 1] if m > 0 else 0.0
            zb = Zprev[m] + (budget - Cprev) / curve.levels[m]
            z = min(z, float(zb))
    return min(z, cap, float(Z[-1]))


def best_reply(
    valuation: Valuation,
    curves: list[PriceCurve],
    epsilon: float,
    *,
    budget: float = math.inf,
    demand: float = math.inf,
    route: bool = False,
) -> BestReply:
    """Budget-constrained ε-best reply of one buyer against the market price curves of its resources.

    Parameters
    ----------
    valuation : Valuation
        θ_i.
    curves : list of PriceCurve
        P_i^j(·, s_{-i}^j) for each resource j the buyer may bid at (from :func:`price_curve`).
    epsilon : float
        Bid fee ε ≥ 0; the reply steps back ε/θ_i'(0) from the supremum (eq. 3).
    budget : float, default inf
        b_i: the reply's predicted charge ∫_0^v P stays within it.
    demand : float, default inf
        Optional cap D_i on the quantity.
    route : bool, default False
        False: bipartite buyer (merged curve, coordinated price). True: route user (summed curve).

    Returns
    -------
    BestReply

    Raises
    ------
    InvalidInputError
        Negative ε or budget.

    Examples
    --------
    >>> from datamarkets.graphs.valuations import QuadraticValuation
    >>> r = best_reply(QuadraticValuation(4.0, 1.0), [price_curve(3.0, [2.0], [2.0])], 0.0)
    >>> r.quantity, r.price  # θ'(z) = 4 − z beats P = 0 on [0, 1] and P = 2 on (1, 2]
    (2.0, 2.0)
    """
    if not (epsilon >= 0) or not (budget >= 0):
        raise InvalidInputError(f"epsilon and budget must be >= 0, got {epsilon!r}, {budget!r}")
    n = len(curves)
    curve = route_curve(curves) if route else merge_curves(curves)
    zsup = _sup_quantity(valuation, curve, budget, demand)
    v = max(zsup - epsilon / valuation.marginal_at_zero, 0.0)  # (3)
    w = float(valuation.marginal(v))  # (4)
    pred = float(valuation.value(v)) - (float(curve.integral(v)) if v > 0 else 0.0)
    if route:
        q = np.full(n, v)
        if n and v > 0:
            Pl = np.array([float(c(v)) for c in curves])
            prices = Pl + (w - Pl.sum()) / n
        else:
            prices = np.full(n, w / max(n, 1))
        return BestReply(v, w, q, prices, zsup, pred)
    # bipartite: take the cheapest segments until v, per owner (resource position in `curves`)
    q = np.zeros(n)
    if v > 0:
        Z = curve.ends
        Zprev = np.concatenate(([0.0], Z[:-1]))
        take = np.clip(v - Zprev, 0.0, curve.widths)
        np.add.at(q, curve.owner, take)
    return BestReply(v, w, q, np.full(n, w), zsup, pred)
