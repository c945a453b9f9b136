"""Which statements read a whole table: every statement the test suite sends, asked of its planner.

    .venv/bin/python benchmarks/plan_audit.py                       # SQLite half of the suite
    .venv/bin/python benchmarks/plan_audit.py --backend postgres    # needs DJOBS_TEST_PG_URL
    .venv/bin/python benchmarks/plan_audit.py -k "retention or limits"

Runs the suite's tests of one backend with a small pytest plugin that records every statement (SQLite: a
trace callback on each connection, parameters inlined; PostgreSQL: peewee's `execute_sql` with its
parameters), folds literals to find the distinct ones, and asks the planner how it would run each against a
fresh djobs schema: `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` with sequential scans disabled on PostgreSQL
(so a Seq Scan there means no index could serve). Prints the statements that read a table whole, most sent
first. Tables that stay small by design (workers, queues, schedules, leases, meta, job types) are left out.
Statements of the tests' own checks show up too: read the list, do not assert on it.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's djobs, before any import of it

from djobs.proof.dbutil import throwaway  # noqa: E402

SMALL = {"djobs_workers", "djobs_queues", "djobs_schedules", "djobs_leases", "djobs_meta", "djobs_job_types"}
PLUGIN = '''
import json, os, peewee
_out = open(os.path.join(os.environ["PLAN_AUDIT_DIR"], f"{os.getpid()}.jsonl"), "a", buffering=1)
if os.environ["PLAN_AUDIT_BACKEND"] == "sqlite":
    _connect = peewee.SqliteDatabase._connect
    def _traced(self, *a, **k):
        conn = _connect(self, *a, **k)
        conn.set_trace_callback(lambda s: _out.write(json.dumps([s, []]) + "\\n"))
        return conn
    peewee.SqliteDatabase._connect = _traced
else:
    _execute = peewee.Database.execute_sql
    def _recorded(self, sql, params=None, *a, **k):
        if isinstance(self, peewee.PostgresqlDatabase):
            _out.write(json.dumps([sql, list(params or ())], default=str) + "\\n")
        return _execute(self, sql, params, *a, **k)
    peewee.Database.execute_sql = _recorded
'''


def _fold(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", "?", sql)
    return re.sub(r"(\?|%s)(\s*,\s*(\?|%s))+", "?", sql)


def _record(backend: str, keyword: str | None, out: str) -> None:
    with open(os.path.join(out, "djobs_plan_trace.py"), "w") as f:
        f.write(PLUGIN)
    # Tests of one backend only carry no backend in their id: the SQLite half is everything not PostgreSQL.
    half = "postgres" if backend == "postgres" else "not postgres"
    select = f"{half} and not browser and not snapshot and not restart"
    env = {**os.environ, "PLAN_AUDIT_DIR": out, "PLAN_AUDIT_BACKEND": backend,
           "PYTHONPATH": os.pathsep.join([out, str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", "-p", "djobs_plan_trace", "tests", "-q", "-n", "2", "-p", "no:cacheprovider",
           "-k", f"({select}) and ({keyword})" if keyword else select]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)


def _explainer(db: Any) -> Any:
    """How the planner of `db` (a fresh djobs schema, `throwaway`) would run a statement."""
    import djobs

    djobs.connect(db.url).close()
    if db.backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(db.path)
        return lambda sql, params: [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    import psycopg

    pg = psycopg.connect(db.dsn, autocommit=True)
    pg.execute(f"SET search_path = {db.schema}")
    pg.execute("SET enable_seqscan = off")

    def explain(sql: str, params: list[Any]) -> list[str]:
        with pg.transaction(force_rollback=True):
            return [r[0] for r in pg.execute("EXPLAIN " + sql, params).fetchall()]  # type: ignore[arg-type]

    return explain


def _whole_tables(backend: str, plan: list[str]) -> set[str]:
    if backend == "sqlite":
        found = {m.group(1) for line in plan if (m := re.match(r"SCAN (djobs_\w+)$", line.strip()))}
    else:
        found = {m for line in plan for m in re.findall(r"Seq Scan on (djobs_\w+)", line)}
    return found - SMALL


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("DJOBS_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("-k", dest="keyword", help="only the tests pytest's -k selects")
    opts = p.parse_args(argv)
    if opts.backend == "postgres":
        os.environ.setdefault("DJOBS_TEST_PG_URL", opts.pg_url)
    with tempfile.TemporaryDirectory() as tmp:
        _record(opts.backend, opts.keyword, tmp)
        counts: collections.Counter[str] = collections.Counter()
        example: dict[str, tuple[str, list[Any]]] = {}
        for name in glob.glob(os.path.join(tmp, "*.jsonl")):
            for line in open(name, errors="replace"):
                sql, params = json.loads(line)
                if "djobs_" not in sql or not re.match(r"(?is)\s*(select|update|delete|with|insert)", sql):
                    continue
                key = _fold(sql)
                counts[key] += 1
                example.setdefault(key, (sql, params))
    found = []
    with throwaway(opts.pg_url if opts.backend == "postgres" else None, prefix="plan_audit") as db:
        explain = _explainer(db)
        for key, (sql, params) in example.items():
            try:
                tables = _whole_tables(opts.backend, explain(sql, params))
            except Exception:  # noqa: BLE001 - a statement of a test's own schema, or one that needs its data
                continue
            if tables:
                found.append((counts[key], key, sorted(tables)))
    print(f"{opts.backend}: {sum(counts.values()):,} statements, {len(example):,} distinct; "
          f"{len(found)} read a table whole")  # fmt: skip
    for n, key, tables in sorted(found, key=lambda f: -f[0]):
        print(f"{n:>7}× {', '.join(tables)}: {key[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
