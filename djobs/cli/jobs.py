"""Job commands: `enqueue`, `cancel`, `retry`, `purge`.

Each parses its input, calls one Queue method and renders the outcome; errors go up to `DjobsGroup`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import typer

from djobs.cli import acts, common, complete, produce
from djobs.cli.produce import (  # noqa: F401 - also used from here by other commands and tests
    EARLIEST,
    LATEST,
    IfExists,
    parse_args_option,
    parse_at,
    parse_duration_option,
    parse_meta,
)


class Finished(StrEnum):
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


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
    unique_for: str | None = typer.Option(
        None, "--unique-for", envvar="DJOBS_ENQUEUE_UNIQUE_FOR", metavar="DURATION",
        help="With --unique: hold the key this long from enqueue (24h), even after the job finished.",
    ),  # fmt: skip
    if_exists: IfExists = typer.Option(
        IfExists.fail, "--if-exists", envvar="DJOBS_ENQUEUE_IF_EXISTS",
        help="With --unique: fail (exit 1), or skip / return (print the existing id, exit 0).",
    ),  # fmt: skip
    time_limit: str | None = typer.Option(
        None, "--time-limit", envvar="DJOBS_ENQUEUE_TIME_LIMIT", metavar="DURATION",
        help="End an attempt still running after this (5m) [default: the type's].",
    ),  # fmt: skip
    key: str | None = typer.Option(
        None, "--key", envvar="DJOBS_ENQUEUE_KEY", metavar="K", help="Group key for per-key limits (tenant:42)."
    ),
    meta: list[str] | None = typer.Option(
        None, "--meta", envvar="DJOBS_ENQUEUE_META", metavar="K=V", help="A metadata pair (repeatable), for filtering."
    ),
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
    queue, job_id = produce.enqueue_job(
        st, job_type, args=args, queue_name=queue_name, priority=priority, retries=retries, delay=delay, at=at,
        unique=unique, unique_for=unique_for, if_exists=if_exists, time_limit=time_limit, key=key, meta=meta,
        wait=wait, timeout=timeout,
    )  # fmt: skip
    if not wait:
        produce.print_id(st, job_id)
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
    acts.cancel(common.state(ctx), job_id)


def retry(
    ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID", help="The job id.", autocompletion=complete.finished_badly)
) -> None:
    """Requeue a failed or cancelled job."""
    acts.retry(common.state(ctx), job_id)


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
    acts.purge(common.state(ctx), [s.value for s in status] if status else None, older_than)


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
    app.command()(cancel)
    app.command()(retry)
    app.command()(purge)
