r"""Profit-reallocation mechanisms of the chain trading game (paper §2.2, §5.1).

A mechanism :math:`t\in\mathbb{R}_+^{n\times(n+1)}` pays player :math:`j` the share ``t[i-1, j]`` of
trade :math:`i`'s price (the paper's :math:`t_{ij}`). It must be budget-feasible (Def. 2.5: every
row sums to at most one) and past-only (Def. 2.6: ``t[i-1, j] = 0`` for :math:`j\ge i`)
(:func:`validate_mechanism`). Built-in mechanisms: RAW (:math:`t_{i,i-1}=1`), AVE
(:math:`t_{ij}=1/i`, :math:`j<i`) and TBDS(:math:`\alpha`) (:math:`t_{ij}=(1-\alpha)\alpha^{i-j-1}`
for :math:`0<j<i`, :math:`t_{i0}=\alpha^{i-1}`), and :func:`mechanism_from_spec` reads any of them
(or a matrix) from a name, a ``{"tbds": alpha}`` mapping or nested lists. The game that uses them
is :class:`~datamarkets.models.chain_game.ChainGame`.

References
----------
"Incentivizing Data Trading via Profit Reallocation", arXiv:2606.31202 (2026), §2.2, §5.1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError, MechanismError
from datamarkets.validation import is_real, real_array

__all__ = [
    "MAX_TRADES",
    "PROB_ATOL",
    "MechanismSpec",
    "ave_mechanism",
    "check_chain_length",
    "mechanism_from_spec",
    "raw_mechanism",
    "tbds_mechanism",
    "validate_mechanism",
]

#: Absolute tolerance for "a row of probabilities sums to one" and "a mechanism row sums to ≤ 1".
PROB_ATOL = 1e-9
#: Largest chain length accepted: the dense ``n×(n+1)`` mechanism and the ``(n+1)×L×(n+1)`` downstream
#: profit array must fit in memory (n = 10,000 already needs 0.8 GB for ``t`` alone).
MAX_TRADES = 10_000

MechanismSpec = str | Mapping[str, Any] | Sequence[Sequence[float]] | np.ndarray


def check_chain_length(n: Any) -> int:
    """``n`` as an int if it is a chain length in ``1..MAX_TRADES``, else :class:`InvalidInputError`.

    Examples
    --------
    >>> check_chain_length(3)
    3
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"chain length n must be a positive integer, got {n!r}")
    if n > MAX_TRADES:
        raise InvalidInputError(f"chain length n={n!r} exceeds the supported maximum {MAX_TRADES!r}")
    return int(n)


def raw_mechanism(n: int) -> np.ndarray:
    """RAW (baseline) mechanism: the seller keeps the whole price, :math:`t_{i,i-1}=1`.

    Parameters
    ----------
    n : int
        Number of trades.

    Returns
    -------
    numpy.ndarray
        ``(n, n+1)`` matrix with ``t[i-1, i-1] = 1``.

    Raises
    ------
    InvalidInputError
        If ``n`` is not a positive integer.

    Examples
    --------
    >>> raw_mechanism(2)
    array([[1., 0., 0.],
           [0., 1., 0.]])
    """
    n = check_chain_length(n)
    t = np.zeros((n, n + 1))
    t[np.arange(n), np.arange(n)] = 1.0
    return t


def ave_mechanism(n: int) -> np.ndarray:
    """AVE mechanism (§5.1): trade *i*'s price is split equally, :math:`t_{ij}=1/i` for :math:`j<i`.

    Parameters
    ----------
    n : int
        Number of trades.

    Returns
    -------
    numpy.ndarray
        ``(n, n+1)`` matrix with ``t[i-1, j] = 1/i`` for ``j < i``.

    Raises
    ------
    InvalidInputError
        If ``n`` is not a positive integer.

    Examples
    --------
    >>> ave_mechanism(2)
    array([[1. , 0. , 0. ],
           [0.5, 0.5, 0. ]])
    """
    n = check_chain_length(n)
    t = np.zeros((n, n + 1))
    for i in range(1, n + 1):
        t[i - 1, :i] = 1.0 / i
    return t


def tbds_mechanism(n: int, alpha: float) -> np.ndarray:
    r"""TBDS(:math:`\alpha`) of Xin et al. (§2.2): :math:`t_{ij}=(1-\alpha)\alpha^{i-j-1}` for
    :math:`0<j<i` and :math:`t_{i0}=\alpha^{i-1}` (with :math:`0^0=1`, so TBDS(0) = RAW).

    Parameters
    ----------
    n : int
        Number of trades.
    alpha : float
        Upstream share in :math:`[0, 1]`.

    Returns
    -------
    numpy.ndarray
        ``(n, n+1)`` budget-balanced, past-only matrix.

    Raises
    ------
    MechanismError
        If ``alpha`` is not a finite number in ``[0, 1]``.

    Examples
    --------
    >>> tbds_mechanism(2, 0.5)
    array([[1. , 0. , 0. ],
           [0.5, 0.5, 0. ]])
    """
    n = check_chain_length(n)
    if not is_real(alpha):  # "0.5" or true is bad input, not a number
        raise MechanismError(f"TBDS alpha must be a number in [0, 1], got {alpha!r}")
    a = float(alpha)
    if not (0.0 <= a <= 1.0):
        raise MechanismError(f"TBDS alpha must lie in [0, 1], got {alpha!r}")
    t = np.zeros((n, n + 1))
    for i in range(1, n + 1):
        t[i - 1, 0] = a ** (i - 1)
        for j in range(1, i):
            t[i - 1, j] = (1.0 - a) * a ** (i - j - 1)
    return t


