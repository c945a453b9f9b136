"""Read-only commands: `inspect [ID]`, `jobs`, `why ID`, `workers`, `schedules`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import typer

from djobs.cli import common, complete


class Status(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    retrying = "retrying"
    waiting = "waiting"
    cancelled = "cancelled"
    paused = "paused"


RECENT_EVENTS = 20


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
    from djobs.cli import render

    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    if job_id is None:
        stats, workers = queue.queue_stats(), queue.workers()
        schedules, unapplied = listed_schedules(st, queue)
        data = {
            "queues": [{"name": q.name, "paused": q.paused, "counts": q.counts} for q in stats],
            "workers": workers,
            "schedules": [schedule_json(s, unapplied) for s in schedules],
        }
        common.output(st, data, lambda: render.overview(stats, workers, schedules, unapplied))
        return
    detail = queue.job_detail(job_id, events=RECENT_EVENTS)
    data = common.to_jsonable(detail.job)
    data.update(checkpoints=detail.checkpoints, sub_jobs=detail.sub_jobs, events=detail.events)
    common.output(
        st, data, lambda: render.job_detail(detail.job, detail.checkpoints, detail.sub_jobs, detail.events)
    )


def schedule_json(s: Any, unapplied: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The `schedules --json` shape: name, job, next_fire, last_fire, paused (plus spec, queue, source and
    whether it is in the database yet)."""
    return {
        "name": s.name, "job": s.job, "next_fire": s.next_fire, "last_fire": s.last_fire, "paused": s.paused,
        "spec": s.spec, "queue": s.queue, "source": "config" if s.name in unapplied else getattr(s, "source", None),
        "applied": s.name not in unapplied,
    }  # fmt: skip


def listed_schedules(st: common.State, queue: Any) -> tuple[list[Any], frozenset[str]]:
    """The database's schedules, plus the config's that no worker or `config apply` has written yet
    (their next fire computed from now), and the names of the latter."""
    found = list(queue.schedules())
    conf = st.config()
    if conf is None:
        return found, frozenset()
    from datetime import UTC, datetime

    from djobs import config as cfg
    from djobs.jobs import ScheduleInfo

    have = {s.name for s in found}
    now = datetime.now(UTC)
    extra = []
    for s in conf.schedules.values():
        if s.name in have:
            continue
        spec = cfg.schedule_spec(s)
        queue_name = s.queue or (conf.declared_job(s.job) or {}).get("queue") or ""
        extra.append(ScheduleInfo(
            name=s.name, job=s.job, spec=spec.spec, args=s.args, queue=queue_name, priority=s.priority,
            timezone=s.timezone, paused=False, last_fire=None,
            next_fire=datetime.fromtimestamp(spec.next_after(now.timestamp()), UTC),
        ))  # fmt: skip
    return sorted(found + extra, key=lambda s: s.name), frozenset(s.name for s in extra)


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
    from djobs.cli import render

    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    found = queue.list_jobs(
        status=status.value if status else None, queue=queue_name, type=job_type, limit=limit
    )
    common.output(st, found, lambda: render.jobs_table(found))


def why(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID", help="The job id.", autocompletion=complete.any_job),
) -> None:
    """Explain in words why a job is not running yet."""
    from djobs.cli import render
    from djobs.explain import why as explain

    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    conf = st.config()
    reasons = explain(queue, job_id, stale_after=conf.stale_after if conf is not None else 30.0)
    job = queue.get_job(job_id)
    status = getattr(job.status, "value", job.status) if job is not None else None
    common.output(st, {"id": job_id, "status": status, "reasons": reasons}, lambda: render.reasons(job_id, reasons))


def workers(
    ctx: typer.Context,
    include_dead: bool = typer.Option(
        False, "--all", "-a", envvar="DJOBS_WORKERS_ALL", help="Include workers that stopped heartbeating."
    ),
) -> None:
    """List live workers.

    Host, pid, queues with concurrency, running jobs, paused, last heartbeat.
    """
    from djobs.cli import render

    st = common.state(ctx)
    found = common.open_queue(st, handlers=False).workers(include_dead=include_dead)
    common.output(st, found, lambda: render.workers_table(found))


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
    from djobs.cli import render

    st = common.state(ctx)
    found, unapplied = listed_schedules(st, common.open_queue(st, handlers=False))
    common.output(st, [schedule_json(s, unapplied) for s in found], lambda: render.schedules_table(found, unapplied))


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
    st = common.state(ctx)
    conf = st.config()
    if conf is not None and name in conf.schedules and not force:
        raise common.OperationFailed(
            f"schedule {name!r} is declared in {conf.path} [schedules.{name}]: remove it there and run "
            "`djobs config apply` (or use --force; it returns at the next apply)"
        )
    if not common.open_queue(st, handlers=False).unschedule(name):
        raise common.OperationFailed(f"no schedule {name!r}")
    common.output(st, {"name": name, "action": "removed"}, lambda: print(common.printable(f"removed schedule {name}")))


def register(app: typer.Typer) -> None:
    app.command()(inspect)
    app.command()(jobs)
    app.command()(why)
    app.command()(workers)
    app.add_typer(schedules_app)
