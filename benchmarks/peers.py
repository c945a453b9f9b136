"""djobs side by side with its peers on this machine, with the same number of worker processes.

    .venv/bin/python benchmarks/peers.py                  # both backends, 10,000 jobs, 1 and 2 processes
    .venv/bin/python benchmarks/peers.py --backend sqlite --peers huey --jobs 2000 --repeat 1
    .venv/bin/python benchmarks/peers.py --peers none     # djobs alone, as on a machine without the peers

SQLite: djobs and huey (`SqliteHuey`); PostgreSQL: djobs, pgqueuer and procrastinate. The peers come from the
`peers` extra; one that is not installed is reported so and skipped. Every run gets a database of its own
(a temp SQLite file; a throwaway PostgreSQL schema, dropped afterwards even when the run fails).

End-to-end drain: `--jobs` no-op jobs are enqueued first with each system's batch enqueue (not timed); the
worker processes start and say they are ready (not timed); at "go" the clock starts, and it stops when
every job is done. djobs: `python -m djobs.proof.worker URL --role bench --burst --wait-go` (`djobs bench`'s
own harness), procrastinate (`wait=False`) and pgqueuer (`mode=drain`): until the last process exits, each
by its own burst mode. Huey has none: until its processes' SIGNAL_COMPLETE handlers have counted every job
(a shared file read every 2 ms), so huey alone never pays for noticing that the queue is empty. Every
process leaves with `os._exit`: nobody's interpreter teardown is timed. Idle pickup latency (`--latency`
samples a system, spread over the rounds): one idle worker process, a job enqueued every 25-75 ms (at
random), enqueue -> handler start, the handler writing its start time. Systems run interleaved, in an
order that rotates each round; the table shows medians, each ratio against djobs with the same backend and
processes, and the load average at start and end (a busy machine's figures do not compare with an idle's).

Each peer as configured in `peers_tasks.py` (defaults unless named):
- huey: its consumer, 10 thread workers a process (`-w 10 -k thread`), its scheduler thread, its polling:
  a worker that finds the queue empty sleeps 0.1 s, 1.15 times longer each time up to 10 s (a full queue is
  never waited on). Changed: `synchronous=NORMAL`, djobs's own (WAL on both), where huey leaves SQLite's
  FULL, an fsync per commit. No batch enqueue: its serialized messages go in in one transaction.
- pgqueuer: asyncpg, one connection a process, uvloop (as `pgq run`), its default batch of 10 jobs a
  dequeue and no cap on jobs in flight (a cap must be twice the batch; no-op jobs finish before the next
  dequeue returns); durable tables (default); objects in the schema by `PGQUEUER_SCHEMA`, a NOTIFY channel
  of the run's own. Batch enqueue: `Queries.enqueue` with lists.
- procrastinate: `PsycopgConnector` (its pool, default size), concurrency 10 (its default is 1), LISTEN/NOTIFY
  (default), finished jobs kept (default, as djobs keeps them); `apply_schema` into the schema through the
  connection's search path. Batch enqueue: `Task.batch_defer`.
- djobs: 10 handler threads a process, no scheduler, defaults otherwise. Handlers: plain functions for djobs
  and huey, `async def` for pgqueuer and procrastinate (their way of running 10 at a time).

The report is also written as JSON to benchmarks/results/peers-<UTC time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from djobs.bench import _Bench  # noqa: E402
from djobs.proof.procs import WorkerProcess  # noqa: E402
from djobs.proof.report import percentile  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TASKS = Path(__file__).resolve().parent / "peers_tasks.py"
PEERS = {"huey": "sqlite", "pgqueuer": "postgres", "procrastinate": "postgres"}
NEEDS = {"huey": ("huey",), "pgqueuer": ("pgqueuer", "asyncpg"), "procrastinate": ("procrastinate",)}
CONCURRENCY = 10
TIMEOUT = 600.0  # seconds one drain may take before the run counts as failed
GAP = 0.05  # mean seconds between latency samples, drawn at random: no polling peer can phase-lock on it
WARM = 3  # first pickups not counted: they pay for warm-up
LEFT_BEHIND: list[str] = []  # schemas that could not be dropped (reported)


def peer_list(text: str) -> list[str]:
    """`--peers`: comma-separated names, `all` or `none`; an unknown name is an argparse error."""
    if text == "all":
        return list(PEERS)
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer {', '.join(unknown)} (choose from {', '.join(PEERS)}, all or none)")
    return names


def missing(system: str) -> str | None:
    """The first package the system needs that is not installed."""
    return next((m for m in NEEDS.get(system, ()) if importlib.util.find_spec(m) is None), None)


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class PeerProcess(WorkerProcess):
    """A peer's worker in djobs's own harness (log file, `ready`, `go` on stdin, exit waited on a pidfd),
    started from peers_tasks.py instead of `djobs.proof.worker`."""

    def start(self) -> None:
        self.generation += 1
        self.log_path = self.log_dir / f"worker-{self.slot}-{self.generation}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(TASKS), "work", *self.args], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _tasks(*args: str) -> None:
    out = subprocess.run([sys.executable, str(TASKS), *args], capture_output=True, text=True, timeout=TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"peers_tasks.py {' '.join(args[:2])} failed:\n{out.stdout}{out.stderr}"[-2000:])


@contextmanager
def pg_schema(pg_url: str, system: str) -> Iterator[tuple[str, str]]:
    """A throwaway schema for one run of a peer, (DSN, name), dropped afterwards whatever happened."""
    from djobs.proof.dbutil import split_schema
    from djobs.storage.admin import create_pg_schema, drop_pg_schema

    dsn, name = split_schema(pg_url)[0], f"djobs_peers_{system}_{uuid.uuid4().hex[:8]}"
    create_pg_schema(dsn, name)
    try:
        yield dsn, name
    finally:
        for attempt in range(5):  # a worker's backend may hold a lock for a moment after its process exits
            try:
                drop_pg_schema(dsn, name)
                break
            except Exception:
                time.sleep(1)
                if attempt == 4:
                    LEFT_BEHIND.append(name)


def count_in(pg_url: str, schema: str, sql: str) -> int:
    import psycopg

    from djobs.proof.dbutil import split_schema

    with psycopg.connect(split_schema(pg_url)[0], autocommit=True) as conn:
        row = conn.execute(sql.format(schema=schema)).fetchone()
        return int(row[0]) if row else -1


def _start(procs: list[WorkerProcess]) -> None:
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready(60)
    except BaseException:
        _Bench._stop(procs)
        raise


def _drain(procs: list[WorkerProcess], done: Callable[[], bool] | None = None) -> float:
    """Seconds from "go" until every process has exited, or until `done()` says so (then they are stopped)."""
    _start(procs)
    try:
        t0 = time.perf_counter()
        for p in procs:
            p.go()
        if done is None:
            for p in procs:
                p.wait(timeout=TIMEOUT)
        else:
            while not done():
                if time.perf_counter() - t0 > TIMEOUT or not all(p.alive() for p in procs):
                    raise RuntimeError("workers did not finish:\n" + "\n".join(p.log_tail(5) for p in procs))
                time.sleep(0.002)
        return time.perf_counter() - t0
    finally:
        _Bench._stop(procs)


def _bench(backend: str, pg_url: str, processes: int) -> Any:
    return _Bench(None if backend == "sqlite" else pg_url, jobs=0, workers=(processes,), enqueue_jobs=0,
                  latency_samples=0, latency_gap=GAP, workflows=0, steps=0, fanout_width=0, fanout_rounds=0,
                  concurrency=CONCURRENCY, repeat=1, tick=lambda _: None)


def drain_djobs(backend: str, pg_url: str, jobs: int, processes: int) -> float:
    from djobs.proof.dbutil import throwaway

    bench = _bench(backend, pg_url, processes)
    with throwaway(bench.url, prefix="djobs_peers_djobs") as db:
        store, queue = bench._open(db)
        try:
            bench._seed(queue, "bench.noop", {}, jobs)
            return jobs / bench._drain_with(db, processes, jobs, queue)
        finally:
            store.close()


def _shared(directory: str, processes: int) -> str:
    path = os.path.join(directory, "shared")
    Path(path).write_bytes(bytes(8 + 8 * processes))
    return path


def _peer_procs(system: str, target: str, directory: str, processes: int, *extra: str) -> list[WorkerProcess]:
    return [PeerProcess([system, target, "--concurrency", str(CONCURRENCY), "--slot", str(i), *extra],
                        os.path.join(directory, "logs"), slot=i, stdin_pipe=True) for i in range(processes)]


@contextmanager
def peer_db(system: str, pg_url: str) -> Iterator[tuple[str, str, list[str]]]:
    """A fresh database for one run of a peer: (temp directory, target, the schema's arguments)."""
    directory = tempfile.mkdtemp(prefix=f"djobs_peers_{system}_")
    try:
        if PEERS[system] == "sqlite":
            yield directory, os.path.join(directory, f"{system}.db"), []
        else:
            with pg_schema(pg_url, system) as (dsn, schema):
                yield directory, dsn, ["--schema", schema]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


#: How each PostgreSQL peer's finished work is checked after a drain: the count that must equal the jobs.
DONE_SQL = {
    "pgqueuer": "select {jobs} - count(*) from {schema}.pgqueuer",  # a finished job leaves the queue table
    "procrastinate": "select count(*) from {schema}.procrastinate_jobs where status = 'succeeded'",
}


def _counted(shared: str, processes: int) -> int:
    """The jobs huey's processes have completed, as they count them in the shared file."""
    return sum(struct.unpack_from(f"<{processes}Q", Path(shared).read_bytes(), 8))


def drain_peer(system: str, pg_url: str, jobs: int, processes: int) -> float:
    with peer_db(system, pg_url) as (directory, target, schema):
        _tasks("seed", system, target, str(jobs), *schema)
        shared = _shared(directory, processes)
        procs = _peer_procs(system, target, directory, processes, *schema, "--shared", shared, "--wait-go",
                            *(["--burst"] if system != "huey" else []))
        if system == "huey":  # no burst mode
            return jobs / _drain(procs, lambda: _counted(shared, processes) >= jobs)
        elapsed = _drain(procs)
        finished = count_in(pg_url, schema[1], DONE_SQL[system].replace("{jobs}", str(jobs)))
        if finished < jobs:
            raise RuntimeError(f"{system} workers exited with {finished} of {jobs} jobs done\n"
                               + "\n".join(p.log_tail(5) for p in procs))
        return jobs / elapsed


def measure(system: str, backend: str, pg_url: str, jobs: int, processes: int) -> float:
    if system == "djobs":
        return drain_djobs(backend, pg_url, jobs, processes)
    return drain_peer(system, pg_url, jobs, processes)


def pickup(system: str, backend: str, pg_url: str, samples: int) -> list[float]:
    return latency_djobs(backend, pg_url, samples) if system == "djobs" else latency_peer(system, pg_url,
                                                                                           samples)


def latency_djobs(backend: str, pg_url: str, samples: int) -> list[float]:
    """Enqueue -> handler start, one idle worker process (`djobs bench`'s own measure, `bench.stamp`), at the
    same random gaps as the peers'."""
    return _bench(backend, pg_url, 1).pickups(samples, lambda: GAP * random.uniform(0.5, 1.5), "djobs_peers_djobs")


def latency_peer(system: str, pg_url: str, samples: int) -> list[float]:
    """Enqueue -> handler start, one idle worker process: an enqueuer process takes the time and enqueues a
    `stamp` job at each line it reads; the handler writes its start time into the shared file."""
    with peer_db(system, pg_url) as (directory, target, schema):
        _tasks("seed", system, target, "0", *schema)
        shared = _shared(directory, 1)
        procs = _peer_procs(system, target, directory, 1, *schema, "--shared", shared)
        enq = subprocess.Popen([sys.executable, str(TASKS), "enqueue", system, target, *schema], text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert enq.stdin is not None and enq.stdout is not None
            _start(procs)
            if enq.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{system} enqueuer did not start")
            time.sleep(0.5)
            out = []
            for k in range(samples + WARM):
                time.sleep(GAP * random.uniform(0.5, 1.5))
                before = Path(shared).read_bytes()[:8]
                enq.stdin.write("\n")
                enq.stdin.flush()
                t = float(enq.stdout.readline())
                deadline = time.monotonic() + 30
                while (now := Path(shared).read_bytes()[:8]) == before:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{system}: no pickup within 30 s")
                    time.sleep(0.0005)
                out += [struct.unpack("<d", now)[0] - t] if k >= WARM else []
            return out
        finally:
            enq.kill()
            enq.wait()
            _Bench._stop(procs)


def pg_reachable(pg_url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        return None if count_in(pg_url, "", "select 1") == 1 else "no answer"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:200]


def run(backends: list[str], peers: list[str], pg_url: str, jobs: int, repeat: int, workers: list[int],
        latency: int, say: Callable[[str], None]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "params": {"jobs": jobs, "repeat": repeat, "workers": workers, "concurrency": CONCURRENCY,
                   "latency_samples": latency, "backends": backends, "peers": peers},
        "env": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": {name: version(name) for name in ("djobs", *peers)},
        "rows": [], "latency": [], "errors": [], "skipped": {},
    }
    rates: dict[tuple[str, str, int], list[float]] = {}
    pickups: dict[tuple[str, str], list[float]] = {}

    def attempt(what: str, fn: Callable[..., Any], *args: Any) -> Any:
        say(what)
        try:
            return fn(*args)
        except Exception as exc:
            report["errors"].append(f"{what}: {type(exc).__name__}: {exc}")
            return None

    for backend in backends:
        if backend == "postgres" and (why := pg_reachable(pg_url)):
            report["errors"].append(f"postgres: {why}")
            continue
        systems = ["djobs"]
        for peer in (p for p in peers if PEERS[p] == backend):
            if (gone := missing(peer)) is not None:
                report["skipped"][peer] = f"not installed ({gone})"
            else:
                systems.append(peer)
        for k in range(repeat):  # interleaved; the order rotates each round
            order = systems[k % len(systems):] + systems[:k % len(systems)]
            for processes in workers:
                for system in order:
                    got = attempt(f"{backend} round {k + 1}/{repeat}: {system}, {processes} process(es)",
                                  measure, system, backend, pg_url, jobs, processes)
                    rates.setdefault((system, backend, processes), []).extend([got] if got else [])
            for system in order if latency else []:
                got = attempt(f"{backend} round {k + 1}/{repeat}: {system}, idle pickup latency",
                              pickup, system, backend, pg_url, -(-latency // repeat))
                pickups.setdefault((system, backend), []).extend(got or [])
        for processes in workers:
            base = rates.get(("djobs", backend, processes))
            for system in systems:
                runs = rates.get((system, backend, processes)) or []
                rate = statistics.median(runs) if runs else None
                ratio = rate / statistics.median(base) if rate and base else None
                report["rows"].append({"system": system, "backend": backend, "processes": processes,
                                       "jobs_per_s": rate, "ratio_to_djobs": ratio, "runs": runs})
        base_p = pickups.get(("djobs", backend))
        for system in systems if latency else []:
            got = pickups.get((system, backend)) or []
            p50 = percentile(got, 50) * 1000 if got else None
            report["latency"].append({
                "system": system, "backend": backend, "samples": len(got), "p50_ms": p50,
                "p95_ms": percentile(got, 95) * 1000 if got else None,
                "ratio_to_djobs": p50 / (percentile(base_p, 50) * 1000) if p50 and base_p else None})
    report["schemas_not_dropped"] = LEFT_BEHIND
    report["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _grid(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = [" | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                           strict=True)))
           for r in rows]
    return [out[0], "-+-".join("-" * w for w in widths), *out[1:]]


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def table(report: dict[str, Any]) -> str:
    p = report["params"]
    rows = [("system", "backend", "processes", "jobs/s", "ratio to djobs", "runs")]
    rows += [(r["system"], r["backend"], str(r["processes"]), _num(r["jobs_per_s"], ",.0f"),
              _num(r["ratio_to_djobs"], ".2f") + ("x" if r["ratio_to_djobs"] else ""), str(len(r["runs"])))
             for r in report["rows"]]
    rows += [(peer, PEERS[peer], "", why, "", "") for peer, why in report["skipped"].items()]
    lat = [("system", "backend", "p50 ms", "p95 ms", "p50 ratio to djobs", "samples")]
    lat += [(r["system"], r["backend"], _num(r["p50_ms"], ".1f"), _num(r["p95_ms"], ".1f"),
             _num(r["ratio_to_djobs"], ".2f") + ("x" if r["ratio_to_djobs"] else ""), str(r["samples"]))
            for r in report["latency"]]
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in report["versions"].items())
    start, end = report["load_average_at_start"], report["load_average_at_end"]
    return "\n".join([
        f"djobs and its peers: {p['jobs']:,} no-op jobs drained, {p['concurrency']} at a time a process; "
        f"medians of {p['repeat']} interleaved run(s)",
        f"{report['started_utc']} -> {report['finished_utc']}; load average (1/5/15 min) "
        f"{' '.join(map(str, start))} -> {' '.join(map(str, end))}",
        f"versions: {versions}", "", *_grid(rows, {2, 3, 4, 5}),
        *(["", "idle pickup latency, enqueue -> handler start, 1 worker process:", *_grid(lat, {2, 3, 4, 5})]
          if report["latency"] else []),
        *(["", "errors:", *report["errors"]] if report["errors"] else []),
        *(["", f"schemas not dropped: {', '.join(LEFT_BEHIND)}"] if LEFT_BEHIND else [])])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--peers", type=peer_list, default=list(PEERS),
                   help=f"comma-separated, from {', '.join(PEERS)}; or all, or none (djobs alone)")
    p.add_argument("--pg-url", default=os.environ.get("DJOBS_BENCH_PG_URL")
                   or os.environ.get("DJOBS_TEST_PG_URL") or DEFAULT_PG)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds; medians shown")
    p.add_argument("--workers", type=lambda s: sorted({int(x) for x in s.split(",")}), default=[1, 2],
                   help="worker processes, comma-separated (default 1,2)")
    p.add_argument("--latency", type=int, default=50,
                   help="idle pickup latency samples a system, spread over the rounds (0: none)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    o = p.parse_args(argv)
    if o.jobs < 1 or o.repeat < 1 or min(o.workers) < 1 or o.latency < 0:
        p.error("--jobs, --repeat and --workers must be at least 1, --latency at least 0")
    backends = ["sqlite", "postgres"] if o.backend == "both" else [o.backend]
    report = run(backends, o.peers, o.pg_url, o.jobs, o.repeat, o.workers, o.latency,
                 (lambda _: None) if o.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"peers-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if o.json else table(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
