"""The peers' side of `peers.py`: each peer's tasks, its batch enqueue, its worker process and an enqueuer.

    python benchmarks/peers_tasks.py seed huey huey.db 10000
    python benchmarks/peers_tasks.py work pgqueuer postgresql://postgres@127.0.0.1/test --schema s --burst
    python benchmarks/peers_tasks.py enqueue procrastinate postgresql://... --schema s  # a stamp job a line

A separate script so that `peers.py` itself imports no peer: each command runs in a process of its own,
and a peer that is not installed only fails the rows that need it. `work` prints `ready` once connected,
with `--wait-go` waits for a line on stdin (so the benchmark never times start-up, as
`djobs.proof.worker --wait-go`), runs the peer's worker and leaves with `os._exit`, as djobs's harness
does, so no run pays for the interpreter's teardown. Tasks have fixed names, not their module's, since
this file runs as `__main__`. Two tasks: `noop`, and `stamp`, which writes its start time into the shared
file (`--shared`) the benchmark reads for pickup latency; huey's workers also count completed jobs there.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import os
import struct
import sys
import threading
import time
from typing import Any

#: The file the benchmark reads: at offset 0 the last stamp (a double), at 8 + 8 * slot a process's count.
SHARED: mmap.mmap | None = None


def noop() -> None:
    return None


def stamp() -> None:
    assert SHARED is not None
    struct.pack_into("<d", SHARED, 0, time.time())


async def anoop() -> None:
    return None


async def astamp() -> None:
    stamp()


def _open_shared(path: str | None) -> None:
    global SHARED
    if path:
        with open(path, "r+b") as f:
            SHARED = mmap.mmap(f.fileno(), 0)


def _ready_then_wait(wait_go: bool) -> None:
    print("ready", flush=True)
    if wait_go:
        sys.stdin.readline()


def _lines(submit: Any) -> None:
    """The enqueuer's loop: for each line on stdin, the time just before one stamp job is enqueued."""
    print("ready", flush=True)
    for _ in sys.stdin:
        t = time.time()
        submit()
        print(t, flush=True)


# -- huey: SqliteHuey, thread workers ---------------------------------------------------------------------
def _huey(path: str) -> tuple[Any, Any, Any]:
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class Storage(SqliteStorage):  # type: ignore[misc]
        """djobs's own SQLite durability (WAL, synchronous=NORMAL): huey's default leaves SQLite's FULL, an
        fsync at every commit that djobs does not pay either."""

        def _create_connection(self) -> Any:
            conn = super()._create_connection()
            conn.execute("pragma synchronous=NORMAL")
            return conn

    huey = SqliteHuey("bench", filename=path, storage_class=Storage)
    return huey, huey.task(name="noop")(noop), huey.task(name="stamp")(stamp)


def huey_seed(path: str, jobs: int) -> None:
    """Huey has no batch enqueue (`map` is one commit per task): its own serialized messages, one insert."""
    huey, task, _ = _huey(path)
    rows = [(huey.storage.name, huey.serialize_task(task.s()), 0) for _ in range(jobs)]
    with huey.storage.db(commit=True) as curs:
        curs.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)


def huey_work(path: str, concurrency: int, slot: int, wait_go: bool) -> None:
    """Huey has no burst mode: the benchmark reads how many jobs each process has completed, counted from
    huey's own SIGNAL_COMPLETE (sent once the task and huey's bookkeeping for it are done)."""
    from huey.consumer import Consumer
    from huey.signals import SIGNAL_COMPLETE

    huey, _, _ = _huey(path)
    lock = threading.Lock()
    done = [0]

    @huey.signal(SIGNAL_COMPLETE)
    def completed(signal: str, task: Any) -> None:
        with lock:
            done[0] += 1
            if SHARED is not None:
                struct.pack_into("<Q", SHARED, 8 + 8 * slot, done[0])

    consumer = Consumer(huey, workers=concurrency, worker_type="thread")
    _ready_then_wait(wait_go)
    consumer.run()


def huey_enqueue(path: str) -> None:
    _, _, task = _huey(path)
    _lines(task)


# -- pgqueuer: asyncpg, uvloop, drain mode ------------------------------------------------------------------
def _pgqueuer_env(schema: str) -> None:
    os.environ["PGQUEUER_SCHEMA"] = schema  # its tables, types and function in the throwaway schema
    os.environ["PGQUEUER_CHANNEL"] = f"{schema}_ch"  # NOTIFY channels are database-wide


def _loop_run(coro: Any) -> None:
    try:
        import uvloop  # what `pgq run` uses where it is installed
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _pgqueuer_queries(dsn: str, schema: str) -> Any:
    _pgqueuer_env(schema)
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    return Queries(AsyncpgDriver(await asyncpg.connect(dsn)))


