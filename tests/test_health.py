"""`djobs health` and the worker's metrics port (`djobs worker --metrics-port`), from the real executable:
exit codes and one line per problem, probes, and run metrics that count what the worker really ran."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from browser.support import TIMEOUT, Client, wait_for
from prometheus_client.parser import text_string_to_metric_families

import djobs

EXE = str(Path(sys.executable).with_name("djobs"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_") or k == "DJOBS_TEST_PG_URL"}
    env.update(extra)
    return env


def health(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "--database", url, "health", *args], capture_output=True, text=True, env=_env(), timeout=60)


def test_health_exit_codes_and_one_line_per_problem(db_url: str, queue: djobs.Queue) -> None:
    @queue.handler("work")
    def work(args: Any) -> None:
        pass

    @queue.handler("mail", queue="emails")
    def mail(args: Any) -> None:
        pass

    ok = health(db_url)
    assert ok.returncode == 0 and ok.stdout.strip() == "healthy", ok
    queue.enqueue("work", None)
    queue.enqueue("mail", None)
    queue.enqueue("work", None, delay=3600)  # not due: no problem of anyone's
    bad = health(db_url)
    assert bad.returncode == 1, bad
    lines = bad.stdout.strip().splitlines()
    assert len(lines) == 2 and all("no live worker" in line for line in lines), lines
    assert any("'default'" in line for line in lines) and any("'emails'" in line for line in lines)
    only = health(db_url, "--queue", "emails", "--json")
    assert only.returncode == 1 and json.loads(only.stdout)["ok"] is False
    assert [p for p in json.loads(only.stdout)["problems"] if "'emails'" in p] == json.loads(only.stdout)["problems"]

    # A live worker that is paused serves the queue but runs nothing: the lag grows past --max-lag.
    w = queue.worker(queues={"default": 1}, poll_interval=0.05)
    w.start()
    try:
        wait_for(lambda: any(x.id == w.id for x in queue.workers()), "the worker registered")
        queue.pause_worker(w.id)
        queue.enqueue("work", None)  # due now; the paused worker claims nothing
        time.sleep(1.5)
        lagging = health(db_url, "--queue", "default", "--max-lag", "1s")
        assert lagging.returncode == 1 and "waited" in lagging.stdout and "'default'" in lagging.stdout, lagging
        assert health(db_url, "--queue", "default", "--max-lag", "1h").returncode == 0
    finally:
        w.stop(timeout=5)
    for args in (["--max-lag", "soon"], ["--max-lag", "0s"], ["--queue", ""]):
        p = health(db_url, *args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, (args, p)


def test_health_is_75_when_the_database_does_not_answer() -> None:
    p = health("postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    assert p.returncode == 75, p
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "metricjobs.py").write_text(textwrap.dedent("""
        import djobs

        @djobs.job("hello")
        def hello(args):
            return "hi"

        @djobs.job("broken", retries=0)
        def broken(args):
            raise djobs.NoRetry("nope")
    """))
    (tmp_path / "djobs.toml").write_text(f"[djobs]\ndatabase = '{db_url}'\nmodules = ['metricjobs']\n")
    return tmp_path


def test_worker_metrics_port_counts_what_it_ran(project: Path, db_url: str, queue: djobs.Queue) -> None:
    env = _env(PYTHONPATH=str(project), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [EXE, "worker", "--queue", "default:2", "--metrics-port", "0"], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + TIMEOUT
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "the worker ended before serving metrics"
            m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
            port = int(m.group(1)) if m else None
        assert port, "no metrics address printed"
        c = Client(port, token=None)
        assert c.get("/healthz").status == 200
        wait_for(lambda: c.get("/readyz").status == 200, "the worker registered")
        producer = djobs.Queue(queue.storage, strict=False)  # enqueues by name: the handlers live in the worker
        ids = [producer.enqueue("hello", None) for _ in range(3)] + [producer.enqueue("broken", None)]
        wait_for(lambda: all(queue.get_job(i).status.terminal for i in ids), "the jobs run")  # type: ignore[union-attr]

        def runs() -> dict[tuple[str, str], float]:
            out: dict[tuple[str, str], float] = {}
            for fam in text_string_to_metric_families(c.get("/metrics").text):
                for s in fam.samples:
                    if s.name == "djobs_job_runs_total":
                        out[(s.labels["type"], s.labels["outcome"])] = s.value
                    if s.name == "djobs_job_duration_seconds_count":
                        out[(s.labels["type"], "count")] = s.value
            return out

        got = wait_for(lambda: (r := runs()).get(("broken", "failed")) and r, "the run metrics")
        assert got[("hello", "completed")] == 3 and got[("broken", "failed")] == 1
        assert got[("hello", "count")] == 3 and got[("broken", "count")] == 1
        # They match the database: every run the worker recorded.
        assert [queue.get_job(i).status.value for i in ids] == ["completed"] * 3 + ["failed"]  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # drains and exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    bad = subprocess.run([EXE, "worker", "--metrics-port", "99999"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--metrics-port" in bad.stderr, bad
