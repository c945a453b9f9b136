"""`djobs health`: one command for a load balancer, systemd, cron or a Kubernetes exec probe.

Exit 0 when healthy; 1 with one line per problem on stdout (a queue with due jobs and no live worker, a
queue whose oldest due job has waited longer than `--max-lag`); 75 when the database does not answer, so
a caller can tell "the jobs are stuck" from "the database is away".
"""

from __future__ import annotations

import sys

import typer

from djobs.cli import common


def health(
    ctx: typer.Context,
    queues: list[str] | None = typer.Option(
        None, "--queue", "-q", envvar="DJOBS_HEALTH_QUEUE", metavar="NAME",
        help="Check only this queue (repeatable) [default: every queue].",
    ),  # fmt: skip
    max_lag: str = typer.Option(
        "1m", "--max-lag", envvar="DJOBS_HEALTH_MAX_LAG", metavar="DURATION",
        help="Unhealthy when a queue's oldest due job has waited longer than this.",
    ),  # fmt: skip
) -> None:
    """Exit 0 when healthy, 1 (one line per problem) when not, 75 when the database does not answer."""
    from djobs.cli.jobs import parse_duration_option

    lag = parse_duration_option("--max-lag", max_lag)
    if lag.total_seconds() <= 0:
        raise common.UsageProblem("--max-lag: must be more than zero")
    for name in queues or ():
        if not name.strip():
            raise common.UsageProblem("--queue: a queue name cannot be empty")
    st = common.state(ctx)
    queue = common.open_queue(st, handlers=False)
    queue.latest_event_id()  # the database answers at all (StorageUnavailable: exit 75), then the checks
    report = queue.health(max_lag=lag, queues=list(queues) if queues else None)
    if not report.ok and any(p.startswith("the database") for p in report.problems):
        for problem in report.problems:
            print(f"djobs: {problem}", file=sys.stderr)
        raise typer.Exit(common.EXIT_UNAVAILABLE)
    common.output(
        st,
        {"ok": report.ok, "problems": list(report.problems)},
        human=lambda: print("\n".join(report.problems) if report.problems else "healthy"),
    )
    raise typer.Exit(common.EXIT_OK if report.ok else common.EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    app.command()(health)
