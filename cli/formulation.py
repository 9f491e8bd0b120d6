"""Commands that work for every registered formulation: ``formulations``, ``solve``, ``verify``.

A formulation registered under the ``datamarkets.formulations`` entry-point group (built-in or a
plug-in) gets these for free. Exit codes: 0 ok (certified), 2 bad input, 3 solver or algorithm
failure, 4 a result exists but its certificate failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from datamarkets.cli.common import (
    EXIT_ALGORITHM,
    EXIT_UNCERTIFIED,
    check_options,
    check_out,
    emit_json,
    fail_no_solution,
    print_table,
    solver_output_to_stderr,
    stdout,
)
from datamarkets.errors import DataMarketsError, InvalidInputError
from datamarkets.io import read_json
from datamarkets.registry import broken_plugins, formulation_for_kind, get_formulation
from datamarkets.registry import list_formulations as registered
from datamarkets.solvers import available_solvers
from datamarkets.status import StatusGroup

__all__ = ["exit_code", "formulations", "parse_params", "solve", "verify"]


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["n=5", "model=paper-1", "epsilon=1e-3"]`` → ``{"n": 5, "model": "paper-1", "epsilon": 0.001}``.

    Values are read as JSON when they parse (numbers, true/false, lists), else kept as strings.

    Raises
    ------
    InvalidInputError
        An item without ``=`` or with an empty key.

    Examples
    --------
    >>> parse_params(["n=5", "model=paper-1", "x=0.5", "flag=true"])
    {'n': 5, 'model': 'paper-1', 'x': 0.5, 'flag': True}
    """
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def formulations(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the registered formulations, their solvers (installed or not) and their parameters."""

    avail = available_solvers()
    found = registered()
    if as_json:
        emit_json(
            {
                name: {
                    "summary": f.summary,
                    "kinds": list(f.kinds),
                    "solvers": {s: (avail.get(s) if s != "direct" else "built-in") for s in f.solvers},
                    "size": f.size_meaning,
                    "parameters": f.parameters,
                }
                for name, f in found.items()
            }
            | ({"_broken_plugins": broken_plugins()} if broken_plugins() else {})
        )
        return
    from rich.markup import escape

    for name, f in found.items():
        solvers = ", ".join(
            s if s == "direct" or avail.get(s) else f"[dim]{s} (not installed)[/dim]" for s in f.solvers
        )
        params = ", ".join(f"{k}={v!r}" for k, v in f.parameters.items())
        stdout.print(f"[bold]{name}[/bold] — {escape(f.summary)}", soft_wrap=True)
        stdout.print(f"    solvers:    {solvers}", soft_wrap=True)
        stdout.print(f"    parameters: {escape(params)}", soft_wrap=True)
        stdout.print(f"    bench size: {escape(f.size_meaning)}", soft_wrap=True)
    for name, why in broken_plugins().items():
        stdout.print(f"[red]broken plug-in {name!r}: {escape(why)}[/red]", soft_wrap=True)


def solve(
    name: str = typer.Argument(..., help="Formulation name (see `datamarkets formulations`)."),
    param: list[str] = typer.Option(
        None, "--param", "-p", help="Instance parameter KEY=VALUE (repeatable), e.g. -p size=50 -p seed=1."
    ),
    instance: Path | None = typer.Option(
        None, "--instance", "-i", help="Instance JSON (the formulation's format) instead of --param."
    ),
    solver: str | None = typer.Option(
        None, "--solver", "-s", help="Solver (default: the formulation's first)."
    ),
    time_limit: float | None = typer.Option(None, "--time-limit", help="Seconds for the solve phase."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Save the result (with its instance embedded) for `datamarkets verify`."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Solve one instance with any registered formulation and certify the answer.

    The instance comes from parameters (-p KEY=VALUE; see `datamarkets formulations`) or from a
    JSON file. The saved result embeds the instance and its hash, so `datamarkets verify` can check
    it later on its own. Exit 0 certified, 2 bad input, 3 solver failure, 4 not certified.
    """

    time_limit = check_options(time_limit=time_limit)
    check_out(out)
    f = get_formulation(name)
    if instance is not None and param:
        raise InvalidInputError("give --instance or --param, not both")
    inst = load_instance(f, instance) if instance is not None else f.instance(parse_params(param))
    with solver_output_to_stderr():
        res = f.solve(inst, solver, time_limit=time_limit)
    if out is not None:
        res.save(out)
    if as_json:
        emit_json(res)
    else:
        _print_result(res, f.objective(res))
        if out is not None:
            stdout.print(f"saved {out}")
    if exit_code(res) == EXIT_ALGORITHM:
        fail_no_solution(res, f"solve {name}")
    raise typer.Exit(exit_code(res))


def load_instance(f: Any, path: Path) -> Any:
    """Read an instance file for formulation ``f``; any failure is bad input naming the file.

    Plug-ins' ``instance_from_dict`` may raise plain ``TypeError``/``KeyError``/… on a malformed
    document: these become :class:`~datamarkets.errors.InvalidInputError` (exit 2), never a traceback.
    """
    data = read_json(path, "instance file")
    try:
        return f.instance_from_dict(data)
    except DataMarketsError:
        raise
    except (TypeError, KeyError, IndexError, AttributeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"instance file {str(path)!r} is not a valid {f.name} instance: {type(exc).__name__}: {exc}"
        ) from exc


def exit_code(res: Any) -> int:
    """0 certified, or a typed "no solution exists" answer (infeasible, no equilibrium); 3 a limit
    or solver error; 4 a solution whose certificate failed."""

    if res.status.has_solution:
        return 0 if res.certificate.passed else EXIT_UNCERTIFIED
    if res.status.group is StatusGroup.INFEASIBLE_OR_UNBOUNDED:
        return 0
    return EXIT_ALGORITHM


def _print_result(res: Any, objective: float | None) -> None:
    rows: list[list[Any]] = [
        ["formulation", res.meta.get("formulation")],
        ["status", res.status.value],
        ["method", res.method],
        ["solver", res.meta.get("solver")],
        ["objective", objective],
        ["certified", res.certified],
        *[[k, v] for k, v in res.timings.items()],
    ]
    print_table(f"{res.kind} result", ["quantity", "value"], rows)
    _print_certificate(res.certificate, "certificate")


def _print_certificate(cert: Any, title: str) -> None:
    rows = [
        [k, v, cert.tolerances.get(k), "ok" if k not in cert.failures else "FAILED"]
        for k, v in cert.residuals.items()
    ]
    if rows:
        print_table(title, ["residual", "value", "tolerance", ""], rows)


def verify(
    result: Path = typer.Argument(
        ..., help="A saved result JSON (`solve --out`, `chain/auction/gne solve --out`)."
    ),
    instance: Path | None = typer.Option(
        None, "--instance", "-i", help="Instance JSON, for a result saved without an embedded instance."
    ),
    formulation: str | None = typer.Option(
        None, "--formulation", "-f", help="Formulation to verify with (default: recorded in the result)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verification result as JSON."),
) -> None:
    """Re-derive the certificate of a saved result from its solution and instance alone.

    The solver that produced the result is not trusted: the optimality conditions are checked
    again (best-response LPs, KKT residuals with best prices, Leontief residual, ε-Nash gains).
    Exit 0 when every residual is within its tolerance, 4 when one is not, 2 for a bad file
    (including an instance that does not match its recorded hash).
    """

    saved = read_json(result)
    if not isinstance(saved, dict) or "kind" not in saved or "status" not in saved:
        raise InvalidInputError(f"{str(result)!r} is not a saved datamarkets result (no 'kind'/'status')")
    meta = saved.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    f = formulation_for_kind(str(saved["kind"]), formulation or meta.get("formulation"))
    inst = None
    if instance is not None:
        inst = load_instance(f, instance)
    with solver_output_to_stderr():
        ver = f.verify(saved, instance=inst)
    if as_json:
        emit_json(ver)
    else:
        sol = ver.solution
        print_table(
            f"verify {result.name}",
            ["quantity", "value"],
            [
                ["kind", sol["verified_kind"]],
                ["formulation", f.name],
                ["saved status", ver.status.value],
                ["claimed certified", sol["claimed_passed"]],
                ["instance hash", ver.meta.get("instance_hash", "")[:16]],
                ["seconds", ver.timings.get("verify_seconds")],
            ],
        )
        _print_certificate(ver.certificate, "re-derived certificate")
        note = ver.certificate.details.get("note")
        if note:
            stdout.print(note)
        verdict = (
            "VERIFIED" if ver.certificate.passed else f"NOT VERIFIED: {sorted(ver.certificate.failures)}"
        )
        stdout.print(verdict)
    if not ver.certificate.passed:
        raise typer.Exit(EXIT_UNCERTIFIED)
