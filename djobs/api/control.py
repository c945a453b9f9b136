"""Cancel, retry, pause and resume: jobs, queues and workers, from any process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from djobs import events  # its records are made on first use (djobs/events.py)
from djobs.api.base import QueueBase
from djobs.errors import JobNotFound
from djobs.jobs import Job, PauseMode, decide

if TYPE_CHECKING:
    from djobs.info import WorkerInfo


class ControlAPI(QueueBase):
    # -- cancel and retry --------------------------------------------------------------------------------
    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel a job that is not finished, and its whole subtree. A running handler is cancelled
        cooperatively wherever it runs. False if the job had already finished."""
        self._must(job_id)
        rows = self.storage.cancel_tree(job_id, reason or "cancelled")
        self.decide_fanouts({f for _, _, f in rows if f})
        return any(jid == job_id for jid, _, _ in rows)

    def decide_fanouts(self, fanout_ids: set[str]) -> None:
        """Evaluate these fan-outs now (their sub-jobs changed): a decided one wakes its parent."""
        for fid in sorted(fanout_ids):
            self.storage.evaluate_fanout(fid, decide)

    def retry_job(self, job_id: str) -> bool:
        """Requeue a failed or cancelled job (attempts start again; its old error is cleared). False if it
        is in another state."""
        self._must(job_id)
        return self.storage.retry_job(job_id)

    # -- pause and resume: jobs --------------------------------------------------------------------------
    def pause_job(self, job_id: str, mode: PauseMode = PauseMode.GRACEFUL, reason: str | None = None) -> bool:
        """Pending/retrying/waiting jobs become paused. A running job: graceful lets it finish (a retry it
        needs then waits paused); aggressive cancels its handler and pauses it with its attempt refunded."""
        self._must(job_id)
        changed, _ = self.storage.pause_job(job_id, PauseMode(mode), reason)
        if changed:
            self.emit(events.JobPaused(job_id=job_id, job=self.get_job(job_id)))
            return True
        return self.is_job_paused(job_id)

    def resume_job(self, job_id: str) -> bool:
        self._must(job_id)
        if not self.storage.resume_job(job_id):
            return False
        self.emit(events.JobResumed(job_id=job_id, job=self.get_job(job_id)))
        return True

    def is_job_paused(self, job_id: str) -> bool:
        state = self.storage.job_pause_state(job_id)
        if state is None:
            raise JobNotFound(job_id)
        return state

    def paused_jobs(self, queue: str | None = None) -> list[Job]:
        return self.storage.paused_jobs(queue)

    # -- pause and resume: queues ------------------------------------------------------------------------
    def pause_queue(self, name: str, reason: str | None = None) -> None:
        """Stored in the database and honoured inside every worker's claim; running jobs finish."""
        self.storage.set_queue_paused(name, True, reason)
        self.emit(events.QueuePaused(queue=name))

    def resume_queue(self, name: str) -> None:
        self.storage.set_queue_paused(name, False)
        self.emit(events.QueueResumed(queue=name))

    def is_queue_paused(self, name: str) -> bool:
        return self.storage.queue_paused(name)

    def paused_queues(self) -> list[str]:
        return self.storage.paused_queues()

    # -- workers -----------------------------------------------------------------------------------------
    def workers(self, include_dead: bool = False, stale_age: float = 30.0) -> list[WorkerInfo]:
        return self.storage.workers(include_dead, stale_age)

    def pause_worker(self, worker_id: str, mode: PauseMode = PauseMode.GRACEFUL, reason: str | None = None) -> bool:
        """Pause any worker by id, from any process; it stops claiming at once (the claim checks its row)."""
        mode = PauseMode(mode)
        found, _ = self.storage.set_worker_pause(worker_id, True, mode.value, reason)
        if found:
            self.emit(events.WorkerPaused(worker_id=worker_id, mode=mode))
        return found

    def resume_worker(self, worker_id: str) -> bool:
        found, _ = self.storage.set_worker_pause(worker_id, False, None, None)
        if found:
            self.emit(events.WorkerResumed(worker_id=worker_id))
        return found

