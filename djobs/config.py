"""The `djobs.toml` config: discovery, validation that names file, table and key, and applying it to a Queue.

Usage::

    from djobs import config

    path = config.discover(None)          # ./djobs.toml, then $XDG_CONFIG_HOME/djobs/djobs.toml, or None
    conf = config.load(path)              # raises config.ConfigProblems (a djobs.ConfigError) listing all problems
    config.import_modules(conf)           # [djobs] modules (before the Queue exists: @djobs.job handlers)
    config.apply(conf, queue)             # register [jobs.*] and [workflows.*], declare [schedules.*]
    problems = config.check(path)         # everything `djobs config check` reports, imports included

The tables are documented in the man page and `docs/`; `workflows.example.toml` is the annotated example. Validation
never stops at the first problem: every message is one line, `FILE: [table] key: what is wrong`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from djobs.errors import ConfigError

if TYPE_CHECKING:
    from djobs.queue import Queue

CONFIG_NAME = "djobs.toml"

_DJOBS_KEYS = ("database", "modules")
_QUEUE_KEYS = ("concurrency",)
_WORKER_KEYS = ("scheduler", "drain_timeout", "stale_after")
_TUI_KEYS = ("refresh",)
_JOB_KEYS = ("handler", "queue", "retries", "priority")
_SCHEDULE_KINDS = ("every", "cron", "daily", "weekly")
_SCHEDULE_KEYS = ("job", *_SCHEDULE_KINDS, "args", "queue", "priority", "timezone")
_WORKFLOW_KEYS = ("steps", "queue", "retries", "priority")
_STEP_KEYS = ("fan_out", "over")
_DATABASE_SCHEMES = ("sqlite", "sqlite3", "postgresql", "postgres", "psycopg", "psycopg3", "postgresql+psycopg")
_TABLES = ("djobs", "queues", "worker", "tui", "jobs", "schedules", "workflows")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {*_DAYS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


class ConfigProblems(ConfigError):
    """A config with one or more problems; `.problems` holds one line per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class JobConfig:
    """`[jobs.NAME]`: a handler given as `module:function`, with its job defaults."""

    name: str
    handler: str
    queue: str | None = None
    retries: int | None = None
    priority: int | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    """`[schedules.NAME]`: `kind` is every/cron/daily/weekly and `value` its TOML value."""

    name: str
    job: str
    kind: str
    value: Any
    args: Any = None
    queue: str | None = None
    priority: int = 0
    timezone: str | None = None


@dataclass(frozen=True)
class Step:
    """One workflow step: a durable call of `job`, or with `fan_out` one sub-job per element."""

    job: str
    fan_out: bool = False
    over: str | None = None  # key of the list in the previous result; None: the result is the list


@dataclass(frozen=True)
class WorkflowConfig:
    """`[workflows.NAME]`: steps run in order as durable calls."""

    name: str
    steps: tuple[Step, ...]
    queue: str | None = None
    retries: int | None = None
    priority: int | None = None


