"""Fleet-wide limits: stored with the queue, obeyed by every worker inside its claim."""

from __future__ import annotations

from typing import Any

from djobs import validate
from djobs.api.base import QueueBase
from djobs.jobs import Job, Limits, Rate


def _rate(value: Rate | str | None) -> Rate | None:
    return None if value is None else Rate.parse(value)


class LimitAPI(QueueBase):
    def set_limits(
        self,
        queue: str,
        rate: Rate | str | None = None,
        running: int | None = None,
        key_rate: Rate | str | None = None,
        key_running: int | None = None,
    ) -> None:
        """Set the queue's limits, replacing its previous ones; `set_limits(queue)` removes them all.

        `rate` / `key_rate`: "N/s", "N/m", "N/h" or `djobs.Rate(n, per=)` — how many jobs may start per
        period across all workers (per key for `key_rate`; jobs carry their key in `Job.key`); `running` /
        `key_running`: how many may run at once across all workers. Every worker obeys a change within a
        couple of seconds (at once on PostgreSQL)."""
        validate.name("queue name", queue)
        self.storage.set_limits(queue, _rate(rate), running, _rate(key_rate), key_running)

    def limits(self, queue: str) -> Limits:
        return self.storage.limits(queue)

    def all_limits(self) -> dict[str, Limits]:
        """Every queue that has limits, with them."""
        return self.storage.all_limits()

    def held_back(self, queue: str) -> dict[str, int]:
        """How many due jobs of the queue each limit holds back now: running, rate, key_running, key_rate."""
        return self.storage.held_back(queue)

    def limit_reasons(self, job: Job) -> list[str]:
        """Why limits keep this due job from starting now, in words (for `djobs why`); empty if none do."""
        state: dict[str, Any] = self.storage.limit_state(job.queue, job.key)
        if not state:
            return []
        lim: Limits = state["limits"]
        out: list[str] = []
        if lim.running is not None and state["running"] >= lim.running:
            out.append(f"queue {job.queue!r} is at its running limit ({state['running']} of {lim.running} running)")
        if lim.rate is not None and state.get("tokens", 1.0) < 1:
            wait = (1 - state["tokens"]) * lim.rate.per / lim.rate.n
            out.append(f"queue {job.queue!r} has used its rate of {lim.rate}; the next start is allowed in {wait:.1f}s")
        if job.key is not None:
            if lim.key_running is not None and state.get("key_running", 0) >= lim.key_running:
                out.append(
                    f"key {job.key!r} is at its running limit ({state['key_running']} of {lim.key_running} running)"
                )
            if lim.key_rate is not None and state.get("key_tokens", 1.0) < 1:
                wait = (1 - state["key_tokens"]) * lim.key_rate.per / lim.key_rate.n
                out.append(f"key {job.key!r} has used its rate of {lim.key_rate}; its next start in {wait:.1f}s")
        return out
