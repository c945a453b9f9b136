"""`benchmarks/instructions.py`: each workload does the work it is named for, and the counts come out.

No assertion on the counts' sizes: they are measurements, read from the script's output, not asserted.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)
SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "instructions.py"


def _child(workload: str, n: int, seed: int, directory: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--child", workload, str(n), str(seed), str(directory)],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("variant", "keys", "limits"),
    [("none", 0, None), ("queue", 0, (1, 1, 0, 0)), ("keyed", 20, None), ("key_running", 20, (0, 0, 1, 0)),
     ("key_rate", 20, (0, 0, 0, 1)), ("keys", 20, (0, 0, 1, 1))],
)  # fmt: skip
def test_a_rounds_workload_drains_n_of_the_seeded_jobs_under_its_limits(
    tmp_path: Path, variant: str, keys: int, limits: tuple[int, ...] | None
) -> None:
    _child(f"limits-{variant}", 100, 300, tmp_path)
    db = tmp_path / "jobs.db"
    by_status = dict(_rows(db, "SELECT status, COUNT(*) FROM djobs_jobs GROUP BY status"))
    # rounds of 10 complete the previous round's claims: the last round's 10 are still running
    assert by_status == {"completed": 90, "running": 10, "pending": 200}
    assert _rows(db, "SELECT COUNT(DISTINCT job_key) FROM djobs_jobs") == [(keys,)]
    set_ = _rows(db, "SELECT running_cap IS NOT NULL, rate_n IS NOT NULL, key_running_cap IS NOT NULL, "
                 "key_rate_n IS NOT NULL FROM djobs_queues WHERE name = 'default' AND limited = 1")  # fmt: skip
    assert set_ == ([limits] if limits else [])


def test_the_raw_workloads_do_the_same_work(tmp_path: Path) -> None:
    rounds, enqueue = tmp_path / "rounds", tmp_path / "enqueue"
    rounds.mkdir()
    enqueue.mkdir()
    _child("raw-rounds", 100, 300, rounds)
    assert dict(_rows(rounds / "raw.db", "SELECT status, COUNT(*) FROM raw_jobs GROUP BY status")) == {
        "completed": 100, "pending": 200,
    }  # fmt: skip
    _child("raw-enqueue", 300, 0, enqueue)
    assert _rows(enqueue / "raw.db", "SELECT COUNT(*) FROM raw_jobs") == [(300,)]  # the warm-up batch: reset


def test_the_djobs_enqueue_workload_enqueues_n_after_its_warm_up(tmp_path: Path) -> None:
    _child("djobs-enqueue", 300, 0, tmp_path)
    assert _rows(tmp_path / "jobs.db", "SELECT status, COUNT(*) FROM djobs_jobs GROUP BY status") == [("pending", 400)]


def test_a_size_that_is_no_whole_number_of_batches_is_refused() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--jobs", "150"], capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    assert out.returncode == 2 and "--jobs must be a positive multiple of 100" in out.stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_under_callgrind_give_a_count_a_job_and_a_ratio() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--only", "enqueue", "--jobs", "100", "--parallel", "2"],
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[-1].split()
    assert line[0] == "enqueue" and line[1] == "djobs" and line[3] == "raw" and line[-1] == "raw", out.stdout
    mine, raw, ratio = float(line[2]), float(line[4]), float(line[5].rstrip("×"))
    assert mine > 0 and raw > 0 and ratio == pytest.approx(raw / mine, abs=0.01)
