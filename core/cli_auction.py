"""`datamarkets auction …` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Progressive second price auctions on market graphs, certified against KKT conditions.",
    no_args_is_help=True,
)
