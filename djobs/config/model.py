"""The config's model: what a validated `djobs.toml` holds (frozen dataclasses), and its one error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from djobs.errors import ConfigError
from djobs.jobs import Rate, Retention
from djobs.retry import Backoff

CONFIG_NAME = "djobs.toml"


class ConfigProblems(ConfigError):
    """A config with one or more problems; `.problems` holds one line per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class JobConfig:
    """`[jobs.NAME]`: a handler given as `module:function`, with its job defaults."""

    name: str
    handler: str
    queue: str | None = None
    retries: int | None = None
    priority: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None


@dataclass(frozen=True)
class QueueFlow:
    """The flow keys of one `[queues.NAME]`: its limits (`limited`: the table names at least one; then
    they replace the queue's stored limits) and the time limit of its jobs that set none."""

    rate: Rate | None = None
    running: int | None = None
    key_rate: Rate | None = None
    key_running: int | None = None
    timeout: float | None = None
    limited: bool = False


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
    """One workflow step: a durable call of `job`, or with `fan_out` one sub-job per element; or a durable
    wait that runs no job (`job` empty): `sleep` seconds, or `wait_signal` (whose payload is the next step's
    input) for at most `timeout` seconds (None: as long as it takes)."""

    job: str
    fan_out: bool = False
    over: str | None = None  # key of the list in the previous result; None: the result is the list
    sleep: float | None = None
    wait_signal: str | None = None
    timeout: float | None = None


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
    queue_flow: Mapping[str, QueueFlow] = field(default_factory=dict)  # limits and time limits by queue
    retention: Retention | None = None  # None: no [retention] table (the stored one is left alone)

    def queue_timeouts(self) -> dict[str, float]:
        """The time limit of each queue's jobs that set none (nor their type)."""
        return {name: f.timeout for name, f in self.queue_flow.items() if f.timeout is not None}

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
        from djobs.config.flow import backoff_toml, queue_flow_toml, retention_toml

        out["queues"] = {name: {"concurrency": n} for name, n in self.queues.items()}
        for name, flow in self.queue_flow.items():
            out["queues"].setdefault(name, {}).update(queue_flow_toml(flow))
        out["worker"] = {
            "scheduler": self.scheduler, "drain_timeout": f"{self.drain_timeout:g}s",
            "stale_after": f"{self.stale_after:g}s",
        }  # fmt: skip
        if self.tui:
            out["tui"] = dict(self.tui)
        out["jobs"] = {
            j.name: _drop_none(
                {"handler": j.handler, "queue": j.queue, "retries": j.retries, "priority": j.priority,
                 "timeout": None if j.timeout is None else f"{j.timeout:g}s",
                 "backoff": None if j.backoff is None else backoff_toml(j.backoff)}
            )
            for j in self.jobs.values()
        }  # fmt: skip
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
        if self.retention is not None:
            out["retention"] = retention_toml(self.retention)
        return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _step_to_toml(step: Step) -> Any:
    if step.sleep is not None:
        return {"sleep": f"{step.sleep:g}s"}
    if step.wait_signal is not None:
        timeout = None if step.timeout is None else f"{step.timeout:g}s"
        return _drop_none({"wait_signal": step.wait_signal, "timeout": timeout})
    if not step.fan_out:
        return step.job
    return _drop_none({"fan_out": step.job, "over": step.over})


def starter(database: str) -> dict[str, Any]:
    """The data `djobs init` writes (a valid config)."""
    return {
        "djobs": {"database": database, "modules": []},
        "queues": {"default": {"concurrency": 10}},
        "worker": {"scheduler": True},
    }
