"""Reading a `djobs.toml`: discovery, and validation that reports every problem as
`FILE: [table] key: what is wrong` instead of stopping at the first."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from djobs import validate as limits
from djobs.config import flow
from djobs.config.model import (
    CONFIG_NAME,
    Config,
    ConfigProblems,
    JobConfig,
    ScheduleConfig,
    Step,
    WorkflowConfig,
)
from djobs.config.values import anchor_sqlite_url, parse_duration, schedule_spec

_DJOBS_KEYS = ("database", "modules")
_QUEUE_KEYS = ("concurrency", *flow.QUEUE_FLOW_KEYS)
_WORKER_KEYS = ("scheduler", "drain_timeout", "stale_after")
_TUI_KEYS = ("refresh",)
_JOB_KEYS = ("handler", "queue", "retries", "priority", *flow.JOB_FLOW_KEYS)
_SCHEDULE_KINDS = ("every", "cron", "daily", "weekly")
_SCHEDULE_KEYS = ("job", *_SCHEDULE_KINDS, "args", "queue", "priority", "timezone")
_WORKFLOW_KEYS = ("steps", "queue", "retries", "priority")
#: The keys of each kind of table step, by the key that names the kind.
_STEP_KINDS = {"fan_out": ("fan_out", "over"), "sleep": ("sleep",), "wait_signal": ("wait_signal", "timeout")}
_DATABASE_SCHEMES = ("sqlite", "sqlite3", "postgresql", "postgres", "psycopg", "psycopg3", "postgresql+psycopg")
_TABLES = ("djobs", "queues", "worker", "tui", "jobs", "schedules", "workflows", "retention")


def discover(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use: `explicit` (must exist), else ./djobs.toml, else the XDG one, else None."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigProblems([f"{path}: config file not found"])
        return path
    local = Path(CONFIG_NAME)
    if local.is_file():
        return local
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "djobs" / CONFIG_NAME
    if user.is_file():
        return user
    return None


class _Collector:
    """Collects problems as `FILE: [table] key: message` lines."""

    def __init__(self, path: Path | None) -> None:
        self.file = str(path) if path is not None else "<config>"
        self.problems: list[str] = []

    def add(self, table: str | None, key: str | None, message: str) -> None:
        where = self.file
        if table:
            where += f": [{table}]"
        if key:
            where += f" {key}"
        self.problems.append(f"{where}: {message}")


def _table_name(kind: str, name: str) -> str:
    bare = re.fullmatch(r"[A-Za-z0-9_-]+", name) is not None
    return f"{kind}.{name}" if bare else f'{kind}."{name}"'


def _unknown_keys(c: _Collector, table: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            c.add(table, key, f"unknown key (known: {', '.join(known)})")


INT32 = (-(2**31), 2**31 - 1)  # what both backends store for priorities and retry counts
MAX_CONCURRENCY = 10_000


def _int(
    c: _Collector, table: str, data: Mapping[str, Any], key: str, minimum: int = INT32[0], maximum: int = INT32[1]
) -> int | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(table, key, f"must be an integer, got {value!r}")
        return None
    if not minimum <= value <= maximum:
        c.add(table, key, f"must be from {minimum} to {maximum}, got {value}")
        return None
    return value


def _str(c: _Collector, table: str, data: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    if key not in data:
        if required:
            c.add(table, key, "missing (required)")
        return None
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        c.add(table, key, f"must be a non-empty string, got {value!r}")
        return None
    return value


def _subtables(c: _Collector, raw: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    section = raw.get(kind, {})
    if not isinstance(section, dict):
        c.add(kind, None, "must be a table")
        return {}
    out: dict[str, Mapping[str, Any]] = {}
    for name, data in section.items():
        if not isinstance(data, dict):
            c.add(_table_name(kind, name), None, f"must be a table, got {data!r}")
            continue
        out[name] = data
    return out


def validate(raw: Mapping[str, Any], path: Path | None = None) -> tuple[Config, list[str]]:
    """Check the TOML data structurally; return the usable part as a Config and every problem found."""
    c = _Collector(path)
    for key in raw:
        if key not in _TABLES:
            c.add(None, None, f"unknown table [{key}] (known: {', '.join(_TABLES)})")

    database: str | None = None
    modules: list[str] = []
    dj = raw.get("djobs", {})
    if not isinstance(dj, dict):
        c.add("djobs", None, "must be a table")
        dj = {}
    _unknown_keys(c, "djobs", dj, _DJOBS_KEYS)
    database = _str(c, "djobs", dj, "database")
    if database is not None and database.partition("://")[0].lower() not in _DATABASE_SCHEMES:
        c.add("djobs", "database", f"bad database URL {database!r} (use sqlite:///path.db or postgresql://user@host/db)")
        database = None
    if database is not None and path is not None:
        database = anchor_sqlite_url(database, path.parent)
    if "modules" in dj:
        mods = dj["modules"]
        if not isinstance(mods, list) or not all(isinstance(m, str) and _is_module_name(m) for m in mods):
            c.add("djobs", "modules", f"must be a list of module names, got {mods!r}")
        else:
            modules = list(mods)

    scheduler = True
    wk = raw.get("worker", {})
    if not isinstance(wk, dict):
        c.add("worker", None, "must be a table")
        wk = {}
    _unknown_keys(c, "worker", wk, _WORKER_KEYS)
    if "scheduler" in wk:
        if isinstance(wk["scheduler"], bool):
            scheduler = wk["scheduler"]
        else:
            c.add("worker", "scheduler", f"must be true or false, got {wk['scheduler']!r}")
    timeouts = {"drain_timeout": 30.0, "stale_after": 30.0}
    for key in timeouts:
        if key in wk:
            try:
                if isinstance(wk[key], bool) or not isinstance(wk[key], str | int | float):
                    raise ValueError(f"bad duration {wk[key]!r} (use e.g. 30s, 5m, 2h, 7d)")
                timeouts[key] = parse_duration(wk[key]).total_seconds()
                if key == "stale_after" and timeouts[key] <= 0:
                    raise ValueError("must be more than zero")
            except ValueError as exc:
                c.add("worker", key, str(exc))

    tui: dict[str, Any] = {}
    tu = raw.get("tui", {})
    if not isinstance(tu, dict):
        c.add("tui", None, "must be a table")
        tu = {}
    _unknown_keys(c, "tui", tu, _TUI_KEYS)
    if "refresh" in tu:
        refresh = tu["refresh"]
        if isinstance(refresh, bool) or not isinstance(refresh, int | float) or not 0.05 <= refresh <= 3600:
            c.add("tui", "refresh", f"must be a number of seconds from 0.05 to 3600, got {refresh!r}")
        else:
            tui["refresh"] = float(refresh)

    queues: dict[str, int] = {}
    queue_flow: dict[str, flow.QueueFlow] = {}
    for name, data in _subtables(c, raw, "queues").items():
        table = _table_name("queues", name)
        _unknown_keys(c, table, data, _QUEUE_KEYS)
        n = _int(c, table, data, "concurrency", minimum=1, maximum=MAX_CONCURRENCY)
        queues[name] = n if n is not None else 10
        if any(k in data for k in flow.QUEUE_FLOW_KEYS):
            queue_flow[name] = flow.queue_flow(c, table, data)

    jobs: dict[str, JobConfig] = {}
    for name, data in _subtables(c, raw, "jobs").items():
        table = _table_name("jobs", name)
        _unknown_keys(c, table, data, _JOB_KEYS)
        handler = _str(c, table, data, "handler", required=True)
        if handler is not None and not _is_handler_ref(handler):
            c.add(table, "handler", f"must be 'module:function', got {handler!r}")
            handler = None
        queue = _str(c, table, data, "queue")
        retries = _int(c, table, data, "retries", minimum=0)
        priority = _int(c, table, data, "priority")
        timeout, backoff = flow.job_flow(c, table, data)
        if handler is not None:
            jobs[name] = JobConfig(name, handler, queue, retries, priority, timeout, backoff)

    workflows: dict[str, WorkflowConfig] = {}
    for name, data in _subtables(c, raw, "workflows").items():
        table = _table_name("workflows", name)
        _unknown_keys(c, table, data, _WORKFLOW_KEYS)
        if name in jobs:
            c.add(table, None, f"name {name!r} is also a [jobs] table")
        steps = _steps(c, table, data)
        queue = _str(c, table, data, "queue")
        retries = _int(c, table, data, "retries", minimum=0)
        priority = _int(c, table, data, "priority")
        if steps:
            workflows[name] = WorkflowConfig(name, steps, queue, retries, priority)

    schedules: dict[str, ScheduleConfig] = {}
    for name, data in _subtables(c, raw, "schedules").items():
        table = _table_name("schedules", name)
        _unknown_keys(c, table, data, _SCHEDULE_KEYS)
        sched = _schedule(c, table, name, data)
        if sched is not None:
            schedules[name] = sched

    conf = Config(
        path=path,
        database=database,
        modules=tuple(modules),
        queues=queues,
        scheduler=scheduler,
        drain_timeout=timeouts["drain_timeout"],
        stale_after=timeouts["stale_after"],
        tui=tui,
        jobs=jobs,
        schedules=schedules,
        workflows=workflows,
        queue_flow=queue_flow,
        retention=flow.retention(c, raw),
    )
    return conf, c.problems


def _steps(c: _Collector, table: str, data: Mapping[str, Any]) -> tuple[Step, ...]:
    if "steps" not in data:
        c.add(table, "steps", "missing (required)")
        return ()
    raw_steps = data["steps"]
    if not isinstance(raw_steps, list) or not raw_steps:
        c.add(table, "steps", f"must be a non-empty list, got {raw_steps!r}")
        return ()
    steps: list[Step] = []
    ok = True
    for i, item in enumerate(raw_steps):
        key = f"steps[{i}]"
        if isinstance(item, str) and item.strip():
            steps.append(Step(item))
        elif isinstance(item, dict):
            step = _table_step(c, table, key, item)
            if step is None:
                ok = False
            else:
                steps.append(step)
        else:
            c.add(table, key, f"must be a job name or a table: {_STEP_FORMS}, got {item!r}")
            ok = False
    return tuple(steps) if ok else ()


_STEP_FORMS = "{ fan_out = JOB, over = KEY }, { sleep = DURATION } or { wait_signal = NAME, timeout = DURATION }"


def _table_step(c: _Collector, table: str, key: str, item: Mapping[str, Any]) -> Step | None:
    """A step written as a table: a fan-out, a durable sleep or a signal wait."""
    kinds = [k for k in _STEP_KINDS if k in item]
    if len(kinds) > 1:
        c.add(table, key, f"must be one of {_STEP_FORMS}, got {dict(item)!r}")
        return None
    kind = kinds[0] if kinds else "fan_out"  # a table naming no kind is read as a fan-out missing its job
    unknown = [k for k in item if k not in _STEP_KINDS[kind]]
    for k in unknown:
        c.add(table, f"{key}.{k}", f"unknown key (known: {', '.join(_STEP_KINDS[kind])})")
    if kind == "sleep":
        seconds = _step_duration(c, table, f"{key}.sleep", item["sleep"])
        return Step("", sleep=seconds) if seconds is not None and not unknown else None
    if kind == "wait_signal":
        name = item["wait_signal"]
        try:
            limits.name("signal name", name)
        except (TypeError, ValueError) as exc:
            c.add(table, f"{key}.wait_signal", str(exc))
            return None
        timeout = None
        if "timeout" in item:
            timeout = _step_duration(c, table, f"{key}.timeout", item["timeout"])
            if timeout is None:
                return None
        return Step("", wait_signal=name, timeout=timeout) if not unknown else None
    job, over = item.get("fan_out"), item.get("over")
    if not isinstance(job, str) or not job.strip():
        c.add(table, f"{key}.fan_out", f"must name a job, got {job!r}")
        return None
    if over is not None and (not isinstance(over, str) or not over):
        c.add(table, f"{key}.over", f"must be a key of the previous result, got {over!r}")
        return None
    return Step(job, fan_out=True, over=over) if not unknown else None


def _step_duration(c: _Collector, table: str, key: str, value: Any) -> float | None:
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        c.add(table, key, str(exc))
        return None


def _schedule(c: _Collector, table: str, name: str, data: Mapping[str, Any]) -> ScheduleConfig | None:
    job = _str(c, table, data, "job", required=True)
    kinds = [k for k in _SCHEDULE_KINDS if k in data]
    ok = job is not None
    if len(kinds) != 1:
        c.add(table, None, f"needs exactly one of {', '.join(_SCHEDULE_KINDS)}, got {len(kinds)}")
        ok = False
    kind = kinds[0] if kinds else ""
    value = data.get(kind)
    tz = _str(c, table, data, "timezone")
    if tz is not None:
        from djobs.schedule import parse_timezone

        try:
            parse_timezone(tz)
        except Exception:  # ValueError, and OSError for names that are not even file names
            c.add(table, "timezone", f"unknown time zone {tz!r}")
            ok, tz = False, None
    if kind:
        try:
            schedule_spec(ScheduleConfig(name, job or "", kind, value, timezone=tz))
        except ValueError as exc:
            c.add(table, kind, str(exc))
            ok = False
    if "args" in data:
        try:
            json.dumps(data["args"])
        except (TypeError, ValueError):
            c.add(table, "args", f"must be JSON data (no dates or times), got {data['args']!r}")
            ok = False
    queue = _str(c, table, data, "queue")
    priority = _int(c, table, data, "priority")
    if not ok or job is None:
        return None
    return ScheduleConfig(name, job, kind, value, data.get("args"), queue, priority or 0, tz)


def _is_module_name(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name) is not None


def _is_handler_ref(ref: str) -> bool:
    module, sep, attr = ref.partition(":")
    return bool(sep) and _is_module_name(module) and _is_module_name(attr)


def read(path: Path) -> tuple[Config, list[str]]:
    """Parse and validate the file at `path`; never raises for a bad file (problems are returned)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return Config(path=path), [f"{path}: cannot read: {exc.strerror or exc}"]
    except UnicodeDecodeError:
        return Config(path=path), [f"{path}: not UTF-8 text"]
    except tomllib.TOMLDecodeError as exc:
        return Config(path=path), [f"{path}: invalid TOML: {exc}"]
    return validate(raw, path)


def load(path: Path | str) -> Config:
    """Read and validate a config file; raise ConfigProblems listing every structural problem."""
    conf, problems = read(Path(path))
    if problems:
        raise ConfigProblems(problems)
    return conf
