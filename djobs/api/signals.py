"""Durable signals sent to jobs from any process: kept first in first out per job and name until a
`wait_for_signal` or `check_signal` of the job consumes them (see `djobs/durable/waits.py`)."""

from __future__ import annotations

from typing import Any

from djobs import validate
from djobs.api.base import QueueBase
from djobs.registry import encode_args


class SignalAPI(QueueBase):
    def signal(self, job_id: str, name: str, payload: Any = None) -> None:
        """Send signal `name` with a JSON payload to a job: a job waiting for it wakes at once, any other
        unfinished job keeps it until it waits. `djobs.JobNotFound` for an unknown id; `ValueError` for a
        finished job, a bad name or a payload too large or too deep."""
        validate.name("signal name", name)
        self.storage.send_signal(job_id, name, encode_args(payload))

    def pending_signals(self, job_id: str, name: str | None = None) -> int:
        """How many signals sent to the job (of this name) no step has consumed yet."""
        return self.storage.pending_signals(job_id, name)
