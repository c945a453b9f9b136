"""A real worker process for the durable / fan-out / control / schedule tests.

    python tests/durable_worker_proc.py URL LEDGER_DIR --queues default=4,other=2 --stale 2 --heartbeat 0.5
        --interval 0.5 [--scheduler]

Connects, registers the handlers of `durable_handlers.py` (recording into LEDGER_DIR) and runs
`queue.worker(...).run()` until SIGTERM/SIGINT (or until the test kills it with SIGKILL).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from durable_handlers import register  # noqa: E402

import djobs  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("ledger_dir")
    p.add_argument("--queues", default="default=4")
    p.add_argument("--stale", type=float, default=2.0)
    p.add_argument("--heartbeat", type=float, default=0.5)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--scheduler", action="store_true")
    p.add_argument("--retention", type=float, default=300.0)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    queues = {name: int(n) for name, n in (item.split("=") for item in a.queues.split(","))}
    store = djobs.connect(a.url)
    queue = djobs.Queue(store)
    register(queue, a.ledger_dir)
    worker = queue.worker(
        queues=queues,
        heartbeat_interval=a.heartbeat,
        stale_lock_age=a.stale,
        stale_lock_interval=a.interval,
        scheduler=a.scheduler,
        poll_interval=0.05,
        drain_timeout=5.0,
        retention_interval=a.retention,
    )
    print(f"ready {worker.id}", flush=True)
    worker.run()
    store.close()


if __name__ == "__main__":
    main()
