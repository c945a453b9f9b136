"""What `djobs enqueue` does once its options are parsed, without typer.

Both the Typer command (`djobs/cli/jobs.py`) and the fast path (`djobs/cli/fast.py`, which answers a plain
`djobs enqueue` without importing typer) call `enqueue_job`; the option parsers here are shared by other
commands too.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from djobs.cli import common


class IfExists(StrEnum):
    fail = "fail"
    skip = "skip"
    return_ = "return"


MAX_ARGS = 16 << 20  # characters of --args JSON


def parse_args_option(text: str | None, option: str = "--args") -> Any:
    """`--args` (or another JSON option): inline JSON, `@file` holding JSON, or `-` for JSON on stdin;
    raises UsageProblem."""
    if text is None:
        return None
    source = option
    if text == "-":
        text, source = sys.stdin.read(MAX_ARGS + 1), f"{option} from stdin"
    elif text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(MAX_ARGS + 1)  # a bounded read: `@/dev/zero` must not fill the memory
        except (OSError, UnicodeDecodeError) as exc:
            raise common.UsageProblem(f"{option}: cannot read {path!r}: {getattr(exc, 'strerror', None) or exc}") from None
        source = f"{option} from {path}"
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


def parse_meta(pairs: list[str]) -> dict[str, str]:
    """`--meta k=v` pairs as a dict of strings; raises UsageProblem."""
    out: dict[str, str] = {}
    for pair in pairs:
        k, eq, v = pair.partition("=")
        if not eq or not k.strip():
            raise common.UsageProblem(f"--meta: expected KEY=VALUE, got {pair!r}")
        if k in out:
            raise common.UsageProblem(f"--meta: {k!r} given twice")
        out[k] = v
    return out


def enqueue_job(
    st: common.State,
    job_type: str,
    args: str | None = None,
    queue_name: str | None = None,
    priority: int | None = None,
    retries: int | None = None,
    delay: str | None = None,
    at: str | None = None,
    unique: str | None = None,
    unique_for: str | None = None,
    if_exists: str = "fail",
    time_limit: str | None = None,
    key: str | None = None,
    meta: list[str] | None = None,
    wait: bool = False,
    timeout: float | None = None,
) -> tuple[Any, str]:
    """Check the options, enqueue, and return (the Queue, the job id); the parameters are those of the
    `djobs enqueue` command, as its options give them. `wait` and `timeout` are only checked here: the
    caller waits."""
    value = parse_args_option(args)
    opts: dict[str, Any] = {}
    if delay is not None and at is not None:
        raise common.UsageProblem("give --delay or --at, not both")
    if delay is not None:
        opts["delay"] = parse_duration_option("--delay", delay)
    if at is not None:
        opts["at"] = parse_at(at)
    for name, v in (("queue", queue_name), ("priority", priority), ("retries", retries), ("unique", unique), ("key", key)):
        if v is not None:
            opts[name] = v
    if unique_for is not None:
        if unique is None:
            raise common.UsageProblem("--unique-for needs --unique")
        opts["unique_for"] = parse_duration_option("--unique-for", unique_for)
    if time_limit is not None:
        opts["timeout"] = parse_duration_option("--time-limit", time_limit)
        if opts["timeout"].total_seconds() <= 0:
            raise common.UsageProblem("--time-limit: must be more than zero")
    if meta:
        opts["meta"] = parse_meta(meta)
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
        if if_exists != IfExists.fail and exc.existing_id:
            job_id = exc.existing_id
        else:
            raise common.OperationFailed(
                f"duplicate: job {exc.existing_id} already holds unique key {unique!r}"
            ) from None
    return queue, job_id


def print_id(st: common.State, job_id: str) -> None:
    """What `djobs enqueue` without --wait prints."""
    if st.json:
        common.print_json({"id": job_id})
    else:
        print(job_id)
