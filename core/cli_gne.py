"""`datamarkets gne …` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Competing data buyers: generalized Nash equilibria and the price of anarchy.", no_args_is_help=True
)
