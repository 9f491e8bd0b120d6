"""``datamarkets game``: solve and generate linear-quadratic (generalized) Nash games.

``game solve FILE.json`` reads a game in the JSON form of
:meth:`~datamarkets.formulations.games.LQGame.to_dict` (``sizes``, ``Q``, ``c``, optional ``A``,
``b``, ``Aeq``, ``beq``, ``lb``, ``ub``, ``names``), solves it by the chosen route and prints the
equilibrium with its certificate; ``--out R.json`` saves a result that ``datamarkets verify R.json``
re-checks from the file alone. Exit codes: 0 certified, 2 bad input, 3 the route could not deliver
(infeasible, no equilibrium, limit), 4 the certificate failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from datamarkets.cli.common import (
    EXIT_ALGORITHM,
    EXIT_INPUT,
    EXIT_UNCERTIFIED,
    check_options,
    check_out,
    emit_json,
    fail,
    print_table,
    solver_output_to_stderr,
)
from datamarkets.errors import DataMarketsError, InvalidInputError
from datamarkets.io import atomic_write_json, read_json

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Linear-quadratic games: player i minimises ½xᵀQ_i x + c_iᵀx over its own block, shared "
        "constraints A x ≤ b, Aeq x = beq (a generalized Nash game). Routes: vi (monotone games), "
        "milp (KKT MILP), best_response / jacobi; every answer is certified by re-solving each "
        "player's program."
    ),
    no_args_is_help=True,
)


def _load(path: Path) -> Any:
    from datamarkets.formulations.games import LQGame  # lazy: fast --help (no solver stack)

    return LQGame.from_dict(read_json(path, "game"))


def _print_human(res: Any) -> None:
    sol = res.solution
    rows = [
        ["status", res.status.value],
        ["route", sol.get("route")],
        ["why", sol.get("route_reason")],
        ["min eig sym(M)", sol.get("monotonicity_min_eig")],
        ["variational", sol.get("variational")],
        ["certified", res.certified],
    ]
    if sol.get("message"):
        rows.append(["message", sol["message"]])
    print_table("LQ game equilibrium", ["quantity", "value"], rows)
    if "x_players" in sol:
        print_table(
            "players",
            ["player", "x", "cost"],
            [
                [p, ", ".join(f"{v:.6g}" for v in x), cst]
                for p, x, cst in zip(sol["players"], sol["x_players"], sol["costs"], strict=True)
            ],
        )
    if res.certificate.residuals:
        print_table(
            "certificate",
            ["residual", "value", "tolerance"],
            [[k, v, res.certificate.tolerances.get(k)] for k, v in res.certificate.residuals.items()],
        )


@app.command()
def solve(
    file: Path = typer.Argument(..., help="Game JSON (LQGame.to_dict form)."),
    method: str = typer.Option(
        "auto", "--method", "-m", help="auto, vi, extragradient, projection, milp, best_response, jacobi."
    ),
    variational: bool = typer.Option(
        True, "--variational/--no-variational", help="Ask for the variational equilibrium."
    ),
    time_limit: float | None = typer.Option(None, "--time-limit", help="Seconds for the route."),
    enumerate_k: int = typer.Option(0, "--enumerate", help="milp: find up to K distinct equilibria."),
    qp_solver: str = typer.Option("clarabel", "--qp-solver", help="vi route's QP solver: clarabel or highs."),
    tol: float = typer.Option(1e-6, "--tol", help="Relative tolerance of the certificate's residuals."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the result for `datamarkets verify`."),
) -> None:
    """Solve a game from a JSON file and certify the equilibrium."""
    from datamarkets.formulations.games import (
        LQGameFormulation,  # lazy: fast --help (no solver stack)
        solve_game,
    )

    try:
        time_limit = check_options(tol=tol, time_limit=time_limit)
        if enumerate_k < 0:
            raise InvalidInputError(f"--enumerate must be an integer >= 0, got {enumerate_k}")
        check_out(out)
        game = _load(file)
        with solver_output_to_stderr():
            res = solve_game(
                game,
                method,
                variational=variational,
                time_limit=time_limit,
                enumerate=enumerate_k,
                qp_solver=qp_solver,
                tol=tol,
            )
    except InvalidInputError as exc:
        fail(str(exc), EXIT_INPUT)
    except DataMarketsError as exc:
        fail(f"{type(exc).__name__}: {exc}", EXIT_ALGORITHM)
    res = LQGameFormulation().attach(res, game, qp_solver, res.timings)
    if out is not None:
        res.save(out)
    if json_out:
        emit_json(res)
    else:
        _print_human(res)
    if not res.status.has_solution:
        fail(
            f"no equilibrium delivered: {res.status.value} ({res.solution.get('message', res.method)})",
            EXIT_ALGORITHM,
        )
    if not res.certificate.passed:
        fail(f"certificate failed: {sorted(res.certificate.failures)}", EXIT_UNCERTIFIED)


@app.command()
def generate(
    players: int = typer.Option(..., "--players", help="Number of players N (≥ 2)."),
    size: int = typer.Option(..., "--size", help="Variables n in all (≥ N)."),
    seed: int = typer.Option(0, "--seed"),
    shared: int = typer.Option(-1, "--shared", help="Shared rows (default max(1, n // 20)); 0 = none."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the game JSON."),
) -> None:
    """Write a random strongly monotone game with shared constraints (feasible by construction)."""
    from datamarkets.formulations.games import random_lq_game  # lazy: fast --help (no solver stack)

    try:
        if shared < -1:
            raise InvalidInputError(f"--shared must be >= 0 (or -1 for the default), got {shared}")
        check_out(out)
        game = random_lq_game(size, players=players, seed=seed, shared=None if shared < 0 else shared)
    except InvalidInputError as exc:
        fail(str(exc), EXIT_INPUT)
    atomic_write_json(out, game.to_dict())
    typer.echo(f"wrote {out}: {game!r}")
