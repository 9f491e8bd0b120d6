"""The ``datamarkets`` command line.

Sub-commands live in ``cli_chain.py``, ``cli_auction.py`` and ``cli_gne.py``; each imports its
heavy machinery inside the command so that ``--help`` stays fast. Any
:class:`~datamarkets.errors.DataMarketsError` ends the program with one line on stderr:
exit code 2 for bad input, 3 when an algorithm or solver could not deliver.
"""

from __future__ import annotations

import typer

from datamarkets import __version__
from datamarkets.cli_auction import app as auction_app
from datamarkets.cli_chain import app as chain_app
from datamarkets.cli_common import EXIT_ALGORITHM, EXIT_INPUT, fail
from datamarkets.cli_gne import app as gne_app
from datamarkets.errors import DataMarketsError, InvalidInputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="datamarkets",
    help="Compute and verify equilibria in data markets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(chain_app, name="chain")
app.add_typer(auction_app, name="auction")
app.add_typer(gne_app, name="gne")


@app.command()
def version() -> None:
    """Print the datamarkets version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: run the app, turning library errors into one line + exit code."""
    try:
        app(prog_name="datamarkets")
    except InvalidInputError as exc:
        fail(str(exc), EXIT_INPUT)
    except DataMarketsError as exc:
        fail(f"{type(exc).__name__}: {exc}", EXIT_ALGORITHM)


if __name__ == "__main__":  # pragma: no cover
    main()
