"""Start-up cost of the `djobs` command line: what cron, shell loops and every Tab press pay.

    .venv/bin/python benchmarks/cli_startup.py                  # SQLite in a temp dir, 21 runs each
    .venv/bin/python benchmarks/cli_startup.py --runs 41 --jobs 100000
    .venv/bin/python benchmarks/cli_startup.py --database postgresql://postgres@127.0.0.1:5432/test

Each command is run as a fresh process (the installed `djobs` script beside this interpreter) in a
project directory with a `djobs.toml` declaring the job type, over a database holding `--jobs` jobs; the
runs are interleaved so a change in the machine's load hits every command alike. Bytecode caching is on
(as for users: pip compiles on install) and one warm-up round is not counted. Printed: the median and the
90th percentile of wall-clock time per command, its ratio to `djobs --help` (the floor any Typer command
pays) and to `python -c pass`, and the load average before and after.

Goal: `djobs enqueue`, every other command that needs no handler code (`jobs`, `inspect`, `why`,
`limits set` stand for them here) and one Tab completion each at most 150 ms on SQLite (all take the
typer-free fast path, djobs/cli/fast.py; the "Typer path" rows run the same through the Typer app alone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).with_name("djobs")
# The Typer app alone, without the fast path of djobs/cli/fast.py: what the fast path saves.
TYPER = [sys.executable, "-c", "from djobs.cli.app import main; main()"]

CONFIG = """
[djobs]
database = "{url}"
modules = ["benchjobs"]

[jobs.send-email]
handler = "benchjobs:send_email"
queue = "emails"
"""

HANDLERS = """
import djobs

@djobs.job("resize")
def resize(args):
    return args

def send_email(args):
    return None
"""


def commands(completing: list[str], job_id: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv, extra environment)."""
    words = ["djobs", *completing]
    tab = {"_DJOBS_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    enqueue = ["enqueue", "send-email", "--args", '{"to": "a@example.com"}']
    return {
        "python -c pass": ([sys.executable, "-c", "pass"], {}),
        "djobs --help": ([str(BIN), "--help"], {}),
        "djobs enqueue": ([str(BIN), *enqueue], {}),
        "djobs enqueue (Typer path)": ([*TYPER, *enqueue], {}),
        "djobs jobs": ([str(BIN), "jobs", "--limit", "20"], {}),
        "djobs jobs (Typer path)": ([*TYPER, "jobs", "--limit", "20"], {}),
        "djobs inspect": ([str(BIN), "inspect"], {}),
        "djobs why ID": ([str(BIN), "why", job_id], {}),
        "djobs limits set": ([str(BIN), "limits", "set", "default", "--rate", "100/s"], {}),
        "djobs limits set (Typer path)": ([*TYPER, "limits", "set", "default", "--rate", "100/s"], {}),
        f"Tab: djobs {' '.join(completing)}<TAB>": ([str(BIN)], tab),
        "Tab (Typer path)": (TYPER, tab),
    }


def seed(url: str, jobs: int) -> str:
    """`jobs` pending jobs, written through the library in batches; the id of the last one."""
    import djobs

    queue = djobs.Queue(djobs.connect(url))
    queue.register("resize", lambda args: args)
    batch = 1000
    ids: list[str] = []
    for start in range(0, jobs, batch):
        ids = queue.enqueue_many([djobs.Sub("resize", {"n": n}) for n in range(start, min(jobs, start + batch))])
    queue.storage.close()
    return ids[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (interleaved)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the database")
    parser.add_argument("--database", help="database URL (default: a temp SQLite file)")
    opts = parser.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} missing: install djobs into this interpreter's environment")

    with tempfile.TemporaryDirectory(prefix="djobs-cli-bench-") as tmp:
        root = Path(tmp)
        url = opts.database or f"sqlite:///{root / 'bench.db'}"
        (root / "benchjobs.py").write_text(HANDLERS)
        (root / "djobs.toml").write_text(CONFIG.format(url=url))
        job_id = seed(url, opts.jobs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_") and k != "PYTHONDONTWRITEBYTECODE"}
        env["COLUMNS"] = "120"
        cmds = commands(["enqueue", "se"], job_id)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        load_before = os.getloadavg()
        for run in range(opts.runs + 1):
            for name, (argv, extra) in cmds.items():
                started = time.perf_counter()
                done = subprocess.run(argv, cwd=root, env={**env, **extra}, capture_output=True,
                                      timeout=60)  # fmt: skip
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    sys.exit(f"{name} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
                if run:  # the first round warms caches and writes bytecode
                    times[name].append(elapsed)
        load_after = os.getloadavg()

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=10)[8] * 1000 if q == 0.9 else statistics.median(values) * 1000

    floor = statistics.median(times["python -c pass"])
    helped = statistics.median(times["djobs --help"])
    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"djobs command-line start-up, {backend}, {opts.jobs:,} jobs, {opts.runs} interleaved runs each")
    print(f"{'command':38} {'median':>8} {'p90':>8} {'× --help':>9} {'× python':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:38} {ms(values, 0.5):6.0f}ms {ms(values, 0.9):6.0f}ms {median / helped:9.2f} {median / floor:9.1f}")
    print(f"load average: before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} cores)")  # fmt: skip


if __name__ == "__main__":
    main()
