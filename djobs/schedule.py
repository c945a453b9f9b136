"""Recurring schedules: `every`, `daily`, `weekly`, `cron`. Pure time arithmetic, no I/O.

Fire times are epoch seconds. `every(d)` fires on multiples of d since the epoch, so every process agrees on
the fire times without talking. Daily, weekly and cron are UTC unless a time zone is given.

    >>> every(300).next_after(0.0)
    300.0
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from djobs.retry import to_seconds

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CRON_DOW = {0: "1", 1: "2", 2: "3", 3: "4", 4: "5", 5: "6", 6: "0"}  # calendar weekday -> cron


def parse_timezone(name: str | None) -> ZoneInfo | None:
    if name is None or name.upper() == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Schedule:
    """A recurrence. `spec` is its canonical text ("every 300s", "cron */5 * * * *", …)."""

    kind: str
    interval: float = 0.0
    expr: str = ""
    timezone: str | None = None

    @property
    def spec(self) -> str:
        if self.kind == "every":
            return f"every {self.interval:g}s"
        tz = f" tz={self.timezone}" if self.timezone else ""
        return f"cron {self.expr}{tz}"

    def __str__(self) -> str:
        return self.spec

    def with_timezone(self, tz: str | None) -> Schedule:
        if tz is None or self.kind == "every":
            return self
        parse_timezone(tz)
        return Schedule(self.kind, self.interval, self.expr, None if tz.upper() == "UTC" else tz)

    def _start(self, t: float) -> datetime:
        zone = parse_timezone(self.timezone)
        return datetime.fromtimestamp(t, zone or UTC)

    def next_after(self, t: float) -> float:
        """The first fire time strictly after t."""
        if self.kind == "every":
            return (int(t // self.interval) + 1) * self.interval
        return float(_croniter()(self.expr, self._start(t)).get_next(float))

    def last_at_or_before(self, t: float) -> float:
        """The most recent fire time at or before t (the catch-up fire after downtime)."""
        if self.kind == "every":
            return int(t // self.interval) * self.interval
        it = _croniter()(self.expr, self._start(t + 0.001))
        return float(it.get_prev(float))


def _croniter() -> Any:
    """croniter, imported when a cron schedule is first used: most commands (an enqueue from a shell loop,
    a Tab completion) never need it, and its import costs about 12 ms."""
    from croniter import croniter

    return croniter


def every(interval: timedelta | float | int) -> Schedule:
    secs = to_seconds(interval)
    if secs <= 0:
        raise ValueError("every() needs a positive interval")
    return Schedule("every", interval=secs)


def _hm(hour: int, minute: int) -> None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"invalid time of day {hour:02d}:{minute:02d}")


def daily(hour: int, minute: int = 0, timezone: str | None = None) -> Schedule:
    _hm(hour, minute)
    return Schedule("cron", expr=f"{minute} {hour} * * *").with_timezone(timezone)


def weekly(day: int | str, hour: int, minute: int = 0, timezone: str | None = None) -> Schedule:
    """`day` is a `calendar` weekday (calendar.MONDAY == 0) or a name ("mon", "monday")."""
    if isinstance(day, str):
        key = day.strip().lower()[:3]
        if key not in DAYS:
            raise ValueError(f"unknown weekday {day!r}")
        wd = DAYS.index(key)
    else:
        wd = int(day)
        if not calendar.MONDAY <= wd <= calendar.SUNDAY:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {day}")
    _hm(hour, minute)
    return Schedule("cron", expr=f"{minute} {hour} * * {_CRON_DOW[wd]}").with_timezone(timezone)


def cron(expr: str, timezone: str | None = None) -> Schedule:
    """A five-field cron expression, validated strictly; a bad one raises ValueError with the reason."""
    expr = " ".join(expr.split())
    if len(expr.split(" ")) != 5:
        raise ValueError(f"cron expression {expr!r} must have 5 fields (minute hour day month weekday)")
    croniter = _croniter()
    try:
        ok = croniter.is_valid(expr, strict=True)
    except Exception as exc:  # croniter raises its own errors for some inputs
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    if not ok:
        try:
            croniter(expr)
        except Exception as exc:
            raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
        raise ValueError(f"invalid cron expression {expr!r}: no such date (day out of range for the month)")
    sched = Schedule("cron", expr=expr).with_timezone(timezone)
    try:
        sched.next_after(datetime.now(UTC).timestamp())
    except Exception as exc:  # e.g. "0 0 31 2 *" never fires
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    return sched


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str | int | float) -> float:
    """'30s', '5m', '2h', '7d', '250ms' or a number of seconds; ValueError otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"negative duration {text}")
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r} (use e.g. 30s, 5m, 2h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_spec(spec: str) -> Schedule:
    """Inverse of `Schedule.spec`, used to rebuild a stored schedule."""
    tz = None
    if " tz=" in spec:
        spec, tz = spec.rsplit(" tz=", 1)
    kind, _, rest = spec.partition(" ")
    if kind == "every":
        return every(parse_duration(rest))
    if kind == "cron":
        return cron(rest, timezone=tz)
    if kind == "daily":
        h, m = rest.split(":")
        return daily(int(h), int(m), timezone=tz)
    if kind == "weekly":
        d, hm = rest.split()
        h, m = hm.split(":")
        return weekly(d, int(h), int(m), timezone=tz)
    raise ValueError(f"unknown schedule {spec!r}")
