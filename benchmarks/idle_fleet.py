"""What a fleet of idle workers costs PostgreSQL: transactions per second per worker, and the server's CPU.

    .venv/bin/python benchmarks/idle_fleet.py                    # N = 1, 10, 50 workers
    .venv/bin/python benchmarks/idle_fleet.py --workers 1 10 --short 20 --long 80 --json

For each N, two runs in databases of their own (so `pg_stat_database.xact_commit` counts nothing but the
fleet): N real worker processes (`djobs.proof.worker`, default settings: heartbeat every 5 s, stale age
30 s, the scheduler on, one queue) run idle for `--short` seconds, then for `--long` seconds; each run's
transactions are read once every process has exited (a backend reports its statistics when it exits; while
it lives they arrive up to 10 s late, which skews any window cut in mid-run). The difference between the two
runs cancels start-up and shutdown: (long − short) / (long − short seconds) / N is the steady cost of one idle
worker, the elected leader's duties averaged over the fleet. The server's CPU is sampled over the long
run's middle. N = 0 is the floor measured the same way (the database alone). Load average per run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []


def _with_db(url: str, db: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{db}", p.query, p.fragment))


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _xacts(admin: str, db: str) -> int:
    rows = _admin(admin, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (db,))
    return int(rows[0][0])


def _backends(admin: str, db: str) -> list[int]:
    return [r[0] for r in _admin(admin, "SELECT pid FROM pg_stat_activity WHERE datname = %s", (db,))]


def run_fleet(admin: str, n: int, seconds: float) -> dict[str, Any]:
    """N idle workers for `seconds` in a fresh database: its transactions, all told."""
    db = f"djobs_idle_{uuid.uuid4().hex[:8]}"
    _admin(admin, f'CREATE DATABASE "{db}"')
    url = _with_db(admin, db)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        import djobs

        djobs.connect(url).close()  # the schema, once, before the fleet starts
        # On servers with autovacuum, its transactions would count as the fleet's: off for djobs's tables.
        for (table,) in _admin(url, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'djobs%%'"):
            _admin(url, f'ALTER TABLE "{table}" SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)')
        while _backends(admin, db):
            time.sleep(0.2)
        before = _xacts(admin, db)
        load0 = os.getloadavg()[0]
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "djobs.proof.worker", url, "--role", "bench", "--concurrency", "2"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        time.sleep(seconds / 3)
        pids = _backends(admin, db)
        cpu0, t0 = _cpu_seconds(pids), time.monotonic()
        time.sleep(seconds / 3)
        cpu = (_cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
        time.sleep(seconds / 3)
        dead = [p.pid for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"worker processes exited early: {dead}")
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _backends(admin, db) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        return {"xacts": _xacts(admin, db) - before, "connections": len(pids), "db_cpu": cpu,
                "load": [round(load0, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for _ in range(30):
            try:
                _admin(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                break
            except Exception:
                time.sleep(1)


def measure(admin: str, n: int, short: float, long: float) -> dict[str, Any]:
    a = run_fleet(admin, n, short)
    b = run_fleet(admin, n, long)
    steady = (b["xacts"] - a["xacts"]) / (long - short)
    return {
        "workers": n, "transactions_per_s": round(steady, 2), "per_worker_per_s": round(steady / max(1, n), 3),
        "db_cpu_percent": round(100 * b["db_cpu"], 2), "connections": b["connections"],
        "xacts_short_long": [a["xacts"], b["xacts"]], "load_average": b["load"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg-url", default=os.environ.get("DJOBS_BENCH_PG_ADMIN_URL", DEFAULT_PG),
                   help="a URL with the right to CREATE DATABASE (default: %(default)s)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--short", type=float, default=20.0)
    p.add_argument("--long", type=float, default=80.0)
    p.add_argument("--json", action="store_true")
    opts = p.parse_args(argv)
    rows = [measure(opts.pg_url, n, opts.short, opts.long) for n in [0, *opts.workers]]
    if opts.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'workers':>8} {'txn/s':>8} {'txn/s/worker':>13} {'db CPU %':>9} {'conns':>6}  load avg")
    for r in rows:
        print(f"{r['workers']:>8} {r['transactions_per_s']:>8.2f} {r['per_worker_per_s']:>13.3f} "
              f"{r['db_cpu_percent']:>9.2f} {r['connections']:>6}  {r['load_average'][0]:.2f}→{r['load_average'][1]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
