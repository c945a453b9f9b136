"""The selftest's limited queues: fleet-wide running caps under kill -9, sampled in the database.

The run sets `running=RUNNING_CAP` on `LIMITED_QUEUE` and `key_running=KEY_CAP` (with a per-key rate that
rarely binds, so the keys' buckets are read and written under the same chaos) on `KEYED_QUEUE`; every worker
serves both beside the default queue, and the load keeps more of their jobs due than the caps let run.
`RunningSampler` counts the first queue's `running` rows, and the most running jobs of any one key of the
second, every few milliseconds for the whole run; the invariant "running caps held throughout"
(`djobs.proof.invariants.check_running_cap`) then requires that no sample exceeded its cap. A killed
worker's jobs stay `running` until they are recovered, and count against the caps meanwhile, as they must.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

LIMITED_QUEUE = "selftest-limited"
RUNNING_CAP = 2
KEYED_QUEUE = "selftest-keyed"
KEY_CAP = 1
KEY_RATE = "20/s"
KEYS = ("a", "b", "c", None)  # None: jobs without a key, bound by no per-key limit
SAMPLE_EVERY = 0.02  # seconds between samples


class RunningSampler:
    """Samples the limited queues' running counts from its own thread until `stop` is set."""

    def __init__(self, queue: Any, stop: threading.Event) -> None:
        self.queue = queue
        self.stop = stop
        self.samples: list[int] = []
        self.key_samples: list[int] = []  # the most jobs of one key of KEYED_QUEUE running at once
        self.missed = 0  # samples the database did not answer (e.g. during --db-restart)
        self._thread = threading.Thread(target=self._run, name="selftest-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        import djobs

        while not self.stop.is_set():
            try:
                self.samples.append(self.queue.count_jobs(status="running", queue=LIMITED_QUEUE))
                keyed = Counter(j.key for j in self.queue.list_jobs("running", KEYED_QUEUE, limit=1000) if j.key)
                self.key_samples.append(max(keyed.values(), default=0))
            except djobs.StorageUnavailable:
                self.missed += 1
            time.sleep(SAMPLE_EVERY)
