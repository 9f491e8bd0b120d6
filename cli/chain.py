"""`datamarkets chain …` commands: solve, verify, optimize, reproduce.

A game comes either from a named paper model (``--model paper-1 --n 5 --mechanism ave``) or from
a JSON file (``--model-file game.json``, issue-2 format). ``--mechanism`` accepts ``raw``,
``ave``, ``tbds:0.5`` or JSON (``'{"tbds": 0.5}'``, an n×(n+1) matrix); with ``--model-file`` it
overrides the file's mechanism. Exit codes: 2 bad input, 3 solver/algorithm failure,
4 result produced but its certificate failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from datamarkets.cli.common import (
    EXIT_UNCERTIFIED,
    check_options,
    check_out,
    emit_json,
    print_table,
    solver_output_to_stderr,
    stdout,
)
from datamarkets.errors import InvalidInputError
from datamarkets.io import read_json
from datamarkets.plotting import figure_format
from datamarkets.registry import get_formulation

__all__ = ["app"]

app = typer.Typer(
    short_help="Chain data trading: exact equilibria, LP certificates, the best reallocation mechanism.",
    help=(
        "Chain data trading: a dataset is resold along a chain of players; each owner posts a price, the "
        "next player buys if the price is below its threshold, and a reallocation mechanism shares every "
        "sale's price with earlier sellers. Solve the equilibrium exactly, certify it with one LP per "
        "player, and search for the reallocation with the highest welfare."
    ),
    no_args_is_help=True,
)

_AUTO_CERTIFY_ROWS = 300_000  # policy-evaluation rows of all players' LPs (n=50, L=201: 256k rows, ~5 s)

_MODEL = typer.Option(
    None, "--model", "-m", help="Named paper model: paper-1, paper-2, paper-4 (paper-3: our reading)."
)
_N = typer.Option(5, "--n", "-n", help="Chain length (number of trades) of a named model.")
_MECH = typer.Option(
    None, "--mechanism", help="raw | ave | tbds:ALPHA | JSON ('{\"tbds\": 0.5}' or a matrix)."
)
_FILE = typer.Option(None, "--model-file", "-f", help="Game JSON (issue-2 format).")
_JSON = typer.Option(False, "--json", help="Print JSON only.")


def _no_constant(token: str) -> Any:
    raise ValueError(f"JSON has no {token}")


def _parse_mechanism(spec: str | None) -> Any:
    if spec is None:
        return None
    s = spec.strip()
    if s[:1] in "[{":
        try:
            return json.loads(s, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"--mechanism is not valid JSON: {exc}") from exc
        except (RecursionError, ValueError) as exc:  # '[' * 10**5, NaN, a 5000-digit integer
            raise InvalidInputError(f"--mechanism is not a valid mechanism: {type(exc).__name__}") from None
    return s


def _load_game(model: str | None, n: int, mechanism: str | None, model_file: Path | None) -> Any:
    from datamarkets.models.chain_game import load_game  # lazy: fast --help (no solver stack)
    from datamarkets.models.chain_valuations import (
        paper_model,  # lazy: fast --help (no solver stack)
    )

    if (model is None) == (model_file is None):
        raise InvalidInputError("give exactly one of --model and --model-file")
    mech = _parse_mechanism(mechanism)
    if model_file is not None:
        game = load_game(model_file)
        return game if mech is None else game.with_mechanism(mech)
    if model is None:  # excluded by the first check; spelt out so that `model` narrows to str
        raise InvalidInputError("give exactly one of --model and --model-file")
    return paper_model(model, n, "raw" if mech is None else mech)


def _print_equilibrium(res: Any) -> None:
    sol = res.solution
    print_table(
        f"Chain equilibrium {sol.get('label', '')} (n={sol['n']}, L={sol['L']}, {res.method})",
        ["quantity", "value"],
        [
            ["social welfare (exact)", float(sol["social_welfare"])],
            ["transaction volume (exact)", float(sol["transaction_volume"])],
            ["tie rule (tied decisions)", f"{sol['tie_rule']} ({sol['tie_count']})"],
            ["SW range over both tie rules", sol["sw_tie_range"]],
            ["solve seconds", float(res.timings["solve_seconds"])],
            ["certificate", "passed" if res.certificate.passed else f"FAILED {res.certificate.failures}"],
        ],
    )
    succ = list(sol["trade_success"])
    util = list(sol["player_utility"])
    rows = [[i, float(util[i]), float(succ[i - 1]) if i >= 1 else "-"] for i in range(len(util))]
    print_table("Per player / trade", ["player i", "E[U_i]", "P(trade i occurs)"], rows)


@app.command()
def solve(
    model: str | None = _MODEL,
    n: int = _N,
    mechanism: str | None = _MECH,
    model_file: Path | None = _FILE,
    method: str = typer.Option("fast", "--method", help="fast | reference (the paper's Algorithms 1–3)."),
    tie_rule: str | None = typer.Option(
        None,
        "--tie-rule",
        help="lowest | highest: which maximising price wins a tie (default: the game's, else lowest). "
        "The welfare range over both rules is reported either way.",
    ),
    time_limit: float | None = typer.Option(
        None, "--time-limit", help="Seconds for the equilibrium solve (exit 3 when it runs out)."
    ),
    certify: bool | None = typer.Option(
        None,
        "--certify/--no-certify",
        help="Run the LP certificate too (default: when n(n+1)L/2 ≤ 300,000, i.e. it runs in seconds).",
    ),
    json_out: bool = _JSON,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Save the full result (game embedded) for `datamarkets verify`."
    ),
) -> None:
    """Solve a chain game: every player's buying threshold and selling price (the paper's Eq. 9).

    Prints the exact expected social welfare (SW), transaction volume (TV = expected number of
    trades), each trade's probability and each player's expected utility — computed, not sampled —
    the welfare range over the two tie rules, and, unless the game is large, the LP certificate
    (the same certificate as `datamarkets verify`). Exit 0 certified, 2 bad input, 3 time limit,
    4 uncertified.
    """
    import time

    from datamarkets.formulations.chain_certificate import (
        certify_chain_solution,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.models.chain_equilibrium import (
        solve_equilibrium,  # lazy: fast --help (no solver stack)
    )

    check_out(out)  # a bad destination fails in one line before any work
    time_limit = check_options(time_limit=time_limit)  # the shared rule: > 0 seconds, inf = none
    game = _load_game(model, n, mechanism, model_file)
    if tie_rule is not None:
        game = game.with_tie_rule(tie_rule)
    eq = solve_equilibrium(game, method=method, time_limit=time_limit)
    res = eq.to_result()
    if certify is None:
        certify = game.n * (game.n + 1) * game.L / 2 <= _AUTO_CERTIFY_ROWS
    t0 = time.perf_counter()
    with solver_output_to_stderr():  # HiGHS's banner must not reach --json stdout
        res.certificate = certify_chain_solution(game, res.solution, lp=certify)
    res.timings["certify_seconds"] = time.perf_counter() - t0
    res.solution["certified"] = bool(res.certificate.passed)

    # the game is embedded (with its hash) so that `datamarkets verify` can re-check the output alone
    get_formulation("chain-equilibrium").attach(res, game, "direct")
    if out is not None:
        res.save(out)
    if json_out:
        emit_json(res)
    else:
        _print_equilibrium(res)
    if not res.certificate.passed:
        raise typer.Exit(EXIT_UNCERTIFIED)


@app.command()
def verify(
    model: str | None = _MODEL,
    n: int = _N,
    mechanism: str | None = _MECH,
    model_file: Path | None = _FILE,
    claim: Path | None = typer.Option(
        None, "--claim", help="JSON with 'thresholds' and 'prices' to verify (e.g. `chain solve --json`)."
    ),
    json_out: bool = _JSON,
) -> None:
    """Certify strategies: one LP per player finds its best price for every value it may hold,
    given everyone else's strategy; the claimed thresholds and prices must attain it.

    Without --claim the package's own equilibrium is certified. Exit 0 certified, 4 not.
    """
    from datamarkets.formulations.chain_certificate import (
        certify_equilibrium,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.models.chain_equilibrium import (
        solve_equilibrium,  # lazy: fast --help (no solver stack)
    )

    game = _load_game(model, n, mechanism, model_file)
    if claim is not None:
        d = read_json(claim)
        if not isinstance(d, dict) or "thresholds" not in d or "prices" not in d:
            raise InvalidInputError(f"{str(claim)!r} needs the keys 'thresholds' and 'prices'")
        strategies: Any = {"thresholds": d["thresholds"], "prices": d["prices"]}
        try:
            strategies = {k: [[float(x) for x in row] for row in v] for k, v in strategies.items()}
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{str(claim)!r}: thresholds/prices must be numeric matrices") from exc
    else:
        strategies = solve_equilibrium(game)
    with solver_output_to_stderr():
        res = certify_equilibrium(game, strategies)
    if json_out:
        emit_json(res)
    else:
        rows = [
            [
                d["player"],
                d.get("threshold_gap_rel", float("nan")),
                d.get("price_gap_rel", float("nan")),
                d.get("rows", 0),
            ]
            for d in res.certificate.details["per_player"]
        ]
        print_table(
            "LP certificate per player", ["player", "|LP − DP| / max(|w|,|DP|)", "price gap", "LP rows"], rows
        )
        verdict = "CERTIFIED" if res.certificate.passed else "NOT CERTIFIED"
        stdout.print(
            f"{verdict}: max gap {res.solution['max_gap']:.3e} (tolerance 1e-7), "
            f"{res.timings['certify_seconds']:.2f} s"
        )
    if not res.certificate.passed:
        raise typer.Exit(EXIT_UNCERTIFIED)


@app.command()
def optimize(
    model: str | None = _MODEL,
    n: int = _N,
    model_file: Path | None = _FILE,
    method: str = typer.Option("pattern", "--method", help="pattern (default) | de (the paper's App. D)."),
    seed: int = typer.Option(0, "--seed"),
    time_limit: float = typer.Option(60.0, "--time-limit", help="Wall-clock safety net (seconds)."),
    max_evals: int = typer.Option(20_000, "--max-evals", help="Budget of exact solves (deterministic)."),
    random_starts: int = typer.Option(4, "--random-starts"),
    certify: bool = typer.Option(True, "--certify/--no-certify", help="LP-certify OPT's equilibrium."),
    json_out: bool = _JSON,
) -> None:
    """Search the reallocation mechanism with the highest expected welfare (the paper's OPT).

    A mechanism says which share of each trade's price goes to which earlier player (each share
    ≥ 0, at most the whole price). Compared with RAW (no sharing) and AVE (equal shares), beside an
    upper bound on any mechanism's welfare; the search is heuristic (optimality is not proven).
    """
    from datamarkets.formulations.chain_certificate import (
        certify_equilibrium,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.models.chain_equilibrium import (
        solve_equilibrium,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.models.chain_mechanism_opt import (
        optimize_mechanism,  # lazy: fast --help (no solver stack)
    )

    game = _load_game(model, n, None, model_file)
    res = optimize_mechanism(
        game,
        method=method,
        seed=seed,
        time_limit=time_limit,
        random_starts=random_starts,
        max_evals=max_evals,
    )
    if certify:
        g_opt = game.with_mechanism(res.solution["mechanism"])
        cert = certify_equilibrium(g_opt, solve_equilibrium(g_opt))
        for name, value in cert.certificate.residuals.items():
            res.certificate.add(name, value, cert.certificate.tolerances[name])
        res.timings["certify_seconds"] = cert.timings["certify_seconds"]
    if json_out:
        emit_json(res)
    else:
        sol = res.solution
        b = sol["baselines"]
        print_table(
            f"OPT mechanism ({res.method}, {sol['evaluations']} exact solves, "
            f"{res.timings['optimize_seconds']:.2f} s)",
            ["mechanism", "SW (exact)", "TV (exact)"],
            [
                ["RAW", b["raw"]["social_welfare"], b["raw"]["transaction_volume"]],
                ["AVE", b["ave"]["social_welfare"], b["ave"]["transaction_volume"]],
                ["OPT", sol["social_welfare"], sol["transaction_volume"]],
                ["upper bound E[v0]+ΣE[v_i⁺]", sol["sw_upper_bound"], "-"],
            ],
        )
        t = sol["mechanism"]
        print_table(
            "OPT t[trade i, player j]",
            ["trade", *[f"j={j}" for j in range(len(t[0]))]],
            [[i + 1, *[float(x) for x in row]] for i, row in enumerate(t)],
        )
        stdout.print(
            "certificate: " + ("passed" if res.certificate.passed else f"FAILED {res.certificate.failures}")
        )
    if not res.certificate.passed:
        raise typer.Exit(EXIT_UNCERTIFIED)


@app.command()
def reproduce(
    out: Path = typer.Option(..., "--out", help="Output directory."),
    n_max: int = typer.Option(8, "--n-max", help="Largest chain length of Figure 3."),
    n_min: int = typer.Option(2, "--n-min", help="Smallest chain length of Figure 3."),
    seeds: int = typer.Option(5, "--seeds", help="Monte Carlo seeds (paper: 5)."),
    mc_seed: int = typer.Option(
        20_260_611, "--mc-seed", min=0, help="Root seed of the per-cell Monte Carlo streams."
    ),
    samples: int = typer.Option(10_000, "--samples", help="Profiles per seed (paper: 10,000)."),
    opt_max_evals: int = typer.Option(
        20_000, "--opt-max-evals", help="OPT exact solves per model (Table 1)."
    ),
    sweep_max_evals: int = typer.Option(
        2_500, "--sweep-max-evals", help="OPT exact solves per (model, n) (Fig. 3)."
    ),
    opt_time_limit: float = typer.Option(
        60.0, "--opt-time-limit", help="Safety net per OPT search (seconds)."
    ),
    fmt: str = typer.Option("png", "--format", help="Figure format: png | pdf | svg (vector, for papers)."),
    json_out: bool = _JSON,
) -> None:
    """Reproduce the chain-trading paper's experiments: Table 1, Figures 2 and 3 (CSV + PNG) in --out.

    Every equilibrium is LP-certified and the exact expectations are checked against Monte Carlo.
    """
    from datamarkets.cli.chain_experiments import (
        reproduce as run,  # lazy: fast --help (no solver stack)
    )

    fmt = figure_format(fmt)  # checked before minutes of work
    check_out(out, directory=True)
    if not 1 <= n_min <= n_max:
        raise InvalidInputError(f"need 1 <= --n-min <= --n-max, got {n_min!r}, {n_max!r}")
    summary = run(
        out,
        n_values=range(n_min, n_max + 1),
        seeds=seeds,
        samples=samples,
        opt_max_evals=opt_max_evals,
        sweep_max_evals=sweep_max_evals,
        opt_time_limit=opt_time_limit,
        root_seed=mc_seed,
        fmt=fmt,
    )
    if json_out:
        emit_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Table 1 (n=5): exact vs the paper's protocol ({seeds} seeds × {samples} samples; "
        "MC mean ± s.e. of the pooled mean; sd = the paper's sd over seeds; z = (MC − exact) / s.e.; "
        "one random stream per cell)"
    )
    cols = ("model", "mech.", "SW exact", "SW MC ± s.e.", "sd", "z", "TV exact", "TV MC ± s.e.", "sd", "z")
    for col in (*cols, "LP cert."):
        table.add_column(col, justify="left" if col in ("model", "mech.") else "right")
    for r in summary["table1"]:
        table.add_row(
            r["model"],
            r["mechanism"].upper(),
            f"{r['social_welfare']:.4f}",
            f"{r['sw_mc_mean']:.4f} ± {r['sw_mc_se']:.4f}",
            f"{r['sw_mc_sd']:.4f}",
            f"{r['sw_mc_z']:+.1f}",
            f"{r['transaction_volume']:.4f}",
            f"{r['tv_mc_mean']:.4f} ± {r['tv_mc_se']:.4f}",
            f"{r['tv_mc_sd']:.4f}",
            f"{r['tv_mc_z']:+.1f}",
            "yes" if r.get("certified") else "NO",
        )
    Console(width=max(stdout.width, 112)).print(table)
    stdout.print(
        f"wrote {len(summary['files'])} files to {out} in {summary['timings']['total_seconds']:.1f} s"
    )
