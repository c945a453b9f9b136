"""Nothing a user sends can write a row that later breaks a read, a listing or a worker, on SQLite and
PostgreSQL alike: out-of-range input is a ValueError with nothing written, the same on both backends; rows
already stored badly (by an older version, or by hand) show as such in every reader — the library's
listings and read models, `djobs why`, cancel, the worker's claim, and the real `djobs` executable; and
generated input (hypothesis) never leaves the readers broken.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from core_support import running, wait_until
from dbsql import sql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import djobs
from djobs import explain

pytestmark = pytest.mark.timeout(300)

DJOBS = Path(sys.executable).with_name("djobs")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def row_count(q: djobs.Queue) -> int:
    return int(sql(q.storage, "SELECT COUNT(*) FROM djobs_jobs").fetchone()[0])


@pytest.fixture
def tq(queue: djobs.Queue) -> djobs.Queue:
    queue.register("t", lambda args: args, retries=0)
    return queue


# -- poison input is refused before anything is written ---------------------------------------------------------
POISON: dict[str, dict[str, Any]] = {
    "delay inf": {"delay": math.inf},
    "delay nan": {"delay": math.nan},
    "delay 1e300": {"delay": 1e300},
    "delay -1e300": {"delay": -1e300},
    "delay past year 9999": {"delay": 260e9},
    "at 9999-12-31T23:59:59-05:00": {"at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))},
    "at 0001-01-01T00:00+05:00": {"at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
    "at 1969": {"at": datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)},
    "args 900 deep": {"args": nested(900)},
    "args 101 deep": {"args": nested(101)},
    "meta 200 deep": {"meta": {"m": nested(200)}},
    "queue with NUL": {"queue": "a\x00b"},
    "queue with a lone surrogate": {"queue": "\ud800"},
    "queue with an escape sequence": {"queue": "q\x1b[2J"},
    "queue 256 characters": {"queue": "q" * 256},
    "empty queue": {"queue": ""},
    "unique key 256 characters": {"unique": "u" * 256},
    "key with NUL": {"key": "k\x00"},
    "priority 2^31": {"priority": 2**31},
    "priority -2^31-1": {"priority": -(2**31) - 1},
    "priority 2^63": {"priority": 2**63},
    "retries 2^31": {"retries": 2**31},
    "retries -1": {"retries": -1},
    "timeout inf": {"timeout": math.inf},
    "timeout 0": {"timeout": 0},
    "unique_for nan": {"unique": "x", "unique_for": math.nan},
}


SUB_FIELDS = ("priority", "retries", "queue", "delay", "unique")


def test_poison_input_is_a_value_error_and_writes_nothing(tq: djobs.Queue) -> None:
    """Every case in POISON, one database per backend (a schema per case would cost a second each)."""
    wrong: list[str] = []
    for case, options in POISON.items():
        kwargs = dict(options)
        args = kwargs.pop("args", None)
        try:
            tq.enqueue("t", args, **kwargs)
            wrong.append(f"{case}: accepted")
        except ValueError as exc:
            if "\n" in str(exc) or len(str(exc)) >= 200:
                wrong.append(f"{case}: not one short line: {str(exc)[:300]!r}")
        if set(kwargs) <= set(SUB_FIELDS):  # in a batch, the good job beside it is not written either
            with pytest.raises(ValueError):
                tq.enqueue_many([djobs.Sub("t", None), djobs.Sub("t", args, **kwargs)])
        if row_count(tq):
            wrong.append(f"{case}: {row_count(tq)} row(s) written")
    assert wrong == []


def test_args_that_failed_to_encode_leave_the_encoder_as_it_was(tq: djobs.Queue) -> None:
    """The JSON encoder is kept between calls (per thread); one refused mid-way through a list must not leave
    that list marked as being encoded, or encoding it again would be refused as a circular reference."""
    args: list[Any] = [1, {"x": object()}]
    with pytest.raises(TypeError, match="not JSON serialisable"):
        tq.enqueue("t", args)
    circular: list[Any] = [1]
    circular.append(circular)
    with pytest.raises((TypeError, ValueError)):
        tq.enqueue_many([djobs.Sub("t", circular)])
    assert row_count(tq) == 0
    args[1] = {"x": 2}
    job_id = tq.enqueue("t", args)
    assert tq.get_job(job_id).args == [1, {"x": 2}]
    assert [j.args for j in tq.list_jobs()] == [[1, {"x": 2}]]


@pytest.mark.parametrize("name", ["a\x00b", "\ud800", "x" * 256, "", "tab\there", "\x1b[31m"])
def test_a_handler_name_that_could_not_be_stored_is_refused(queue: djobs.Queue, name: str) -> None:
    with pytest.raises(ValueError):
        queue.register(name, lambda args: args)
    with pytest.raises(ValueError):
        queue.register("fine", lambda args: args, queue=name)
    assert name not in queue.job_types() and "fine" not in queue.job_types()


def test_the_limits_themselves_are_accepted_and_read_back(tq: djobs.Queue) -> None:
    """The edges of every range are stored and read back unchanged on both backends."""
    at = datetime(9999, 12, 30, tzinfo=UTC)
    ids = [
        tq.enqueue("t", nested(99), priority=2**31 - 1, retries=2**31 - 1, queue="q" * 255, unique="u" * 255),
        tq.enqueue("t", None, priority=-(2**31), at=at, key="k" * 255, meta={"m": nested(98)}),
    ]
    first, second = (tq.get_job(i) for i in ids)
    assert first is not None and (first.priority, first.max_retries, first.queue) == (2**31 - 1, 2**31 - 1, "q" * 255)
    assert first.args == nested(99)
    assert second is not None and second.priority == -(2**31) and second.run_at == at and second.key == "k" * 255


def test_durable_calls_nested_past_the_limit_fail_the_same_way_on_both_backends(queue: djobs.Queue) -> None:
    def dive(ctx: djobs.Context, n: int) -> int:
        return 0 if n == 0 else ctx.call("dive", n - 1)

    queue.register("dive", dive, retries=0)
    job_id = queue.enqueue("dive", 140)
    with running(queue):
        wait_until(lambda: (j := queue.get_job(job_id)) is not None and j.status.value == "failed", 60, "the dive")
    job = queue.get_job(job_id)
    assert job is not None and job.last_error is not None
    assert job.last_error.startswith("NoRetry: durable calls nest more than 100 deep (at 'dive')"), job.last_error
    assert "more steps" in job.last_error and len(job.last_error) < 2000
    assert queue.job_detail(job_id).checkpoints


# -- rows already stored badly never break a reader ---------------------------------------------------------------
DEEP_TEXT = "[" * 900 + "]" * 900


def bad_rows(pg: bool) -> dict[str, str]:
    """Column assignments no current writer makes, each the only flaw of one job row."""
    return {
        "run_at NaN": "run_at = " + ("'NaN'" if pg else "1e999"),
        "run_at -inf": "run_at = " + ("'-Infinity'" if pg else "-1e999"),
        "run_at 1e300": "run_at = 1e300",
        "created_at 1e300": "created_at = 1e300, started_at = -1e300",
        "args not JSON": "args = '{not json'",
        "args 900 deep": f"args = '{DEEP_TEXT}'",
        "result 900 deep": f"result = '{DEEP_TEXT}', status = 'completed'",
        "unknown status": "status = 'weird'",
        "queue with escapes": "queue = 'q' || " + ("chr(27)" if pg else "char(27)") + " || '[2J'",
        "error with escapes": "last_error = 'bad' || " + ("chr(7)" if pg else "char(7)") + ", status = 'failed'",
        "priority huge": "priority = " + ("2147483647" if pg else "99999999999999"),
        "attempt negative": "attempt = -5, max_retries = -3",
        "timeout NaN": "timeout = " + ("'NaN'" if pg else "1e999"),
        "timeout negative": "timeout = -1",
        "meta not an object": "meta = '[1]'",
        "backoff garbage": """backoff = '{"initial": "x"}'""",
        "progress not JSON": "progress = '{bad'",
        "unknown type": "type = 'nobody-handles-this'",
    }


@pytest.fixture
def spoiled(tq: djobs.Queue, db_url: str) -> tuple[djobs.Queue, dict[str, str]]:
    """One job per kind of bad row, plus bad event and checkpoint rows."""
    cases = bad_rows(db_url.startswith("postgres"))
    ids = {case: tq.enqueue("t", {"case": case}) for case in cases}
    for case, assignment in cases.items():
        sql(tq.storage, f"UPDATE djobs_jobs SET {assignment} WHERE id = ?", (ids[case],))
    ids["args with NUL and a lone surrogate"] = tq.enqueue("t", {"text": "a\x00b\ud800\x1b[2J"})
    some = ids["args not JSON"]
    tq.emit_custom(some, "note", {"x": 1}, persist=True)
    sql(tq.storage, f"UPDATE djobs_events SET data = '{DEEP_TEXT}'")
    sql(tq.storage, "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
                    "VALUES (?, 'c:0', 0, 'step', ?, NULL, 1e300)", (some, DEEP_TEXT))  # fmt: skip
    return tq, ids


def test_bad_rows_never_break_the_library_readers(spoiled: tuple[djobs.Queue, dict[str, str]]) -> None:
    q, ids = spoiled
    assert len(q.list_jobs(limit=100)) == len(ids)
    assert len(q.job_summaries(limit=100)) == len(ids)
    assert q.count_jobs() == len(ids)
    for status in ("pending", "failed", "completed"):
        q.job_summaries(status=status)
        q.list_jobs(status=status)
    assert q.queue_stats() and q.queue_lag() is not None and q.health() is not None
    q.events_since(0, limit=100)
    for case, job_id in ids.items():
        detail = q.job_detail(job_id)
        assert detail.job.id == job_id, case
        assert explain.why(q, job_id), case
        q.sub_jobs(job_id)
        q.job_events(job_id)
    shown = q.get_job(ids["unknown status"])
    assert shown is not None and "weird" in (shown.last_error or "")
    assert q.get_job(ids["run_at 1e300"]).run_at is None  # type: ignore[union-attr]
    assert q.get_job(ids["result 900 deep"]).result == DEEP_TEXT  # type: ignore[union-attr]
    cancelled = [q.cancel_job(job_id) for job_id in ids.values()]
    assert any(cancelled)
    q.purge(["completed", "failed", "cancelled"], older_than=0)


def test_a_worker_serves_on_beside_bad_rows(spoiled: tuple[djobs.Queue, dict[str, str]]) -> None:
    q, ids = spoiled
    good = q.enqueue("t", {"good": True})
    with running(q) as worker:
        wait_until(lambda: (j := q.get_job(good)) is not None and j.status.value == "completed", 60, "the good job")
        assert worker.is_running
        # Every claimable bad row ends (never running forever, never in a loop).
        claimable = [ids[c] for c in ("args not JSON", "args 900 deep", "priority huge", "attempt negative",
                                      "timeout negative", "meta not an object", "backoff garbage", "progress not JSON")]  # fmt: skip

        def ended() -> bool:
            return all((j := q.get_job(i)) is not None and j.status.value in ("completed", "failed") for i in claimable)

        wait_until(ended, 60, "the claimable bad rows to finish")
        assert worker.is_running
    assert all(q.get_job(i).attempt <= 1 for i in claimable)  # type: ignore[union-attr]


def djobs_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DJOBS), "--database", db_url, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": "/tmp"})  # fmt: skip


def test_bad_rows_never_break_the_command_line(spoiled: tuple[djobs.Queue, dict[str, str]], db_url: str) -> None:
    """`djobs jobs`, `inspect` and `why` (the real executable) answer for every bad row, exit 0, escapes
    shown as text, never sent to the terminal."""
    q, ids = spoiled
    outputs = [djobs_cli(db_url, "jobs"), djobs_cli(db_url, "--json", "jobs"), djobs_cli(db_url, "inspect"),
               djobs_cli(db_url, "events")]  # fmt: skip
    for case in ("args with NUL and a lone surrogate", "queue with escapes", "error with escapes", "result 900 deep",
                 "run_at NaN"):  # fmt: skip
        outputs += [djobs_cli(db_url, "inspect", ids[case]), djobs_cli(db_url, "why", ids[case])]
    outputs += [djobs_cli(db_url, "--json", "inspect", ids[case]) for case in ("result 900 deep", "unknown status")]
    for out in outputs:
        assert out.returncode == 0, (out.args, out.returncode, out.stderr)
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout, out.args
    jobs_text = outputs[0].stdout
    assert "q\\x1b[2J" in jobs_text
    listed = json.loads(outputs[1].stdout)
    assert len(listed) == len(ids)


# -- generated input -------------------------------------------------------------------------------------------
names = st.one_of(
    st.sampled_from(["default", "q", "x" * 255, "x" * 256, "", "a\x00b", "\x1b[31m", "é", "a\u200bb", "\ud800"]),
    st.text(max_size=260),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["\ud800", "a\x00b", "\x1b[2J", "\u202e", "x" * 10_000]),
)  # fmt: skip
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=20,
)  # fmt: skip
enqueues = st.fixed_dictionaries(
    {"args": st.one_of(json_values, st.integers(min_value=95, max_value=105).map(nested))},
    optional={
        "queue": names,
        "key": names,
        "unique": names,
        "priority": st.integers(min_value=-(2**63), max_value=2**63),
        "retries": st.integers(min_value=-5, max_value=2**40),
        "delay": st.floats(allow_nan=True, allow_infinity=True),
        "at": st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))])),
        "timeout": st.floats(allow_nan=True, allow_infinity=True),
        "meta": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    },
)  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(enqueues, min_size=1, max_size=4))
def test_generated_enqueues_leave_every_reader_working(tq: djobs.Queue, batch: list[dict[str, Any]]) -> None:
    """Each generated enqueue is stored or refused (ValueError/TypeError/DuplicateJob, nothing written); after
    the batch every reader answers and every stored job reads back."""
    for kwargs in batch:
        kwargs = dict(kwargs)
        args = kwargs.pop("args")
        before = row_count(tq)
        try:
            job_id = tq.enqueue("t", args, **kwargs)
        except (ValueError, TypeError, djobs.DuplicateJob):
            assert row_count(tq) == before, kwargs
            continue
        job = tq.get_job(job_id)
        assert job is not None and job.queue == kwargs.get("queue", "default")
        assert job.args == args
    jobs = tq.list_jobs(limit=1000)
    assert len(tq.job_summaries(limit=1000)) == len(jobs) == tq.count_jobs()
    tq.queue_stats()
    tq.queue_lag()
    for job in jobs[:20]:
        tq.job_detail(job.id)
        explain.why(tq, job.id)
    for job in jobs:
        tq.cancel_job(job.id)
    tq.purge(["cancelled"], older_than=0)
