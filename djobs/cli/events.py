"""`djobs events`: print the database event log; `--follow` tails it live until Ctrl-C or SIGTERM.

With `--json` the history is one JSON list; with `--follow --json` each event is one JSON line (JSON Lines),
since a stream cannot be one document.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import typer

from djobs.cli import common, complete, reads


def events(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "--follow", "-f", envvar="DJOBS_EVENTS_FOLLOW", help="Tail new events live."),
    job_id: str | None = typer.Option(
        None, "--job", envvar="DJOBS_EVENTS_JOB", metavar="ID", help="Only this job.", autocompletion=complete.any_job
    ),
    queue_name: str | None = typer.Option(
        None, "--queue", "-q", envvar="DJOBS_EVENTS_QUEUE", metavar="Q", help="Only this queue.",
        autocompletion=complete.queue_names,
    ),
    since: str | None = typer.Option(
        None, "--since", envvar="DJOBS_EVENTS_SINCE", metavar="T", help="From T: a duration ago (10m) or ISO 8601."
    ),
) -> None:
    """Print lifecycle events from the database.

    With --follow, keep printing new events (from any process) until Ctrl-C or SIGTERM; with --json
    --follow, one JSON object per line.
    """
    st = common.state(ctx)
    if not follow:
        reads.events(st, job_id, queue_name, since)
        return
    since_t = reads.parse_since(since) if since else None
    queue = common.open_queue(st, handlers=False)
    cursor = queue.latest_event_id()
    if since_t is not None:
        for ev in reads.history(queue, job_id=job_id, queue_name=queue_name, since=since_t):
            _print_one(st, ev)
            cursor = max(cursor, ev.id)  # the history already printed everything up to here
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for ev in queue.follow_events(cursor=cursor, job_id=job_id, queue=queue_name, stop=stop):
            _print_one(st, ev)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the tail: that is success
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_one(st: common.State, ev: Any) -> None:
    if st.json:
        sys.stdout.write(json.dumps(common.to_jsonable(ev)) + "\n")
        sys.stdout.flush()
    else:
        from djobs.cli import render

        render.event_line(ev)
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command()(events)
