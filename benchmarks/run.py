"""The djobs benchmark, one command: `.venv/bin/python benchmarks/run.py`.

Measures djobs on SQLite (a temp file) and on PostgreSQL (a throwaway schema in the server named by
DJOBS_BENCH_PG_URL or DJOBS_TEST_PG_URL, default postgresql://postgres@127.0.0.1:5432/test), each figure
beside a raw-SQL baseline of the same work measured in the same run, and prints the table and a one-line
reading. Results are also written as JSON to benchmarks/results/<UTC time>.json (git-ignored).

    python benchmarks/run.py                       # both backends, 10,000 jobs, 1 and 2 worker processes
    python benchmarks/run.py --backend sqlite --jobs 2000 --json
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("DJOBS_BENCH_PG_URL")
                   or os.environ.get("DJOBS_TEST_PG_URL") or DEFAULT_PG)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2, help="end to end with 1 and with this many processes")
    p.add_argument("--samples", type=int, default=100, help="latency samples")
    p.add_argument("--workflows", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3, help="fan-out rounds")
    p.add_argument("--repeat", type=int, default=1, help="interleaved runs of each measure; medians shown")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    opts = p.parse_args(argv)

    from rich.console import Console
    from rich.progress import Progress

    from djobs import bench
    from djobs.proof.report import print_bench

    targets: list[str | None] = []
    if opts.backend in ("sqlite", "both"):
        targets.append(None)
    if opts.backend in ("postgres", "both"):
        targets.append(opts.pg_url)
    err = Console(stderr=True)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("bench", total=1.0)
        report = bench.run(
            targets, jobs=opts.jobs, workers=sorted({1, opts.workers}), latency_samples=opts.samples,
            workflows=opts.workflows, fanout_rounds=opts.rounds, repeat=opts.repeat,
            progress=lambda msg, frac: bar.update(task, completed=frac, description=msg),
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json").write_text(report.to_json())
    if opts.json:
        print(report.to_json())
    else:
        print_bench(report, Console(), err)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
