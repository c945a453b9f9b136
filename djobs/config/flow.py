"""Flow settings in `djobs.toml`: fleet-wide limits and time limits per queue (`[queues.NAME]` rate,
running, key_rate, key_running, timeout), time limit and backoff per job (`[jobs.NAME]` timeout, backoff),
and the retention of finished jobs (`[retention]`). Validated with every other problem of the file, and
applied to the database by workers when they start and by `djobs config apply`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from djobs.config.model import QueueFlow
from djobs.config.values import parse_duration
from djobs.jobs import Rate, Retention
from djobs.retry import Backoff

if TYPE_CHECKING:
    from djobs.config.model import Config
    from djobs.config.validate import _Collector
    from djobs.queue import Queue

LIMIT_KEYS = ("rate", "running", "key_rate", "key_running")
QUEUE_FLOW_KEYS = (*LIMIT_KEYS, "timeout")
JOB_FLOW_KEYS = ("timeout", "backoff")
BACKOFF_KEYS = ("initial", "maximum", "multiplier", "jitter")
RETENTION_KEYS = ("completed", "failed", "cancelled")
#: What `[retention]` keeps of a status it does not name (the defaults of `queue.set_retention`).
RETENTION_DEFAULTS = {"completed": 7 * 86400.0, "failed": 30 * 86400.0, "cancelled": 7 * 86400.0}
INT32_MAX = 2**31 - 1


def _duration(c: _Collector, table: str, key: str, value: Any, positive: bool = True) -> float | None:
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"bad duration {value!r} (use e.g. 30s, 5m, 2h, 7d)")
        seconds = parse_duration(value).total_seconds()
    except ValueError as exc:
        c.add(table, key, str(exc))
        return None
    if positive and seconds <= 0:
        c.add(table, key, "must be more than zero")
        return None
    return seconds


def queue_flow(c: _Collector, table: str, data: Mapping[str, Any]) -> QueueFlow:
    """The flow keys of a `[queues.NAME]` table, every bad one reported."""
    values: dict[str, Any] = {}
    for key in ("rate", "key_rate"):
        if key in data:
            try:
                if not isinstance(data[key], str):
                    raise ValueError(f"expected a string like \"10/s\", got {data[key]!r}")
                values[key] = Rate.parse(data[key])
            except ValueError as exc:
                c.add(table, key, str(exc))
    for key in ("running", "key_running"):
        if key in data:
            n = data[key]
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= INT32_MAX:
                c.add(table, key, f"must be an integer from 0 to {INT32_MAX}, got {n!r}")
            else:
                values[key] = n
    timeout = _duration(c, table, "timeout", data["timeout"]) if "timeout" in data else None
    return QueueFlow(**values, timeout=timeout, limited=any(k in data for k in LIMIT_KEYS))


def job_flow(c: _Collector, table: str, data: Mapping[str, Any]) -> tuple[float | None, Backoff | None]:
    """`timeout` and `backoff = { initial = "2s", maximum = "5m", multiplier = 3, jitter = 0.1 }` of a
    `[jobs.NAME]` table."""
    timeout = _duration(c, table, "timeout", data["timeout"]) if "timeout" in data else None
    if "backoff" not in data:
        return timeout, None
    raw = data["backoff"]
    if not isinstance(raw, dict):
        c.add(table, "backoff", f'must be a table like {{ initial = "2s", maximum = "5m", multiplier = 3 }}, got {raw!r}')
        return timeout, None
    args: dict[str, float] = {}
    ok = True
    for key, value in raw.items():
        if key not in BACKOFF_KEYS:
            c.add(table, f"backoff.{key}", f"unknown key (known: {', '.join(BACKOFF_KEYS)})")
            ok = False
        elif key in ("initial", "maximum"):
            seconds = _duration(c, table, f"backoff.{key}", value, positive=False)
            ok = ok and seconds is not None
            args[key] = seconds or 0.0
        elif isinstance(value, bool) or not isinstance(value, int | float):
            c.add(table, f"backoff.{key}", f"must be a number, got {value!r}")
            ok = False
        else:
            args[key] = float(value)
    if not ok:
        return timeout, None
    try:
        return timeout, Backoff(**args)
    except (TypeError, ValueError) as exc:
        c.add(table, "backoff", str(exc))
        return timeout, None


def retention(c: _Collector, raw: Mapping[str, Any]) -> Retention | None:
    """`[retention]`: durations or "forever" per status (a status not named keeps its default); None when
    the file has no such table (the stored retention is left as it is)."""
    if "retention" not in raw:
        return None
    data = raw["retention"]
    if not isinstance(data, dict):
        c.add("retention", None, "must be a table")
        return None
    kept: dict[str, float | None] = dict(RETENTION_DEFAULTS)
    for key, value in data.items():
        if key not in RETENTION_KEYS:
            c.add("retention", key, f"unknown key (known: {', '.join(RETENTION_KEYS)})")
        elif value == "forever":
            kept[key] = None
        else:
            seconds = _duration(c, "retention", key, value, positive=False)
            if seconds is not None:
                kept[key] = seconds
    return Retention(kept["completed"], kept["failed"], kept["cancelled"])


def apply_flow(conf: Config, queue: Queue) -> dict[str, Any]:
    """Write the config's queue limits and retention to the database; what was written. A queue whose
    table names no limit keeps the limits it has (set them with `djobs limits`)."""
    written: dict[str, Any] = {"limits": [], "retention": None}
    for name, flow in sorted(conf.queue_flow.items()):
        if flow.limited:
            queue.set_limits(name, flow.rate, flow.running, flow.key_rate, flow.key_running)
            written["limits"].append(name)
    if conf.retention is not None:
        r = conf.retention
        queue.set_retention(r.completed, r.failed, r.cancelled)
        written["retention"] = r.to_json()
    return written


def queue_flow_toml(flow: QueueFlow) -> dict[str, Any]:
    """The flow keys of a queue as `djobs config show` prints them."""
    out: dict[str, Any] = {}
    for key in LIMIT_KEYS:
        value = getattr(flow, key)
        if value is not None:
            out[key] = str(value) if isinstance(value, Rate) else value
    if flow.timeout is not None:
        out["timeout"] = f"{flow.timeout:g}s"
    return out


def retention_toml(r: Retention) -> dict[str, str]:
    return {k: "forever" if v is None else f"{v:g}s" for k, v in r.to_json().items()}


def backoff_toml(b: Backoff) -> dict[str, Any]:
    return {"initial": f"{b.initial:g}s", "maximum": f"{b.maximum:g}s", "multiplier": b.multiplier, "jitter": b.jitter}
