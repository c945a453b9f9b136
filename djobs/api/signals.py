"""Durable signals sent to jobs from any process."""

from __future__ import annotations

from djobs.api.base import QueueBase


class SignalAPI(QueueBase):
    pass
