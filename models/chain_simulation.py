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

__all__ = ["METRICS", "paper_protocol", "sample_paths", "simulate"]

#: Metric names returned by :func:`simulate` (each also with a ``_se`` standard error).
METRICS = ("social_welfare", "transaction_volume", "trade_success", "player_utility")


def _draw(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one column index per sample from the rows ``cum[rows]``."""
    u = rng.random(rows.size)
    idx = (u[:, None] >= cum[rows]).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1)


def sample_paths(game: ChainGame, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``samples`` valuation index paths, shape ``(samples, n+1)``."""
    n = game.n
    K = np.empty((samples, n + 1), dtype=np.int64)
    cum0 = np.cumsum(game.start)[None, :]
    K[:, 0] = _draw(rng, cum0, np.zeros(samples, dtype=np.int64))
    cum_prev = None
    for i in range(1, n + 1):
        if cum_prev is None or game.Q.strides[0] != 0:
            cum_prev = np.cumsum(game.Q[i - 1], axis=1)
        K[:, i] = _draw(rng, cum_prev, K[:, i - 1])
    return K


def simulate(
    game: ChainGame, eq: ChainEquilibrium, samples: int = 10_000, seed: int | None = 0
) -> dict[str, Any]:
    """Play the equilibrium strategies on sampled valuation profiles.

    Parameters
    ----------
    game : ChainGame
    eq : ChainEquilibrium
        Strategies to play (thresholds and prices).
    samples : int
        Number of valuation profiles.
    seed : int or None
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    dict
        ``social_welfare``, ``transaction_volume`` (floats), ``trade_success`` (n,),
        ``player_utility`` (n+1,), each with a ``<name>_se`` standard error of the mean, plus
        ``samples`` and ``seed``.

    Raises
    ------
    InvalidInputError
        If ``samples < 2`` or the equilibrium does not belong to a game of the same shape.

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
    if eq.thresholds.shape != (game.n + 1, game.L):
        raise InvalidInputError(
            f"equilibrium thresholds have shape {eq.thresholds.shape!r}, game needs {(game.n + 1, game.L)!r}"
        )
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
        "seed": seed,
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
