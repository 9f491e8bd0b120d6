"""`datamarkets chain …` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Sequential chain data trading with profit reallocation (Eq. 9 equilibria, LP certificate, OPT).",
    no_args_is_help=True,
)
