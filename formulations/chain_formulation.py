"""The ``chain-equilibrium`` formulation: sequential chain trading as a registered plug-in.

Direct algorithm: the backward dynamic program of Eq. 9
(:func:`~datamarkets.models.chain_equilibrium.solve_equilibrium`).
Declarative program: one verifying LP per player (:mod:`datamarkets.formulations.chain_certificate`),
whose optimum is each player's best gain given everyone else's strategy. With ``solver="direct"`` the
DP is the route; with ``"highs"``, ``"glpk"`` or ``"cbc"`` the DP's strategies are re-derived player
by player by the LPs on that solver, and the result's :attr:`objective` is the LPs' threshold sum
(so LP solvers can be compared with one another and with the DP).

Certificate (:meth:`ChainEquilibriumFormulation.certify`), from the saved strategies and game only:
:func:`~datamarkets.formulations.chain_certificate.certify_chain_solution`, the same function
``datamarkets chain solve`` uses — the per-player LPs on HiGHS (threshold and price gaps, Eq. 9), the
DP's selection under the game's tie rule, and every reported number (welfare, volume, per-trade
success, utilities, tie range, …) recomputed, or listed under ``details["not_checked"]``. A result
without a solution (time limit, error) never carries a passing certificate.

``time_limit`` is honoured: the DP checks the clock between players and the LP routes hand what is
left to the solver; a run that hits it reports status ``time_limit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.formulation import DIRECT, Formulation, check_params
from datamarkets.result import Certificate, Result
from datamarkets.status import Status
from datamarkets.validation import check_seed

__all__ = ["ChainEquilibriumFormulation", "random_chain_game"]

_PAPER = ("paper-1", "paper-2", "paper-3", "paper-4")


def random_chain_game(L: int, n: int, seed: int, mechanism: Any = "raw") -> Any:
    """A random chain game: ``L`` sorted uniform values in [0, 10], Dirichlet start and transitions.

    The transition matrix is banded-random: row ``k`` puts Dirichlet(1) mass on the ``min(L, 7)``
    values nearest ``w_k`` (a random walk with random steps, as in the paper's models).

    Parameters
    ----------
    L : int
        Number of grid values (≥ 2).
    n : int
        Number of trades (≥ 1).
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    mechanism : str, mapping or array_like
        See :func:`~datamarkets.models.chain_game.mechanism_from_spec`.

    Returns
    -------
    ChainGame

    Raises
    ------
    InvalidInputError
        ``L < 2`` or ``n < 1``.

    Examples
    --------
    >>> g = random_chain_game(10, 3, seed=0)
    >>> g.n, g.L, bool(abs(g.Q[0].sum(axis=1) - 1).max() < 1e-12)
    (3, 10, True)
    """
    from datamarkets.models.chain_game import (  # lazy: fast plug-in discovery
        ChainGame,
        mechanism_from_spec,
    )

    if int(L) < 2 or int(n) < 1:
        raise InvalidInputError(f"a random chain game needs L ≥ 2 and n ≥ 1, got L={L!r}, n={n!r}")
    L, n = int(L), int(n)
    rng = np.random.default_rng(check_seed(seed))
    W = np.sort(rng.uniform(0.0, 10.0, L))
    W += np.arange(L) * 1e-9  # strictly increasing even on a tie
    width = min(L, 7)
    Q = np.zeros((L, L))
    for k in range(L):
        lo = min(max(0, k - width // 2), L - width)
        Q[k, lo : lo + width] = rng.dirichlet(np.ones(width))
    start = rng.dirichlet(np.ones(L))
    Qn = np.broadcast_to(Q, (n, L, L))
    return ChainGame(W, start, Qn, mechanism_from_spec(mechanism, n), f"random-L{L}-n{n}-s{seed}")


class ChainEquilibriumFormulation(Formulation):
    """Sequential chain data trading with profit reallocation (DP of Eq. 9 + verifying LPs).

    Parameters accepted by :meth:`instance`: ``model`` (``"paper-1"``, ``"paper-2"``, ``"paper-3"``,
    ``"paper-4"`` or ``"random"``), ``n`` (trades), ``mechanism`` (``"raw"``, ``"ave"``,
    ``"tbds:ALPHA"`` or ``"opt"`` — the welfare-optimised mechanism found by
    :func:`~datamarkets.models.chain_mechanism_opt.optimize_mechanism`), ``tie_rule`` (``"lowest"``
    or ``"highest"``: which maximising price wins a tie; saved with the game), and for random games
    ``size`` (= L, grid values) and ``seed``.

    Examples
    --------
    >>> f = ChainEquilibriumFormulation()
    >>> game = f.instance({"model": "paper-1", "n": 3, "mechanism": "ave"})
    >>> r = f.solve(game)
    >>> r.certified, r.kind
    (True, 'chain-equilibrium')
    """

    name = "chain-equilibrium"
    summary = "Sequential chain data trading (Eq. 9 DP) with per-player verifying LPs"
    kinds = ("chain-equilibrium",)
    solvers = (DIRECT, "highs", "glpk", "cbc")
    size_meaning = "grid values L of a random chain game with n=4 trades"
    parameters: ClassVar[dict[str, Any]] = {
        "model": "random",
        "n": 4,
        "mechanism": "raw",
        "size": 20,
        "seed": 0,
        "tie_rule": "lowest",
    }

    # ------------------------------------------------------------------ data
    def instance(self, params: Mapping[str, Any]) -> Any:
        from datamarkets.models.chain_valuations import (
            paper_model,  # lazy: fast plug-in discovery
        )

        p = check_params(self.name, params, self.parameters)
        model = str(p["model"]).lower()
        n = int(p["n"])
        mech = str(p["mechanism"]).strip().lower()
        base = "raw" if mech == "opt" else mech
        if model == "random":
            game = random_chain_game(int(p["size"]), n, int(p["seed"]), base)
        elif model in _PAPER:
            game = paper_model(model, n, base)
        else:
            raise InvalidInputError(f"unknown chain model {p['model']!r}; choose random or one of {_PAPER}")
        if mech == "opt":
            from datamarkets.models.chain_mechanism_opt import (
                optimize_mechanism,  # lazy: fast plug-in discovery
            )

            opt = optimize_mechanism(game, seed=int(p["seed"]))
            game = game.with_mechanism(np.asarray(opt.solution["mechanism"]), f"{game.label}/opt")
        return game.with_tie_rule(str(p["tie_rule"]))

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        return instance.to_dict()

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        from datamarkets.models.chain_game import (
            ChainGame,  # lazy: fast plug-in discovery
        )

        return ChainGame.from_dict(d)

    # --------------------------------------------------------------- program
    def build(self, instance: Any, solver: str) -> Any:
        """The DP route needs no program; LP routes re-derive the DP's strategies in solve_program."""
        return {"game": instance}

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        import time

        from datamarkets.models.chain_equilibrium import solve_equilibrium  # lazy: fast plug-in discovery

        game = program["game"]
        t0 = time.perf_counter()
        try:
            eq = solve_equilibrium(game, time_limit=time_limit)
        except SolverLimitError as exc:
            return _no_solution(Status.TIME_LIMIT, f"dp-{solver}", str(exc), time.perf_counter() - t0)
        res = eq.to_result()
        res.certificate = Certificate()  # the certificate is certify()'s alone
        res.solution["objective"] = float(np.sum(eq.thresholds))
        if solver == DIRECT:
            res.meta["solvers"] = {"datamarkets-dp": res.meta.get("version", "")}
            return res
        from datamarkets.formulations.chain_certificate import (
            certify_strategies,  # lazy: fast plug-in discovery
            strategy_data,
        )

        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.0)
        lp = certify_strategies(strategy_data(game, eq), solver=solver, tie_rule=eq.tie_rule, time_limit=left)
        res.status = lp.status
        res.method = lp.method
        res.certificate.details["lp_route"] = lp.certificate.to_dict()
        if lp.status.has_solution:
            res.solution["objective"] = float(np.sum(lp.solution["lp_thresholds"]))
            res.solution["lp_thresholds"] = lp.solution["lp_thresholds"]
        else:
            res.solution = {}
            res.certificate = _no_solution(lp.status, lp.method, "the LP route stopped", 0.0).certificate
        res.timings["inner_build_seconds"] = lp.timings["build_seconds"]
        res.meta["solvers"] = lp.meta["solvers"]
        return res

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        from datamarkets.formulations.chain_certificate import (
            certify_chain_solution,  # lazy: fast plug-in discovery
        )

        return certify_chain_solution(instance, solution)

    def objective(self, result: Result) -> float | None:
        v = result.solution.get("objective")
        return None if v is None or result.status is not Status.OPTIMAL else float(v)


def _no_solution(status: Status, method: str, why: str, seconds: float) -> Result:
    """A result without a solution: its certificate fails (``no_solution``), never passes."""
    cert = Certificate(details={"note": why})
    cert.add("no_solution", 1.0, 0.0)
    return Result(
        kind="chain-equilibrium",
        status=status,
        method=method,
        solution={},
        certificate=cert,
        timings={"solve_seconds": seconds},
    )
