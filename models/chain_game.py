r"""Sequential chain data trading game with finite-support Markov valuations (paper §2, §3.2).

Players :math:`0,\dots,n` sit on a chain; in trade :math:`i` (:math:`i=1..n`) player :math:`i-1`
posts a price :math:`p_{i-1}\ge 0` and player :math:`i` buys or not. Valuations live on a grid
:math:`W=\{w_1<\dots<w_L\}` and form a Markov chain (Assumptions 2.1, 3.4):

.. math::  v_0 \sim \pi, \qquad \Pr[v_i=w_l \mid v_{i-1}=w_k] = Q_{i-1,k,l}.

A profit-reallocation mechanism :math:`t\in\mathbb{R}_+^{n\times(n+1)}` pays player :math:`j` the share
``t[i-1, j]`` of trade :math:`i`'s price (the paper's :math:`t_{ij}`). It must be budget-feasible
(Def. 2.5: every row sums to at most one) and past-only (Def. 2.6: ``t[i-1, j] = 0`` for
:math:`j\ge i`). The built-in mechanisms (RAW, AVE, TBDS(:math:`\alpha`), §2.2, §5.1) and their
validation live in :mod:`~datamarkets.models.chain_mechanisms` and are re-exported here.

References
----------
"Incentivizing Data Trading via Profit Reallocation", arXiv:2606.31202 (2026), §2–§3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.io import read_json
from datamarkets.models.chain_mechanisms import (
    MAX_TRADES,
    PROB_ATOL,
    MechanismSpec,
    ave_mechanism,
    check_chain_length,
    mechanism_from_spec,
    raw_mechanism,
    tbds_mechanism,
    validate_mechanism,
)
from datamarkets.validation import real_array

__all__ = [
    "MAX_TRADES",
    "PROB_ATOL",
    "TIE_RULES",
    "VALUE_LIMIT",
    "ChainGame",
    "MechanismSpec",
    "ave_mechanism",
    "check_tie_rule",
    "load_game",
    "mechanism_from_spec",
    "raw_mechanism",
    "tbds_mechanism",
    "validate_mechanism",
]

#: Bound on :math:`\max_k|w_k|\,(n+1)^2`. Budget feasibility passes each value back along the chain
#: at most once, so thresholds, prices and welfare are at most :math:`(n+1)\max|w|` in magnitude; the
#: extra factor :math:`n+1` is margin for intermediate sums. Below this bound no float64 overflows.
VALUE_LIMIT = 1e300

#: Equilibrium selections among maximising prices (Eq. 9): the lowest (default) or the highest wins.
TIE_RULES = ("lowest", "highest")


def check_tie_rule(tie_rule: Any) -> str:
    """``tie_rule`` if it is one of :data:`TIE_RULES`, else :class:`InvalidInputError`.

    Examples
    --------
    >>> check_tie_rule("highest")
    'highest'
    """
    if not isinstance(tie_rule, str) or tie_rule not in TIE_RULES:
        raise InvalidInputError(f"tie_rule must be one of {TIE_RULES!r}, got {tie_rule!r}")
    return tie_rule


# ----------------------------------------------------------------------------------------------
# the game
# ----------------------------------------------------------------------------------------------
def _as_float_array(x: Any, name: str) -> np.ndarray:
    return real_array(x, name)  # strings / bools are bad input, not numbers (shared with every loader)


def _check_distribution(p: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(p)):
        raise InvalidInputError(f"{where} has a NaN or infinite probability")
    if np.any(p < 0):
        j = int(np.flatnonzero(p < 0)[0])
        raise InvalidInputError(f"{where} has a negative probability at index {j!r}: {float(p[j])!r}")
    s = float(p.sum())
    if abs(s - 1.0) > PROB_ATOL:
        raise InvalidInputError(f"{where} sums to {float(s)!r}, not 1")


def _validate_Q(Q: np.ndarray, n: int, L: int) -> None:
    if Q.shape != (n, L, L):
        raise InvalidInputError(f"transitions must have shape {(n, L, L)!r}, got {Q.shape!r}")
    # a broadcast view of one matrix (strides[0] == 0) needs one check only
    trades = range(1) if Q.strides[0] == 0 else range(n)
    for i in trades:
        Qi = Q[i]
        if not np.all(np.isfinite(Qi)):
            k, l = (int(x) for x in np.argwhere(~np.isfinite(Qi))[0])
            raise InvalidInputError(
                f"transition of trade {i + 1!r} has a non-finite entry at row {k!r}, col {l!r}"
            )
        if np.any(Qi < 0):
            k, l = (int(x) for x in np.argwhere(Qi < 0)[0])
            raise InvalidInputError(
                f"transition of trade {i + 1!r} has a negative probability at row {k!r}, "
                f"col {l!r}: {float(Qi[k, l])!r}"
            )
        rs = Qi.sum(axis=1)
        badrow = np.flatnonzero(np.abs(rs - 1.0) > PROB_ATOL)
        if badrow.size:
            k = int(badrow[0])
            raise InvalidInputError(
                f"transition of trade {i + 1!r}: row {k!r} sums to {float(rs[k])!r}, not 1"
            )


@dataclass(frozen=True, eq=False)
class ChainGame:
    """A chain trading game ``(n, L, W, π, Q, t)`` with validation at the door.

    Parameters
    ----------
    values : array_like, shape (L,)
        Value grid :math:`W`, strictly increasing finite floats.
    start : int or array_like, shape (L,)
        Distribution of :math:`v_0`: a value index ``k`` (0-based, :math:`v_0=w_k` surely) or a
        probability vector. Stored as the probability vector.
    Q : array_like, shape (n, L, L)
        ``Q[i-1, k, l] = P(v_i = w_l | v_{i-1} = w_k)``: one row-stochastic matrix per trade.
        A read-only broadcast view (``numpy.broadcast_to``) of a single matrix is kept as is.
    t : array_like, shape (n, n+1)
        Reallocation matrix, ``t[i-1, j]`` = share of trade *i*'s price paid to player *j*.
    label : str, optional
        Free-form name (e.g. ``"paper-1/ave"``) carried into results.
    tie_rule : {"lowest", "highest"}, default "lowest"
        Which maximising price a player posts when several tie (Eq. 9's argmax is a set; the paper
        only requires the rule not to depend on the mechanism). Part of the game's equilibrium
        selection, so it is saved with the game (only when not the default).

    Raises
    ------
    InvalidInputError
        Wrong shapes, NaN/inf, non-increasing ``values``, a start index out of range, negative
        probabilities or rows that do not sum to one.
    MechanismError
        ``t`` breaks Def. 2.5 (row sum > 1), Def. 2.6 (pays a player ``j >= i``) or is negative.

    Examples
    --------
    >>> g = ChainGame([0.0, 1.0], 0, [[[0.5, 0.5], [0.0, 1.0]]], raw_mechanism(1))
    >>> g.n, g.L, g.start.tolist()
    (1, 2, [1.0, 0.0])
    """

    values: np.ndarray
    start: np.ndarray
    Q: np.ndarray
    t: np.ndarray
    label: str = field(default="")
    tie_rule: str = field(default="lowest")

    def __post_init__(self) -> None:
        check_tie_rule(self.tie_rule)
        W = _as_float_array(self.values, "values")
        if W.ndim != 1 or W.size < 1:
            raise InvalidInputError(f"values must be a non-empty 1-D list, got shape {W.shape!r}")
        if not np.all(np.isfinite(W)):
            k = int(np.flatnonzero(~np.isfinite(W))[0])
            raise InvalidInputError(f"value w[{k!r}] is not finite: {float(W[k])!r}")
        d = np.diff(W)
        if np.any(d <= 0):
            k = int(np.flatnonzero(d <= 0)[0])
            raise InvalidInputError(
                f"values must be strictly increasing: "
                f"w[{k!r}]={float(W[k])!r} >= w[{k + 1!r}]={float(W[k + 1])!r}"
            )
        L = W.size
        # start
        s = self.start
        if isinstance(s, (bool, np.bool_, str)) or s is None:
            raise InvalidInputError(f"start must be a value index or a probability vector, got {s!r}")
        if isinstance(s, (int, np.integer)):
            if not 0 <= int(s) < L:
                raise InvalidInputError(f"start index {int(s)!r} out of range 0..{L - 1!r}")
            pi = np.zeros(L)
            pi[int(s)] = 1.0
        else:
            pi = _as_float_array(s, "start")
            if pi.shape != (L,):
                raise InvalidInputError(f"start distribution must have shape {(L,)!r}, got {pi.shape!r}")
            _check_distribution(pi, "start distribution")
            pi = pi.copy()
        # Q
        Q = self.Q
        if not (isinstance(Q, np.ndarray) and Q.dtype == float and Q.ndim == 3 and Q.strides[0] == 0):
            Q = _as_float_array(Q, "transitions")
            if Q.ndim != 3:
                raise InvalidInputError(f"transitions must have shape (n, L, L), got {Q.shape!r}")
            Q = Q.copy()
        n = Q.shape[0]
        if n < 1:
            raise InvalidInputError("the chain needs at least one trade (n >= 1)")
        check_chain_length(n)
        wmax = float(np.abs(W).max())
        if wmax * (n + 1) ** 2 > VALUE_LIMIT:
            raise InvalidInputError(
                f"values too large for float64: max |w| = {wmax!r} with n = {n!r} lets thresholds "
                f"overflow (need max|w|·(n+1)² ≤ {VALUE_LIMIT!r}); rescale the value grid"
            )
        _validate_Q(Q, n, L)
        t = validate_mechanism(self.t, n)
        for name, arr in (("values", W.copy()), ("start", pi), ("Q", Q), ("t", t)):
            if arr.flags.writeable:
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "label", str(self.label))

    # -- shape -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of trades (players are ``0..n``)."""
        return int(self.Q.shape[0])

    @property
    def L(self) -> int:
        """Size of the value grid."""
        return int(self.values.shape[0])

    @property
    def homogeneous_transitions(self) -> bool:
        """True when one transition matrix serves every trade."""
        return bool(
            self.Q.strides[0] == 0 or all(np.array_equal(self.Q[0], self.Q[i]) for i in range(1, self.n))
        )

    def with_mechanism(self, spec: MechanismSpec, label: str | None = None) -> ChainGame:
        """The same valuations with another mechanism (see :func:`mechanism_from_spec`)."""
        return ChainGame(
            self.values,
            self.start,
            self.Q,
            mechanism_from_spec(spec, self.n),
            label or self.label,
            self.tie_rule,
        )

    def with_tie_rule(self, tie_rule: str) -> ChainGame:
        """The same game with another tie rule (``"lowest"`` or ``"highest"``)."""
        return ChainGame(self.values, self.start, self.Q, self.t, self.label, check_tie_rule(tie_rule))

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The issue-2 JSON format: ``values``, ``start``, ``transitions``, ``n``, ``mechanism``.

        ``start`` is written as an index when :math:`v_0` is deterministic, ``transitions`` as one
        ``L×L`` matrix when every trade shares it.
        """
        pi = self.start
        nz = np.flatnonzero(pi)
        start: Any = int(nz[0]) if nz.size == 1 and pi[nz[0]] == 1.0 else pi.tolist()
        trans: Any = self.Q[0].tolist() if self.homogeneous_transitions else self.Q.tolist()
        d: dict[str, Any] = {
            "values": self.values.tolist(),
            "start": start,
            "n": self.n,
            "transitions": trans,
            "mechanism": self.t.tolist(),
        }
        if self.label:
            d["label"] = self.label
        if self.tie_rule != "lowest":  # the default is left out: older files and hashes stay valid
            d["tie_rule"] = self.tie_rule
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChainGame:
        """Build a game from the issue-2 JSON format (see :meth:`to_dict`).

        ``transitions`` is one ``L×L`` matrix (then ``n`` is required) or a list of ``n`` such
        matrices (then ``n`` is optional and must match). ``mechanism`` defaults to ``"raw"``.

        Raises
        ------
        InvalidInputError
            Not a mapping, unknown or missing keys, malformed arrays.
        MechanismError
            The mechanism breaks Def. 2.5 / 2.6.
        """
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"a chain game must be a JSON object, got {type(d).__name__!r}")
        allowed = {"values", "start", "transitions", "n", "mechanism", "label", "tie_rule"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise InvalidInputError(f"unknown keys in chain game: {unknown!r}; allowed: {sorted(allowed)!r}")
        for key in ("values", "start", "transitions"):
            if key not in d:
                raise InvalidInputError(f"chain game is missing the key {key!r}")
        n_given = d.get("n")
        if n_given is not None:
            n_given = check_chain_length(n_given)
        T = _as_float_array(d["transitions"], "transitions")
        if T.ndim == 2:
            if n_given is None:
                raise InvalidInputError("a single L×L 'transitions' matrix needs 'n'")
            Q = np.broadcast_to(T, (n_given, *T.shape))
        elif T.ndim == 3:
            if n_given is not None and T.shape[0] != n_given:
                raise InvalidInputError(f"'transitions' holds {T.shape[0]!r} matrices but n = {n_given!r}")
            Q = T
        else:
            raise InvalidInputError(f"'transitions' must be L×L or n×L×L, got shape {T.shape!r}")
        n = Q.shape[0]
        start = d["start"]
        if isinstance(start, float):
            raise InvalidInputError(f"start must be an integer index or a probability list, got {start!r}")
        t = mechanism_from_spec(d.get("mechanism", "raw"), n)
        label = d.get("label", "")
        if not isinstance(label, str):
            raise InvalidInputError(f"'label' must be a string, got {type(label).__name__!r}")
        rule = d.get("tie_rule", "lowest")
        return cls(d["values"], start, Q, t, label, check_tie_rule(rule))


def load_game(path: str | Path) -> ChainGame:
    """Read a chain game from a JSON file in the issue-2 format.

    Parameters
    ----------
    path : str or Path
        JSON file: ``{"values", "start", "transitions", "n"?, "mechanism"?, "label"?}``.

    Returns
    -------
    ChainGame

    Raises
    ------
    InvalidInputError
        Unreadable or malformed file, or invalid game data.
    MechanismError
        The mechanism breaks Def. 2.5 / 2.6.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = {"values": [0, 1], "start": 0, "transitions": [[0.5, 0.5], [0, 1]], "n": 2, "mechanism": "ave"}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = pathlib.Path(tmp) / "game.json"
    ...     _ = p.write_text(json.dumps(d))
    ...     g = load_game(p)
    >>> g.n, g.L, g.t.tolist()
    (2, 2, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"game file {str(p)!r} does not exist")
    try:
        data = read_json(p)
    except UnicodeDecodeError as exc:  # read_json only maps JSON syntax errors
        raise InvalidInputError(f"{str(p)!r} is not UTF-8 text: {exc.reason}") from exc
    except RecursionError as exc:
        raise InvalidInputError(f"{str(p)!r} is nested too deeply to be a chain game") from exc
    return ChainGame.from_dict(data)
