"""`djobs bench` with tiny sizes: the report's shape, and ratios computed from the numbers measured.

No wall-clock assertions: machines are noisy. Speed is read from `benchmarks/run.py`, not asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from djobs import bench
from djobs.proof.dbutil import is_postgres
from djobs.proof.report import BenchReport, BenchRow, percentile

pytestmark = pytest.mark.timeout(300)

TINY = dict(jobs=200, workers=(1, 2), enqueue_jobs=100, latency_samples=5, latency_gap=0.01, workflows=5,
            fanout_width=10, fanout_rounds=1)


def test_tiny_bench_measures_every_figure_beside_its_baseline(db_url: str) -> None:
    seen: list[float] = []
    report = bench.run([db_url if is_postgres(db_url) else None], progress=lambda _m, f: seen.append(f), **TINY)
    assert report.errors == []
    backend = "postgres" if is_postgres(db_url) else "sqlite"
    assert [r.metric for r in report.rows] == [
        "enqueue, 1 per call",
        "enqueue, batches of 100",
        "end-to-end, 1 process",
        "end-to-end, 1 process, vs raw batched",
        "end-to-end, 2 processes",
        "end-to-end, 2 processes, vs raw batched",
        "dispatch latency p50",
        "dispatch latency p95",
        "dispatch latency p99",
        "durable steps (10-step workflow)",
        "fan-out round trip (10 sub-jobs)",
    ]
    for r in report.rows:
        assert r.backend == backend
        assert r.djobs is not None and r.djobs > 0 and r.raw is not None and r.raw > 0, r
        assert r.ratio == pytest.approx(r.djobs / r.raw)
        assert r.higher_is_better is (r.unit != "ms")
    p50, p99 = report.row(backend, "dispatch latency p50"), report.row(backend, "dispatch latency p99")
    assert p50 is not None and p99 is not None
    assert p50.djobs is not None and p99.djobs is not None and p50.djobs <= p99.djobs
    e2e, batched = report.row(backend, "end-to-end, 1 process"), report.row(backend, "end-to-end, 1 process, vs raw batched")
    assert e2e is not None and batched is not None and e2e.djobs == batched.djobs and e2e.raw != batched.raw
    assert seen and seen == sorted(seen) and seen[-1] == 1.0

    data = json.loads(report.to_json())
    assert data["params"]["jobs"] == 200
    for row, out in zip(report.rows, data["rows"], strict=True):
        assert out["djobs"] == row.djobs and out["raw"] == row.raw and out["ratio"] == row.ratio
    assert data["reading"] and data["reading"] == report.reading


def test_ratio_and_reading_from_given_numbers() -> None:
    rows = [
        BenchRow("sqlite", "end-to-end, 1 process", "jobs/s", 5000.0, 10000.0),
        BenchRow("sqlite", "end-to-end, 2 processes", "jobs/s", 5200.0, 9000.0),
        BenchRow("postgres", "end-to-end, 1 process", "jobs/s", 3000.0, 1500.0),
        BenchRow("sqlite", "dispatch latency p50", "ms", 6.0, 4.0, higher_is_better=False),
        BenchRow("postgres", "dispatch latency p50", "ms", None, 4.0, higher_is_better=False),
    ]
    report = BenchReport(rows, params={})
    assert rows[0].ratio == 0.5 and rows[2].ratio == 2.0 and rows[3].ratio == 1.5
    assert rows[4].ratio is None
    assert "SQLite 5,000 vs PostgreSQL 3,000" in report.reading
    assert "second SQLite worker process adds little" in report.reading
    assert math.isclose(percentile([1.0, 2.0, 3.0, 4.0], 50), 2.0)
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_the_printed_report_says_how_busy_the_machine_was() -> None:
    from rich.console import Console

    from djobs.proof.report import print_bench

    report = BenchReport([BenchRow("sqlite", "end-to-end, 1 process", "jobs/s", 5000.0, 10000.0)], params={})
    report.env.update(load_average_at_start=0.25, load_average_at_end=1.5, cpus=2)
    console = Console(record=True, width=120)
    print_bench(report, console)
    assert "load average 0.25 → 1.5 on 2 CPUs" in console.export_text()


def test_bench_command_json_and_bad_backend() -> None:
    from djobs.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["--database", "sqlite:///unused.db", "bench", "--backend", "postgres"])
    assert result.exit_code == 2, result.output
    result = runner.invoke(
        app, ["bench", "--backend", "sqlite", "--jobs", "50", "--samples", "2", "--workers", "1", "--json"],
        env={"DJOBS_BENCH_WORKERS": "1"},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {r["metric"] for r in data["rows"]} >= {"end-to-end, 1 process", "dispatch latency p50"}
    assert all(r["backend"] == "sqlite" for r in data["rows"])


def test_repeat_interleaves_runs_and_takes_medians() -> None:
    calls: list[str] = []
    b = bench._Bench(None, jobs=1, workers=(1,), enqueue_jobs=1, latency_samples=1, latency_gap=0, workflows=1,
                     steps=1, fanout_width=1, fanout_rounds=1, concurrency=1, repeat=3, tick=calls.append)
    values = iter([1.0, 10.0, 3.0, 30.0, 2.0, 20.0])
    assert b._rates("x", lambda: next(values), lambda: next(values)) == (2.0, 20.0)
    assert calls == ["sqlite: x (djobs)", "sqlite: x (raw)"] * 3

    def boom() -> float:
        raise RuntimeError("down")

    assert b._rates("y", boom, lambda: 5.0) == (None, 5.0)
    assert b.errors == ["sqlite y (djobs): RuntimeError: down"] * 3


def test_a_harness_worker_is_seen_to_exit_when_it_exits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The benchmark times drains by waiting for its worker processes: the wait must end when the process
    # does, not on a polling schedule (Popen.wait with a timeout sleeps in steps growing to 50 ms), and
    # still time out on a process that lives on, leaving it alone as Popen.wait does.
    import time

    from djobs.proof.procs import WorkerProcess

    p = WorkerProcess(["unused"], tmp_path / "logs")
    p.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (slept.append(s), real_sleep(s)))
    assert p.wait(timeout=30) == 0
    assert slept == []  # it blocked until the exit instead of polling
    p.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0.2)
        assert p.proc.poll() is None
    finally:
        p.proc.kill()
        p.proc.wait()
    assert p.wait(timeout=5) == -9


def test_the_enqueue_cost_breakdown_measures_every_part() -> None:
    """`benchmarks/enqueue_cost.py` finds the insert statement djobs sends and times each part: a change of
    that statement's text must not leave the breakdown silently short of a line."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "enqueue_cost.py"
    out = subprocess.run([sys.executable, str(script), "--jobs", "300", "--repeat", "1"], capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    parts = {line[:52].strip(): float(line[52:]) for line in lines[1:-1]}
    assert len(parts) == 11 and all(v > 0 for v in parts.values()), out.stdout
    assert "+ a (queue, status) index (gone since schema 6)" in parts  # the floor, index by index
    assert "the insert statement alone, plain sqlite3" in parts and lines[-1].startswith("load average")
