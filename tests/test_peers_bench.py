"""`benchmarks/peers.py` with djobs alone on a tiny SQLite drain: it runs without any peer installed, and a
mistyped peer stops it before anything runs. No speed is asserted: machines are noisy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peers.py"


def test_djobs_alone_prints_a_djobs_row_with_a_rate() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", "sqlite", "--peers", "none", "--jobs", "200", "--repeat", "1",
         "--workers", "1", "--latency", "0", "--quiet"],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    row = re.search(r"^djobs\s+\|\s+sqlite\s+\|\s+1\s+\|\s+([\d,]+)\s+\|\s+1\.00x", out.stdout, re.MULTILINE)
    assert row, out.stdout
    assert int(row.group(1).replace(",", "")) > 0
    assert "load average" in out.stdout


def test_an_unknown_peer_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--peers", "huey,celery"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "argument --peers: unknown peer celery" in out.stderr
    assert out.stdout == ""
