"""An append-only side-effect ledger: what handlers really did, as seen from outside the database.

    ledger = Ledger("/tmp/run/ledger")          # a directory; each process appends to its own file
    ledger.write("step", job="J1", i=0, token="ab12")
    rows = read_ledger("/tmp/run/ledger")        # every row of every process, oldest first

Each row is one JSON line written with a single `os.write` on an `O_APPEND` descriptor, so it reaches the
kernel before the handler goes on: a `kill -9` afterwards cannot lose it, and a `kill -9` before it means
the side effect did not happen. Rows carry `ts` (epoch seconds) and `pid`. A torn last line (killed
mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class Ledger:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _descriptor(self) -> int:
        pid = os.getpid()
        if self._fd is None or self._pid != pid:  # a forked child gets a file of its own
            path = self.directory / f"ledger-{pid}.jsonl"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._pid = pid
        return self._fd

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        row = {"ts": time.time(), "pid": os.getpid(), "kind": kind, **fields}
        data = (json.dumps(row, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._descriptor(), data)
        return row

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_ledger(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob("ledger-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by kill -9 mid-write: that side effect was not completed
    rows.sort(key=lambda r: r["ts"])
    return rows
