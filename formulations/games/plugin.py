"""``game_formulation``: any LQ game family becomes a formulation plug-in in one line.

A user writes a function ``make_game(params) -> LQGame`` (parameters → players' data →
:func:`~datamarkets.formulations.games.lq.lq_game`); :func:`game_formulation` wraps it as a
:class:`~datamarkets.formulation.Formulation` subclass with the layer's solve (``solve_game``,
route ``auto``), certificate (``certify_game``), ``verify`` and ``bench solvers``. Register it with an
entry point in the ``datamarkets.formulations`` group or at run time with
:func:`datamarkets.registry.register`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from datamarkets.errors import InvalidInputError
from datamarkets.formulation import check_params
from datamarkets.formulations.games.lq import LQGame
from datamarkets.formulations.games.solve import LQGameFormulation

__all__ = ["game_formulation"]


def game_formulation(
    name: str,
    make_game: Callable[[Mapping[str, Any]], LQGame],
    *,
    parameters: Mapping[str, Any],
    summary: str = "",
    size_meaning: str = "instance size",
) -> type[LQGameFormulation]:
    """A formulation class whose instances are the LQ games ``make_game(params)``.

    Parameters
    ----------
    name : str
        The plug-in's name (lower-case, dashes), as in its entry point.
    make_game : callable
        ``params -> LQGame``; receives the parameters completed with their defaults and checked
        against ``parameters`` (unknown keys raise :class:`InvalidInputError`).
    parameters : mapping
        Parameter defaults; ``size`` and ``seed`` are the benchmark family's (``generate``).
    summary, size_meaning : str
        What ``datamarkets list`` shows.

    Returns
    -------
    type
        A subclass of :class:`~datamarkets.formulations.games.solve.LQGameFormulation`.

    Examples
    --------
    >>> from datamarkets.formulations.games.lq import lq_game
    >>> Duopoly = game_formulation(
    ...     "duopoly",
    ...     lambda p: lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-p["a"], 0], [0, -8]], lb=0),
    ...     parameters={"a": 9.0, "size": 2, "seed": 0},
    ... )
    >>> r = Duopoly().solve(Duopoly().instance({"a": 9}))
    >>> [round(v, 6) for v in r.solution["x"]], r.certified
    ([3.333333, 2.333333], True)
    """
    defaults = dict(parameters)

    def instance(self: LQGameFormulation, params: Mapping[str, Any]) -> Any:
        p = check_params(self.name, params, self.parameters)
        game = make_game(p)
        if not isinstance(game, LQGame):
            raise InvalidInputError(f"{name}: make_game returned {type(game).__name__}, not an LQGame")
        return game

    cls = type(
        "".join(w.capitalize() for w in name.replace("_", "-").split("-")) + "Formulation",
        (LQGameFormulation,),
        {
            "name": name,
            "summary": summary or f"{name}: a linear-quadratic game on the games layer",
            "size_meaning": size_meaning,
            "parameters": defaults,
            "instance": instance,
            "__doc__": f"The {name!r} game family (made by :func:`game_formulation`).",
            "__module__": getattr(make_game, "__module__", __name__),
        },
    )
    return cls
