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

from djobs.config.handlers import (
    Applied,
    apply,
    apply_schedules,
    check,
    handler_problem,
    import_modules,
    job_names,
    register,
    resolve_handler,
    workflow_cycles,
)
from djobs.config.model import (
    CONFIG_NAME,
    Config,
    ConfigProblems,
    JobConfig,
    ScheduleConfig,
    Step,
    WorkflowConfig,
    starter,
)
from djobs.config.validate import discover, load, read, validate
from djobs.config.values import anchor_sqlite_url, parse_daily, parse_duration, parse_weekly, schedule_spec

__all__ = [
    "CONFIG_NAME", "Applied", "Config", "ConfigProblems", "JobConfig", "ScheduleConfig", "Step", "WorkflowConfig",
    "anchor_sqlite_url", "apply", "apply_schedules", "check", "discover", "handler_problem", "import_modules",
    "job_names", "load", "parse_daily", "parse_duration", "parse_weekly", "read", "register", "resolve_handler",
    "schedule_spec", "starter", "validate", "workflow_cycles",
]  # fmt: skip
