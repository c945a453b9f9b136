"""The dashboard's write endpoints: job, queue, worker and schedule actions, signals to jobs, enqueue,
bulk actions on selected jobs, and purging a queue's finished jobs. Every input is validated before the library is
called, so a bad request is a 4xx with nothing written."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import djobs
from djobs.jobs import TERMINAL_VALUES
from djobs.ui import validate
from djobs.ui.http import HTTPError, Request

if TYPE_CHECKING:
    from djobs.ui.app import Dashboard

_FINISHED = list(TERMINAL_VALUES)
#: Largest `older_than` a purge accepts (about 300 years): beyond it the cutoff leaves the time range.
MAX_AGE = 1e10


def _invalid(exc: ValueError) -> HTTPError:
    return HTTPError(400, str(exc))


def _mode(req: Request) -> djobs.PauseMode:
    text = req.option("mode")
    try:
        return djobs.PauseMode(text or "graceful")
    except ValueError:
        raise HTTPError(400, f"mode must be graceful or aggressive, got {str(text)[:40]!r}") from None


_NEEDS = {
    "cancel": "only unfinished jobs can be cancelled",
    "retry": "only failed or cancelled jobs can be retried",
    "pause": "finished jobs cannot be paused",
    "resume": "it is not paused",
}


def _options(req: Request, action: str, modes: bool = True) -> None:
    """Check an action's body: `reason` for pause and cancel, `mode` for pausing jobs and workers."""
    allowed = {"pause": ("reason", "mode") if modes else ("reason",), "cancel": ("reason",)}
    req.fields(*allowed.get(action, ()))


def job_action(d: Dashboard, req: Request, job_id: str, action: str) -> tuple[int, Any]:
    _options(req, action)
    mode = _mode(req) if action == "pause" else djobs.PauseMode.GRACEFUL
    reason = req.reason("cancelled" if action == "cancel" else "paused") if action in ("cancel", "pause") else None

    def act() -> tuple[bool, Any]:
        q = d.queue
        if action == "cancel":
            done = q.cancel_job(job_id, reason=reason)
        elif action == "retry":
            done = q.retry_job(job_id)
        elif action == "pause":
            done = q.pause_job(job_id, mode=mode, reason=reason)
        else:
            done = q.resume_job(job_id)
        return done, q.get_job(job_id)

    done, job = d.db(act)
    if not done:
        status = job.status.value if job is not None else "gone"
        raise HTTPError(409, f"cannot {action} job {job_id}: it is {status}; {_NEEDS[action]}", job=job)
    return 200, {"ok": True, "action": action, "job": job}


def signal(d: Dashboard, req: Request, job_id: str) -> tuple[int, Any]:
    """`{"name": "approved", "payload": {...}}`: a signal to the job, kept until the job takes it. 404 for
    no such job, 409 for a finished one."""
    try:
        name, payload = validate.signal_request(req.json())
    except validate.Invalid as exc:
        raise _invalid(exc) from None

    def act() -> Any:
        q = d.queue
        try:
            q.signal(job_id, name, payload)
        except (TypeError, ValueError) as exc:
            job = q.get_job(job_id)
            if job is not None and job.is_terminal:
                raise HTTPError(409, f"cannot signal job {job_id}: it is {job.status.value}", job=job) from None
            raise HTTPError(400, f"cannot signal job {job_id}: {exc}") from None
        return q.get_job(job_id)

    job = d.db(act)
    return 200, {"ok": True, "action": "signal", "name": name, "job": job}


def bulk(d: Dashboard, req: Request) -> tuple[int, Any]:
    """`{"action": "retry"|"cancel"|"delete", "ids": [...]}` on up to 500 selected jobs. Each job is acted on
    alone; the answer says which were done and why the others were skipped."""
    body = req.json()
    action = body.get("action") if isinstance(body, dict) else None
    if action not in ("retry", "cancel", "delete"):
        raise HTTPError(400, 'action must be "retry", "cancel" or "delete"')
    unknown = sorted(str(k)[:40] for k in set(body) - {"action", "ids", "reason"})
    if unknown:
        raise HTTPError(400, f"unknown field(s) {', '.join(unknown)}; allowed: action, ids, reason")
    try:
        ids = validate.id_list(body)
    except validate.Invalid as exc:
        raise _invalid(exc) from None
    reason = req.reason("cancelled") if action == "cancel" else None
    if action == "delete":
        return 200, d.db(lambda: _delete(d, ids))

    def act() -> dict[str, Any]:
        q = d.queue
        done: list[str] = []
        skipped: list[dict[str, str]] = []
        for job_id in ids:
            try:
                ok = q.cancel_job(job_id, reason=reason) if action == "cancel" else q.retry_job(job_id)
            except djobs.JobNotFound:
                skipped.append({"id": job_id, "reason": "no such job"})
                continue
            if ok:
                done.append(job_id)
            else:
                job = q.get_job(job_id)
                status = job.status.value if job is not None else "gone"
                skipped.append({"id": job_id, "reason": f"it is {status}; {_NEEDS[action]}"})
        return {"ok": True, "action": action, "done": done, "skipped": skipped}

    return 200, d.db(act)


