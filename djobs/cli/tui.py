"""`djobs tui`: the live Textual dashboard (djobs/tui, imported only when run)."""

from __future__ import annotations

import typer

from djobs.cli import common


def tui(ctx: typer.Context) -> None:
    """Open the live dashboard.

    Queues, jobs, workers and events, refreshed live; pause, resume and cancel from the keyboard.
    """
    import dataclasses

    from djobs.config import Config

    st = common.state(ctx)
    queue = common.open_queue(st)
    from djobs.tui import run

    # the dashboard shows the database actually open (--database included) and reads [tui] refresh
    run(queue, config=dataclasses.replace(st.config() or Config(), database=st.database_url()))


def register(app: typer.Typer) -> None:
    app.command()(tui)
