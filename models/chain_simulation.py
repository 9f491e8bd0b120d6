r"""Monte Carlo play of the chain equilibrium (the paper's §5.1 protocol) — a check on the exact values.

:func:`simulate` draws valuation paths :math:`v_0\sim\pi`, :math:`v_i\sim Q_{i-1}(v_{i-1},\cdot)`,
lets seller :math:`i-1` post :math:`p^*(i-1,v_{i-1})` and buyer :math:`i` buy iff
:math:`u^*(i,v_i)\ge p^*(i-1,v_{i-1})`, and averages the realised utilities of Eq. 2. Everything is
vectorised over samples and seeded through :func:`numpy.random.default_rng`.

:func:`paper_protocol` repeats this for several seeds (the paper used 5 seeds × 10,000 profiles)
and reports mean and standard deviation across seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.models.chain_equilibrium import ChainEquilibrium, solve_equilibrium
from datamarkets.models.chain_game import ChainGame
from datamarkets.validation import check_seed

__all__ = ["METRICS", "paper_protocol", "sample_paths", "simulate"]

#: Metric names returned by :func:`simulate` (each also with a ``_se`` standard error).
METRICS = ("social_welfare", "transaction_volume", "trade_success", "player_utility")


def _cdf(P: np.ndarray) -> np.ndarray:
    """Row-wise CDF normalised so that its last entry is exactly 1.

    A row summing to 1 - 1e-16 (allowed by ``PROB_ATOL``) would otherwise let a uniform draw land
    beyond the last positive entry and pick a zero-probability value; ``x / x == 1`` in IEEE
    arithmetic, so after normalisation trailing zero-probability columns can never be drawn.
    """
    cum = np.cumsum(P, axis=-1)
    return cum / cum[..., -1:]


def _draw(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one column index per sample from the rows ``cum[rows]`` (chunked)."""
    u = rng.random(rows.size)
    idx = np.empty(rows.size, dtype=np.int64)
    chunk = max(1, 4_000_000 // cum.shape[1])  # keep the (chunk, L) comparison below ~4M entries
    for a in range(0, rows.size, chunk):
        b = min(a + chunk, rows.size)
        idx[a:b] = (u[a:b, None] >= cum[rows[a:b]]).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1)


