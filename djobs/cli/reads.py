"""The bodies of the read-only commands: `inspect [ID]`, `jobs`, `why ID`, `workers`, `schedules`, `health`,
`events` (its history; `--follow` stays in events.py), `limits [QUEUE]`, `dlq`.

They take the global options' `State` and plain values, not a typer context, so the typer-free fast path
(`djobs/cli/fast.py`) runs the very code the Typer commands in `status.py` run: looking at the queue from a
shell loop or a monitoring script should cost what the lookup costs, not typer's import.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from djobs.cli import common

RECENT_EVENTS = 20
PAGE = 500  # events read per statement


def inspect(st: common.State, job_id: str | None = None) -> None:
    from djobs.cli import render

    queue = common.open_queue(st, handlers=False)
    if job_id is None:
        stats, workers = queue.queue_stats(), queue.workers()
        found, unapplied = listed_schedules(st, queue)
        data = {
            "queues": [{"name": q.name, "paused": q.paused, "counts": q.counts} for q in stats],
            "workers": workers,
            "schedules": [schedule_json(s, unapplied) for s in found],
        }
        common.output(st, data, lambda: render.overview(stats, workers, found, unapplied))
        return
    detail = queue.job_detail(job_id, events=RECENT_EVENTS)
    data = common.to_jsonable(detail.job)
    data.update(checkpoints=detail.checkpoints, sub_jobs=detail.sub_jobs, events=detail.events)
    common.output(
        st, data, lambda: render.job_detail(detail.job, detail.checkpoints, detail.sub_jobs, detail.events)
    )


def jobs(
    st: common.State, status: str | None = None, queue_name: str | None = None, job_type: str | None = None,
    limit: int = 50,
) -> None:  # fmt: skip
    from djobs.cli import render

    found = common.open_queue(st, handlers=False).list_jobs(status=status, queue=queue_name, type=job_type, limit=limit)
    common.output(st, found, lambda: render.jobs_table(found))


def why(st: common.State, job_id: str) -> None:
    from djobs.cli import render
    from djobs.explain import why as explain

    queue = common.open_queue(st, handlers=False)
    conf = st.config()
    reasons = explain(queue, job_id, stale_after=conf.stale_after if conf is not None else 30.0)
    job = queue.get_job(job_id)
    status = getattr(job.status, "value", job.status) if job is not None else None
    common.output(st, {"id": job_id, "status": status, "reasons": reasons}, lambda: render.reasons(job_id, reasons))


def workers(st: common.State, include_dead: bool = False) -> None:
    from djobs.cli import render

    found = common.open_queue(st, handlers=False).workers(include_dead=include_dead)
    common.output(st, found, lambda: render.workers_table(found))


def schedules(st: common.State) -> None:
    from djobs.cli import render

    found, unapplied = listed_schedules(st, common.open_queue(st, handlers=False))
    common.output(st, [schedule_json(s, unapplied) for s in found], lambda: render.schedules_table(found, unapplied))


def health(st: common.State, queues: list[str] | None = None, max_lag: str = "1m") -> int:
    """`djobs health`: its exit code (0 healthy, 1 with the problems, 75 when the database is away)."""
    from djobs.cli.produce import parse_duration_option

    lag = parse_duration_option("--max-lag", max_lag)
    if lag.total_seconds() <= 0:
        raise common.UsageProblem("--max-lag: must be more than zero")
    for name in queues or ():
        if not name.strip():
            raise common.UsageProblem("--queue: a queue name cannot be empty")
    queue = common.open_queue(st, handlers=False)
    queue.latest_event_id()  # the database answers at all (StorageUnavailable: exit 75), then the checks
    report = queue.health(max_lag=lag, queues=list(queues) if queues else None)
    if not report.ok and any(p.startswith("the database") for p in report.problems):
        for problem in report.problems:
            print(f"djobs: {problem}", file=sys.stderr)
        return common.EXIT_UNAVAILABLE
    common.output(
        st,
        {"ok": report.ok, "problems": list(report.problems)},
        human=lambda: print("\n".join(report.problems) if report.problems else "healthy"),
    )
    return common.EXIT_OK if report.ok else common.EXIT_FAILURE


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


def parse_since(text: str) -> datetime:
    """`--since`: a duration ago (`10m`, `2h`) or an ISO-8601 time (naive = UTC); raises UsageProblem."""
    from djobs.config import parse_duration

    try:
        return datetime.now(UTC) - parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise common.UsageProblem(f"--since: bad time {text!r} (use a duration like 10m or ISO 8601)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def history(queue: Any, *, job_id: str | None, queue_name: str | None, since: datetime | None) -> list[Any]:
    """All stored events matching the filters, oldest first."""
    found: list[Any] = []
    cursor = 0
    while True:
        page = queue.events_since(cursor=cursor, limit=PAGE, job_id=job_id, queue=queue_name, since=since)
        found.extend(page)
        if len(page) < PAGE:
            return found
        cursor = page[-1].id


def events(st: common.State, job_id: str | None = None, queue_name: str | None = None, since: str | None = None) -> None:
    """`djobs events` without --follow: the stored history."""
    from djobs.cli import render

    since_t = parse_since(since) if since else None
    found = history(common.open_queue(st, handlers=False), job_id=job_id, queue_name=queue_name, since=since_t)
    common.output(st, found, lambda: render.events_table(found))


def limits_json(name: str, lim: Any, held: dict[str, int]) -> dict[str, Any]:
    """The `limits --json` shape of one queue: each limit (null: none; rates as "N/s") and how many due
    jobs each holds back now."""
    rates = {k: None if getattr(lim, k) is None else str(getattr(lim, k)) for k in ("rate", "key_rate")}
    return {
        "queue": name, "rate": rates["rate"], "running": lim.running, "key_rate": rates["key_rate"],
        "key_running": lim.key_running, "held_back": held,
    }  # fmt: skip


def limits(st: common.State, name: str | None = None) -> None:
    """Every queue's limits, or one queue's (`limits QUEUE`, `limits show QUEUE`)."""
    from djobs.cli import render

    queue = common.open_queue(st, handlers=False)
    if name is None:
        rows = [limits_json(q, lim, queue.held_back(q)) for q, lim in sorted(queue.all_limits().items())]
    else:
        rows = [limits_json(name, queue.limits(name), queue.held_back(name))]
    common.output(st, rows if name is None else rows[0], lambda: render.limits_table(rows))


def dlq(st: common.State, queue_name: str | None = None, job_type: str | None = None, limit: int = 50) -> None:
    from djobs.cli import render

    found = common.open_queue(st, handlers=False).dead_letters(queue=queue_name, type=job_type, limit=limit)
    common.output(st, found, lambda: render.dead_letters_table(found))