def validate_mechanism(t: Any, n: int) -> np.ndarray:
    """Check a reallocation matrix against shape, finiteness, Def. 2.5 and Def. 2.6.

    Parameters
    ----------
    t : array_like
        ``(n, n+1)`` matrix; row ``i-1`` is trade *i*, column *j* is player *j*.
    n : int
        Number of trades.

    Returns
    -------
    numpy.ndarray
        The matrix as a float array.

    Raises
    ------
    InvalidInputError
        Wrong shape, non-numeric, NaN or infinite entries.
    MechanismError
        Negative entry, a row summing above one (Def. 2.5), or a share paid to a player
        ``j >= i`` (Def. 2.6).

    Examples
    --------
    >>> validate_mechanism([[1.0, 0.0]], 1).tolist()
    [[1.0, 0.0]]
    >>> validate_mechanism([[0.5, 0.5]], 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    datamarkets.errors.MechanismError: mechanism is not past-only (Def. 2.6): trade 1 pays player 1 ...
    """
    n = check_chain_length(n)
    arr = real_array(t, "mechanism", message=None).copy()  # strings or booleans are bad input
    if arr.shape != (n, n + 1):
        raise InvalidInputError(f"mechanism must have shape {(n, n + 1)!r}, got {arr.shape!r}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise InvalidInputError(
            f"mechanism entry t[trade {i + 1!r}, player {j!r}] is not finite: {float(arr[i, j])!r}"
        )
    neg = np.argwhere(arr < 0)
    if neg.size:
        i, j = (int(x) for x in neg[0])
        raise MechanismError(
            f"mechanism entry t[trade {i + 1!r}, player {j!r}] is negative: {float(arr[i, j])!r}"
        )
    for i in range(1, n + 1):
        future = arr[i - 1, i:]
        if np.any(future != 0):
            j = i + int(np.flatnonzero(future)[0])
            raise MechanismError(
                f"mechanism is not past-only (Def. 2.6): trade {i!r} pays player {j!r} "
                f"the share {float(arr[i - 1, j])!r}; only players j < {i!r} may receive a share"
            )
        s = float(arr[i - 1].sum())
        if s > 1.0 + PROB_ATOL:
            raise MechanismError(
                f"mechanism is not budget-feasible (Def. 2.5): shares of trade {i!r} sum to {float(s)!r} > 1"
            )
    arr.setflags(write=False)
    return arr


def mechanism_from_spec(spec: MechanismSpec, n: int) -> np.ndarray:
    """Build a mechanism from ``"raw"``, ``"ave"``, ``{"tbds": alpha}`` or an ``n×(n+1)`` matrix.

    Parameters
    ----------
    spec : str, mapping or array_like
        The mechanism; strings are case-insensitive. ``"tbds:0.5"`` is also accepted.
    n : int
        Number of trades.

    Returns
    -------
    numpy.ndarray
        A validated ``(n, n+1)`` read-only matrix.

    Raises
    ------
    InvalidInputError
        Unknown name, malformed mapping or matrix.
    MechanismError
        The matrix breaks Def. 2.5 / 2.6, or a TBDS alpha outside ``[0, 1]``.

    Examples
    --------
    >>> mechanism_from_spec({"tbds": 0.0}, 2).tolist() == raw_mechanism(2).tolist()
    True
    """
    n = check_chain_length(n)
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name == "raw":
            return validate_mechanism(raw_mechanism(n), n)
        if name == "ave":
            return validate_mechanism(ave_mechanism(n), n)
        if name.startswith("tbds:") or name.startswith("tbds="):
            return validate_mechanism(tbds_mechanism(n, _parse_float(name[5:], "TBDS alpha")), n)
        raise InvalidInputError(
            f"unknown mechanism {spec!r}; use 'raw', 'ave', {{'tbds': alpha}} or an n×(n+1) matrix"
        )
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys != {"tbds"}:
            raise InvalidInputError(
                f"a mechanism mapping must be {{'tbds': alpha}}, got keys {sorted(keys)!r}"
            )
        return validate_mechanism(tbds_mechanism(n, spec["tbds"]), n)
    return validate_mechanism(spec, n)


def _parse_float(s: str, what: str) -> float:
    try:
        return float(s)
    except ValueError as exc:
        raise InvalidInputError(f"{what} must be a number, got {s!r}") from exc
