"""Applying a config: importing its modules and handlers (every problem reported, whatever a module
raises), registering `[jobs.*]` and `[workflows.*]` on a Queue, and making the database's schedules match
`[schedules.*]`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from djobs.config.model import Config, ConfigProblems, ScheduleConfig, _drop_none
from djobs.config.validate import _Collector, _table_name, read
from djobs.config.values import schedule_spec

if TYPE_CHECKING:
    from djobs.queue import Queue


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
            if not step.job:  # a sleep or a signal wait runs no job
                continue
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


def register(conf: Config, queue: Queue) -> None:
    """Import the config's modules and register `[jobs.*]` and `[workflows.*]` on `queue`.

    Raises ConfigProblems when a module does not import, a handler does not fit, or a workflow step or a
    schedule names an unknown job.
    """
    from djobs import workflows

    import_modules(conf)
    problems: list[str] = []
    for job in conf.jobs.values():
        opts = _drop_none({"queue": job.queue, "retries": job.retries, "priority": job.priority, "timeout": job.timeout,
                           "backoff": job.backoff})  # fmt: skip
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
