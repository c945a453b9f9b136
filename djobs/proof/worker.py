"""The worker process the proof commands start: `python -m djobs.proof.worker URL [options]`.

    python -m djobs.proof.worker sqlite:////tmp/x/djobs.db --role selftest --ledger /tmp/x/ledger
    python -m djobs.proof.worker postgresql://...?schema=s --role bench --burst --wait-go

It connects, registers the proof handlers, builds `queue.worker(...)`, prints `ready` on stdout, and runs
until SIGTERM/SIGINT (draining first), or with `--burst` until no runnable work is left. With `--wait-go`
it waits for a line on stdin after `ready`, so a benchmark never times process start-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m djobs.proof.worker")
    p.add_argument("url")
    p.add_argument("--role", choices=("selftest", "bench"), default="selftest")
    p.add_argument("--ledger", help="ledger directory (selftest)")
    p.add_argument("--queue", default="default", help="queue names, comma-separated, each with --concurrency")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--stale-age", type=float, default=None, help="seconds before a silent worker's jobs return")
    p.add_argument("--heartbeat", type=float, default=None)
    p.add_argument("--poll", type=float, default=None)
    p.add_argument("--no-scheduler", action="store_true")
    p.add_argument("--burst", action="store_true")
    p.add_argument("--wait-go", action="store_true")
    opts = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("DJOBS_PROOF_LOG_LEVEL", "WARNING").upper(), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")

    import djobs
    from djobs.proof import handlers
    from djobs.proof.ledger import Ledger

    store = djobs.connect(opts.url)
    queue = djobs.Queue(store)
    if opts.role == "selftest":
        handlers.register_selftest(queue, Ledger(opts.ledger))
    else:
        handlers.register_bench(queue)
    queues = dict.fromkeys(opts.queue.split(","), opts.concurrency)
    kwargs: dict[str, object] = {"queues": queues, "scheduler": not opts.no_scheduler}
    if opts.stale_age is not None:
        kwargs["stale_lock_age"] = timedelta(seconds=opts.stale_age)
        kwargs["stale_lock_interval"] = timedelta(seconds=max(0.2, opts.stale_age / 3))
    if opts.heartbeat is not None:
        kwargs["heartbeat_interval"] = timedelta(seconds=opts.heartbeat)
    if opts.poll is not None:
        kwargs["poll_interval"] = timedelta(seconds=opts.poll)
    if opts.burst:
        kwargs["burst"] = True
    worker = queue.worker(**kwargs)
    print("ready", flush=True)
    if opts.wait_go:
        sys.stdin.readline()
    try:
        worker.run()
    finally:
        store.close()
    return 0


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown. The benchmark times a drain from "go" to the last worker's
    exit, and tearing down the ~300 modules a worker has imported (peewee pulls in psycopg and asyncio even on
    SQLite) takes 50-250 ms after the last job, which the raw baseline's three-import child does not pay.
    Only for this harness: its handlers are djobs' own and leave nothing for atexit hooks to flush."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _leave(main())
