"""The real `djobs` executable for flow control and failures: `enqueue` with a time limit, key, meta and an
idempotency window; `limits`, `limits set`, `limits clear` with held-back counts; `dlq` and `dlq requeue`;
and hostile inputs (exit 2, one line, nothing written). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_subprocess import Project

import djobs

pytestmark = pytest.mark.timeout(240)

HANDLERS = """
import djobs

@djobs.job("ok")
def ok(args):
    return args

@djobs.job("bad", retries=0, queue="risky")
def bad(args):
    raise RuntimeError(f"bad {args}")

@djobs.job("worse", retries=0, queue="risky")
def worse(args):
    raise ValueError("worse")
"""


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    (tmp_path / "flowjobs.py").write_text(HANDLERS)
    (tmp_path / "djobs.toml").write_text(f'[djobs]\ndatabase = "{db_url}"\nmodules = ["flowjobs"]\n')
    p = Project(tmp_path)
    yield p


@pytest.fixture
def lib(db_url: str) -> Iterator[djobs.Queue]:
    store = djobs.connect(db_url)
    yield djobs.Queue(store, strict=False)
    store.close()


def _bad(p: Project, *args: str) -> str:
    done = p.run(*args)
    assert done.returncode == 2, (args, done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("djobs: "), done.stderr
    assert done.stdout == ""
    return lines[0]


def test_enqueue_with_time_limit_key_meta_and_an_idempotency_window(project: Project, lib: djobs.Queue) -> None:
    job_id = project.ok(
        "enqueue", "ok", "--args", "1", "--time-limit", "5m", "--key", "tenant:42", "--meta", "tenant=42",
        "--meta", "plan=pro=x", "--unique", "welcome:42", "--unique-for", "24h",
    ).strip()  # fmt: skip
    job = lib.get_job(job_id)
    assert job is not None and (job.timeout, job.key, job.meta) == (300.0, "tenant:42", {"tenant": "42", "plan": "pro=x"})
    assert project.run("enqueue", "ok", "--unique", "welcome:42").returncode == 1
    assert project.ok("enqueue", "ok", "--unique", "welcome:42", "--if-exists", "return").strip() == job_id
    assert project.json("enqueue", "ok", "--unique", "welcome:42", "--if-exists", "return") == {"id": job_id}
    project.ok("worker", "--burst")
    assert lib.get_job(job_id).status == djobs.JobStatus.COMPLETED  # type: ignore[union-attr]
    assert project.ok("enqueue", "ok", "--unique", "welcome:42", "--if-exists", "return").strip() == job_id, (
        "the key is held for its window after the job completed"
    )
    assert lib.count_jobs() == 1


HOSTILE_ENQUEUE = [
    ("--meta", "novalue"), ("--meta", "=v"), ("--meta", "a=1", "--meta", "a=2"), ("--time-limit", "0s"),
    ("--time-limit", "soon"), ("--unique-for", "1h"), ("--unique", "k", "--unique-for", "-1h"),
    ("--key", "bad\x01key"), ("--key", "k" * 300), ("--if-exists", "maybe"), ("--meta", "k\x7f=v"),
]  # fmt: skip


def test_hostile_enqueue_options_exit_2_and_write_nothing(project: Project, lib: djobs.Queue) -> None:
    for args in HOSTILE_ENQUEUE:
        _bad(project, "enqueue", "ok", *args)
    assert lib.count_jobs() == 0


def test_limits_show_set_clear_and_held_back(project: Project, lib: djobs.Queue) -> None:
    assert project.json("limits") == []
    assert "no queue has limits" in project.ok("limits")
    row = project.json("limits", "set", "api", "--rate", "10/s", "--running", "0", "--key-rate", "1/m", "--key-running", "2")
    assert row == {
        "queue": "api", "rate": "10/s", "running": 0, "key_rate": "1/m", "key_running": 2,
        "held_back": {"running": 0, "rate": 0, "key_running": 0, "key_rate": 0},
    }  # fmt: skip
    lim = lib.limits("api")
    assert (str(lim.rate), lim.running, str(lim.key_rate), lim.key_running) == ("10/s", 0, "1/m", 2)
    for _ in range(3):
        lib.enqueue("ok", None, queue="api")
    assert project.json("limits", "api")["held_back"]["running"] == 3, "a running cap of 0 holds every due job"
    (listed,) = project.json("limits")
    assert listed["queue"] == "api" and listed["held_back"]["running"] == 3
    text = project.ok("limits")
    assert "10/s" in text and "3 by running" in text
    assert project.json("limits", "set", "api", "--running", "4")["rate"] is None, "set replaces every limit"
    assert project.json("limits", "clear", "api")["running"] is None
    assert not lib.limits("api") and project.json("limits") == []
    assert project.json("limits", "nolimits")["held_back"] == {}


HOSTILE_LIMITS = [
    ("set", "api"), ("set", "api", "--rate", "ten/s"), ("set", "api", "--rate", "5/fortnight"),
    ("set", "api", "--rate", "0/s"), ("set", "api", "--running", "-1"), ("set", "api", "--running", "99999999999"),
    ("set", "bad\x1bqueue", "--running", "1"), ("set", "q" * 300, "--running", "1"), ("clear", "bad\x7fq"),
]  # fmt: skip


def test_hostile_limits_exit_2_and_change_nothing(project: Project, lib: djobs.Queue) -> None:
    lib.set_limits("api", running=7)
    for args in HOSTILE_LIMITS:
        _bad(project, "limits", *args)
    assert lib.all_limits() == {"api": djobs.Limits(running=7)}


def test_dlq_lists_failed_jobs_with_their_error_and_requeues_them(project: Project, lib: djobs.Queue) -> None:
    bad = [project.ok("enqueue", "bad", "--args", str(i)).strip() for i in range(3)]
    worse = project.ok("enqueue", "worse").strip()
    fine = project.ok("enqueue", "ok").strip()
    project.ok("worker", "--burst", "--queue", "risky", "--queue", "default")
    listed = project.json("dlq")
    assert {j["id"] for j in listed} == {*bad, worse} and fine not in {j["id"] for j in listed}
    assert all(j["status"] == "failed" and j["last_error"] for j in listed)
    assert [j["id"] for j in project.json("dlq", "--type", "worse")] == [worse]
    assert project.json("dlq", "--queue", "default") == []
    assert len(project.json("dlq", "--limit", "1")) == 1
    text = project.ok("dlq")
    assert "bad 2" in text and "worse" in text
    assert project.json("dlq", "requeue", "--since", "2999-01-01T00:00:00") == {"requeued": 0}
    assert project.json("dlq", "requeue", "--type", "bad", "--since", "1h") == {"requeued": 3}
    assert all(lib.get_job(i).status == djobs.JobStatus.PENDING for i in bad)  # type: ignore[union-attr]
    assert project.ok("dlq", "requeue", "--queue", "risky").strip() == "requeued 1 job"
    assert project.json("dlq") == []


def test_hostile_dlq_options_exit_2(project: Project, lib: djobs.Queue) -> None:
    lib.enqueue("bad", 1)
    for args in (("requeue", "--since", "yesterday"), ("requeue", "--since", "0001-01-01"), ("--limit", "0"), ("--limit", "x")):
        _bad(project, "dlq", *args)
    assert lib.count_jobs(status="pending") == 1
