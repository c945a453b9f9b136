"""`pause` and `resume` of jobs, queues, workers and schedules (stored in the database)."""

from __future__ import annotations

import typer

from djobs.cli import acts, common, complete

pause_app = typer.Typer(
    name="pause", help="Pause a job, queue, worker or schedule.", no_args_is_help=True, rich_markup_mode=None
)
resume_app = typer.Typer(
    name="resume", help="Resume a job, queue, worker or schedule.", no_args_is_help=True, rich_markup_mode=None
)

_REASON = typer.Option(None, "--reason", envvar="DJOBS_PAUSE_REASON", metavar="TEXT", help="Why (shown by inspect).")
_AGGRESSIVE = typer.Option(
    False, "--aggressive", envvar="DJOBS_PAUSE_AGGRESSIVE", help="Cancel running handlers now (default: let them finish)."
)


@pause_app.command("job")
def pause_job(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID", autocompletion=complete.pausable_job),
    aggressive: bool = _AGGRESSIVE,
    reason: str | None = _REASON,
) -> None:
    """Pause a job.

    A pending or waiting job stays put; a running one finishes (--aggressive stops it now).
    """
    acts.pause_job(common.state(ctx), job_id, aggressive, reason)


@pause_app.command("queue")
def pause_queue(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.queue_names),
    reason: str | None = _REASON,
    force: bool = typer.Option(
        False, "--force", envvar="DJOBS_PAUSE_FORCE", help="Pause it even if djobs knows no such queue (yet)."
    ),
) -> None:
    """Pause a queue.

    No worker claims from it until resumed; running jobs finish. A queue djobs does not know (no jobs, not
    in the config, no worker serves it) is refused unless --force: a typo would otherwise stay paused.
    """
    acts.pause_queue(common.state(ctx), name, reason, force)


@pause_app.command("worker")
def pause_worker(
    ctx: typer.Context,
    worker_id: str = typer.Argument(..., metavar="ID", autocompletion=complete.worker_ids),
    aggressive: bool = _AGGRESSIVE,
    reason: str | None = _REASON,
) -> None:
    """Pause a worker.

    It notices within seconds and stops claiming; --aggressive also releases its running jobs.
    """
    acts.pause_worker(common.state(ctx), worker_id, aggressive, reason)


@pause_app.command("schedule")
def pause_schedule(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.schedule_names),
    reason: str | None = _REASON,
) -> None:
    """Pause a schedule.

    It does not fire until resumed.
    """
    acts.pause_schedule(common.state(ctx), name, reason)


@resume_app.command("job")
def resume_job(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID", autocompletion=complete.paused_job)
) -> None:
    """Resume a paused job (back to its prior status)."""
    acts.resume_job(common.state(ctx), job_id)


@resume_app.command("queue")
def resume_queue(
    ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.queue_names)
) -> None:
    """Resume a paused queue."""
    acts.resume_queue(common.state(ctx), name)


@resume_app.command("worker")
def resume_worker(
    ctx: typer.Context, worker_id: str = typer.Argument(..., metavar="ID", autocompletion=complete.worker_ids)
) -> None:
    """Resume a paused worker."""
    acts.resume_worker(common.state(ctx), worker_id)


@resume_app.command("schedule")
def resume_schedule(
    ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.schedule_names)
) -> None:
    """Resume a paused schedule."""
    acts.resume_schedule(common.state(ctx), name)


def register(app: typer.Typer) -> None:
    app.add_typer(pause_app)
    app.add_typer(resume_app)
