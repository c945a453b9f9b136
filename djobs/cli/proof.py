"""`djobs bench` and `djobs selftest`: the proof commands (thin: parse, call the library, render).

    djobs selftest --chaos --duration 60s --workers 3 --kills 20
    djobs --database postgresql://localhost/app selftest --chaos --db-restart
    djobs bench --backend sqlite --jobs 10000 --workers 2 --json

Both run against a throwaway copy of the configured backend (a fresh PostgreSQL schema, or a temp SQLite
file), never the user's jobs. `selftest` exits 0 only if every invariant held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from djobs.cli import common


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[str, float], None]]:
    """A progress bar on stderr (stdout stays clean for --json); a no-op callback when disabled."""
    if not enabled:
        yield lambda _msg, _frac: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.fields[label]}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=1.0, label=label)
        yield lambda msg, frac: bar.update(task, completed=frac, description=msg)


def _is_postgres(url: str) -> bool:
    from djobs.proof.dbutil import is_postgres

    return is_postgres(url)


def bench_targets(backend: str | None, database_url: str) -> list[str | None]:
    """SQLite (a temp file) and, when the configured database is PostgreSQL, that server too."""
    pg = database_url if _is_postgres(database_url) else None
    if backend is None:
        return [None, pg] if pg else [None]
    if backend == "sqlite":
        return [None]
    if backend in ("postgres", "postgresql"):
        if pg is None:
            raise common.UsageProblem(
                "--backend postgres needs a PostgreSQL database: pass --database postgresql://... "
                "or set DJOBS_DATABASE_URL"
            )
        return [pg]
    raise common.UsageProblem(f"unknown backend {backend!r} (use sqlite or postgres)")


def register(app: typer.Typer) -> None:
    @app.command("selftest")
    def selftest(
        ctx: typer.Context,
        chaos: bool = typer.Option(
            False, "--chaos/--no-chaos", envvar="DJOBS_SELFTEST_CHAOS",
            help="kill -9 random workers at random moments (and restart them), plus one graceful stop; mix in "
                 "misbehaving handlers (hangs past their time limit, database errors, unstorable results).",
        ),
        duration: str = typer.Option(
            "60s", "--duration", envvar="DJOBS_SELFTEST_DURATION", help="How long to run the load (30s, 2m)."
        ),
        workers: int = typer.Option(3, "--workers", min=1, envvar="DJOBS_SELFTEST_WORKERS",
                                    help="Worker processes."),
        kills: int = typer.Option(20, "--kills", min=0, envvar="DJOBS_SELFTEST_KILLS",
                                  help="kill -9 count with --chaos."),
        db_restart: bool = typer.Option(
            False, "--db-restart", envvar="DJOBS_SELFTEST_DB_RESTART",
            help="PostgreSQL only: restart the server once mid-load (pg_ctlcluster ... restart).",
        ),
        seed: int | None = typer.Option(None, "--seed", envvar="DJOBS_SELFTEST_SEED",
                                        help="Random seed, to replay a run's choices."),
        keep: bool = typer.Option(False, "--keep", envvar="DJOBS_SELFTEST_KEEP",
                                  help="Keep the throwaway database and logs for inspection."),
    ) -> None:
        """Prove the guarantees here: run real workers under a mixed load (and kills), check invariants."""
        from djobs import selftest as selftest_lib
        from djobs.config import parse_duration

        st = common.state(ctx)
        seconds = parse_duration(duration).total_seconds()
        if seconds <= 0:
            raise common.UsageProblem("--duration must be positive")
        url = st.database_url()
        base = url if _is_postgres(url) else None
        if db_restart and base is None:
            raise common.UsageProblem("--db-restart needs a PostgreSQL database (--database postgresql://...)")
        with _progress(not st.json, "selftest") as progress:
            report = selftest_lib.run(base, duration=seconds, workers=workers, kills=kills, chaos=chaos,
                                      db_restart=db_restart, seed=seed, keep=keep, progress=progress)

        def human() -> None:
            from rich.console import Console

            from djobs.proof.report import selftest_table

            console = Console()
            console.print(selftest_table(report))
            s = report.stats
            console.print(
                f"{s['backend']}: {s['jobs_total']} jobs, {s['workers']} workers, {s['kills']} kill -9, "
                f"{s['graceful_stops']} graceful stop(s), {s['db_restarts']} database restart(s), "
                f"{s['duration_s']}s (seed {s['seed']})"
            )
            for e in report.errors:
                console.print(f"[red]problem:[/] {e}")
            console.print("[green]all invariants hold[/]" if report.ok else "[bold red]invariants violated[/]")

        common.output(st, report.to_dict(), human)
        if not report.ok:
            raise typer.Exit(code=common.EXIT_FAILURE)

    @app.command("bench")
    def bench(
        ctx: typer.Context,
        backend: str | None = typer.Option(
            None, "--backend", envvar="DJOBS_BENCH_BACKEND",
            help="sqlite or postgres [default: SQLite, plus the configured database if it is PostgreSQL].",
        ),
        jobs: int = typer.Option(10_000, "--jobs", min=1, envvar="DJOBS_BENCH_JOBS",
                                 help="No-op jobs for the end-to-end runs."),
        workers: int = typer.Option(2, "--workers", min=1, envvar="DJOBS_BENCH_WORKERS",
                                    help="End to end with 1 and with this many worker processes."),
        samples: int = typer.Option(100, "--samples", min=1, envvar="DJOBS_BENCH_SAMPLES",
                                    help="Dispatch-latency samples."),
        repeat: int = typer.Option(1, "--repeat", min=1, envvar="DJOBS_BENCH_REPEAT",
                                   help="Interleaved runs of each measure and its baseline; medians are shown."),
    ) -> None:
        """Measure djobs on this machine beside raw SQL doing the same work (throwaway databases)."""
        from djobs import bench as bench_lib

        st = common.state(ctx)
        targets = bench_targets(backend, st.database_url())
        with _progress(not st.json, "bench") as progress:
            report = bench_lib.run(targets, jobs=jobs, workers=sorted({1, workers}), latency_samples=samples,
                                   repeat=repeat, progress=progress)

        def human() -> None:
            from rich.console import Console

            from djobs.proof.report import print_bench

            print_bench(report, Console())

        data: Any = report.to_dict()
        common.output(st, data, human)
        if report.errors:
            raise typer.Exit(code=common.EXIT_FAILURE)
