"""The `djobs` command line (Typer): `djobs --help`, or `from djobs.cli import app, main`.

The app and every command live in submodules (`app.py` wires them); the man page and `docs/` describe every command.
"""

from __future__ import annotations

from djobs.cli.app import app, main

__all__ = ["app", "main"]
