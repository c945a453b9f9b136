"""The selftest's limited queue: a fleet-wide running cap under kill -9, sampled in the database.

The run sets `running=RUNNING_CAP` on `LIMITED_QUEUE`, every worker serves that queue beside the default
one, and the load keeps more of its jobs due than the cap lets run. `RunningSampler` counts the queue's
`running` rows every few milliseconds for the whole run; the invariant "the running cap held throughout"
(`djobs.proof.invariants.check_running_cap`) then requires that no sample exceeded the cap. A killed
worker's jobs stay `running` until they are recovered, and count against the cap meanwhile, as they must.
"""

from __future__ import annotations

import threading
import time
from typing import Any

LIMITED_QUEUE = "selftest-limited"
RUNNING_CAP = 2
SAMPLE_EVERY = 0.02  # seconds between samples


class RunningSampler:
    """Samples the limited queue's running count from its own thread until `stop` is set."""

    def __init__(self, queue: Any, stop: threading.Event) -> None:
        self.queue = queue
        self.stop = stop
        self.samples: list[int] = []
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
            except djobs.StorageUnavailable:
                self.missed += 1
            time.sleep(SAMPLE_EVERY)
