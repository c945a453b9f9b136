"""The config's model: what a validated `djobs.toml` holds (frozen dataclasses), and its one error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from djobs.errors import ConfigError

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


def starter(database: str) -> dict[str, Any]:
    """The data `djobs init` writes (a valid config)."""
    return {
        "djobs": {"database": database, "modules": []},
        "queues": {"default": {"concurrency": 10}},
        "worker": {"scheduler": True},
    }
