"""Job commands: `enqueue`, `cancel`, `retry`, `purge`.

Each parses its input, calls one Queue method and renders the outcome; errors go up to `DjobsGroup`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer

from djobs.cli import common, complete


class IfExists(StrEnum):
    fail = "fail"
    skip = "skip"


class Finished(StrEnum):
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


MAX_ARGS = 16 << 20  # characters of --args JSON


def parse_args_option(text: str | None) -> Any:
    """`--args`: inline JSON, `@file` holding JSON, or `-` for JSON on stdin; raises UsageProblem."""
    if text is None:
        return None
    source = "--args"
    if text == "-":
        text, source = sys.stdin.read(MAX_ARGS + 1), "--args from stdin"
    elif text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(MAX_ARGS + 1)  # a bounded read: `@/dev/zero` must not fill the memory
        except (OSError, UnicodeDecodeError) as exc:
            raise common.UsageProblem(f"--args: cannot read {path!r}: {getattr(exc, 'strerror', None) or exc}") from None
        source = f"--args from {path}"
    if len(text) > MAX_ARGS:
        raise common.UsageProblem(f"{source}: more than {MAX_ARGS // (1 << 20)} MiB of JSON (pass a reference instead)")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise common.UsageProblem(f"{source}: bad JSON: {detail}") from None


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def parse_at(text: str) -> datetime:
    """`--at`: an ISO-8601 time within years 1970..9999 UTC; naive means UTC; raises UsageProblem."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise common.UsageProblem(f"--at: bad time {text!r} (use ISO 8601, e.g. 2026-12-01T09:00:00Z)") from None
    utc: datetime | None
    try:
        utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:  # year 9999 west of UTC or year 1 east of it: outside what datetime holds in UTC
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise common.UsageProblem(f"--at: {text!r} is out of range (times must fall within years 1970 to 9999 UTC)")
    return utc


def parse_duration_option(option: str, text: str) -> Any:
    """A duration option (`30s`, `5m`, `2h`, `7d`) as a timedelta; raises UsageProblem."""
    from djobs.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise common.UsageProblem(f"{option}: {exc}") from None


def enqueue(
    ctx: typer.Context,
    job_type: str = typer.Argument(
        ..., metavar="TYPE", help="The job type (a registered handler).", autocompletion=complete.job_types
    ),
    args: str | None = typer.Option(
        None, "--args", envvar="DJOBS_ENQUEUE_ARGS", metavar="JSON|@FILE|-",
        help="Job args as JSON, from a file (@FILE) or stdin (-) [default: null, no args].",
    ),  # fmt: skip
    queue_name: str | None = typer.Option(
        None, "--queue", "-q", envvar="DJOBS_ENQUEUE_QUEUE", metavar="Q", help="Queue [default: the type's].",
        autocompletion=complete.queue_names,
    ),
    priority: int | None = typer.Option(
        None, "--priority", "-p", envvar="DJOBS_ENQUEUE_PRIORITY", metavar="N", min=common.INT32_MIN,
        max=common.INT32_MAX, help="Higher runs first.",
    ),  # fmt: skip
    retries: int | None = typer.Option(
        None, "--retries", envvar="DJOBS_ENQUEUE_RETRIES", metavar="N", min=0, max=common.INT32_MAX,
        help="Retries after the first attempt.",
    ),  # fmt: skip
    delay: str | None = typer.Option(
        None, "--delay", envvar="DJOBS_ENQUEUE_DELAY", metavar="DURATION", help="Run after 30s, 5m, 2h, ..."
    ),
    at: str | None = typer.Option(
        None, "--at", envvar="DJOBS_ENQUEUE_AT", metavar="ISO-8601", help="Run at this time (naive = UTC)."
    ),
    unique: str | None = typer.Option(
        None, "--unique", envvar="DJOBS_ENQUEUE_UNIQUE", metavar="KEY", help="At most one unfinished job per key."
    ),
    if_exists: IfExists = typer.Option(
        IfExists.fail, "--if-exists", envvar="DJOBS_ENQUEUE_IF_EXISTS",
        help="With --unique: fail (exit 1) or skip (print the existing id).",
    ),  # fmt: skip
    wait: bool = typer.Option(
        False, "--wait", envvar="DJOBS_ENQUEUE_WAIT", help="Wait for the job and print its JSON result."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", envvar="DJOBS_ENQUEUE_TIMEOUT", metavar="S", min=0, help="With --wait: give up after S s."
    ),
) -> None:
    """Enqueue a job and print its id.

    With --wait, print the job's JSON result instead (exit 1 if it failed or was cancelled).
    """
    st = common.state(ctx)
    value = parse_args_option(args)
    opts: dict[str, Any] = {}
    if delay is not None and at is not None:
        raise common.UsageProblem("give --delay or --at, not both")
    if delay is not None:
        opts["delay"] = parse_duration_option("--delay", delay)
    if at is not None:
        opts["at"] = parse_at(at)
    for key, v in (("queue", queue_name), ("priority", priority), ("retries", retries), ("unique", unique)):
        if v is not None:
            opts[key] = v
    if timeout is not None and not wait:
        raise common.UsageProblem("--timeout needs --wait")

    import djobs

    queue = common.producer_queue(st, job_type)
    try:
        try:
            job_id = queue.enqueue(job_type, value, **opts)
        except djobs.UnknownJobType:
            if st._handlers_loaded:
                raise
            common.load_handlers(st, queue)  # the config's modules may register it with @djobs.job
            job_id = queue.enqueue(job_type, value, **opts)
    except TypeError as exc:
        if args is None:  # say what no --args means, not just "expected an object, got NoneType"
            raise common.UsageProblem(f"job type {job_type!r} needs args: {exc} (without --args the args are null)") from None
        raise
    except djobs.DuplicateJob as exc:
        if if_exists is IfExists.skip and exc.existing_id:
            job_id = exc.existing_id
        else:
            raise common.OperationFailed(
                f"duplicate: job {exc.existing_id} already holds unique key {unique!r}"
            ) from None
    if not wait:
        if st.json:
            common.print_json({"id": job_id})
        else:
            print(job_id)
        return
    _wait(st, queue, job_id, timeout)


