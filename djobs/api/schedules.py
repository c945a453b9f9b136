"""Schedules: stored in the database, fired exactly once per fire time by whichever worker leads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from djobs.api.base import QueueBase
from djobs.registry import encode_args

if TYPE_CHECKING:
    from djobs.info import ScheduleInfo

if TYPE_CHECKING:  # djobs.schedule (zoneinfo, calendar) is imported when a schedule is used, not by producers
    from djobs.schedule import Schedule


class ScheduleAPI(QueueBase):
    # -- schedules ---------------------------------------------------------------------------------------
    def schedule(
        self,
        job: str,
        schedule: Schedule,
        args: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        name: str | None = None,
        retries: int | None = None,
        timezone: str | None = None,
        source: str = "api",
    ) -> str:
        """Register (or update) a recurring schedule; stored in the database so any worker running the
        scheduler fires it, exactly once per fire time. A new schedule does not fire at start-up."""
        h, opts = self._options(job)
        if timezone is not None:
            schedule = schedule.with_timezone(timezone)
        args_json = h.check_args(args) if h is not None else encode_args(args)
        name = name or job
        self.storage.upsert_schedule(
            name, job, schedule.spec, args_json, queue or opts.queue, opts.priority if priority is None else priority,
            opts.retries if retries is None else retries, schedule.next_after, source,
        )  # fmt: skip
        return name

    def unschedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none."""
        return self.storage.delete_schedule(name)

    def schedules(self) -> list[ScheduleInfo]:
        return self.storage.schedules()

    def pause_schedule(self, name: str, reason: str | None = None) -> bool:
        return self.storage.set_schedule_paused(name, True, reason)

    def resume_schedule(self, name: str) -> bool:
        """Resume a schedule; it fires next at its next fire time from now (paused fires are skipped)."""
        from djobs.schedule import parse_spec

        return self.storage.set_schedule_paused(name, False, None, lambda spec, now: parse_spec(spec).next_after(now))

