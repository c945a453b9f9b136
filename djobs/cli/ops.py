"""`djobs health`: one command for a load balancer, systemd, cron or a Kubernetes exec probe.

Exit 0 when healthy; 1 with one line per problem on stdout (a queue with due jobs and no live worker, a
queue whose oldest due job has waited longer than `--max-lag`); 75 when the database does not answer, so
a caller can tell "the jobs are stuck" from "the database is away".
"""

from __future__ import annotations

import typer

from djobs.cli import common, reads


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
    raise typer.Exit(reads.health(common.state(ctx), queues, max_lag))


def register(app: typer.Typer) -> None:
    app.command()(health)
