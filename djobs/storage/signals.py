"""Durable time and signals: a sleep's wake-up, signals kept per job and name, each consumed by one step.

The job row is the lock both sides of a signal take first. A sender locks it before storing the signal and
deciding whether the job waits for it; a receiver locks it (as its owner) before looking for a signal and,
finding none, parking the job. Whichever comes second sees what the first committed, so a signal sent at
the instant its job starts to wait is never left unseen. A signal is marked consumed by the checkpoint key
of the step that took it, in the transaction that writes that checkpoint: a crash at any moment loses or
duplicates none.
"""

from __future__ import annotations

from djobs import codec, validate
from djobs.errors import JobNotFound, OwnershipLost
from djobs.jobs import TERMINAL_VALUES, Owner
from djobs.storage.base import StorageBase
from djobs.storage.dialect import OWNED
from djobs.storage.errors import operation
from djobs.storage.fanouts import _SUSPEND

_STEP = (
    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
    "VALUES (?, ?, ?, ?, ?, NULL, {now}) ON CONFLICT (job_id, key) DO "
)
# A step's final value replaces the "waiting until …" value its first wait stored.
_SETTLE = _STEP + "UPDATE SET value = excluded.value, created_at = excluded.created_at"
_FIRST = _STEP + "NOTHING"
# Consume the oldest unconsumed signal of a name (after the job row is locked, so no sender is mid-way).
_CONSUME = (
    "UPDATE djobs_signals SET consumed_by = ? WHERE id = (SELECT id FROM djobs_signals WHERE job_id = ? AND "
    "name = ? AND consumed_by IS NULL ORDER BY id LIMIT 1) RETURNING id, payload"
)
_WAITS_FOR = (
    "wait_kind = 'signal' AND wait_signal = ? AND (status = 'waiting' OR (status = 'paused' AND paused_from = 'waiting'))"
)
_SEND_LOCK = (
    f"UPDATE djobs_jobs SET run_at = CASE WHEN {_WAITS_FOR} THEN {{now}} ELSE run_at END, "
    f"updated_at = CASE WHEN {_WAITS_FOR} THEN {{now}} ELSE updated_at END "
    f"WHERE id = ? RETURNING status, queue, CASE WHEN {_WAITS_FOR} THEN 1 ELSE 0 END"
)


