"""Read-only commands: `inspect [ID]`, `jobs`, `why ID`, `workers`, `schedules`."""

from __future__ import annotations

from enum import StrEnum

import typer

from djobs.cli import acts, common, complete, reads


class Status(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    retrying = "retrying"
    waiting = "waiting"
    cancelled = "cancelled"
    paused = "paused"


def inspect(
    ctx: typer.Context,
    job_id: str | None = typer.Argument(
        None, metavar="ID", help="A job id; without it, an overview.", autocompletion=complete.any_job
    ),
) -> None:
    """Show an overview, or one job in detail.

    Without ID: queues with counts by status, live workers, schedules. With ID: the job's fields, args,
    result or error (with the end of the last failed attempt's traceback), attempts, progress, checkpoints,
    sub-jobs and recent events.
    """
    reads.inspect(common.state(ctx), job_id)


def jobs(
    ctx: typer.Context,
    status: Status | None = typer.Option(None, "--status", "-s", envvar="DJOBS_JOBS_STATUS", help="Only this status."),
    queue_name: str | None = typer.Option(
        None, "--queue", "-q", envvar="DJOBS_JOBS_QUEUE", metavar="Q", help="Only this queue.",
        autocompletion=complete.queue_names,
    ),
    job_type: str | None = typer.Option(
        None, "--type", "-t", envvar="DJOBS_JOBS_TYPE", metavar="T", help="Only this type.",
        autocompletion=complete.job_types,
    ),  # fmt: skip
    limit: int = typer.Option(
        50, "--limit", "-n", envvar="DJOBS_JOBS_LIMIT", metavar="N", min=1, max=common.MAX_LIMIT, help="At most N jobs."
    ),
) -> None:
    """List jobs, newest first."""
    reads.jobs(common.state(ctx), status.value if status else None, queue_name, job_type, limit)


def why(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID", help="The job id.", autocompletion=complete.any_job),
) -> None:
    """Explain in words why a job is not running yet."""
    reads.why(common.state(ctx), job_id)


def workers(
    ctx: typer.Context,
    include_dead: bool = typer.Option(
        False, "--all", "-a", envvar="DJOBS_WORKERS_ALL", help="Include workers that stopped heartbeating."
    ),
) -> None:
    """List live workers.

    Host, pid, queues with concurrency, running jobs, paused, last heartbeat.
    """
    reads.workers(common.state(ctx), include_dead)


schedules_app = typer.Typer(
    name="schedules", help="List schedules; `schedules rm NAME` deletes one.", rich_markup_mode=None
)


@schedules_app.callback(invoke_without_command=True)
def schedules(ctx: typer.Context) -> None:
    """List schedules with their last and next fire (rm NAME deletes one).

    The config's [schedules.*] are listed too before a worker or `djobs config apply` has written them.
    """
    if ctx.invoked_subcommand is not None:
        return
    reads.schedules(common.state(ctx))


@schedules_app.command("rm")
def remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.schedule_names),
    force: bool = typer.Option(
        False, "--force", envvar="DJOBS_SCHEDULES_RM_FORCE",
        help="Delete it even though the config declares it (it comes back at the next apply).",
    ),  # fmt: skip
) -> None:
    """Delete a schedule from the database.

    A schedule the config declares is refused unless --force: the config is the source of truth for its
    schedules, so remove the [schedules.NAME] table and run `djobs config apply` instead.
    """
    acts.remove_schedule(common.state(ctx), name, force)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
    app.command()(jobs)
    app.command()(why)
    app.command()(workers)
    app.add_typer(schedules_app)
