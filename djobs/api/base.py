"""What the Queue's concern mixins may use of the Queue itself (declared for type checkers only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from djobs.events import Event, EventHub
    from djobs.jobs import Job
    from djobs.registry import Handler, JobOptions
    from djobs.storage import PeeweeStorage


class QueueBase:
    if TYPE_CHECKING:
        storage: PeeweeStorage
        hub: EventHub

        def _must(self, job_id: str) -> Job: ...
        def get_job(self, job_id: str) -> Job | None: ...
        def _options(self, name: str) -> tuple[Handler | None, JobOptions]: ...
        def emit(self, event: Event) -> None: ...
