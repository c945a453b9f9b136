"""The bodies of the commands that change something and need no handler code: `cancel`, `retry`, `purge`,
`signal`, `pause|resume job|queue|worker|schedule`, `limits set|clear`, `dlq requeue`, `schedules rm`.

Like reads.py, they take the global options' `State` and plain values, so the Typer commands and the
typer-free fast path (`djobs/cli/fast.py`) run the same code. A refusal is an exception
(`OperationFailed`: exit 1, `UsageProblem`: exit 2) raised before anything is written where the library
allows it; the callers map it to one line on stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from djobs.cli import common

if TYPE_CHECKING:
    from djobs.jobs import PauseMode
    from djobs.queue import Queue

FINISHED = ("completed", "failed", "cancelled")


def _status(queue: Queue, job_id: str) -> str:
    job = queue.get_job(job_id)
    return str(getattr(job.status, "value", job.status)) if job is not None else "gone"


def _said(st: common.State, data: dict[str, Any], line: str) -> None:
    common.output(st, data, lambda: print(common.printable(line)))


# ------------------------------------------------------------------------------------------ jobs


def cancel(st: common.State, job_id: str) -> None:
    queue = common.open_queue(st, handlers=False)
    done = queue.cancel_job(job_id)
    job = queue.get_job(job_id)
    status = getattr(job.status, "value", job.status) if job is not None else "cancelled"
    if done is False:
        raise common.OperationFailed(f"job {job_id} is already {status}; nothing to cancel")
    _said(st, {"id": job_id, "status": status}, f"cancelled {job_id}")


def retry(st: common.State, job_id: str) -> None:
    queue = common.open_queue(st, handlers=False)
    job = queue.get_job(job_id)
    if job is not None:
        status = getattr(job.status, "value", job.status)
        if status not in ("failed", "cancelled"):
            raise common.OperationFailed(f"job {job_id} is {status}; only failed or cancelled jobs can be retried")
    if queue.retry_job(job_id) is False:
        raise common.OperationFailed(f"job {job_id} could not be requeued")
    _said(st, {"id": job_id, "status": "pending"}, f"requeued {job_id}")


def purge(st: common.State, status: list[str] | None, older_than: str) -> None:
    from djobs.cli import render
    from djobs.cli.produce import parse_duration_option

    age = parse_duration_option("--older-than", older_than)
    statuses = tuple(status) if status else FINISHED
    queue = common.open_queue(st, handlers=False)
    with render.spinner(f"purging {', '.join(statuses)} jobs older than {older_than}", enabled=not st.json):
        count = queue.purge(statuses=statuses, older_than=age)
    common.output(
        st, {"purged": count, "statuses": list(statuses), "older_than_seconds": age.total_seconds()},
        lambda: print(f"purged {count} job{'s' if count != 1 else ''}"),
    )  # fmt: skip


def signal(st: common.State, job_id: str, name: str, payload: str | None = None) -> None:
    from djobs.cli.produce import parse_args_option

    value = parse_args_option(payload, "--payload")
    common.open_queue(st, handlers=False).signal(job_id, name, value)
    _said(st, {"id": job_id, "signal": name, "sent": True}, f"sent signal {name!r} to {job_id}")


# ------------------------------------------------------------------------------------ pause, resume


def _mode(aggressive: bool) -> PauseMode:
    from djobs.jobs import PauseMode

    return PauseMode.AGGRESSIVE if aggressive else PauseMode.GRACEFUL


def _done(st: common.State, what: str, name: str, action: str, **extra: object) -> None:
    data = {"kind": what, "id" if what in ("job", "worker") else "name": name, "action": action, **extra}
    _said(st, data, f"{action} {what} {name}")


def _require_job(queue: Queue, job_id: str) -> None:
    import djobs

    if queue.get_job(job_id) is None:
        raise djobs.JobNotFound(job_id)


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


def pause_job(st: common.State, job_id: str, aggressive: bool = False, reason: str | None = None) -> None:
    queue = common.open_queue(st, handlers=False)
    _require_job(queue, job_id)
    if not queue.pause_job(job_id, mode=_mode(aggressive), reason=reason):
        raise common.OperationFailed(f"job {job_id} is {_status(queue, job_id)}; only unfinished jobs can be paused")
    _done(st, "job", job_id, "paused", mode="aggressive" if aggressive else "graceful")


def pause_queue(st: common.State, name: str, reason: str | None = None, force: bool = False) -> None:
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


def pause_worker(st: common.State, worker_id: str, aggressive: bool = False, reason: str | None = None) -> None:
    if not common.open_queue(st, handlers=False).pause_worker(worker_id, mode=_mode(aggressive), reason=reason):
        raise common.OperationFailed(f"no worker {worker_id!r}")
    _done(st, "worker", worker_id, "paused", mode="aggressive" if aggressive else "graceful")


def pause_schedule(st: common.State, name: str, reason: str | None = None) -> None:
    if not common.open_queue(st, handlers=False).pause_schedule(name, reason=reason):
        raise common.OperationFailed(f"no schedule {name!r}")
    _done(st, "schedule", name, "paused")


def resume_job(st: common.State, job_id: str) -> None:
    queue = common.open_queue(st, handlers=False)
    _require_job(queue, job_id)
    if not queue.resume_job(job_id):
        raise common.OperationFailed(f"job {job_id} is {_status(queue, job_id)}, not paused")
    _done(st, "job", job_id, "resumed")


def resume_queue(st: common.State, name: str) -> None:
    queue = common.open_queue(st, handlers=False)
    if not queue.is_queue_paused(name):
        raise common.OperationFailed(f"queue {name!r} is not paused")
    queue.resume_queue(name)
    _done(st, "queue", name, "resumed")


def resume_worker(st: common.State, worker_id: str) -> None:
    if not common.open_queue(st, handlers=False).resume_worker(worker_id):
        raise common.OperationFailed(f"no worker {worker_id!r}")
    _done(st, "worker", worker_id, "resumed")


def resume_schedule(st: common.State, name: str) -> None:
    if not common.open_queue(st, handlers=False).resume_schedule(name):
        raise common.OperationFailed(f"no schedule {name!r}")
    _done(st, "schedule", name, "resumed")


# ---------------------------------------------------------------------- limits, dead letters, schedules


def set_limits(
    st: common.State, name: str, rate: str | None = None, running: int | None = None, key_rate: str | None = None,
    key_running: int | None = None,
) -> None:  # fmt: skip
    import djobs
    from djobs.cli import reads

    if rate is None and running is None and key_rate is None and key_running is None:
        raise common.UsageProblem("give at least one of --rate, --running, --key-rate, --key-running (clear removes them)")
    parsed = {}
    for option, text in (("--rate", rate), ("--key-rate", key_rate)):
        if text is not None:
            try:
                parsed[option] = djobs.Rate.parse(text)
            except ValueError as exc:
                raise common.UsageProblem(f"{option}: {exc}") from None
    queue = common.open_queue(st, handlers=False)
    queue.set_limits(name, parsed.get("--rate"), running, parsed.get("--key-rate"), key_running)
    row = reads.limits_json(name, queue.limits(name), queue.held_back(name))
    described = [f"{k.replace('_', ' ')} {row[k]}" for k in ("rate", "running", "key_rate", "key_running")
                 if row[k] is not None]  # fmt: skip
    _said(st, row, f"limits of {name}: {', '.join(described) or 'none'}")


def clear_limits(st: common.State, name: str) -> None:
    from djobs.cli import reads

    queue = common.open_queue(st, handlers=False)
    queue.set_limits(name)
    _said(st, reads.limits_json(name, queue.limits(name), {}), f"cleared the limits of {name}")


def requeue_failed(
    st: common.State, queue_name: str | None = None, job_type: str | None = None, since: str | None = None
) -> None:
    from djobs.cli import reads, render

    since_t = reads.parse_since(since) if since else None
    queue = common.open_queue(st, handlers=False)
    with render.spinner("requeueing failed jobs", enabled=not st.json):
        n = queue.requeue_failed(queue=queue_name, type=job_type, since=since_t)
    common.output(st, {"requeued": n}, lambda: print(f"requeued {n} job{'s' if n != 1 else ''}"))


def remove_schedule(st: common.State, name: str, force: bool = False) -> None:
    conf = st.config()
    if conf is not None and name in conf.schedules and not force:
        raise common.OperationFailed(
            f"schedule {name!r} is declared in {conf.path} [schedules.{name}]: remove it there and run "
            "`djobs config apply` (or use --force; it returns at the next apply)"
        )
    if not common.open_queue(st, handlers=False).unschedule(name):
        raise common.OperationFailed(f"no schedule {name!r}")
    _said(st, {"name": name, "action": "removed"}, f"removed schedule {name}")
