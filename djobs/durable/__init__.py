"""Durable primitives, each a step of the job's history that a replay returns instead of re-running:
checkpointed calls and named checkpoints (`steps`), fan-out/fan-in (`fanout`), sleeps and signals (`waits`).

A step's checkpoint is keyed by (job id, call path): top-level steps are numbered 0, 1, 2 … in execution
order and a call made inside call 1 is "1.0", so replaying a finished outer call (which skips its inner
calls) does not shift the numbering of what follows.
"""

from djobs.durable.fanout import FAN_OUT, fan_out
from djobs.durable.steps import (
    MAX_CALL_DEPTH,
    STEP_NOTE,
    call,
    check_name,
    invoke,
    load_checkpoint,
    save_checkpoint,
    storage_call,
)

__all__ = [
    "FAN_OUT", "MAX_CALL_DEPTH", "STEP_NOTE", "call", "check_name", "fan_out", "invoke", "load_checkpoint",
    "save_checkpoint", "storage_call",
]  # fmt: skip
