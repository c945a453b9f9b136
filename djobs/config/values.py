"""Values written in a config (and on the command line): durations, times of day, database URLs, and the
schedule a `[schedules.*]` table describes. Each parser raises ValueError with a one-line reason."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from djobs.config.model import ScheduleConfig

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {*_DAYS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


def parse_duration(text: str | int | float) -> timedelta:
    """`30s`, `5m`, `2h`, `7d`, `250ms` or plain seconds as a timedelta; raises ValueError.

    >>> parse_duration("5m")
    datetime.timedelta(seconds=300)
    """
    from djobs.schedule import parse_duration as seconds_of

    bad = f"bad duration {text!r} (use e.g. 30s, 5m, 2h, 7d)"
    try:
        seconds = seconds_of(text)
        if not 0 <= seconds <= _MAX_DURATION:  # also false for NaN
            raise ValueError(bad)
        return timedelta(seconds=seconds)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(bad) from None


_MAX_DURATION = 100 * 365 * 86400.0
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_daily(text: Any) -> tuple[int, int]:
    """`"02:00"` → (2, 0); raises ValueError."""
    m = _HHMM.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"bad time {text!r} (use HH:MM, e.g. 02:00)")
    return int(m.group(1)), int(m.group(2))


def parse_weekly(text: Any) -> tuple[str, int, int]:
    """`"mon 09:00"` → ("mon", 9, 0); raises ValueError."""
    parts = text.split() if isinstance(text, str) else []
    if len(parts) != 2 or parts[0].lower() not in _DAY_NAMES:
        raise ValueError(f"bad weekly time {text!r} (use DAY HH:MM, e.g. mon 09:00)")
    hour, minute = parse_daily(parts[1])
    return parts[0].lower()[:3], hour, minute


def anchor_sqlite_url(url: str, directory: Path) -> str:
    """A SQLite URL whose relative path is taken relative to `directory` (the config file's), made absolute.

    A config file is read from cron, systemd and shells in other directories: a relative path that followed
    the working directory would silently open a different, empty database in each.

    >>> anchor_sqlite_url("sqlite:///djobs.db", Path("/srv/app"))
    'sqlite:////srv/app/djobs.db'
    """
    scheme, sep, rest = url.partition("://")
    if scheme.lower() not in ("sqlite", "sqlite3") or not sep:
        return url
    location, qmark, query = rest.partition("?")
    file = unquote(location[1:] if location.startswith("/") else location)
    if not file or file == ":memory:" or os.path.isabs(file):
        return url
    absolute = os.path.normpath(os.path.join(directory.absolute(), os.path.expanduser(file)))
    return f"{scheme}:///{quote(absolute)}{qmark}{query}"


def schedule_spec(s: ScheduleConfig) -> Any:
    """The `djobs.schedule.Schedule` of a `[schedules.*]` table; raises ValueError naming the problem."""
    from djobs import schedule as sch

    if s.kind == "every":
        if isinstance(s.value, bool) or not isinstance(s.value, str | int | float):
            raise ValueError(f"bad duration {s.value!r} (use e.g. 30s, 5m, 2h, 7d)")
        interval = parse_duration(s.value)
        if interval <= timedelta(0):
            raise ValueError(f"bad duration {s.value!r}: must be more than zero")
        return sch.every(interval)
    if s.kind == "daily":
        hour, minute = parse_daily(s.value)
        return sch.daily(hour, minute, timezone=s.timezone)
    if s.kind == "weekly":
        day, hour, minute = parse_weekly(s.value)
        return sch.weekly(day, hour, minute, timezone=s.timezone)
    if not isinstance(s.value, str):
        raise ValueError(f"bad cron expression {s.value!r} (a string like \"*/5 * * * *\")")
    return sch.cron(s.value, timezone=s.timezone)