def _delete(d: Dashboard, ids: list[str]) -> dict[str, Any]:
    deleted = int(d.queue.delete_jobs(ids))
    return {
        "ok": True, "action": "delete", "deleted": deleted, "skipped": len(ids) - deleted,
        "note": "unfinished jobs are skipped: cancel them first" if deleted < len(ids) else None,
    }  # fmt: skip


def purge_queue(d: Dashboard, req: Request, name: str) -> tuple[int, Any]:
    """Delete the queue's finished jobs: `{"statuses": [...], "older_than": seconds}`, by default every
    finished job whatever its age."""
    body = req.json()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise HTTPError(400, 'the body must be a JSON object like {"statuses": ["completed"], "older_than": 3600}')
    unknown = sorted(str(k)[:40] for k in set(body) - {"statuses", "older_than"})
    if unknown:
        raise HTTPError(400, f"unknown field(s) {', '.join(unknown)}; allowed: statuses, older_than")
    statuses = body.get("statuses", _FINISHED)
    if not isinstance(statuses, list) or not statuses or any(s not in _FINISHED for s in statuses):
        raise HTTPError(400, f"statuses must be a non-empty list of {', '.join(_FINISHED)}")
    older = body.get("older_than", 0)
    if not isinstance(older, int | float) or isinstance(older, bool) or not math.isfinite(older) or not 0 <= older <= MAX_AGE:
        raise HTTPError(400, f"older_than must be a number of seconds between 0 and {MAX_AGE:g}")

    def act() -> int:
        return int(d.queue.purge(statuses=tuple(statuses), older_than=float(older), queue=name))

    return 200, {"ok": True, "action": "purge", "queue": name, "deleted": d.db(act)}


def queue_action(d: Dashboard, req: Request, name: str, action: str) -> tuple[int, Any]:
    _options(req, action, modes=False)
    reason = req.reason("paused") if action == "pause" else None

    def act() -> bool:
        q = d.queue
        if action == "pause":
            q.pause_queue(name, reason=reason)
        else:
            q.resume_queue(name)
        return q.is_queue_paused(name)

    return 200, {"ok": True, "action": action, "queue": name, "paused": d.db(act)}


def worker_action(d: Dashboard, req: Request, name: str, action: str) -> tuple[int, Any]:
    _options(req, action)
    mode = _mode(req) if action == "pause" else djobs.PauseMode.GRACEFUL
    reason = req.reason("paused") if action == "pause" else None

    def act() -> bool:
        q = d.queue
        if action == "pause":
            return q.pause_worker(name, mode=mode, reason=reason)
        return q.resume_worker(name)

    if not d.db(act):
        raise HTTPError(404, f"no worker {name!r}")
    return 200, {"ok": True, "action": action, "worker": name}


def schedule_action(d: Dashboard, req: Request, name: str, action: str) -> tuple[int, Any]:
    _options(req, action, modes=False)
    reason = req.reason("paused") if action == "pause" else None

    def act() -> bool:
        q = d.queue
        if action == "pause":
            return q.pause_schedule(name, reason=reason)
        return q.resume_schedule(name)

    if not d.db(act):
        raise HTTPError(404, f"no schedule {name!r}")
    return 200, {"ok": True, "action": action, "schedule": name}


def enqueue(d: Dashboard, req: Request) -> tuple[int, Any]:
    try:
        job_type, args, opts = validate.enqueue_request(req.json())
    except validate.Invalid as exc:
        raise _invalid(exc) from None

    def act() -> tuple[str, Any]:
        q = d.queue
        try:
            job_id = q.enqueue(job_type, args, **opts)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            if isinstance(exc, djobs.UnknownJobType | djobs.ConfigError):
                raise
            raise HTTPError(400, f"cannot enqueue {job_type}: {exc}") from None
        return job_id, q.get_job(job_id)

    job_id, job = d.db(act)
    return 201, {"ok": True, "id": job_id, "job": job}
