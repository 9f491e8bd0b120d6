r"""Private max-bid computation (Algorithm 1 of the data-share paper) by additive secret sharing.

Lemma 1 (Benaloh 1987): f(x_1, ..., x_n) = Σ x_i mod M is privately computable. Each party i
splits its input into n shares r_{i1}, ..., r_{in}, uniform on Z_M subject to Σ_k r_{ik} ≡ x_i,
sends r_{ik} to party k (keeping r_{ii}); party k publishes its partial sum S_k = Σ_i r_{ik}; the
total is Σ_k S_k mod M. Any n − 1 shares of one input are independent uniform draws, so the shares
a party receives are uniform whatever the inputs; the published partial sums reveal the total only.

Algorithm 1 finds the winning bid with such sums. Bids are integer price levels 0..L (see
:func:`quantize`). For a threshold ω each bidder sets the bit b_i = [p_i ≥ ω]; the parties compute
e(ω) = Σ b_i mod (n+1) — the number of bids at or above ω, exactly, since it is at most n — by a
secure sum. A binary search over ω finds the largest ω with e(ω) ≥ 1, the maximum bid; the bidders
whose bid equals it learn locally that they won (line 12); with ties the first such bidder in
index order is the winner (the printed loop returns the first i). Nothing but the counts e(ω) is
revealed. Messages: n(n−1) shares plus n(n−1) broadcast partial sums per secure sum,
⌈log₂(L+1)⌉ sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from datamarkets.errors import InvalidInputError
from datamarkets.validation import check_seed

__all__ = ["MaxBidResult", "SecureSum", "private_max_bid", "quantize", "secure_sum", "split_shares"]


def split_shares(value: int, n: int, modulus: int, rng: np.random.Generator) -> np.ndarray:
    """n shares uniform on Z_M with Σ shares ≡ value (mod M): n − 1 uniform draws and a balancing one."""
    r = rng.integers(0, modulus, size=n)
    r[-1] = (value - int(r[:-1].sum())) % modulus
    return r


@dataclass
class SecureSum:
    """Outcome of one secure sum: the total, the messages sent, and what each party saw.

    ``received[k]`` holds the shares party k received from the others (index i ≠ k, in order);
    ``partials`` the published partial sums S_1..S_n.
    """

    total: int
    messages: int
    received: np.ndarray
    partials: np.ndarray

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: parties, received, summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def secure_sum(values: ArrayLike, modulus: int, rng: np.random.Generator) -> SecureSum:
    """Benaloh's additive secret-sharing sum Σ values mod ``modulus`` (Lemma 1).

    Raises
    ------
    InvalidInputError
        Fewer than two parties, modulus < 2, or inputs outside Z_M.

    Examples
    --------
    >>> secure_sum([1, 0, 1], 4, np.random.default_rng(0)).total
    2
    """
    x = np.asarray(values, dtype=np.int64).ravel()
    n = x.size
    if n < 2 or modulus < 2:
        raise InvalidInputError(f"a secure sum needs >= 2 parties and modulus >= 2, got {n} and {modulus}")
    if np.any(x < 0) or np.any(x >= modulus):
        raise InvalidInputError(f"inputs must lie in Z_{modulus}, got {x.tolist()!r}")
    R = np.stack([split_shares(int(v), n, modulus, rng) for v in x])  # R[i, k] = share of i for k
    partials = R.sum(axis=0) % modulus  # S_k published by party k
    total = int(partials.sum() % modulus)
    received = np.stack([np.delete(R[:, k], k) for k in range(n)])
    return SecureSum(total, 2 * n * (n - 1), received, partials)


def quantize(prices: ArrayLike, resolution: float) -> np.ndarray:
    """Integer price levels round(p / resolution) (bids must be ≥ 0 and finite)."""
    p = np.asarray(prices, dtype=float)
    if np.any(~np.isfinite(p)) or np.any(p < 0) or not (resolution > 0):
        raise InvalidInputError(
            f"prices must be finite >= 0 and resolution > 0, got {prices!r}, {resolution!r}"
        )
    return np.rint(p / resolution).astype(np.int64)


@dataclass
class MaxBidResult:
    """Winner and maximum bid of Algorithm 1, with the protocol's cost and transcript."""

    max_bid: int
    winner: int
    winners: list[int]
    messages: int
    sums: int
    counts: dict[int, int] = field(default_factory=dict)  # ω → e(ω), everything that was revealed
    transcripts: list[SecureSum] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_bid": self.max_bid,
            "winner": self.winner,
            "winners": self.winners,
            "messages": self.messages,
            "sums": self.sums,
            "counts": {str(k): v for k, v in self.counts.items()},
        }

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: counts, winners, summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def private_max_bid(
    bids: ArrayLike, max_level: int | None = None, *, seed: int | None = None, record: bool = False
) -> MaxBidResult:
    """Algorithm 1: the maximum bid and its (first) bidder, revealing only threshold counts.

    Parameters
    ----------
    bids : array of int
        Price levels p_i ∈ {0, ..., L} of the n ≥ 2 bidders (use :func:`quantize` for prices).
    max_level : int, optional
        L, public upper bound of the levels (default: the largest bid, which a real run would
        not know — pass the public bound to keep the number of sums independent of the bids).
    seed : int, optional
        Seed of the parties' randomness.
    record : bool
        Keep every :class:`SecureSum` transcript (for privacy tests).

    Raises
    ------
    InvalidInputError
        Fewer than two bidders, negative bids, or a bid above ``max_level``.

    Examples
    --------
    >>> r = private_max_bid([3, 7, 5, 7], max_level=15, seed=1)
    >>> r.max_bid, r.winner, r.winners, r.sums, r.messages
    (7, 1, [1, 3], 4, 96)
    """
    p = np.asarray(bids).ravel()
    if p.size < 2:
        raise InvalidInputError(f"Algorithm 1 needs at least two bidders, got {p.size}")
    if not np.issubdtype(p.dtype, np.integer):
        raise InvalidInputError(f"bids must be integer price levels (see quantize), got dtype {p.dtype}")
    L = int(p.max()) if max_level is None else int(max_level)
    if np.any(p < 0) or np.any(p > L):
        raise InvalidInputError(f"bids must lie in 0..{L}, got {p.tolist()!r}")
    n = p.size
    M = n + 1  # line 10: Σ bits mod (n+1) is exact
    rng = np.random.default_rng(check_seed(seed))
    lo, hi = 0, L  # invariant: max bid ∈ [lo, hi]
    counts: dict[int, int] = {}
    msgs = sums = 0
    transcripts = []
    n_steps = math.ceil(math.log2(L + 1)) if L > 0 else 0
    for _ in range(n_steps):
        if lo == hi:  # keep the number of sums public and fixed: a dummy threshold
            omega = hi
        else:
            omega = (lo + hi + 1) // 2
        bits = (p >= omega).astype(np.int64)  # lines 3–9, computed locally by each bidder
        s = secure_sum(bits, M, rng)  # line 10
        msgs += s.messages
        sums += 1
        counts[omega] = s.total
        if record:
            transcripts.append(s)
        if lo != hi:
            if s.total >= 1:
                lo = omega
            else:
                hi = omega - 1
    winners = [int(i) for i in np.flatnonzero(p == lo)]  # line 12: each bidder checks locally
    return MaxBidResult(lo, winners[0], winners, msgs, sums, counts, transcripts)
