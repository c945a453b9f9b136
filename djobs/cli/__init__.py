"""The `djobs` command line (Typer): `djobs --help`, or `from djobs.cli import app, main`.

The app and every command live in submodules (`app.py` wires them); the man page and `docs/` describe every
command. Importing this package does not build the app: `main` first tries the typer-free fast path
(`fast.py`: a plain `djobs enqueue` and Tab presses), and `app` is made on first use.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point (`djobs`): the fast path when it fully understands the command line,
    else the Typer app."""
    from djobs.cli import fast

    fast.main()


class _Package(types.ModuleType):
    """`djobs.cli.app` is the Typer app, made on first use (as it was when this package built it eagerly)."""

    @property
    def app(self) -> Any:
        from djobs.cli.app import app

        return app

    @app.setter
    def app(self, value: Any) -> None:
        pass  # the import system binds the submodule djobs.cli.app here; the Typer app stays the answer


sys.modules[__name__].__class__ = _Package