def pgqueuer_seed(dsn: str, schema: str, jobs: int) -> None:
    async def main() -> None:
        queries = await _pgqueuer_queries(dsn, schema)
        await queries.install()
        for start in range(0, jobs, 5000):
            k = min(5000, jobs - start)
            await queries.enqueue(["noop"] * k, [None] * k, [0] * k)

    _loop_run(main())


def pgqueuer_work(dsn: str, schema: str, batch: int, burst: bool, wait_go: bool) -> None:
    async def main() -> None:
        from pgqueuer import PgQueuer
        from pgqueuer.types import QueueExecutionMode

        pgq = PgQueuer((await _pgqueuer_queries(dsn, schema)).driver)

        @pgq.entrypoint("noop")
        async def pgq_noop(job: Any) -> None:
            return None

        @pgq.entrypoint("stamp")
        async def pgq_stamp(job: Any) -> None:
            stamp()

        await asyncio.to_thread(_ready_then_wait, wait_go)
        mode = QueueExecutionMode.drain if burst else QueueExecutionMode.continuous
        await pgq.run(batch_size=batch, mode=mode)

    _loop_run(main())


def pgqueuer_enqueue(dsn: str, schema: str) -> None:
    async def main() -> None:
        queries = await _pgqueuer_queries(dsn, schema)
        loop = asyncio.get_running_loop()
        # The stdin loop blocks: it runs in a thread and hands each enqueue to the event loop.
        await asyncio.to_thread(
            _lines, lambda: asyncio.run_coroutine_threadsafe(queries.enqueue("stamp", None), loop).result())

    _loop_run(main())


# -- procrastinate: psycopg pool, asyncio, wait=False ----------------------------------------------------
def _procrastinate(dsn: str, schema: str) -> tuple[Any, Any, Any]:
    import procrastinate

    # Its SQL names no schema: the search path puts every object in the throwaway one.
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=dsn, kwargs={"options": f"-c search_path={schema}"}))
    return app, app.task(name="noop")(anoop), app.task(name="stamp")(astamp)


def procrastinate_seed(dsn: str, schema: str, jobs: int) -> None:
    app, task, _ = _procrastinate(dsn, schema)
    with app.open():
        app.schema_manager.apply_schema()
        for start in range(0, jobs, 5000):
            task.batch_defer(*({} for _ in range(min(5000, jobs - start))))


def procrastinate_work(dsn: str, schema: str, concurrency: int, burst: bool, wait_go: bool) -> None:
    app, _, _ = _procrastinate(dsn, schema)

    async def main() -> None:
        async with app.open_async():
            await asyncio.to_thread(_ready_then_wait, wait_go)
            await app.run_worker_async(concurrency=concurrency, wait=not burst)

    asyncio.run(main())


def procrastinate_enqueue(dsn: str, schema: str) -> None:
    app, _, task = _procrastinate(dsn, schema)
    with app.open():
        _lines(task.defer)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="peers_tasks.py")
    p.add_argument("command", choices=("seed", "work", "enqueue"))
    p.add_argument("system", choices=("huey", "pgqueuer", "procrastinate"))
    p.add_argument("target", help="SQLite file (huey) or PostgreSQL DSN")
    p.add_argument("jobs", type=int, nargs="?", default=0)
    p.add_argument("--schema")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--shared", help="the file the benchmark reads: stamps, and huey's completed counts")
    p.add_argument("--slot", type=int, default=0)
    p.add_argument("--burst", action="store_true", help="exit once no work is left (huey has no such mode)")
    p.add_argument("--wait-go", action="store_true")
    o = p.parse_args(argv)
    _open_shared(o.shared)
    if o.command == "seed":
        {"huey": lambda: huey_seed(o.target, o.jobs),
         "pgqueuer": lambda: pgqueuer_seed(o.target, o.schema, o.jobs),
         "procrastinate": lambda: procrastinate_seed(o.target, o.schema, o.jobs)}[o.system]()
    elif o.command == "enqueue":
        {"huey": lambda: huey_enqueue(o.target),
         "pgqueuer": lambda: pgqueuer_enqueue(o.target, o.schema),
         "procrastinate": lambda: procrastinate_enqueue(o.target, o.schema)}[o.system]()
    else:
        {"huey": lambda: huey_work(o.target, o.concurrency, o.slot, o.wait_go),
         "pgqueuer": lambda: pgqueuer_work(o.target, o.schema, o.concurrency, o.burst, o.wait_go),
         "procrastinate": lambda: procrastinate_work(o.target, o.schema, o.concurrency, o.burst, o.wait_go),
         }[o.system]()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
