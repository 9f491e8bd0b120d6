"""The application layer: the ``datamarkets`` command line, parameter sweeps, solver benches and
paper reproductions.

It sits on top of every other layer (``core`` ← ``graphs`` ← ``models`` ← ``formulations`` ←
``cli``) and nothing in the library imports it. :data:`app` is the Typer application and
:func:`main` the console-script entry point (see :mod:`datamarkets.cli.application`).
"""

from __future__ import annotations

from datamarkets.cli.application import app, main

__all__ = ["app", "main"]
