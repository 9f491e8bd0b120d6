"""The ``datamarkets`` command line.

Sub-commands live in ``cli/chain.py``, ``cli/auction.py`` and ``cli/gne.py``; each imports its
heavy machinery inside the command so that ``--help`` stays fast. Any
:class:`~datamarkets.errors.DataMarketsError` ends the program with one line on stderr:
exit code 2 for bad input, 3 when an algorithm or solver could not deliver.
"""

from __future__ import annotations

import warnings
from typing import Any

import typer
from typer.exceptions import TyperException

from datamarkets import __version__
from datamarkets.cli.auction import app as auction_app
from datamarkets.cli.bench import app as bench_app
from datamarkets.cli.chain import app as chain_app
from datamarkets.cli.common import EXIT_ALGORITHM, EXIT_INPUT, fail
from datamarkets.cli.formulation import formulations, solve, verify
from datamarkets.cli.game import app as game_app
from datamarkets.cli.gne import app as gne_app
from datamarkets.cli.sweep_command import sweep
from datamarkets.errors import DataMarketsError, InvalidInputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="datamarkets",
    help=(
        "Compute and verify equilibria in data markets. Every answer carries a certificate: the "
        "residuals of its optimality conditions, each beside the tolerance it is judged against.\n\n"
        "Three markets have their own commands: chain (data resold along a chain of buyers), auction "
        "(sellers' data allocated to buyers by welfare maximisation or a bidding auction) and gne (firms "
        "competing for the same data sources). Every formulation, built-in or plug-in, can also be "
        "listed (formulations), solved (solve), re-checked from a saved file (verify), benchmarked "
        "across solvers (bench solvers) and run over a parameter grid on Dask (sweep).\n\n"
        "Exit codes: 0 ok, 2 bad input, 3 a solver or algorithm could not deliver, 4 a result was "
        "computed but its certificate failed."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(chain_app, name="chain")
app.add_typer(auction_app, name="auction")
app.add_typer(gne_app, name="gne")
app.add_typer(game_app, name="game")
app.command("formulations")(formulations)
app.command("solve")(solve)
app.command("verify")(verify)
app.add_typer(bench_app, name="bench")
app.command("sweep")(sweep)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the datamarkets version and exit (same as the `version` command).",
    ),
) -> None:
    """Compute and verify equilibria in data markets."""


@app.command()
def version() -> None:
    """Print the datamarkets version."""
    typer.echo(__version__)


def _one_line_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    """Warnings on stderr as one ``datamarkets: warning: …`` line (not file, line and source)."""
    return f"datamarkets: warning: {message}\n"


def main() -> None:
    """Console-script entry point: run the app, turning library errors into one line + exit code.

    Usage errors of the command line itself (an unknown option, a value that is not a number, a
    missing required option) are one line too, exit 2, naming the command's ``--help``.
    """
    saved_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        code = app(prog_name="datamarkets", standalone_mode=False)
    except TyperException as exc:  # click's usage errors (typer vendors click; this is their base)
        ctx = getattr(exc, "ctx", None)
        if not exc.format_message().strip():  # no arguments: the help was printed, as asked
            raise SystemExit(getattr(exc, "exit_code", EXIT_INPUT)) from None
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        fail(f"{exc.format_message()}{where}", getattr(exc, "exit_code", EXIT_INPUT))
    except typer.Abort:
        fail("aborted", 1)
    except InvalidInputError as exc:
        fail(str(exc), EXIT_INPUT)
    except DataMarketsError as exc:
        fail(f"{type(exc).__name__}: {exc}", EXIT_ALGORITHM)
    finally:  # called in process (tests, notebooks): leave the interpreter's formatter as it was
        warnings.formatwarning = saved_format
    # without standalone mode click returns the code of an explicit exit (--help, --version, Ctrl-C)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