def sample_paths(game: ChainGame, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``samples`` valuation index paths, shape ``(samples, n+1)``.

    Parameters
    ----------
    game : ChainGame
    samples : int
        Number of paths.
    rng : numpy.random.Generator
        Source of the uniform draws (inverse-CDF sampling).

    Returns
    -------
    ndarray of int, shape (samples, n+1)
        Value indices :math:`v_0..v_n`.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> K = sample_paths(paper_model("paper-1", 3), 4, np.random.default_rng(0))
    >>> K.shape, bool(np.all(K[:, 0] == 6)), bool(np.all(np.abs(np.diff(K, axis=1)) <= 2))
    ((4, 4), True, True)
    """
    n = game.n
    K = np.empty((samples, n + 1), dtype=np.int64)
    cum0 = _cdf(game.start)[None, :]
    K[:, 0] = _draw(rng, cum0, np.zeros(samples, dtype=np.int64))
    cum_prev = None
    for i in range(1, n + 1):
        if cum_prev is None or game.Q.strides[0] != 0:
            cum_prev = _cdf(game.Q[i - 1])
        K[:, i] = _draw(rng, cum_prev, K[:, i - 1])
    return K


def simulate(
    game: ChainGame,
    eq: ChainEquilibrium,
    samples: int = 10_000,
    seed: int | np.random.SeedSequence | None = 0,
) -> dict[str, Any]:
    """Play the equilibrium strategies on sampled valuation profiles.

    Parameters
    ----------
    game : ChainGame
    eq : ChainEquilibrium
        Strategies to play (thresholds and prices).
    samples : int
        Number of valuation profiles.
    seed : int, numpy.random.SeedSequence or None
        Seed of :func:`numpy.random.default_rng` (a non-negative integer, or a spawned
        ``SeedSequence`` for independent streams).

    Returns
    -------
    dict
        ``social_welfare``, ``transaction_volume`` (floats), ``trade_success`` (n,),
        ``player_utility`` (n+1,), each with a ``<name>_se`` standard error of the mean, plus
        ``samples`` and ``seed``.

    Raises
    ------
    InvalidInputError
        If ``samples < 2``, the seed is not one of the accepted kinds, or the equilibrium does not
        belong to a game of the same shape.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> g = paper_model("paper-1", 3, "ave")
    >>> out = simulate(g, solve_equilibrium(g), samples=1000, seed=1)
    >>> sorted(out)[:3]
    ['player_utility', 'player_utility_se', 'samples']
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise InvalidInputError(f"samples must be an integer >= 2, got {samples!r}")
    check_seed(seed)
    if not hasattr(eq, "thresholds"):
        raise InvalidInputError(f"eq must be a ChainEquilibrium, got {type(eq).__name__!r}")
    if eq.thresholds.shape != (game.n + 1, game.L):
        raise InvalidInputError(
            f"equilibrium thresholds have shape {eq.thresholds.shape!r}, game needs {(game.n + 1, game.L)!r}"
        )
    if not (
        seed is None
        or isinstance(seed, np.random.SeedSequence)
        or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0)
    ):
        raise InvalidInputError(f"seed must be a non-negative integer, a SeedSequence or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    n = game.n
    K = sample_paths(game, int(samples), rng)
    V = game.values[K]  # (S, n+1)
    y = np.ones((samples, n + 1), dtype=bool)  # y_0 = 1
    pay = np.zeros((samples, n))
    for i in range(1, n + 1):
        price = eq.prices[i - 1][K[:, i - 1]]
        buys = eq.thresholds[i][K[:, i]] >= price
        y[:, i] = y[:, i - 1] & buys
        pay[:, i - 1] = price * y[:, i]
    U = V * y  # value realised, Eq. 2
    U[:, 1:] -= pay
    U += pay @ game.t  # reallocated shares
    sw = U.sum(axis=1)
    tv = y[:, 1:].sum(axis=1)
    root = np.sqrt(samples)

    def se(x: np.ndarray) -> Any:
        return x.std(axis=0, ddof=1) / root

    ys = y[:, 1:].astype(float)
    return {
        "social_welfare": float(sw.mean()),
        "social_welfare_se": float(se(sw)),
        "transaction_volume": float(tv.mean()),
        "transaction_volume_se": float(se(tv.astype(float))),
        "trade_success": ys.mean(axis=0),
        "trade_success_se": se(ys),
        "player_utility": U.mean(axis=0),
        "player_utility_se": se(U),
        "samples": int(samples),
        "seed": seed if not isinstance(seed, np.random.SeedSequence) else repr(seed),
    }


def paper_protocol(
    game: ChainGame,
    seeds: int = 5,
    samples: int = 10_000,
    eq: ChainEquilibrium | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """The paper's estimate: ``seeds`` runs of ``samples`` profiles, mean ± sd across seeds.

    Parameters
    ----------
    game : ChainGame
    seeds : int
        Number of seeds (``first_seed .. first_seed+seeds-1``).
    samples : int
        Profiles per seed (the paper: 10,000).
    eq : ChainEquilibrium, optional
        Solved equilibrium; solved with the fast route when omitted.
    first_seed : int
        First seed.

    Returns
    -------
    dict
        For each metric in :data:`METRICS`: ``<metric>_mean`` and ``<metric>_sd`` (sample standard
        deviation across seeds, ``ddof=1``; 0 when ``seeds == 1``), plus ``seeds`` and ``samples``.

    Raises
    ------
    InvalidInputError
        If ``seeds < 1``.

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> out = paper_protocol(paper_model("paper-2", 3, "ave"), seeds=2, samples=500)
    >>> out["seeds"], out["samples"], out["trade_success_mean"].shape
    (2, 500, (3,))
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise InvalidInputError(f"seeds must be a positive integer, got {seeds!r}")
    eq = eq if eq is not None else solve_equilibrium(game)
    runs = [simulate(game, eq, samples, first_seed + s) for s in range(seeds)]
    out: dict[str, Any] = {"seeds": int(seeds), "samples": int(samples)}
    for m in METRICS:
        vals = np.array([r[m] for r in runs], dtype=float)
        out[f"{m}_mean"] = vals.mean(axis=0)
        out[f"{m}_sd"] = vals.std(axis=0, ddof=1) if seeds > 1 else np.zeros_like(vals[0])
        if np.ndim(out[f"{m}_mean"]) == 0:
            out[f"{m}_mean"] = float(out[f"{m}_mean"])
            out[f"{m}_sd"] = float(out[f"{m}_sd"])
    return out
