"""Linear-quadratic games: the data model, its validation at the door, and its JSON form.

N players, ``x = (x_1, …, x_N)`` stacked in player order (``n = Σ sizes`` variables). Player i solves

    min_{x_i}  ½ xᵀ Q_i x + c_iᵀ x   s.t.  lb_i ≤ x_i ≤ ub_i,  A x ≤ b,  Aeq x = beq      (1)

with the others' blocks fixed. ``A x ≤ b`` and ``Aeq x = beq`` are *shared* (coupling) constraints:
with them the game is a generalized Nash game. Only the symmetric part of ``Q_i`` matters; the
pseudo-gradient is ``F(x) = M x + q`` with block row i of ``M`` equal to ``Q_i[i, :]`` and ``q_i =
c_i[i]`` (2). The game is monotone when ``(M + Mᵀ)/2 ⪰ 0`` (3), and then its variational equilibria
are the solutions of the affine VI(F, X) over the joint feasible set X.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games.spectral import min_eigenvalue, psd_min_eig
from datamarkets.validation import real_array, real_number

__all__ = ["LQGame", "lq_game", "matrix_from_json", "matrix_to_json", "min_eigenvalue"]

_INF_STRINGS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}  # how JSON spells ±inf bounds


def _bound_entry(t: Any, what: str) -> float:
    """A bound read from JSON: a number or one of the strings of :data:`_INF_STRINGS`."""
    if isinstance(t, str) and t.strip().lower() in _INF_STRINGS:
        return _INF_STRINGS[t.strip().lower()]
    return real_number(t, what, finite=False, message=f"{what} must be a number or 'inf'/'-inf', got {t!r}")


PSD_TOL = 1e-9
"""A block counts as PSD when its smallest eigenvalue is ≥ −PSD_TOL·max(1, max |entry|)."""


def _csr(a: Any, shape: tuple[int, int], what: str) -> sp.csr_array:
    """``a`` (dense, scipy.sparse or JSON sparse dict) as a CSR array of ``shape``; finite entries."""
    if isinstance(a, Mapping):
        a = matrix_from_json(a, what)
    if sp.issparse(a):
        m = sp.csr_array(a, dtype=float)
    else:
        try:
            arr = np.asarray(a, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what} is not numeric: {exc}") from exc
        if arr.ndim == 1 and shape[0] == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 and not (arr.size == 0 and shape[0] * shape[1] == 0):
            raise InvalidInputError(f"{what} must be a matrix of shape {shape}, got {arr.ndim}-d array")
        m = sp.csr_array(arr.reshape(shape) if arr.size == 0 else arr)
    if m.shape != shape:
        raise InvalidInputError(f"{what} must have shape {shape}, got {m.shape}")
    if not np.all(np.isfinite(m.data)):
        raise InvalidInputError(f"{what} has NaN or infinite entries")
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _vec(v: Any, size: int, what: str, *, allow: str = "") -> np.ndarray:
    """``v`` as a float vector of ``size``; ``allow`` = "+inf"/"-inf" admits that infinity."""
    try:
        arr = np.asarray(v, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not numeric: {exc}") from exc
    if arr.size == 1 and size != 1:
        arr = np.full(size, arr[0])
    if arr.size != size:
        raise InvalidInputError(f"{what} must have {size} entries, got {arr.size}")
    if np.any(np.isnan(arr)):
        raise InvalidInputError(f"{what} has NaN entries (index {int(np.flatnonzero(np.isnan(arr))[0])})")
    bad = np.isinf(arr)
    if allow == "+inf":
        bad &= arr < 0
    elif allow == "-inf":
        bad &= arr > 0
    if np.any(bad):
        raise InvalidInputError(f"{what} has an infinite entry at index {int(np.flatnonzero(bad)[0])}")
    return arr


def matrix_to_json(m: sp.sparray, *, dense_max: int = 40_000) -> Any:
    """Lists of lists for small matrices, else ``{"shape", "rows", "cols", "vals"}`` (COO).

    Examples
    --------
    >>> matrix_to_json(sp.csr_array(np.eye(2)))
    [[1.0, 0.0], [0.0, 1.0]]
    >>> matrix_to_json(sp.csr_array(np.eye(2)), dense_max=1)["rows"]
    [0, 1]
    """
    if m.shape[0] * m.shape[1] <= dense_max:
        return m.toarray().tolist()
    coo = sp.coo_array(m)
    return {
        "shape": [int(s) for s in m.shape],
        "rows": coo.row.astype(int).tolist(),
        "cols": coo.col.astype(int).tolist(),
        "vals": coo.data.astype(float).tolist(),
    }


def matrix_from_json(d: Mapping[str, Any], what: str = "matrix") -> sp.csr_array:
    """Inverse of the sparse form of :func:`matrix_to_json`."""
    missing = [k for k in ("shape", "rows", "cols", "vals") if k not in d]
    if missing:
        raise InvalidInputError(f"{what}: sparse form needs shape, rows, cols, vals (missing {missing})")

    def ints(key: str) -> np.ndarray:
        v = d[key]
        if not isinstance(v, (list, tuple, np.ndarray)) or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) for k in v
        ):
            raise InvalidInputError(f"{what}: sparse {key!r} must be a list of integers, got {v!r}"[:300])
        return np.asarray(v, dtype=np.int64)

    shape = tuple(int(k) for k in ints("shape"))
    rows, cols = ints("rows"), ints("cols")
    vals = real_array(d["vals"], f"{what}: sparse 'vals'")
    if len(shape) != 2 or not (rows.size == cols.size == vals.size):
        raise InvalidInputError(f"{what}: rows, cols and vals must have equal lengths and shape 2 numbers")
    if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= shape[0] or cols.max() >= shape[1]):
        raise InvalidInputError(f"{what}: an index lies outside shape {shape}")
    return sp.csr_array((vals, (rows, cols)), shape=shape)


@dataclass(eq=False)
class LQGame:
    """A linear-quadratic (generalized) Nash game (1); build it with :func:`lq_game`.

    Attributes
    ----------
    sizes : tuple of int
        Variables per player.
    M : scipy.sparse.csr_array (n × n)
        Pseudo-gradient matrix (2): block row i holds the rows of player i's symmetrised Hessian
        ``Q_i[i, :]`` (the own block ``Q_i[i, i]`` symmetric). This is all the game's equilibria
        depend on; :attr:`Q` rebuilds the full matrices.
    c : ndarray, shape (N, n)
        Linear cost terms.
    A, b : csr_array (m × n), ndarray (m,)
        Shared inequalities ``A x ≤ b``.
    Aeq, beq : csr_array (p × n), ndarray (p,)
        Shared equalities.
    lb, ub : ndarray (n,)
        Each player's own bounds (±inf allowed).
    names : list of str
        Player names.
    Q_rest : list of (csr_array or None)
        The block ``Q_i[−i, −i]`` of a player given a full matrix (it moves player i's cost, not
        its decisions), else ``None``.
    compact : bool
        Q was given as per-player row blocks (then :meth:`to_dict` writes them so).
    """

    sizes: tuple[int, ...]
    M: sp.csr_array
    c: np.ndarray
    A: sp.csr_array
    b: np.ndarray
    Aeq: sp.csr_array
    beq: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    names: list[str] = field(default_factory=list)
    Q_rest: list[sp.csr_array | None] = field(default_factory=list)
    compact: bool = False

    # ------------------------------------------------------------ structure
    @property
    def N(self) -> int:
        """Number of players."""
        return len(self.sizes)

    @property
    def n(self) -> int:
        """Number of variables."""
        return int(sum(self.sizes))

    @property
    def m(self) -> int:
        """Number of shared inequalities."""
        return int(self.A.shape[0])

    @property
    def p(self) -> int:
        """Number of shared equalities."""
        return int(self.Aeq.shape[0])

    @cached_property
    def starts(self) -> np.ndarray:
        """Block offsets: player i owns ``x[starts[i]:starts[i+1]]``."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @cached_property
    def owner(self) -> np.ndarray:
        """Player index of every variable."""
        return np.repeat(np.arange(self.N), self.sizes)

    def block(self, i: int) -> slice:
        """Slice of player i's variables."""
        return slice(int(self.starts[i]), int(self.starts[i + 1]))

    @cached_property
    def M_own(self) -> sp.csr_array:
        """The block-diagonal part of M: the players' own blocks ``Q_i[i, i]``."""
        coo = sp.coo_array(self.M)
        keep = self.owner[coo.row] == self.owner[coo.col]
        return sp.csr_array((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=self.M.shape)

    @cached_property
    def Q(self) -> list[sp.csr_array]:
        """The full symmetric n×n cost Hessians: rows ``Q_i[i, :]`` from M, mirrored into block
        column i, plus ``Q_rest[i]``."""
        coo = sp.coo_array(self.M)
        out = []
        for i in range(self.N):
            sel = self.owner[coo.row] == i
            r, cc, v = coo.row[sel], coo.col[sel], coo.data[sel]
            cross = self.owner[cc] != i
            Qi = sp.csr_array(
                (
                    np.concatenate([v, v[cross]]),
                    (np.concatenate([r, cc[cross]]), np.concatenate([cc, r[cross]])),
                ),
                shape=(self.n, self.n),
            )
            rest = self.Q_rest[i] if i < len(self.Q_rest) else None
            out.append(Qi if rest is None else sp.csr_array(Qi + rest))
        return out

    @cached_property
    def q(self) -> np.ndarray:
        """Pseudo-gradient constant (2): ``q_i = c_i[i]``."""
        return np.asarray(self.c[self.owner, np.arange(self.n)], dtype=float)

    def F(self, x: np.ndarray) -> np.ndarray:
        """Pseudo-gradient ``M x + q`` (2)."""
        return self.M @ x + self.q

    @cached_property
    def monotonicity_min_eig(self) -> float:
        """Smallest eigenvalue of ``(M + Mᵀ)/2`` (3): ≥ 0 monotone, > 0 strongly monotone."""
        return min_eigenvalue(sp.csr_array((self.M + self.M.T) * 0.5))

    @property
    def scale(self) -> float:
        """Data scale ``max(1, max|M|, max|q|)`` used by scale-aware tolerances."""
        mx = float(np.abs(self.M.data).max()) if self.M.nnz else 0.0
        return max(1.0, mx, float(np.abs(self.q).max()) if self.q.size else 0.0)

    def is_monotone(self, tol: float = 1e-9) -> bool:
        """Whether the smallest eigenvalue of sym(M) is ≥ −tol·scale."""
        return self.monotonicity_min_eig >= -tol * self.scale

    @cached_property
    def is_potential(self) -> bool:
        """Whether M is symmetric (to 1e-12 relative): then the game has a quadratic potential."""
        D = self.M - self.M.T
        return (float(np.abs(D.data).max()) if D.nnz else 0.0) <= 1e-12 * self.scale

    def cost(self, i: int, x: np.ndarray) -> float:
        """Player i's cost ``½ xᵀQ_i x + c_iᵀx = x_iᵀQ_i[i,:]x − ½x_iᵀQ_i[i,i]x_i + ½x_{−i}ᵀQ_i[−i,−i]x_{−i}
        + c_iᵀx``."""
        x = np.asarray(x, dtype=float)
        b = self.block(i)
        g = _rows_matvec(self.M, b, x) - 0.5 * _rows_matvec(self.M_own, b, x)
        val = x[b] @ g + self.c[i] @ x
        rest = self.Q_rest[i] if i < len(self.Q_rest) else None
        if rest is not None:
            val += 0.5 * x @ (rest @ x)
        return float(val)

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """``x`` cut into the players' blocks."""
        return [np.asarray(x[self.block(i)]) for i in range(self.N)]

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (matrices as lists of lists, large ones in the sparse COO form)."""

        def bound(v: np.ndarray) -> list[float | str]:
            return [float(t) if math.isfinite(t) else ("inf" if t > 0 else "-inf") for t in v]

        return {
            "sizes": [int(s) for s in self.sizes],
            "names": list(self.names),
            "Q": self._q_json(),
            "c": self.c.tolist() if self.c.size <= 40_000 else matrix_to_json(sp.csr_array(self.c)),
            "A": matrix_to_json(self.A),
            "b": self.b.tolist(),
            "Aeq": matrix_to_json(self.Aeq),
            "beq": self.beq.tolist(),
            "lb": bound(self.lb),
            "ub": bound(self.ub),
        }

    def _q_json(self) -> list[Any]:
        if not self.compact:
            return [matrix_to_json(Qi) for Qi in self.Q]
        out: list[Any] = []
        ip, ind, dat = self.M.indptr, self.M.indices, self.M.data
        for i in range(self.N):  # row blocks Q_i[i, :]: the sparse form unless dense enough
            b = self.block(i)
            lo, hi = int(ip[b.start]), int(ip[b.stop])
            ni = b.stop - b.start
            if ni * self.n <= min(40_000, 3 * (hi - lo)):
                out.append(sp.csr_array(self.M[b, :]).toarray().tolist())
                continue
            local = np.repeat(np.arange(ni), np.diff(ip[b.start : b.stop + 1]))
            out.append(
                {
                    "shape": [ni, self.n],
                    "rows": local.tolist(),
                    "cols": ind[lo:hi].astype(int).tolist(),
                    "vals": dat[lo:hi].astype(float).tolist(),
                }
            )
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LQGame:
        """Inverse of :meth:`to_dict` (validated by :func:`lq_game`).

        Raises
        ------
        InvalidInputError
            Missing or malformed fields.
        """
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"a game must be a JSON object, got {type(d).__name__}")
        missing = [k for k in ("sizes", "Q", "c") if k not in d]
        if missing:
            raise InvalidInputError(f"game is missing field(s) {', '.join(map(repr, missing))}")
        unknown = sorted(set(d) - {"sizes", "names", "Q", "c", "A", "b", "Aeq", "beq", "lb", "ub"})
        if unknown:
            raise InvalidInputError(f"game has unknown field(s) {', '.join(map(repr, unknown))}")

        def opt(key: str) -> Any:
            v = d.get(key)
            return None if v is None or (isinstance(v, list) and len(v) == 0) else v

        def bound(key: str) -> Any:  # JSON has no infinity: to_dict writes "inf" / "-inf"
            v = opt(key)
            if v is None:
                return None
            vals = [
                _bound_entry(t, f"game field {key!r}[{k}]")
                for k, t in enumerate(v if isinstance(v, list) else [v])
            ]
            return vals if isinstance(v, list) else vals[0]

        def numeric(key: str, v: Any) -> Any:  # strings or booleans where numbers belong: bad input
            if v is None or isinstance(v, Mapping):
                return None if v is None else matrix_from_json(v, key)
            return real_array(v, f"game field {key!r}")

        names = d.get("names") or None
        if names is not None and (not isinstance(names, list) or not all(isinstance(k, str) for k in names)):
            raise InvalidInputError(f"game field 'names' must be a list of strings, got {names!r}")
        c = numeric("c", d["c"])
        if sp.issparse(c):
            c = c.toarray()
        Q = d["Q"]
        if not isinstance(Q, list):
            raise InvalidInputError("game field 'Q' must be a list with one matrix per player")
        Q = [numeric(f"Q[{i}]", Qi) for i, Qi in enumerate(Q)]
        return lq_game(
            d["sizes"],
            Q,
            c,
            numeric("A", opt("A")),
            numeric("b", opt("b")),
            numeric("Aeq", opt("Aeq")),
            numeric("beq", opt("beq")),
            bound("lb"),
            bound("ub"),
            names=names,
        )

    def __repr__(self) -> str:
        return f"<LQGame N={self.N} n={self.n} shared: {self.m} ≤, {self.p} =>"


def lq_game(
    sizes: Sequence[int],
    Q: Sequence[Any],
    c: Any,
    A: Any = None,
    b: Any = None,
    Aeq: Any = None,
    beq: Any = None,
    lb: Any = None,
    ub: Any = None,
    *,
    names: Sequence[str] | None = None,
) -> LQGame:
    """A validated linear-quadratic game (1).

    Parameters
    ----------
    sizes : sequence of int
        Variables per player (each ≥ 1).
    Q : sequence of N matrices (dense, scipy.sparse or the JSON sparse form)
        Cost Hessians, each either the full n×n ``Q_i`` (symmetrised here) or only player i's
        rows ``Q_i[i, :]`` (shape ``(n_i, n)``, the compact form: the rows of a symmetric Q_i;
        ``Q_i[−i, −i]`` is then taken as 0, which changes player i's cost by a term it does not
        control and none of its decisions). Player i's own block ``Q_i[i, i]`` must be PSD; only
        it is tested.
    c : array (N, n)
        Linear cost terms.
    A, b : matrix (m × n), vector (m,), optional
        Shared inequalities ``A x ≤ b``.
    Aeq, beq : matrix (p × n), vector (p,), optional
        Shared equalities.
    lb, ub : vector (n,) or scalar, optional
        Own bounds (default −inf / +inf).
    names : sequence of str, optional
        Player names (default ``"p0", "p1", …``).

    Returns
    -------
    LQGame

    Raises
    ------
    InvalidInputError
        Shapes that do not match ``sizes``, NaN/inf in Q, c, A, b (inf is allowed only in bounds),
        ``lb > ub``.
    NonConvexGameError
        A player's own block is not PSD (the message names the player and the eigenvalue).

    Examples
    --------
    Cournot duopoly with inverse demand 10 − x₁ − x₂ and unit costs 1 and 2:

    >>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
    >>> g.M.toarray().tolist(), g.q.tolist()
    ([[2.0, 1.0], [1.0, 2.0]], [-9.0, -8.0])
    >>> round(g.monotonicity_min_eig, 12)
    1.0
    """
    try:
        if any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) for s in sizes):
            raise InvalidInputError(f"sizes must be a list of integers, got {list(sizes)!r}")
        sizes_t = tuple(int(s) for s in sizes)
    except TypeError as exc:
        raise InvalidInputError(f"sizes must be a list of integers: {exc}") from exc
    if not sizes_t or any(s < 1 for s in sizes_t):
        raise InvalidInputError(f"sizes must be a non-empty list of integers ≥ 1, got {list(sizes_t)}")
    N, n = len(sizes_t), sum(sizes_t)
    if isinstance(Q, np.ndarray) and Q.ndim == 3:
        Q = list(Q)
    if sp.issparse(Q) or not isinstance(Q, Sequence) or len(Q) != N:
        got = len(Q) if isinstance(Q, Sequence) else type(Q).__name__
        raise InvalidInputError(f"Q must be a list of {N} matrices (one per player), got {got}")
    M, Q_rest, compact = _pseudo_gradient(Q, sizes_t)
    if sp.issparse(c):
        c = c.toarray()
    try:
        c_arr = np.asarray(c, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"c is not numeric: {exc}") from exc
    if c_arr.shape != (N, n):
        raise InvalidInputError(f"c must have shape {(N, n)} (players × variables), got {c_arr.shape}")
    if not np.all(np.isfinite(c_arr)):
        raise InvalidInputError("c has NaN or infinite entries")
    if (A is None) != (b is None):
        raise InvalidInputError("give both A and b (shared inequalities A x ≤ b) or neither")
    if (Aeq is None) != (beq is None):
        raise InvalidInputError("give both Aeq and beq (shared equalities Aeq x = beq) or neither")
    if A is None:
        A_m, b_v = sp.csr_array((0, n)), np.zeros(0)
    else:
        b_v = _vec(b, np.size(np.asarray(b, dtype=object)) if not np.isscalar(b) else 1, "b")
        A_m = _csr(A, (b_v.size, n), "A")
    if Aeq is None:
        Aeq_m, beq_v = sp.csr_array((0, n)), np.zeros(0)
    else:
        beq_v = _vec(beq, np.size(np.asarray(beq, dtype=object)) if not np.isscalar(beq) else 1, "beq")
        Aeq_m = _csr(Aeq, (beq_v.size, n), "Aeq")
    lb_v = np.full(n, -np.inf) if lb is None else _vec(lb, n, "lb", allow="-inf")
    ub_v = np.full(n, np.inf) if ub is None else _vec(ub, n, "ub", allow="+inf")
    if np.any(lb_v > ub_v):
        j = int(np.flatnonzero(lb_v > ub_v)[0])
        raise InvalidInputError(f"lb > ub at variable {j}: {lb_v[j]} > {ub_v[j]}")
    if names is None:
        names_l = [f"p{i}" for i in range(N)]
    else:
        names_l = [str(s) for s in names]
        if len(names_l) != N or len(set(names_l)) != N:
            raise InvalidInputError(f"names must be {N} distinct strings, got {names_l}")
    game = LQGame(sizes_t, M, c_arr, A_m, b_v, Aeq_m, beq_v, lb_v, ub_v, names_l, Q_rest, compact)
    _check_own_blocks_psd(game)
    return game


def _rows_matvec(Mat: sp.csr_array, b: slice, x: np.ndarray) -> np.ndarray:
    """``Mat[b, :] @ x`` for a block of rows of a CSR matrix, straight from its arrays."""
    ip = Mat.indptr
    lo, hi = int(ip[b.start]), int(ip[b.stop])
    prod = Mat.data[lo:hi] * x[Mat.indices[lo:hi]]
    counts = np.diff(ip[b.start : b.stop + 1])
    return np.bincount(np.repeat(np.arange(counts.size), counts), weights=prod, minlength=counts.size)


def _pseudo_gradient(Q: Sequence[Any], sizes: tuple[int, ...]) -> tuple[sp.csr_array, list[Any], bool]:
    """M (2) from the players' matrices, each either full (n × n, symmetrised here) or the rows of
    player i only (n_i × n: ``Q_i[i, :]`` of a symmetric Q_i; its own block is symmetrised here).
    Also each full matrix's ``[−i, −i]`` block (cost only) and whether every Q_i came as rows."""
    N, n = len(sizes), sum(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    owner = np.repeat(np.arange(N), sizes)
    rows, cols, vals = [], [], []
    rest: list[Any] = []
    compact = True
    for i, Qi in enumerate(Q):
        if isinstance(Qi, Mapping):
            Qi = matrix_from_json(Qi, f"Q[{i}]")
        shape = Qi.shape if sp.issparse(Qi) else np.shape(np.asarray(Qi, dtype=object))
        if len(shape) == 2 and shape[0] == sizes[i] and shape[1] == n and sizes[i] != n:
            what = f"Q[{i}] (rows of player {i})"
            m = Qi.tocsr() if sp.issparse(Qi) else _csr(Qi, (sizes[i], n), what)  # a CSR input: no copy
            if not np.all(np.isfinite(m.data)):
                raise InvalidInputError(f"{what} has NaN or infinite entries")
            rows.append(np.repeat(np.arange(sizes[i]) + starts[i], np.diff(m.indptr)))
            cols.append(m.indices)
            vals.append(m.data)
            rest.append(None)
            continue
        compact = compact and sizes[i] == n
        m = _csr(Qi, (n, n), f"Q[{i}]")
        S = sp.coo_array((m + m.T) * 0.5)
        mine = owner[S.row] == i
        rows.append(S.row[mine])
        cols.append(S.col[mine])
        vals.append(S.data[mine])
        other = ~mine & (owner[S.col] != i)
        rest.append(
            sp.csr_array((S.data[other], (S.row[other], S.col[other])), shape=(n, n)) if other.any() else None
        )
    r, cc, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    own = owner[r] == owner[cc]  # own blocks: symmetric part only
    r2 = np.concatenate([r[~own], r[own], cc[own]])
    c2 = np.concatenate([cc[~own], cc[own], r[own]])
    v2 = np.concatenate([v[~own], 0.5 * v[own], 0.5 * v[own]])
    M = sp.csr_array((v2, (r2, c2)), shape=(n, n))
    M.sum_duplicates()
    M.eliminate_zeros()
    M.sort_indices()
    return M, rest, compact


PSD_BATCH_MAX = 64
"""Own blocks up to this order are tested together (one batched ``eigvalsh`` per block size)."""


def _check_own_blocks_psd(game: LQGame) -> None:
    """Each own block ``Q_i[i, i]`` PSD (what player i's program needs to be convex), else
    :class:`NonConvexGameError` naming the player; small blocks batched by size."""
    Mo = sp.coo_array(game.M_own)
    sizes = np.asarray(game.sizes)
    eig = np.zeros(game.N)
    scale = np.ones(game.N)
    np.maximum.at(scale, game.owner[Mo.row], np.abs(Mo.data))
    for s in np.unique(sizes):
        players = np.flatnonzero(sizes == s)
        if s <= PSD_BATCH_MAX:
            pos = -np.ones(game.N, dtype=np.int64)
            pos[players] = np.arange(players.size)
            sel = sizes[game.owner[Mo.row]] == s
            k = pos[game.owner[Mo.row[sel]]]
            st = game.starts[game.owner[Mo.row[sel]]]
            dense = np.zeros((players.size, int(s), int(s)))
            dense[k, Mo.row[sel] - st, Mo.col[sel] - st] = Mo.data[sel]
            eig[players] = np.linalg.eigvalsh(dense)[:, 0]
        else:
            for p in players.tolist():
                B = sp.csr_array(game.M_own[game.block(p), game.block(p)])
                eig[p] = psd_min_eig(B, PSD_TOL * scale[p])
    bad = np.flatnonzero(eig < -PSD_TOL * scale)
    if bad.size:
        i = int(bad[0])
        raise NonConvexGameError(
            f"player {game.names[i]!r}: own block Q[{i}][i,i] is not positive semidefinite "
            f"(smallest eigenvalue {eig[i]:.6g}); its program is not convex"
        )
