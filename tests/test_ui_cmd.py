"""`djobs ui` serves the embedded dashboard over real HTTP from the real executable."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import djobs


def test_djobs_ui_serves_the_dashboard_and_its_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    store = djobs.connect(url)
    queue = djobs.Queue(store)
    queue.pause_queue("emails", reason="outage")
    exe = Path(sys.executable).with_name("djobs")
    proc = subprocess.Popen(
        [str(exe), "--database", url, "ui", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "api/overview", timeout=5) as resp:
                    overview = json.load(resp)
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.2)
        assert [(q["name"], q["paused"]) for q in overview["queues"]] == [("emails", True)]
        with urllib.request.urlopen(base, timeout=5) as resp:
            assert resp.status == 200 and "<html" in resp.read().decode().lower()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode in (0, -signal.SIGINT)
    store.close()
