"""Games: players as declarative programs, their KKT systems derived, equilibria by several routes,
one certificate.

Linear-quadratic (generalized) Nash games: write a game with :func:`lq_game` (or read one with
:meth:`LQGame.from_dict`), solve it with :func:`solve_game` (routes ``vi``, ``milp``, ``best_response``,
``jacobi``, ``auto``), and judge any candidate profile with :func:`certify_game`.

Players written as cvxpy programs (:func:`cvxpy_game`, :class:`Player`): KKT systems from cvxpy's
canonical (conic) form, best-response routes and the certificate (:func:`solve_cvxpy_game`,
:func:`certify_cvxpy_game`); a cvxpy game whose players are linear-quadratic converts to an
:class:`LQGame` (:meth:`CvxpyGame.to_lq`) and gets every LQ route.

Examples
--------
>>> import numpy as np
>>> from datamarkets.formulations.games import lq_game, solve_game
>>> g = lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)
>>> r = solve_game(g)
>>> np.round(r.solution["x"], 6).tolist(), r.solution["route"], r.certified
([3.333333, 2.333333], 'vi', True)
"""

from datamarkets.formulations.games.best_response import PlayerPrograms, best_response_iteration
from datamarkets.formulations.games.certificate import (
    DEFAULT_TOL,
    best_response_gaps,
    certify_game,
    certify_game_solution,
)
from datamarkets.formulations.games.cvxpy_players import (
    CvxpyGame,
    NotLinearQuadraticError,
    Player,
    UnsupportedGameError,
    cvxpy_game,
)
from datamarkets.formulations.games.cvxpy_routes import certify_cvxpy_game, solve_cvxpy_game
from datamarkets.formulations.games.generate import random_lq_game
from datamarkets.formulations.games.kkt import Multipliers, kkt_residuals, recover_multipliers
from datamarkets.formulations.games.lq import LQGame, lq_game
from datamarkets.formulations.games.milp import solve_kkt_milp
from datamarkets.formulations.games.plugin import game_formulation
from datamarkets.formulations.games.solve import METHODS, LQGameFormulation, solve_game
from datamarkets.formulations.games.vi import feasible_point, solve_vi

__all__ = [
    "DEFAULT_TOL",
    "METHODS",
    "CvxpyGame",
    "LQGame",
    "LQGameFormulation",
    "Multipliers",
    "NotLinearQuadraticError",
    "Player",
    "PlayerPrograms",
    "UnsupportedGameError",
    "best_response_gaps",
    "best_response_iteration",
    "certify_cvxpy_game",
    "certify_game",
    "certify_game_solution",
    "cvxpy_game",
    "feasible_point",
    "game_formulation",
    "kkt_residuals",
    "lq_game",
    "random_lq_game",
    "recover_multipliers",
    "solve_cvxpy_game",
    "solve_game",
    "solve_kkt_milp",
    "solve_vi",
]
