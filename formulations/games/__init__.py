"""Games: players as declarative programs, equilibria by several routes, one certificate.

This part: players written as cvxpy programs (:mod:`.cvxpy_players`), their KKT systems from
cvxpy's canonical form (:mod:`.cvxpy_kkt`), best-response routes and the certificate
(:mod:`.cvxpy_routes`), and the competing data buyers as a cvxpy game (:mod:`.gne_buyers`).
"""

from datamarkets.formulations.games.cvxpy_players import (
    CvxpyGame,
    NotLinearQuadraticError,
    Player,
    UnsupportedGameError,
    cvxpy_game,
)
from datamarkets.formulations.games.cvxpy_routes import certify_cvxpy_game, solve_cvxpy_game

__all__ = [
    "CvxpyGame",
    "NotLinearQuadraticError",
    "Player",
    "UnsupportedGameError",
    "certify_cvxpy_game",
    "cvxpy_game",
    "solve_cvxpy_game",
]