class SignalOps(StorageBase):
    def _own(self, owner: Owner) -> tuple[tuple[str, str, int], float]:
        """Lock the running job's row as its owner (OwnershipLost if it is no longer ours), reading the
        database's now in the same round trip."""
        o = (owner.job_id, owner.worker_id, owner.attempt)
        row = self._ex(f"SELECT {{now}} FROM djobs_jobs WHERE {OWNED}{self.dialect.for_update}", o).fetchone()
        if row is None:
            raise OwnershipLost(owner.job_id)
        return o, float(row[0])

    @operation
    def send_signal(self, job_id: str, name: str, payload_json: str) -> bool:
        """Keep a signal for the job and, if the job waits for this name, make it due now (a paused one
        stays paused, due once resumed). JobNotFound for an unknown id, ValueError for a finished job.
        Returns whether it woke the job."""
        validate.name("signal name", name)
        validate.payload("signal payload", payload_json)
        with self.tx():
            # Locks the job row whatever its state, and makes it due now if it waits for this signal.
            row = self._ex(_SEND_LOCK, (name, name, job_id, name)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            status, queue, wake = row[0], row[1], bool(row[2])
            if status in TERMINAL_VALUES:
                raise ValueError(f"job {job_id} is {status}: a finished job takes no signals")
            self._ex(
                "INSERT INTO djobs_signals (job_id, name, payload, sent_at) VALUES (?, ?, ?, {now})",
                (job_id, name, payload_json),
            )
            if wake:
                self._notify()
            self._event("signal_sent", job_id, queue, None, codec.dumps({"signal": name, "woke": wake}))
        if wake:
            self.wake_local()
        return wake

    @operation
    def take_signal(
        self, owner: Owner, queue: str, key: str, index: int, step: str, name: str, wait: bool,
        timeout: float | None, deadline: float | None,
    ) -> tuple[str, str]:  # fmt: skip
        """One transaction, as the job's owner, ending the signal step `key` one way (state, checkpoint
        value JSON): "received" (the oldest unconsumed signal `name`, now consumed); "none" (a check found
        none); "timeout" (a wait past its deadline); or "waiting" (the job is parked until the signal comes
        or the deadline passes). `deadline` is the one an earlier wait of this step stored; a first wait
        gives `timeout` seconds instead. OwnershipLost if the job is no longer this worker's."""
        with self.tx():
            o, now = self._own(owner)
            n = codec.dumps(name)
            sig = self._ex(_CONSUME, (key, owner.job_id, name)).fetchone()
            if sig is not None:
                value = f'{{"signal":{n},"payload":{sig[1] or "null"}}}'
                self._ex(_SETTLE, (owner.job_id, key, index, step, value))
                data = codec.dumps({"signal": name, "call_index": index, "signal_id": int(sig[0])})
                self._event("signal_received", owner.job_id, queue, owner.worker_id, data)
                return "received", value
            if deadline is None and timeout is not None:
                deadline = validate.epoch("the time the signal timeout ends", now + timeout)
            if not wait:
                value = f'{{"signal":{n},"found":false}}'
                self._ex(_SETTLE, (owner.job_id, key, index, step, value))
                return "none", value
            if deadline is not None and now >= deadline:
                value = codec.dumps({"signal": name, "timed_out": True, "deadline": deadline})
                self._ex(_SETTLE, (owner.job_id, key, index, step, value))
                return "timeout", value
            if self._ex(_SUSPEND, (deadline, "signal", name, *o)).rowcount == 0:
                raise OwnershipLost(owner.job_id)
            value = codec.dumps({"signal": name, "deadline": deadline})
            self._ex(_FIRST, (owner.job_id, key, index, step, value))
            data = codec.dumps({"signal": name, "deadline": deadline, "call_index": index})
            self._event("job_waiting_signal", owner.job_id, queue, owner.worker_id, data)
            if deadline is not None:
                self._notify()  # idle workers elsewhere plan their next look around the new due time
            return "waiting", value

    @operation
    def sleep_step(
        self, owner: Owner, queue: str, key: str, index: int, seconds: float | None, until: float | None
    ) -> tuple[float, bool]:
        """A sleep reached for the first time, in one transaction as the job's owner: its checkpoint holds
        the wake-up time (`until`, or the database's now + `seconds`) and, unless that time has already
        come, the job waits until then. Returns (wake-up time, parked)."""
        with self.tx():
            o, now = self._own(owner)
            wake = until if until is not None else validate.epoch("the time the sleep ends", now + (seconds or 0.0))
            self._ex(_FIRST, (owner.job_id, key, index, "sleep", codec.dumps({"until": wake})))
            parked = wake > now
            if parked:
                self._ex(_SUSPEND, (wake, "sleep", None, *o))
                data = codec.dumps({"until": wake, "call_index": index})
                self._event("job_sleeping", owner.job_id, queue, owner.worker_id, data)
                self._notify()
            else:
                self._event("checkpoint_saved", owner.job_id, queue, owner.worker_id,
                            codec.dumps({"call_index": index, "name": "sleep", "key": key}))  # fmt: skip
        return wake, parked

    @operation(read=True)
    def pending_signals(self, job_id: str, name: str | None = None) -> int:
        """Signals sent to the job (of this name) that no step has consumed yet."""
        where, params = ("AND name = ? ", (job_id, name)) if name is not None else ("", (job_id,))
        row = self._ex(f"SELECT COUNT(*) FROM djobs_signals WHERE job_id = ? {where}AND consumed_by IS NULL", params)
        return int(row.fetchone()[0])
