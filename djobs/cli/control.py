"""`pause` and `resume` of jobs, queues, workers and schedules (stored in the database)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from djobs.cli import common, complete

if TYPE_CHECKING:
    from djobs.jobs import PauseMode
    from djobs.queue import Queue

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


def _mode(aggressive: bool) -> PauseMode:
    from djobs.jobs import PauseMode

    return PauseMode.AGGRESSIVE if aggressive else PauseMode.GRACEFUL


def _done(st: common.State, what: str, name: str, action: str, **extra: object) -> None:
    data = {"kind": what, "id" if what in ("job", "worker") else "name": name, "action": action, **extra}
    common.output(st, data, lambda: print(common.printable(f"{action} {what} {name}")))


def _require_job(queue: Queue, job_id: str) -> None:
    import djobs

    if queue.get_job(job_id) is None:
        raise djobs.JobNotFound(job_id)


def _status(queue: Queue, job_id: str) -> str:
    job = queue.get_job(job_id)
    return str(getattr(job.status, "value", job.status)) if job is not None else "gone"


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
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    _require_job(queue, job_id)
    if not queue.pause_job(job_id, mode=_mode(aggressive), reason=reason):
        raise common.OperationFailed(f"job {job_id} is {_status(queue, job_id)}; only unfinished jobs can be paused")
    _done(st, "job", job_id, "paused", mode="aggressive" if aggressive else "graceful")


def known_queues(st: common.State, queue: Queue) -> set[str]:
    """Queues that exist for djobs: with jobs or a stored pause, named by the config (its queues and its
    job types' queues), served by a live worker, or the queue of a job type workers registered."""
    names = {q.name for q in queue.queue_stats()} | {"default"}
    conf = st.config()
    if conf is not None:
        names |= set(conf.queues)
        declared = [conf.declared_job(name) or {} for name in [*conf.jobs, *conf.workflows]]
        names |= {d["queue"] for d in declared if "queue" in d}
    for w in queue.workers():
        names |= set(w.queues)
    known_types: Any = getattr(queue, "known_types", None)  # types workers registered in the database
    if known_types is not None:
        names |= {t.queue for t in known_types()}
    return names


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
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    if not force:
        known = known_queues(st, queue)
        if name not in known:
            listed = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
            raise common.OperationFailed(
                f"no queue {name!r}: it has no jobs, no worker serves it and the config does not name it "
                f"(known: {listed}); use --force to pause it before it exists"
            )
    queue.pause_queue(name, reason=reason)
    _done(st, "queue", name, "paused")


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
    st = common.state(ctx)
    if not common.open_queue(st, handlers=False).pause_worker(worker_id, mode=_mode(aggressive), reason=reason):
        raise common.OperationFailed(f"no worker {worker_id!r}")
    _done(st, "worker", worker_id, "paused", mode="aggressive" if aggressive else "graceful")


@pause_app.command("schedule")
def pause_schedule(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.schedule_names),
    reason: str | None = _REASON,
) -> None:
    """Pause a schedule.

    It does not fire until resumed.
    """
    st = common.state(ctx)
    if not common.open_queue(st, handlers=False).pause_schedule(name, reason=reason):
        raise common.OperationFailed(f"no schedule {name!r}")
    _done(st, "schedule", name, "paused")


@resume_app.command("job")
def resume_job(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID", autocompletion=complete.paused_job)
) -> None:
    """Resume a paused job (back to its prior status)."""
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    _require_job(queue, job_id)
    if not queue.resume_job(job_id):
        raise common.OperationFailed(f"job {job_id} is {_status(queue, job_id)}, not paused")
    _done(st, "job", job_id, "resumed")


@resume_app.command("queue")
def resume_queue(
    ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.queue_names)
) -> None:
    """Resume a paused queue."""
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    if not queue.is_queue_paused(name):
        raise common.OperationFailed(f"queue {name!r} is not paused")
    queue.resume_queue(name)
    _done(st, "queue", name, "resumed")


@resume_app.command("worker")
def resume_worker(
    ctx: typer.Context, worker_id: str = typer.Argument(..., metavar="ID", autocompletion=complete.worker_ids)
) -> None:
    """Resume a paused worker."""
    st = common.state(ctx)
    if not common.open_queue(st, handlers=False).resume_worker(worker_id):
        raise common.OperationFailed(f"no worker {worker_id!r}")
    _done(st, "worker", worker_id, "resumed")


@resume_app.command("schedule")
def resume_schedule(
    ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", autocompletion=complete.schedule_names)
) -> None:
    """Resume a paused schedule."""
    st = common.state(ctx)
    if not common.open_queue(st, handlers=False).resume_schedule(name):
        raise common.OperationFailed(f"no schedule {name!r}")
    _done(st, "schedule", name, "resumed")


def register(app: typer.Typer) -> None:
    app.add_typer(pause_app)
    app.add_typer(resume_app)
