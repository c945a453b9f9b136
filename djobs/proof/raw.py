"""Raw-SQL baselines: the same work as djobs does, in plain `sqlite3` or `psycopg`, in tables of their own.

    raw = RawSqlite("/tmp/x/raw.db")          # or RawPostgres(dsn, schema)
    raw.setup()
    raw.enqueue_single(2000)                  # jobs/s, one INSERT per transaction
    raw.enqueue_batch(2000, batch=100)        # jobs/s, 100 INSERTs per transaction
    raw.drain(10_000, processes=2)            # jobs/s, claim 1 + complete 1 per transaction, P processes
    raw.drain(10_000, processes=2, batch=10)  # jobs/s, claim 10 in one statement + complete 10 per transaction
    raw.pickup_latency(50)                    # seconds per sample: commit of an INSERT -> claimed elsewhere
    raw.durable_steps(50, steps=10)           # steps/s: claim, one checkpoint row per step, complete
    raw.fanout_roundtrip(100, rounds=3)       # seconds per round: parent -> 100 children -> parent done

The caller owns the database (a throwaway schema or temp file, see `djobs.proof.dbutil`); each measure
empties the raw tables first.

The statements are what is fastest on SQLite and PostgreSQL: one-statement claim (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, inside `BEGIN IMMEDIATE` on SQLite), byte-identical SQL so psycopg prepares it, WAL and
`synchronous=NORMAL` on SQLite. The pickup floor is LISTEN/NOTIFY on PostgreSQL and `PRAGMA data_version`
polled every 1 ms on SQLite. Multi-process work runs in `python -m djobs.proof.raw ...` children that
connect, print `ready`, wait for `go` on stdin, then work, so start-up is never timed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any

_CLAIM_ORDER = "ORDER BY priority DESC, run_at, id"


class Raw(ABC):
    """One backend's raw statements; subclasses set the SQL texts and the connection."""

    backend: str
    ph: str  # placeholder

    # -- connection -------------------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> Any: ...

    @abstractmethod
    def begin_write(self, conn: Any) -> None: ...

    @abstractmethod
    def commit(self, conn: Any) -> None: ...

    @abstractmethod
    def schema_sql(self) -> list[str]: ...

    @abstractmethod
    def claim_sql(self) -> str: ...

    @abstractmethod
    def child_args(self) -> list[str]: ...

    @abstractmethod
    def wait_for_change(self, conn: Any, state: dict[str, Any], timeout: float) -> None:
        """Block until another connection may have committed work (or timeout)."""

    # -- statements (byte-identical texts, built once) -------------------------------------------------
    def __init__(self) -> None:
        p = self.ph
        self.insert_sql = (
            f"INSERT INTO raw_jobs (kind, status, priority, run_at, args, enqueued_at, parent_id) "
            f"VALUES ({p}, 'pending', 0, {p}, {p}, {p}, {p})"
        )
        self.complete_sql = (
            f"UPDATE raw_jobs SET status = 'completed', completed_at = {p}, result = {p}, picked_at = "
            f"COALESCE(picked_at, {p}) WHERE id = {p} AND locked_by = {p} AND status = 'running'"
        )
        self.checkpoint_sql = f"INSERT INTO raw_checkpoints (job_id, idx, name, value) VALUES ({p}, {p}, {p}, {p})"
        self.wait_sql = f"UPDATE raw_jobs SET status = 'waiting', remaining = {p} WHERE id = {p} AND locked_by = {p}"
        self.child_done_sql = (
            f"UPDATE raw_jobs SET remaining = remaining - 1, status = CASE WHEN remaining = 1 THEN 'pending' "
            f"ELSE status END WHERE id = {p}"
        )

    def setup(self) -> None:
        conn = self.connect()
        try:
            self.begin_write(conn)
            for sql in self.schema_sql():
                conn.execute(sql)
            self.commit(conn)
        finally:
            conn.close()

    def reset(self, conn: Any) -> None:
        self.begin_write(conn)
        conn.execute("DELETE FROM raw_checkpoints")
        conn.execute("DELETE FROM raw_jobs")
        self.commit(conn)

    def claim(self, conn: Any, worker: str, limit: int) -> list[tuple[Any, ...]]:
        self.begin_write(conn)
        rows = conn.execute(self.claim_sql(), (worker, time.time(), limit)).fetchall()
        self.commit(conn)
        return list(rows)

    def complete(self, conn: Any, job_id: int, worker: str, picked: float | None = None) -> None:
        self.begin_write(conn)
        conn.execute(self.complete_sql, (time.time(), "null", picked, job_id, worker))
        self.commit(conn)

    # -- measurements ----------------------------------------------------------------------------------
    def enqueue_single(self, n: int) -> float:
        conn = self.connect()
        try:
            self.reset(conn)
            t0 = time.perf_counter()
            for _ in range(n):
                self.begin_write(conn)
                conn.execute(self.insert_sql, ("noop", time.time(), "{}", time.time(), None))
                self.commit(conn)
            return n / (time.perf_counter() - t0)
        finally:
            conn.close()

    def enqueue_batch(self, n: int, batch: int = 100) -> float:
        conn = self.connect()
        try:
            self.reset(conn)
            batches = max(1, n // batch)
            t0 = time.perf_counter()
            for _ in range(batches):
                now = time.time()
                self.begin_write(conn)
                conn.cursor().executemany(self.insert_sql, [("noop", now, "{}", now, None)] * batch)
                self.commit(conn)
            return batches * batch / (time.perf_counter() - t0)
        finally:
            conn.close()

    def _seed(self, conn: Any, n: int, kind: str = "noop") -> None:
        self.reset(conn)
        now = time.time()
        for start in range(0, n, 1000):
            self.begin_write(conn)
            conn.cursor().executemany(
                self.insert_sql, [(kind, now, "{}", now, None)] * min(1000, n - start)
            )
            self.commit(conn)

    def _children(self, role: str, processes: int, extra: list[str] | None = None) -> list[subprocess.Popen[str]]:
        procs = []
        for _ in range(processes):
            cmd = [sys.executable, "-m", "djobs.proof.raw", role, *self.child_args(), *(extra or [])]
            procs.append(
                subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            )
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                for q in procs:
                    q.kill()
                raise RuntimeError(f"raw {role} child did not start (said {line!r})")
        return procs

    def complete_many(self, conn: Any, job_ids: list[Any], worker: str) -> None:
        self.begin_write(conn)
        now = time.time()
        conn.cursor().executemany(self.complete_sql, [(now, "null", None, job_id, worker) for job_id in job_ids])
        self.commit(conn)

    def drain(self, n: int, processes: int = 1, batch: int = 1) -> float:
        """End-to-end no-op throughput: n pre-enqueued jobs drained by `processes` processes, each claiming
        `batch` jobs in one statement and completing them in one transaction."""
        conn = self.connect()
        try:
            self._seed(conn, n)
        finally:
            conn.close()
        procs = self._children("drain", processes, [str(batch)])
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        done = 0
        for p in procs:
            out, _ = p.communicate(timeout=600)
            done += int(out.strip() or 0)
        elapsed = time.perf_counter() - t0
        if done != n:
            raise RuntimeError(f"raw drain completed {done} of {n} jobs")
        return n / elapsed

    def pickup_latency(self, samples: int, gap: float = 0.05) -> list[float]:
        """Idle pickup floor: INSERT committed here -> claimed by an idle listener in another process."""
        conn = self.connect()
        try:
            self.reset(conn)
            (listener,) = self._children("listen", 1)
            try:
                out = []
                for _ in range(samples):
                    time.sleep(gap)
                    self.begin_write(conn)
                    t = time.time()
                    cur = conn.execute(self.insert_sql + " RETURNING id", ("noop", t, "{}", t, None))
                    job_id = cur.fetchone()[0]
                    self.commit(conn)
                    picked = self._wait_picked(conn, job_id, timeout=10)
                    out.append(picked - t)
                return out
            finally:
                assert listener.stdin is not None
                listener.stdin.close()
                listener.wait(timeout=10)
        finally:
            conn.close()

    def _wait_picked(self, conn: Any, job_id: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        sql = f"SELECT picked_at FROM raw_jobs WHERE id = {self.ph}"
        while time.monotonic() < deadline:
            row = conn.execute(sql, (job_id,)).fetchone()
            self.commit(conn)
            if row and row[0] is not None:
                return float(row[0])
            time.sleep(0.002)
        raise TimeoutError(f"raw job {job_id} not picked up within {timeout}s")

    def durable_steps(self, workflows: int, steps: int = 10) -> float:
        """Steps/s: claim a workflow job, write one checkpoint row per step (own transaction), complete."""
        conn = self.connect()
        try:
            self._seed(conn, workflows, kind="workflow")
            worker = uuid.uuid4().hex
            t0 = time.perf_counter()
            done = 0
            while True:
                rows = self.claim(conn, worker, 1)
                if not rows:
                    break
                job_id = rows[0][0]
                for i in range(steps):
                    self.begin_write(conn)
                    conn.execute(self.checkpoint_sql, (job_id, i, "noop", json.dumps(None)))
                    self.commit(conn)
                self.complete(conn, job_id, worker)
                done += 1
            elapsed = time.perf_counter() - t0
            if done != workflows:
                raise RuntimeError(f"raw durable steps completed {done} of {workflows} workflows")
            return done * steps / elapsed
        finally:
            conn.close()

    def fanout_roundtrip(self, width: int = 100, rounds: int = 3) -> list[float]:
        """Seconds from enqueue of a parent to its completion, after `width` children ran one by one."""
        conn = self.connect()
        worker = uuid.uuid4().hex
        out = []
        try:
            for _ in range(rounds):
                self.reset(conn)
                t0 = time.perf_counter()
                now = time.time()
                self.begin_write(conn)
                conn.execute(self.insert_sql, ("parent", now, "{}", now, None))
                self.commit(conn)
                (parent,) = self.claim(conn, worker, 1)
                pid = parent[0]
                self.begin_write(conn)
                now = time.time()
                conn.cursor().executemany(self.insert_sql, [("child", now, "{}", now, pid)] * width)
                conn.execute(self.checkpoint_sql, (pid, 0, "fan_out", json.dumps(width)))
                conn.execute(self.wait_sql, (width, pid, worker))
                self.commit(conn)
                while True:
                    rows = self.claim(conn, worker, 1)
                    if not rows:
                        break
                    job_id, _args, parent_id = rows[0][0], rows[0][1], rows[0][2]
                    self.begin_write(conn)
                    conn.execute(self.complete_sql, (time.time(), "null", None, job_id, worker))
                    if parent_id is not None:
                        conn.execute(self.child_done_sql, (parent_id,))
                    self.commit(conn)
                out.append(time.perf_counter() - t0)
                row = conn.execute(f"SELECT status FROM raw_jobs WHERE id = {self.ph}", (pid,)).fetchone()
                self.commit(conn)
                if row[0] != "completed":
                    raise RuntimeError(f"raw fan-out parent ended {row[0]}")
            return out
        finally:
            conn.close()


class RawSqlite(Raw):
    backend = "sqlite"
    ph = "?"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__()

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def commit(self, conn: Any) -> None:
        if conn.in_transaction:
            conn.execute("COMMIT")

    def schema_sql(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS raw_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
            "status TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, run_at REAL NOT NULL, args TEXT, "
            "result TEXT, locked_by TEXT, attempt INTEGER NOT NULL DEFAULT 0, parent_id INTEGER, "
            "remaining INTEGER, enqueued_at REAL, picked_at REAL, completed_at REAL)",
            "CREATE INDEX IF NOT EXISTS raw_jobs_claim ON raw_jobs (status, priority DESC, run_at, id)",
            "CREATE TABLE IF NOT EXISTS raw_checkpoints (job_id INTEGER NOT NULL, idx INTEGER NOT NULL, "
            "name TEXT NOT NULL, value TEXT, PRIMARY KEY (job_id, idx))",
        ]

    def claim_sql(self) -> str:
        return (
            "UPDATE raw_jobs SET status = 'running', locked_by = ?, attempt = attempt + 1 WHERE id IN "
            f"(SELECT id FROM raw_jobs WHERE status = 'pending' AND run_at <= ? {_CLAIM_ORDER} LIMIT ?) "
            "RETURNING id, args, parent_id"
        )

    def child_args(self) -> list[str]:
        return ["sqlite", self.path]

    def wait_for_change(self, conn: Any, state: dict[str, Any], timeout: float) -> None:
        # PRAGMA data_version changes when another connection commits; poll it every 1 ms.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != state.get("version"):
                state["version"] = version
                return
            time.sleep(0.001)


class RawPostgres(Raw):
    backend = "postgres"
    ph = "%s"

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        super().__init__()

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, options=f"-c search_path={self.schema}", connect_timeout=10)

    def begin_write(self, conn: Any) -> None:
        pass  # psycopg opens a transaction on the first statement

    def commit(self, conn: Any) -> None:
        conn.commit()

    def schema_sql(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS raw_jobs (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, "
            "status TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, run_at DOUBLE PRECISION NOT NULL, "
            "args TEXT, result TEXT, locked_by TEXT, attempt INTEGER NOT NULL DEFAULT 0, parent_id BIGINT, "
            "remaining INTEGER, enqueued_at DOUBLE PRECISION, picked_at DOUBLE PRECISION, "
            "completed_at DOUBLE PRECISION)",
            "CREATE INDEX IF NOT EXISTS raw_jobs_claim ON raw_jobs (status, priority DESC, run_at, id)",
            "CREATE TABLE IF NOT EXISTS raw_checkpoints (job_id BIGINT NOT NULL, idx INTEGER NOT NULL, "
            "name TEXT NOT NULL, value TEXT, PRIMARY KEY (job_id, idx))",
            "CREATE OR REPLACE FUNCTION raw_jobs_notify() RETURNS trigger AS $$ BEGIN "
            "PERFORM pg_notify('raw_jobs', ''); RETURN NULL; END $$ LANGUAGE plpgsql",
            "DROP TRIGGER IF EXISTS raw_jobs_notify ON raw_jobs",
            "CREATE TRIGGER raw_jobs_notify AFTER INSERT ON raw_jobs FOR EACH STATEMENT "
            "EXECUTE FUNCTION raw_jobs_notify()",
        ]

    def claim_sql(self) -> str:
        return (
            "WITH c AS MATERIALIZED (SELECT id FROM raw_jobs WHERE status = 'pending' AND run_at <= %s "
            f"{_CLAIM_ORDER} LIMIT %s FOR UPDATE SKIP LOCKED) UPDATE raw_jobs j SET status = 'running', "
            "locked_by = %s, attempt = j.attempt + 1 FROM c WHERE j.id = c.id RETURNING j.id, j.args, j.parent_id"
        )

    def claim(self, conn: Any, worker: str, limit: int) -> list[tuple[Any, ...]]:
        rows = conn.execute(self.claim_sql(), (time.time(), limit, worker)).fetchall()
        conn.commit()
        return list(rows)

    def child_args(self) -> list[str]:
        return ["postgres", self.dsn, self.schema]

    def wait_for_change(self, conn: Any, state: dict[str, Any], timeout: float) -> None:
        if not state.get("listening"):
            conn.execute("LISTEN raw_jobs")
            conn.commit()
            state["listening"] = True
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            pass


# -- child processes -------------------------------------------------------------------------------------
def _child_backend(argv: list[str]) -> tuple[Raw, list[str]]:
    if argv[0] == "sqlite":
        return RawSqlite(argv[1]), argv[2:]
    return RawPostgres(argv[1], argv[2]), argv[3:]


def _child_drain(raw: Raw, batch: int) -> None:
    conn = raw.connect()
    worker = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    print("ready", flush=True)
    sys.stdin.readline()
    done = 0
    while True:
        rows = raw.claim(conn, worker, batch)
        if not rows:
            break
        if batch == 1:
            raw.complete(conn, rows[0][0], worker)
        else:
            raw.complete_many(conn, [r[0] for r in rows], worker)
        done += len(rows)
    conn.close()
    print(done, flush=True)


def _child_listen(raw: Raw, _extra: list[str]) -> None:
    """Claim each new job as soon as the backend's wake-up says one was committed; exit on stdin EOF."""
    import threading

    conn = raw.connect()
    worker = f"{os.getpid()}-listen"
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    state: dict[str, Any] = {}
    raw.wait_for_change(conn, state, 0)  # prime: LISTEN / first data_version
    print("ready", flush=True)
    while not stop.is_set():
        raw.wait_for_change(conn, state, 0.5)
        rows = raw.claim(conn, worker, 10)
        picked = time.time()
        for row in rows:
            raw.complete(conn, row[0], worker, picked)
    conn.close()


def main(argv: list[str]) -> None:
    role, rest = argv[0], argv[1:]
    raw, extra = _child_backend(rest)
    if role == "drain":
        _child_drain(raw, int(extra[0]) if extra else 1)
    else:
        _child_listen(raw, extra)


if __name__ == "__main__":
    main(sys.argv[1:])
