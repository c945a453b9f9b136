"""Flow settings in djobs.toml: `[queues.NAME]` limits and time limit, `[jobs.NAME]` time limit and backoff,
`[retention]`; every bad value reported by `djobs config check` (exit 78, one line each); and what the real
executable applies: `djobs config apply` and a starting worker write the limits and retention, and the
worker enforces the time limits and backoff. On SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_subprocess import Project

import djobs
from djobs import config as cfg

pytestmark = pytest.mark.timeout(240)

GOOD = """
[queues.api]
concurrency = 4
rate = "10/s"
running = 5
key_rate = "1/m"
key_running = 1
timeout = "1s"

[queues.plain]
concurrency = 2

[jobs.sync]
handler = "flowcfg:sync"
retries = 1
timeout = "30s"
backoff = { initial = "20s", maximum = "5m", multiplier = 3, jitter = 0 }

[retention]
completed = "1d"
failed = "forever"
"""

HANDLERS = """
import time
import djobs

def sync(args):
    raise RuntimeError("sync broke")

@djobs.job("nap", queue="api", retries=0)
def nap(args):
    time.sleep(args)
    return "rested"
"""


def _write(root: Path, text: str, db: str = "sqlite:///unused.db") -> Path:
    path = root / "djobs.toml"
    path.write_text(f'[djobs]\ndatabase = "{db}"\nmodules = ["flowcfg"]\n' + textwrap.dedent(text))
    return path


def test_the_flow_keys_load(tmp_path: Path) -> None:
    conf = cfg.load(_write(tmp_path, GOOD))
    api = conf.queue_flow["api"]
    assert (str(api.rate), api.running, str(api.key_rate), api.key_running, api.timeout) == ("10/s", 5, "1/m", 1, 1.0)
    assert api.limited and "plain" not in conf.queue_flow and conf.queues["api"] == 4
    assert conf.queue_timeouts() == {"api": 1.0}
    job = conf.jobs["sync"]
    assert job.timeout == 30.0 and job.backoff == djobs.Backoff(initial=20, maximum=300, multiplier=3, jitter=0)
    assert conf.retention == djobs.Retention(86400.0, None, 7 * 86400.0), "a status not named keeps its default"
    again, problems = cfg.validate(conf.to_dict(), conf.path)
    assert problems == [] and again.queue_flow == conf.queue_flow and again.jobs == conf.jobs
    assert again.retention == conf.retention


BAD = """
[queues.api]
rate = "ten/s"
running = -1
key_rate = 5
key_running = 1.5
timeout = "0s"

[jobs.sync]
handler = "flowcfg:sync"
timeout = "soon"
backoff = { initial = "2s", multiplier = 0.5 }

[jobs.other]
handler = "flowcfg:sync"
backoff = { initial = "2s", slope = 3, maximum = "x" }

[retention]
completed = "never"
kept = "1d"
"""


def test_config_check_reports_every_bad_flow_value_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "flowcfg.py").write_text(HANDLERS)
    path = _write(tmp_path, BAD)
    p = Project(tmp_path)
    done = p.run("--config", str(path), "config", "check")
    assert done.returncode == 78 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    expected = [
        "[queues.api] rate:", "[queues.api] key_rate:", "[queues.api] running:", "[queues.api] key_running:",
        "[queues.api] timeout: must be more than zero", "[jobs.sync] timeout:", "[jobs.sync] backoff: Backoff multiplier",
        "[jobs.other] backoff.slope: unknown key", "[jobs.other] backoff.maximum:", "[retention] completed:",
        "[retention] kept: unknown key",
    ]  # fmt: skip
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}: {want}"), (line, want)


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    (tmp_path / "flowcfg.py").write_text(HANDLERS)
    _write(tmp_path, GOOD, db_url)
    yield Project(tmp_path)


@pytest.fixture
def lib(db_url: str) -> Iterator[djobs.Queue]:
    store = djobs.connect(db_url)
    yield djobs.Queue(store, strict=False)
    store.close()


def test_config_apply_writes_limits_and_retention(project: Project, lib: djobs.Queue) -> None:
    lib.set_limits("plain", running=3)  # a queue whose table names no limit keeps its own
    done = project.json("config", "apply")
    assert done["limits"] == ["api"] and done["retention"] == {"completed": 86400.0, "failed": None, "cancelled": 604800.0}
    assert lib.limits("api") == djobs.Limits(djobs.Rate(10, 1), 5, djobs.Rate(1, 60), 1)
    assert lib.limits("plain") == djobs.Limits(running=3)
    assert lib.retention() == djobs.Retention(86400.0, None, 604800.0)
    assert "limits of api" in project.ok("config", "apply")


def test_a_starting_worker_applies_them_and_enforces_time_limits_and_backoff(project: Project, lib: djobs.Queue) -> None:
    napping = lib.enqueue("nap", 5, queue="api", retries=0)  # [queues.api] timeout = 1s: its jobs that set none end at 1 s
    quick = lib.enqueue("nap", 0.01, queue="api")
    failing = lib.enqueue("sync", None, retries=1)
    before = time.time()
    project.ok("worker", "--burst", "--queue", "api:4", "--queue", "default:1", timeout=120)
    assert lib.limits("api").running == 5 and lib.retention().completed == 86400.0
    nap = lib.get_job(napping)
    assert nap is not None and nap.status == djobs.JobStatus.FAILED and "time limit of 1s" in (nap.last_error or "")
    assert lib.get_job(quick).status == djobs.JobStatus.COMPLETED  # type: ignore[union-attr]
    sync = lib.get_job(failing)
    assert sync is not None and sync.status == djobs.JobStatus.RETRYING, "retries = 1: one retry is due later"
    wait = sync.run_at.timestamp() - before  # type: ignore[union-attr]
    assert 20 <= wait <= 20 + (time.time() - before), f"backoff initial 20s, jitter 0: retry in {wait:.1f}s"
    (registered,) = [t for t in lib.known_types() if t.name == "sync"]
    assert registered.timeout == 30.0, "the worker registered the type with its time limit, for producers"
