"""Example handlers for `workflows.example.toml` (run from the repository root).

    djobs --config workflows.example.toml config check
    djobs --config workflows.example.toml enqueue nightly-etl --args '{"day": "2026-11-28"}'
    djobs --config workflows.example.toml worker --burst

`extract`, `transform` and `load-partition` register themselves with `@djobs.job` (the config lists this
module under `[djobs] modules`); `publish` and `cleanup` are named by `[jobs.*] handler = "module:function"`.
Each handler takes the previous workflow step's result and returns the next step's input.
"""

from __future__ import annotations

import os
import time
from typing import Any

import djobs


@djobs.job("extract", retries=2)
def extract(args: dict[str, Any]) -> dict[str, Any]:
    """Find the partitions to load for a day."""
    regions = args.get("regions") or ["eu", "us", "apac"]
    return {"day": args.get("day", "today"), "partitions": [{"region": r, "rows": 10 * (i + 1)} for i, r in enumerate(regions)]}


@djobs.job("transform")
def transform(args: dict[str, Any]) -> dict[str, Any]:
    """Tag each partition with the day (the fan-out step reads `partitions`)."""
    return {"day": args["day"], "partitions": [dict(p, day=args["day"]) for p in args["partitions"]]}


@djobs.job("load-partition", queue="default", retries=3)
def load_partition(args: dict[str, Any]) -> dict[str, Any]:
    """Load one partition (one sub-job each). DJOBS_EXAMPLE_SLEEP slows it down for demos and tests."""
    time.sleep(float(os.environ.get("DJOBS_EXAMPLE_SLEEP", "0")))
    return {"region": args["region"], "loaded": args["rows"]}


@djobs.job("flaky-sync", retries=2)
def flaky_sync(args: dict[str, Any]) -> dict[str, Any]:
    """Sync an account with a partner API that times out on the first attempt (to show a retry: djobs
    records the error, backs off about a second, and runs it again)."""
    job = djobs.current_job()
    if job is not None and job.attempt < 2:
        raise ConnectionError("the partner API timed out (the first attempt always does, for the demo)")
    return {"account": args.get("account"), "synced": True}


def publish(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum up the loaded partitions (the list of fan-out results)."""
    return {"partitions": len(results), "rows": sum(r["loaded"] for r in results)}


def cleanup(args: Any) -> int:
    """A scheduled housekeeping job."""
    return 0