def _wait(st: common.State, queue: Any, job_id: str, timeout: float | None) -> None:
    import djobs
    from djobs.cli import render

    try:
        with render.spinner(f"waiting for job {job_id}", enabled=not st.json):
            result = queue.result(job_id, timeout=timeout)
    except djobs.JobFailedError as exc:
        error = getattr(exc.job, "last_error", None) or "no error recorded"
        if st.json:
            common.print_json({"id": job_id, "status": "failed", "error": error})
            raise typer.Exit(code=common.EXIT_FAILURE) from None
        raise common.fail(f"job {job_id} failed: {common.one_line(error)}") from None
    except djobs.JobCancelledError:
        if st.json:
            common.print_json({"id": job_id, "status": "cancelled", "error": "cancelled"})
            raise typer.Exit(code=common.EXIT_FAILURE) from None
        raise common.fail(f"job {job_id} was cancelled") from None
    except TimeoutError:
        raise common.fail(f"job {job_id} did not finish within {timeout:g} s (it is still queued)") from None
    if st.json:
        common.print_json({"id": job_id, "status": "completed", "result": result})
    else:
        print(json.dumps(common.to_jsonable(result)))


def cancel(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID", help="The job id.", autocompletion=complete.unfinished_job)
) -> None:
    """Cancel a job (and its sub-jobs)."""
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    done = queue.cancel_job(job_id)
    job = queue.get_job(job_id)
    status = getattr(job.status, "value", job.status) if job is not None else "cancelled"
    if done is False:
        raise common.OperationFailed(f"job {job_id} is already {status}; nothing to cancel")
    common.output(st, {"id": job_id, "status": status}, lambda: print(common.printable(f"cancelled {job_id}")))


def retry(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID", help="The job id.", autocompletion=complete.finished_badly)
) -> None:
    """Requeue a failed or cancelled job."""
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    job = queue.get_job(job_id)
    if job is not None:
        status = getattr(job.status, "value", job.status)
        if status not in ("failed", "cancelled"):
            raise common.OperationFailed(f"job {job_id} is {status}; only failed or cancelled jobs can be retried")
    if queue.retry_job(job_id) is False:
        raise common.OperationFailed(f"job {job_id} could not be requeued")
    common.output(st, {"id": job_id, "status": "pending"}, lambda: print(common.printable(f"requeued {job_id}")))


def purge(
    ctx: typer.Context,
    status: list[Finished] | None = typer.Option(
        None, "--status", envvar="DJOBS_PURGE_STATUS", help="Only these statuses (repeatable) [default: all three]."
    ),
    older_than: str = typer.Option(
        ..., "--older-than", envvar="DJOBS_PURGE_OLDER_THAN", metavar="DURATION", help="Finished before this long ago, e.g. 7d."
    ),
) -> None:
    """Delete finished jobs older than a duration.

    Their checkpoints and fan-out records go with them.
    """
    from djobs.cli import render

    st = common.state(ctx)
    age = parse_duration_option("--older-than", older_than)
    statuses = tuple(s.value for s in status) if status else ("completed", "failed", "cancelled")
    queue = common.open_queue(st, handlers=False)
    with render.spinner(f"purging {', '.join(statuses)} jobs older than {older_than}", enabled=not st.json):
        count = queue.purge(statuses=statuses, older_than=age)
    common.output(
        st, {"purged": count, "statuses": list(statuses), "older_than_seconds": age.total_seconds()},
        lambda: print(f"purged {count} job{'s' if count != 1 else ''}"),
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
    app.command()(cancel)
    app.command()(retry)
    app.command()(purge)