@dataclass(frozen=True)
class Config:
    """A validated config. `path` is None for the built-in default (no file)."""

    path: Path | None = None
    database: str | None = None
    modules: tuple[str, ...] = ()
    queues: Mapping[str, int] = field(default_factory=dict)
    scheduler: bool = True
    drain_timeout: float = 30.0
    stale_after: float = 30.0
    tui: Mapping[str, Any] = field(default_factory=dict)  # refresh: seconds between dashboard polls
    jobs: Mapping[str, JobConfig] = field(default_factory=dict)
    schedules: Mapping[str, ScheduleConfig] = field(default_factory=dict)
    workflows: Mapping[str, WorkflowConfig] = field(default_factory=dict)

    def handler_modules(self) -> list[str]:
        """Every module the config imports: `modules` plus the modules of `[jobs.*] handler`s."""
        names = list(self.modules)
        for job in self.jobs.values():
            module = job.handler.partition(":")[0]
            if module and module not in names:
                names.append(module)
        return names

    def declared_job(self, name: str) -> dict[str, Any] | None:
        """The job defaults (queue, retries, priority) of a `[jobs.NAME]` or `[workflows.NAME]`, or None.

        Enough to enqueue the type without importing its handler.
        """
        found: JobConfig | WorkflowConfig | None = self.jobs.get(name) or self.workflows.get(name)
        if found is None:
            return None
        return _drop_none({"queue": found.queue, "retries": found.retries, "priority": found.priority})

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as TOML-shaped data (what `djobs config show` prints)."""
        out: dict[str, Any] = {"djobs": {"modules": list(self.modules)}}
        if self.database:
            out["djobs"]["database"] = self.database
        out["queues"] = {name: {"concurrency": n} for name, n in self.queues.items()}
        out["worker"] = {
            "scheduler": self.scheduler, "drain_timeout": f"{self.drain_timeout:g}s",
            "stale_after": f"{self.stale_after:g}s",
        }  # fmt: skip
        if self.tui:
            out["tui"] = dict(self.tui)
        out["jobs"] = {
            j.name: _drop_none({"handler": j.handler, "queue": j.queue, "retries": j.retries, "priority": j.priority})
            for j in self.jobs.values()
        }
        out["schedules"] = {
            s.name: _drop_none(
                {"job": s.job, s.kind: s.value, "args": s.args, "queue": s.queue, "priority": s.priority,
                 "timezone": s.timezone}
            )
            for s in self.schedules.values()
        }  # fmt: skip
        out["workflows"] = {
            w.name: _drop_none(
                {"steps": [_step_to_toml(s) for s in w.steps], "queue": w.queue, "retries": w.retries,
                 "priority": w.priority}
            )
            for w in self.workflows.values()
        }  # fmt: skip
        return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _step_to_toml(step: Step) -> Any:
    if not step.fan_out:
        return step.job
    return _drop_none({"fan_out": step.job, "over": step.over})


# ------------------------------------------------------------------------------------ parsing helpers

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


# ----------------------------------------------------------------------------------------- discovery


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


# ---------------------------------------------------------------------------------------- validation


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


def _int(c: _Collector, table: str, data: Mapping[str, Any], key: str, minimum: int | None = None) -> int | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(table, key, f"must be an integer, got {value!r}")
        return None
    if minimum is not None and value < minimum:
        c.add(table, key, f"must be at least {minimum}, got {value}")
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
    for name, data in _subtables(c, raw, "queues").items():
        table = _table_name("queues", name)
        _unknown_keys(c, table, data, _QUEUE_KEYS)
        n = _int(c, table, data, "concurrency", minimum=1)
        queues[name] = n if n is not None else 10

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
        if handler is not None:
            jobs[name] = JobConfig(name, handler, queue, retries, priority)

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
            for k in item:
                if k not in _STEP_KEYS:
                    c.add(table, f"{key}.{k}", f"unknown key (known: {', '.join(_STEP_KEYS)})")
                    ok = False
            job, over = item.get("fan_out"), item.get("over")
            if not isinstance(job, str) or not job.strip():
                c.add(table, f"{key}.fan_out", f"must name a job, got {job!r}")
                ok = False
            elif over is not None and (not isinstance(over, str) or not over):
                c.add(table, f"{key}.over", f"must be a key of the previous result, got {over!r}")
                ok = False
            else:
                steps.append(Step(job, fan_out=True, over=over))
        else:
            c.add(table, key, f"must be a job name or {{ fan_out = JOB, over = KEY }}, got {item!r}")
            ok = False
    return tuple(steps) if ok else ()


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


# --------------------------------------------------------------------------------- imports and apply


def _extend_sys_path(conf: Config) -> None:
    # A console script does not put the working directory on sys.path; handler modules usually sit next
    # to djobs.toml or in the directory djobs runs from.
    dirs = [Path.cwd()]
    if conf.path is not None:
        dirs.insert(0, conf.path.resolve().parent)
    for d in dirs:
        if str(d) not in sys.path:
            sys.path.insert(0, str(d))


def _import_problems(conf: Config) -> list[str]:
    _extend_sys_path(conf)
    c = _Collector(conf.path)
    failed: set[str] = set()
    for module in conf.modules:
        problem = _try_import(module)
        if problem:
            failed.add(module)
            c.add("djobs", "modules", f"cannot import {module!r}: {problem}")
    for job in conf.jobs.values():
        if job.handler.partition(":")[0] in failed:
            continue  # reported once, under [djobs] modules
        try:
            resolve_handler(job.handler)
        except ImportError as exc:
            c.add(_table_name("jobs", job.name), "handler", str(exc))
    return c.problems


def _signature_problems(conf: Config) -> list[str]:
    """`[jobs.*]` handlers that import but cannot be handlers (the modules must import)."""
    c = _Collector(conf.path)
    for job in conf.jobs.values():
        problem = handler_problem(job.name, resolve_handler(job.handler))
        if problem:
            c.add(_table_name("jobs", job.name), "handler", f"{job.handler}: {problem}")
    return c.problems


def handler_problem(name: str, fn: Callable[..., Any]) -> str | None:
    """Why `fn` cannot be the handler of job type `name` (its signature), or None when it can."""
    from djobs.registry import Handler, JobOptions

    try:
        Handler.build(name, fn, JobOptions())
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _try_import(module: str) -> str | None:
    """None when `module` imports; else why not, in one line. Whatever the module raises is its problem:
    `sys.exit()` and other BaseExceptions too (only Ctrl-C goes through)."""
    try:
        importlib.import_module(module)
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        sys.modules.pop(module, None)
        return f"it called sys.exit({exc.code!r}) while being imported"
    except BaseException as exc:
        sys.modules.pop(module, None)
        detail = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return None


def resolve_handler(ref: str) -> Callable[..., Any]:
    """Import `module:function` and return the function; raise ImportError with a one-line reason."""
    module_name, _, attr = ref.partition(":")
    problem = _try_import(module_name)
    if problem:
        raise ImportError(f"cannot import {module_name!r}: {problem}")
    obj: Any = sys.modules[module_name]
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImportError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImportError(f"{ref!r} is not callable")
    return obj  # type: ignore[no-any-return]


def import_modules(conf: Config) -> None:
    """Import `[djobs] modules` and the handler modules; raise ConfigProblems naming each failure."""
    problems = _import_problems(conf)
    if problems:
        raise ConfigProblems(problems)


def _reference_problems(conf: Config, known: set[str]) -> list[str]:
    c = _Collector(conf.path)
    names = known | set(conf.jobs) | set(conf.workflows)
    hint = "not a [jobs] or [workflows] table nor a @djobs.job handler in [djobs] modules"
    for s in conf.schedules.values():
        if s.job not in names:
            c.add(_table_name("schedules", s.name), "job", f"unknown job {s.job!r} ({hint})")
    for w in conf.workflows.values():
        for i, step in enumerate(w.steps):
            if step.job not in names:
                key = f"steps[{i}].fan_out" if step.fan_out else f"steps[{i}]"
                c.add(_table_name("workflows", w.name), key, f"unknown job {step.job!r} ({hint})")
            if step.job == w.name:
                c.add(_table_name("workflows", w.name), f"steps[{i}]", "a workflow cannot call itself")
    for cycle in workflow_cycles(conf):
        c.add(_table_name("workflows", cycle[0]), "steps", "workflows call each other in a cycle: " + " → ".join(cycle))
    return c.problems


def workflow_cycles(conf: Config) -> list[list[str]]:
    """Cycles of workflows calling workflows (w1 → w2 → w1), each listed once from its first name.

    A workflow calling itself is reported on its own; such a cycle would wait on itself forever.
    """
    calls = {w.name: [s.job for s in w.steps if s.job in conf.workflows and s.job != w.name] for w in conf.workflows.values()}
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(path: list[str]) -> None:
        for nxt in calls[path[-1]]:
            if nxt == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    cycles.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle is found from its smallest name only
                visit([*path, nxt])

    for name in sorted(calls):
        visit([name])
    return cycles


def job_names(conf: Config) -> set[str]:
    """The job types a config gives workers: its `[jobs.*]` and what its modules register with
    `@djobs.job` (the modules must have been imported, as `check` does)."""
    from djobs.registry import module_jobs

    mine = tuple(conf.handler_modules())

    def ours(module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in mine)

    return set(conf.jobs) | {n for n, h in module_jobs().items() if ours(getattr(h.fn, "__module__", "") or "")}


def _module_job_names() -> set[str]:
    """Names registered with @djobs.job by the modules imported so far."""
    from djobs.registry import module_jobs

    return set(module_jobs())


def check(path: Path | str) -> list[str]:
    """Every problem of the config at `path`: structure, imports, unknown job names. Empty means good."""
    conf, problems = read(Path(path))
    if any(": invalid TOML:" in p or ": cannot read:" in p or ": not UTF-8" in p for p in problems):
        return problems
    imports = _import_problems(conf)
    if imports:  # job names cannot be judged when the modules that register them did not import
        return problems + imports
    return problems + _signature_problems(conf) + _reference_problems(conf, _module_job_names())


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


def register(conf: Config, queue: Queue) -> None:
    """Import the config's modules and register `[jobs.*]` and `[workflows.*]` on `queue`.

    Raises ConfigProblems when a module does not import, a handler does not fit, or a workflow step or a
    schedule names an unknown job.
    """
    from djobs import workflows

    import_modules(conf)
    problems: list[str] = []
    for job in conf.jobs.values():
        opts = _drop_none({"queue": job.queue, "retries": job.retries, "priority": job.priority})
        try:
            queue.register(job.name, resolve_handler(job.handler), **opts)
        except (TypeError, ValueError) as exc:
            problems.append(f"{conf.path or '<config>'}: [{_table_name('jobs', job.name)}] handler: {exc}")
    for wf in conf.workflows.values():
        opts = _drop_none({"queue": wf.queue, "retries": wf.retries, "priority": wf.priority})
        queue.register(wf.name, workflows.handler(wf), **opts)
    problems += _reference_problems(conf, set(queue.job_types()))
    if problems:
        raise ConfigProblems(problems)


@dataclass(frozen=True)
class Applied:
    """What `apply_schedules` changed: schedule names added, updated (spec, args or options) and removed."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def apply_schedules(conf: Config, queue: Queue) -> Applied:
    """Make the database's schedules match the config's `[schedules.*]` (handlers must be registered).

    The config is the source of truth for the schedules it declares: each is written (a changed spec gets
    a new next fire time; an unchanged one keeps its own), and a schedule an earlier apply wrote from a
    config that no longer declares it is deleted. Schedules made through the API are left alone.
    """
    before = {s.name: s for s in queue.schedules()}
    added, updated, unchanged = [], [], []
    for s in conf.schedules.values():
        spec = schedule_spec(s)
        old = before.get(s.name)
        _write_schedule(queue, s, spec)
        if old is None:
            added.append(s.name)
        elif (old.job, old.spec, old.args, old.queue, old.priority) == (
            s.job, spec.spec, s.args, s.queue or old.queue, s.priority
        ):  # fmt: skip
            unchanged.append(s.name)
        else:
            updated.append(s.name)
    removed = [
        name for name, info in before.items()
        if name not in conf.schedules and getattr(info, "source", None) == "config" and queue.unschedule(name)
    ]  # fmt: skip
    return Applied(tuple(added), tuple(updated), tuple(unchanged), tuple(removed))


def _write_schedule(queue: Queue, s: ScheduleConfig, spec: Any) -> None:
    opts: dict[str, Any] = {"args": s.args, "queue": s.queue, "priority": s.priority, "name": s.name}
    try:
        queue.schedule(s.job, spec, source="config", **opts)  # type: ignore[call-arg]
    except TypeError as exc:  # a library without schedule sources: the schedule is written all the same
        if "source" not in str(exc):
            raise
        queue.schedule(s.job, spec, **opts)


def apply(conf: Config, queue: Queue) -> Applied:
    """`register` then `apply_schedules`: everything a worker does with its config."""
    register(conf, queue)
    return apply_schedules(conf, queue)


def starter(database: str) -> dict[str, Any]:
    """The data `djobs init` writes (a valid config)."""
    return {
        "djobs": {"database": database, "modules": []},
        "queues": {"default": {"concurrency": 10}},
        "worker": {"scheduler": True},
    }
