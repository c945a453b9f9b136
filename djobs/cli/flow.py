"""Flow control and failures you can act on: `limits [QUEUE]`, `limits set|clear QUEUE`, `dlq`,
`dlq requeue`. Each calls the Queue's limits and dead-letter methods; the library validates every value
before it writes, so a bad rate or cap is exit 2 with nothing changed."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from djobs.cli import acts, common, complete, reads


class _QueueOrCommand(TyperGroup):
    """`djobs limits QUEUE` shows one queue: a first word that is no subcommand is the queue's name."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)


limits_app = typer.Typer(
    name="limits", cls=_QueueOrCommand, rich_markup_mode=None, subcommand_metavar="[QUEUE | COMMAND [ARGS]...]",
    help="Show fleet-wide limits (`limits QUEUE` for one queue); `limits set QUEUE ...` and `limits clear QUEUE` "
    "change them.",
)  # fmt: skip
dlq_app = typer.Typer(
    name="dlq", rich_markup_mode=None, help="Failed jobs with their last error; `dlq requeue` retries them in bulk."
)

_QUEUE_ARG = typer.Argument(..., metavar="QUEUE", help="The queue.", autocompletion=complete.queue_names)


@limits_app.callback(invoke_without_command=True)
def limits(ctx: typer.Context) -> None:
    """Show every queue's fleet-wide limits and how many due jobs each holds back now."""
    if ctx.invoked_subcommand is not None:
        return
    reads.limits(common.state(ctx))


@limits_app.command("show")
def show(ctx: typer.Context, name: str = _QUEUE_ARG) -> None:
    """Show one queue's limits (`djobs limits QUEUE` does the same)."""
    reads.limits(common.state(ctx), name)


@limits_app.command("set")
def set_(
    ctx: typer.Context,
    name: str = _QUEUE_ARG,
    rate: str | None = typer.Option(
        None, "--rate", envvar="DJOBS_LIMITS_RATE", metavar="N/s|N/m|N/h", help="Starts per period, fleet-wide."
    ),
    running: int | None = typer.Option(
        None, "--running", envvar="DJOBS_LIMITS_RUNNING", metavar="N", min=0, max=common.INT32_MAX,
        help="Running jobs at once, fleet-wide.",
    ),  # fmt: skip
    key_rate: str | None = typer.Option(
        None, "--key-rate", envvar="DJOBS_LIMITS_KEY_RATE", metavar="N/s|N/m|N/h", help="Starts per period, per key."
    ),
    key_running: int | None = typer.Option(
        None, "--key-running", envvar="DJOBS_LIMITS_KEY_RUNNING", metavar="N", min=0, max=common.INT32_MAX,
        help="Running jobs at once, per key.",
    ),  # fmt: skip
) -> None:
    """Set a queue's limits, replacing its previous ones (a limit not given is removed).

    Every worker obeys the change within a couple of seconds. Jobs carry their key from `enqueue --key`.
    """
    acts.set_limits(common.state(ctx), name, rate, running, key_rate, key_running)


@limits_app.command("clear")
def clear(ctx: typer.Context, name: str = _QUEUE_ARG) -> None:
    """Remove every limit of a queue."""
    acts.clear_limits(common.state(ctx), name)


_DLQ_QUEUE = typer.Option(
    None, "--queue", "-q", envvar="DJOBS_DLQ_QUEUE", metavar="Q", help="Only this queue.", autocompletion=complete.queue_names
)
_DLQ_TYPE = typer.Option(
    None, "--type", "-t", envvar="DJOBS_DLQ_TYPE", metavar="T", help="Only this job type.", autocompletion=complete.job_types
)


@dlq_app.callback(invoke_without_command=True)
def dlq(
    ctx: typer.Context,
    queue_name: str | None = _DLQ_QUEUE,
    job_type: str | None = _DLQ_TYPE,
    limit: int = typer.Option(
        50, "--limit", "-n", envvar="DJOBS_DLQ_LIMIT", metavar="N", min=1, max=common.MAX_LIMIT, help="At most N jobs."
    ),
) -> None:
    """List failed jobs, newest failure first, with their last error (`inspect ID` shows the traceback)."""
    if ctx.invoked_subcommand is not None:
        return
    reads.dlq(common.state(ctx), queue_name, job_type, limit)


@dlq_app.command("requeue")
def requeue(
    ctx: typer.Context,
    queue_name: str | None = _DLQ_QUEUE,
    job_type: str | None = _DLQ_TYPE,
    since: str | None = typer.Option(
        None, "--since", envvar="DJOBS_DLQ_SINCE", metavar="T",
        help="Only jobs that failed from T on: a duration ago (10m) or ISO 8601.",
    ),  # fmt: skip
) -> None:
    """Requeue failed jobs in bulk (each as `retry ID` would); print how many.

    A job whose unique key another job holds now stays failed.
    """
    acts.requeue_failed(common.state(ctx), queue_name, job_type, since)


def register(app: typer.Typer) -> None:
    app.add_typer(limits_app)
    app.add_typer(dlq_app)
