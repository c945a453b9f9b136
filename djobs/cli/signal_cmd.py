"""`djobs signal ID NAME [--payload JSON|@file|-]`: send a signal to a job (`queue.signal`)."""

from __future__ import annotations

import typer

from djobs.cli import acts, common, complete


def signal(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID", help="The job id.", autocompletion=complete.unfinished_job),
    name: str = typer.Argument(..., metavar="NAME", help="The signal's name (what the job waits for)."),
    payload: str | None = typer.Option(
        None, "--payload", envvar="DJOBS_SIGNAL_PAYLOAD", metavar="JSON|@FILE|-",
        help="The payload as JSON, from a file (@FILE) or stdin (-) [default: null].",
    ),  # fmt: skip
) -> None:
    """Send a signal to a job.

    A job waiting for it wakes at once; any other unfinished job keeps it until it waits (first in, first
    out per name). Exit 1 for an unknown job, 2 for a finished one.
    """
    acts.signal(common.state(ctx), job_id, name, payload)


def register(app: typer.Typer) -> None:
    app.command()(signal)
