"""Matplotlib on the Agg backend, and figures saved atomically as PNG, PDF or SVG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from datamarkets.errors import InvalidInputError
from datamarkets.io import atomic_path

__all__ = ["FORMATS", "figure_format", "pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FORMATS = ("png", "pdf", "svg")


def figure_format(fmt: str) -> str:
    """Check a ``--format`` value: one of :data:`FORMATS` (case-insensitive); return it lower-case.

    Raises
    ------
    InvalidInputError
        Any other value.

    Examples
    --------
    >>> figure_format("PDF")
    'pdf'
    """
    f = str(fmt).lower().lstrip(".")
    if f not in FORMATS:
        raise InvalidInputError(f"unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return f


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save ``fig`` at ``path`` atomically, then close it; return the path.

    The format follows the suffix of ``path``: ``.pdf`` and ``.svg`` are vector graphics (for
    papers), anything else is written as PNG at ``dpi``.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = suffix if suffix in FORMATS else "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    pyplot().close(fig)
    return Path(path)
