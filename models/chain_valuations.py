r"""The paper's §5.1 valuation models as named chain-game builders.

All models use the five-neighbour walk: given :math:`v_{i-1}=w_k`, draw
:math:`k'\sim\mathrm{Uniform}\{k-2,\dots,k+2\}` and set :math:`v_i=w_{k'}`, with :math:`v_0=w_0`.

==========  =====================  =========================================  ======================
name        grid indices           :math:`w_k`                                assumptions
==========  =====================  =========================================  ======================
paper-1     :math:`-2n..2n` (4n+1) :math:`e^{k/2}`                            4.1 and 4.2 hold
paper-2     :math:`0..2n` (2n+1)   :math:`k/(2n)`                             4.1 only (w_0 = 0)
paper-3     :math:`-2n..2n` (4n+1) reading of :math:`(-e)^{k/2}` (see below)  4.2 in ratio form only
paper-4     :math:`-2n..2n` (4n+1) :math:`k/(2n)`                             neither
==========  =====================  =========================================  ======================

So Model 1 at n = 5, 8, 12 has L = 21, 33, 49.

Boundary convention. Model 2 "truncates k' to [0, 2n]": we read this as clipping the drawn index,
:math:`k'\leftarrow\min(\max(k',0),2n)`, so the mass of the out-of-range neighbours piles up on the
boundary value (``boundary="clip"``, the default); ``boundary="renormalize"`` instead draws uniformly
from the in-range neighbours. Models 1, 3, 4 start at index 0 of a grid of half-width 2n, so the
walk never reaches the boundary within n steps; their boundary rows (unreachable from
:math:`v_0`) use the same convention only to keep every row stochastic.

Model 3 as printed, :math:`w_k=(-e)^{k/2}`, is not real for odd k. Our reading (``paper-3``) is
:math:`w_k=(-1)^k e^{k/2}`: the ratio :math:`v_i/v_{i-1}=(-1)^{k'-k}e^{(k'-k)/2}` is independent of
:math:`v_{i-1}` (homogeneity in ratio form) and signs alternate (positivity fails). It is NOT the
paper's model and must stay out of any comparison with the paper's Table 1.
"""

from __future__ import annotations

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.models.chain_game import ChainGame, MechanismSpec, mechanism_from_spec

__all__ = ["PAPER_MODELS", "five_neighbour_walk", "paper_model"]

#: Names accepted by :func:`paper_model`; ``paper-3`` is our documented reading, not the paper's.
PAPER_MODELS = ("paper-1", "paper-2", "paper-3", "paper-4")


def five_neighbour_walk(L: int, boundary: str = "clip") -> np.ndarray:
    """Transition matrix of the uniform five-neighbour index walk on ``0..L-1``.

    Parameters
    ----------
    L : int
        Number of grid points.
    boundary : {"clip", "renormalize"}
        ``"clip"`` moves out-of-range mass to the nearest end; ``"renormalize"`` spreads it
        uniformly over the in-range neighbours.

    Returns
    -------
    numpy.ndarray
        ``(L, L)`` row-stochastic matrix.

    Raises
    ------
    InvalidInputError
        If ``L < 1`` or the boundary rule is unknown.

    Examples
    --------
    >>> five_neighbour_walk(3)[0].round(12).tolist()
    [0.6, 0.2, 0.2]
    """
    if L < 1:
        raise InvalidInputError(f"grid size must be positive, got {L!r}")
    if boundary not in ("clip", "renormalize"):
        raise InvalidInputError(f"boundary must be 'clip' or 'renormalize', got {boundary!r}")
    Q = np.zeros((L, L))
    for k in range(L):
        targets = np.arange(k - 2, k + 3)
        if boundary == "clip":
            for kk in np.clip(targets, 0, L - 1):
                Q[k, kk] += 0.2
        else:
            inside = targets[(targets >= 0) & (targets < L)]
            Q[k, inside] = 1.0 / inside.size
    return Q


def paper_model(name: str, n: int, mechanism: MechanismSpec = "raw", boundary: str = "clip") -> ChainGame:
    """The §5.1 valuation model ``name`` with ``n`` trades under ``mechanism``.

    Parameters
    ----------
    name : {"paper-1", "paper-2", "paper-3", "paper-4"}
        Model name (``"1"`` … ``"4"`` and ``"model-1"`` are accepted too). ``paper-3`` is our
        reading of an ill-posed printed model (see the module docstring).
    n : int
        Number of trades (chain of players ``0..n``).
    mechanism : str, mapping or array_like
        See :func:`~datamarkets.models.chain_game.mechanism_from_spec`.
    boundary : {"clip", "renormalize"}
        Boundary rule of the five-neighbour walk.

    Returns
    -------
    ChainGame

    Raises
    ------
    InvalidInputError
        Unknown model, bad ``n`` or boundary rule.
    MechanismError
        The mechanism breaks Def. 2.5 / 2.6.

    Examples
    --------
    >>> g = paper_model("paper-1", 5)
    >>> g.L, float(g.values[g.start.argmax()])
    (21, 1.0)
    """
    key = str(name).strip().lower().replace("model-", "paper-").replace("model", "paper-")
    if key in ("1", "2", "3", "4"):
        key = f"paper-{key}"
    if key not in PAPER_MODELS:
        raise InvalidInputError(f"unknown model {name!r}; choose one of {PAPER_MODELS!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"chain length n must be a positive integer, got {n!r}")
    n = int(n)
    t = mechanism_from_spec(mechanism, n)
    mech_label = mechanism if isinstance(mechanism, str) else "custom"
    if key == "paper-2":
        k = np.arange(0, 2 * n + 1)
        W = k / (2 * n)
        Q = five_neighbour_walk(k.size, boundary)
        start = 0
    else:
        k = np.arange(-2 * n, 2 * n + 1)
        Q = five_neighbour_walk(k.size, boundary)
        start = 2 * n  # index of w_0
        if key == "paper-1":
            W = np.exp(k / 2.0)
        elif key == "paper-4":
            W = k / (2 * n)
        else:  # paper-3, our reading w_k = (-1)^k e^{k/2}; sort the grid and permute Q
            raw = np.where(k % 2 == 0, 1.0, -1.0) * np.exp(k / 2.0)
            order = np.argsort(raw)
            W = raw[order]
            Q = Q[np.ix_(order, order)]
            start = int(np.flatnonzero(order == 2 * n)[0])
    Qn = np.broadcast_to(Q, (n, *Q.shape))
    pi = np.zeros(W.size)
    pi[start] = 1.0  # v_0 = w_start deterministically
    return ChainGame(W, pi, Qn, t, label=f"{key}/{mech_label}")
