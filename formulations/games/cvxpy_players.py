r"""Games whose players are declarative cvxpy programs.

A player owns some cvxpy variables and minimises (or maximises) a cvxpy objective subject to its own
constraints; both may reference the *other* players' variables. Users write every player against
the same variable objects, as they would write one joint model, and :func:`cvxpy_game` builds, for
each player :math:`i`, the program

.. math:: \min_{x_i}\ f_i(x_i, p_{-i}) \quad\text{s.t.}\quad g_i(x_i, p_{-i}) \in K_i,
          \quad h(x_i, p_{-i}) \in K_{sh}

in which every other player's variable has been replaced by a ``cp.Parameter`` :math:`p_{-i}` of
the same shape and sign (``Expression.tree_copy``), so one compiled program per player is re-used
for every profile (DPP: cvxpy re-applies the parameters without re-canonicalising). ``shared``
constraints :math:`h` couple players (a generalized Nash game): each player faces those that
involve its variables, with the others fixed.

Checked at the door (:class:`~datamarkets.errors.InvalidInputError`): every variable is owned by
exactly one player, every variable the programs mention is owned by some player, no integer or
complex variables, every user parameter has a finite value, every constant is finite; and
(:class:`~datamarkets.errors.NonConvexGameError`) each player's program is DCP **and** DPP with the
others fixed, the offending objective or constraint named.

The stacked profile :math:`x = (x_1, \dots, x_N)` lists, per player in order, its variables in the
order given, each flattened column-major (cvxpy's ``vec``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.errors import (
    InvalidInputError,
    NonConvexGameError,
    NotLinearQuadraticError,
    SolverError,
    UnsupportedGameError,
)
from datamarkets.formulations.games._cvxpy_utils import _check_finite, _project
from datamarkets.formulations.games.cvxpy_kkt import lq_args
from datamarkets.status import Status, status_from_cvxpy

__all__ = [
    "CLARABEL_TIGHT",
    "CvxpyGame",
    "NotLinearQuadraticError",
    "Player",
    "UnsupportedGameError",
    "cvxpy_game",
]

CLARABEL_TIGHT = {
    "tol_gap_abs": 1e-15,
    "tol_gap_rel": 1e-15,
    "tol_feas": 1e-15,
    "tol_ktratio": 1e-13,
    "reduced_tol_gap_abs": 1e-12,
    "reduced_tol_gap_rel": 1e-12,
    "reduced_tol_feas": 1e-12,
    "reduced_tol_ktratio": 1e-10,
    "accept_unknown": True,
}
"""Clarabel settings for best responses and certificates. With exponential cones Clarabel's
minimiser error grows like the square root of its gap tolerance (the defaults, 1e-8 and 5e-5 for an
"almost solved" stop, leave ≈ 1e-4 in the buyers' log terms), hence the very tight targets; a solve
that stalls ("insufficient progress") is kept as ``OPTIMAL_INACCURATE`` and judged by the certificate."""

CLARABEL_RETRIES = (
    {"max_step_fraction": 0.9},
    {"max_step_fraction": 0.8},
    {"max_step_fraction": 0.7, "iterative_refinement_reltol": 1e-16, "iterative_refinement_abstol": 1e-16},
)
"""Settings tried, in order, when a solve with :data:`CLARABEL_TIGHT` does not end ``Solved``."""

_PARAM_ATTRS = ("nonneg", "nonpos", "pos", "neg", "symmetric")


@dataclass(frozen=True, eq=False)
class Player:
    """One player: its own variables, its objective and its own constraints.

    Attributes
    ----------
    variables : sequence of cvxpy.Variable
        The variables this player chooses (owned by no other player).
    objective : cvxpy.Minimize or cvxpy.Maximize
        May reference other players' variables.
    constraints : sequence of cvxpy constraints
        The player's own constraints; may reference other players' variables.
    name : str, optional
        Default ``"player{i}"``.
    """

    variables: Sequence[Any]
    objective: Any
    constraints: Sequence[Any] = ()
    name: str | None = None


class CvxpyGame:
    """A game of cvxpy players (build it with :func:`cvxpy_game`).

    Attributes
    ----------
    players : tuple of Player
    shared : tuple of cvxpy constraints
    names : list of str
    sizes : list of int
        Number of scalar decision variables per player.
    offsets : ndarray of int, shape (N + 1,)
        Player ``i``'s block is ``x[offsets[i]:offsets[i + 1]]``.
    problems : list of cvxpy.Problem
        Player ``i``'s program with the others' variables replaced by parameters.
    params : list of dict
        ``params[i][var.id]`` is the parameter standing for another player's variable in program ``i``.
    signs : ndarray, shape (N,)
        ``+1`` for ``Minimize``, ``-1`` for ``Maximize``: player ``i``'s *cost* is
        ``signs[i] * objective``.
    meta : dict
        Free-form data kept by the builder of the game (e.g. scalings).
    """

    def __init__(self, players: Sequence[Player], shared: Sequence[Any], names: list[str]) -> None:
        import cvxpy as cp

        self.players = tuple(players)
        self.shared = tuple(shared)
        self.names = names
        self.meta: dict[str, Any] = {}
        self.variables = [list(p.variables) for p in self.players]
        self.sizes = [int(sum(v.size for v in vs)) for vs in self.variables]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.owner: dict[int, int] = {}
        self.slices: dict[int, slice] = {}
        for i, vs in enumerate(self.variables):
            start = int(self.offsets[i])
            for v in vs:
                self.owner[v.id] = i
                self.slices[v.id] = slice(start, start + v.size)
                start += v.size
        self.var_by_id = {v.id: v for vs in self.variables for v in vs}
        self.signs = np.array([1.0 if isinstance(p.objective, cp.Minimize) else -1.0 for p in self.players])
        self.problems: list[Any] = []
        self.params: list[dict[int, Any]] = []
        self.shared_of: list[list[int]] = []
        for i, pl in enumerate(self.players):
            own = {v.id for v in self.variables[i]}
            sh = [k for k, c in enumerate(self.shared) if any(v.id in own for v in c.variables())]
            exprs = [pl.objective, *pl.constraints, *(self.shared[k] for k in sh)]
            subst: dict[int, Any] = {}
            par: dict[int, Any] = {}
            for e in exprs:
                for v in e.variables():
                    if v.id in own or id(v) in subst:
                        continue
                    attrs = {a: True for a in _PARAM_ATTRS if v.attributes.get(a)}
                    if v.id not in par:
                        par[v.id] = cp.Parameter(v.shape, name=f"{v.name()}@{self.names[i]}", **attrs)
                    subst[id(v)] = par[v.id]
            obj = pl.objective.tree_copy(id_objects=subst)
            cons = [c.tree_copy(id_objects=subst) for c in (*pl.constraints, *(self.shared[k] for k in sh))]
            self.problems.append(cp.Problem(obj, cons))
            self.params.append(par)
            self.shared_of.append(sh)

    # ------------------------------------------------------------------ profiles
    @property
    def n(self) -> int:
        """Number of scalar decision variables in all."""
        return int(self.offsets[-1])

    @property
    def N(self) -> int:
        """Number of players."""
        return len(self.players)

    def check_x(self, x: ArrayLike) -> NDArray[np.float64]:
        """Validate a stacked profile (shape ``(n,)``, finite).

        Raises
        ------
        InvalidInputError
            Wrong length or a non-finite entry.
        """
        arr = np.asarray(x, dtype=float).ravel()
        if arr.shape != (self.n,):
            raise InvalidInputError(
                f"profile x must have {self.n} entries (sizes {self.sizes}), got {arr.size}"
            )
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                f"profile x has a non-finite entry at index {int(np.argmin(np.isfinite(arr)))}"
            )
        return arr

    def split(self, x: ArrayLike) -> list[NDArray[np.float64]]:
        """Player blocks of a stacked profile."""
        x = self.check_x(x)
        return [x[self.offsets[i] : self.offsets[i + 1]] for i in range(self.N)]

    def value_of(self, var: Any, x: NDArray) -> NDArray:
        """The value of one variable in the stacked profile ``x`` (its shape, column-major)."""
        return np.reshape(x[self.slices[var.id]], var.shape, order="F")

    def set_values(self, x: ArrayLike) -> None:
        """Assign the profile to the user's variables (``var.value``; sign attributes projected)."""
        x = self.check_x(x)
        for v in self.var_by_id.values():
            # cvxpy refuses values outside a variable's sign attribute: those are projected here
            # (the certificate measures the attribute violation on x itself)
            v.value = _project(self.value_of(v, x), v.attributes)

    def current_x(self) -> NDArray[np.float64]:
        """Stacked profile from the variables' ``.value`` (0 where unset; 1 for ``pos`` variables)."""
        x = np.zeros(self.n)
        for vid, v in self.var_by_id.items():
            if v.value is not None:
                x[self.slices[vid]] = np.asarray(v.value, dtype=float).ravel(order="F")
            elif v.attributes.get("pos"):
                x[self.slices[vid]] = 1.0
        return x

    def set_others(self, i: int, x: NDArray) -> None:
        """Set program ``i``'s parameters to the other players' values in ``x``."""
        for vid, par in self.params[i].items():
            val = _project(self.value_of(self.var_by_id[vid], x), par.attributes)
            if par._value is not None and np.shape(par._value) == np.shape(val):
                # already projected onto the parameter's sign set: skip cvxpy's re-validation
                # (np.allclose per parameter, a third of a best response's time)
                par._value = np.array(val, dtype=float)
            else:
                par.value = val

    def cost(self, i: int, x: ArrayLike) -> float:
        """Player ``i``'s cost (``signs[i] * objective``) at the profile ``x``."""
        self.set_values(x)
        val = self.players[i].objective.value
        return float("nan") if val is None else float(self.signs[i] * val)

    def has_lq_layer(self) -> bool:
        """True when the LQ layer (``games.lq`` and ``games.solve``) is importable."""
        try:
            from datamarkets.formulations.games import lq, solve  # noqa: F401  # lazy: the LQ layer
        except ImportError:
            return False
        return True

    # ------------------------------------------------------------------ best responses
    def solve_player(
        self, i: int, x: ArrayLike, solver_opts: dict[str, Any] | None = None
    ) -> tuple[Status, NDArray[np.float64] | None, dict[str, Any]]:
        """Solve player ``i``'s program with the others fixed at ``x`` (Clarabel).

        Returns
        -------
        status : Status
        x_i : ndarray or None
            The player's block of the best response (``None`` without a solution).
        raw : dict
            Canonical data and solution: ``P, q, A, b, dims`` (Clarabel form
            :math:`\\min \\tfrac12 z^T P z + q^T z` s.t. :math:`Az + s = b`, :math:`s \\in K`),
            ``z, y, s`` (primal, dual, slack), ``offset`` (cost = canonical objective + offset) and
            ``sign``.

        Raises
        ------
        SolverError
            Clarabel failed (crash or solver error status).
        """
        import cvxpy as cp

        x = self.check_x(x)
        self.set_others(i, x)
        prob = self.problems[i]
        opts = dict(CLARABEL_TIGHT)
        opts.update(solver_opts or {})
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                data, chain, inv = prob.get_problem_data(cp.CLARABEL, solver_opts=opts)
                sol = chain.solver.solve_via_data(data, False, False, opts)
                # Clarabel's exponential-cone steps sometimes stall short of the tight target: retry
                # with shorter steps and keep the first full solve, else the smallest duality gap
                tried = [sol]
                for extra in CLARABEL_RETRIES if str(sol.status) != "Solved" else ():
                    sol = chain.solver.solve_via_data(data, False, False, {**opts, **extra})
                    tried.append(sol)
                    if str(sol.status) == "Solved":
                        break
                else:
                    with_gap = [
                        t for t in tried if t.x is not None and np.isfinite(t.obj_val - t.obj_val_dual)
                    ]
                    if with_gap:
                        sol = min(with_gap, key=lambda t: abs(t.obj_val - t.obj_val_dual))
                prob.unpack_results(sol, chain, inv)
        except Exception as exc:  # cvxpy.SolverError, clarabel panics, bad settings
            raise SolverError(f"best response of player {self.names[i]!r}: {exc}") from exc
        status = status_from_cvxpy(prob.status)
        if status is Status.ERROR:
            raise SolverError(f"best response of player {self.names[i]!r}: solver status {prob.status!r}")
        raw = {
            "P": data.get("P"),
            "q": np.asarray(data["c"], dtype=float),
            "A": data["A"],
            "b": np.asarray(data["b"], dtype=float),
            "dims": data["dims"],
            "z": None if sol.x is None else np.asarray(sol.x, dtype=float),
            "y": None if sol.z is None else np.asarray(sol.z, dtype=float),
            "s": None if sol.s is None else np.asarray(sol.s, dtype=float),
            "offset": float(inv[-1][cp.settings.OFFSET]),
            "sign": float(self.signs[i]),
            "clarabel_status": str(sol.status),
        }
        if not status.has_solution:
            return status, None, raw
        xi = np.concatenate(
            [
                np.zeros(v.size) if v.value is None else np.asarray(v.value, dtype=float).ravel(order="F")
                for v in self.variables[i]
            ]
        )
        return status, xi, raw

    # ------------------------------------------------------------------ LQ view
    def to_lq_args(self, *, check: bool = True) -> dict[str, Any]:
        """Arguments of ``lq_game`` when every program is linear-quadratic.

        See :func:`datamarkets.formulations.games.cvxpy_kkt.lq_args`.
        """
        return lq_args(self, check=check)

    def to_lq(self) -> Any:
        """The equivalent ``LQGame`` (needs :mod:`datamarkets.formulations.games.lq`).

        Raises
        ------
        NotLinearQuadraticError
            Some program is not linear-quadratic.
        ImportError
            The LQ layer is not installed.
        """
        from datamarkets.formulations.games.lq import lq_game  # lazy: lands with the LQ layer

        return lq_game(**self.to_lq_args())

    def __repr__(self) -> str:
        return f"CvxpyGame(players={self.names!r}, sizes={self.sizes!r}, shared={len(self.shared)})"


def cvxpy_game(
    players: Sequence[Player], shared: Sequence[Any] | None = None, *, names: Sequence[str] | None = None
) -> CvxpyGame:
    """Build a game from cvxpy players.

    Parameters
    ----------
    players : sequence of Player
        Each player's objective and constraints may use any player's variables.
    shared : sequence of cvxpy constraints, optional
        Constraints coupling players (generalized Nash game); each player faces the ones that
        involve its variables, with the others fixed.
    names : sequence of str, optional
        Player names (default: ``Player.name`` or ``"player{i}"``).

    Returns
    -------
    CvxpyGame

    Raises
    ------
    InvalidInputError
        No players, a player without variables, a variable owned twice or by nobody, an integer
        or complex variable, duplicate names, a non-finite constant, a parameter without value.
    NonConvexGameError
        A player's program is not DCP, or not DPP, in its own variables with the others fixed.

    Examples
    --------
    Cournot duopoly, price :math:`10 - (q_1 + q_2)`, unit costs 1 and 2; each firm maximises its
    profit written against both quantity variables:

    >>> import cvxpy as cp
    >>> q1, q2 = cp.Variable(nonneg=True, name="q1"), cp.Variable(nonneg=True, name="q2")
    >>> firm1 = Player([q1], cp.Maximize(10 * q1 - cp.square(q1) - q1 * q2 - 1 * q1))
    >>> firm2 = Player([q2], cp.Maximize(10 * q2 - cp.square(q2) - q1 * q2 - 2 * q2))
    >>> game = cvxpy_game([firm1, firm2], names=["f1", "f2"])
    >>> game.sizes, game.n
    ([1, 1], 2)
    >>> args = game.to_lq_args()  # cost = -profit: Q_1 = [[2, 1], [1, 0]], c_1 = [-9, 0]
    >>> args["Q"][0].round(9).tolist(), args["c"][0].round(9).tolist(), args["lb"].tolist()
    ([[2.0, 1.0], [1.0, 0.0]], [-9.0, 0.0], [0.0, 0.0])
    >>> from datamarkets.formulations.games.cvxpy_routes import solve_cvxpy_game
    >>> res = solve_cvxpy_game(game, method="best_response")
    >>> res.status.value, [round(v, 6) for v in res.solution["x"]]  # q = (10/3, 7/3)
    ('optimal', [3.333333, 2.333333])
    """
    import cvxpy as cp
    from cvxpy.constraints.constraint import Constraint

    players = list(players)
    if not players:
        raise InvalidInputError("a game needs at least one player")
    shared = list(shared or [])
    if names is None:
        names = [
            p.name if isinstance(p, Player) and p.name is not None else f"player{i}"
            for i, p in enumerate(players)
        ]
    names = [str(n) for n in names]
    if len(names) != len(players):
        raise InvalidInputError(f"{len(names)} names for {len(players)} players")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"player names must be unique, got {names!r}")
    owner: dict[int, str] = {}
    for i, (p, nm) in enumerate(zip(players, names, strict=True)):
        if not isinstance(p, Player):
            raise InvalidInputError(f"player {i} must be a Player, got {type(p).__name__!r}")
        if not isinstance(p.objective, cp.Minimize | cp.Maximize):
            raise InvalidInputError(f"player {nm!r}: objective must be cp.Minimize or cp.Maximize")
        if not p.variables:
            raise InvalidInputError(f"player {nm!r} owns no variables")
        for v in p.variables:
            if not isinstance(v, cp.Variable):
                raise InvalidInputError(f"player {nm!r}: {v!r} is not a cp.Variable")
            if v.id in owner:
                raise InvalidInputError(f"variable {v.name()!r} is owned by both {owner[v.id]!r} and {nm!r}")
            if v.attributes.get("integer") or v.attributes.get("boolean"):
                raise NonConvexGameError(f"player {nm!r}: variable {v.name()!r} is integer/boolean")
            if v.is_complex():
                raise InvalidInputError(f"player {nm!r}: complex variable {v.name()!r} is not supported")
            owner[v.id] = nm
        for k, c in enumerate(p.constraints):
            if not isinstance(c, Constraint):
                raise InvalidInputError(f"player {nm!r}: constraint {k} is not a cvxpy constraint: {c!r}")
    for k, c in enumerate(shared):
        if not isinstance(c, Constraint):
            raise InvalidInputError(f"shared constraint {k} is not a cvxpy constraint: {c!r}")
    pieces = [(f"player {nm!r} objective", p.objective) for p, nm in zip(players, names, strict=True)]
    for p, nm in zip(players, names, strict=True):
        pieces += [(f"player {nm!r} constraint {k}", c) for k, c in enumerate(p.constraints)]
    pieces += [(f"shared constraint {k}", c) for k, c in enumerate(shared)]
    for where, e in pieces:  # labels get the expression's text only on error (printing is slow)
        for v in e.variables():
            if v.id not in owner:
                raise InvalidInputError(f"{where} ({e}) uses variable {v.name()!r}, which no player owns")
        _check_finite(e, where)
    game = CvxpyGame(players, shared, names)
    for i, prob in enumerate(game.problems):
        if prob.is_dcp(dpp=True):
            continue
        pieces_i = [("objective", prob.objective)] + [(f"constraint {c}", c) for c in prob.constraints]
        for what, e in pieces_i:
            if not e.is_dcp():
                raise NonConvexGameError(
                    f"player {names[i]!r}: {what} is not DCP (convex) in the player's own variables "
                    "with the others fixed"
                )
        for what, e in pieces_i:
            if not e.is_dcp(dpp=True):
                raise NonConvexGameError(
                    f"player {names[i]!r}: {what} is convex but not DPP in the others' variables: they may "
                    "enter affinely or multiply expressions free of other players' variables"
                )
        raise NonConvexGameError(f"player {names[i]!r}: program is not DCP/DPP")  # pragma: no cover
    return game
