"""Flow control across the fleet and failures you can act on: limits, retention, dead letters."""

from __future__ import annotations

from djobs.api.base import QueueBase


class FlowAPI(QueueBase):
    pass
