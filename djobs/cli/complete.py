"""Shell completion: the scripts (`djobs completion show|install`) and the values Tab offers.

Every Tab press runs `djobs` with `_DJOBS_COMPLETE` set; Typer calls the `autocompletion=` functions below
with what the user typed so far. They read the config and the database (never handler code) and answer
with values and a short description each (shown by zsh and fish). Anything that goes wrong (no database
yet, a broken config) completes nothing rather than printing an error into the user's command line.

    djobs enqueue <TAB>        job types: the config's [jobs]/[workflows], types workers registered, recent types
    djobs --queue <TAB>        queue names: the config's, live workers', paused ones, recent jobs'
    djobs cancel <TAB>         ids of recent unfinished jobs (retry: failed or cancelled; resume job: paused)
    djobs pause worker <TAB>   live worker ids
    djobs pause schedule <TAB> schedule names
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import typer

from djobs.cli import common

SHELLS = ("bash", "zsh", "fish")
RECENT = 50  # job ids offered by one Tab


def _state(ctx: Any) -> common.State | None:
    """The global options as parsed so far (--config/--database typed before the Tab count)."""
    root = ctx.find_root()
    if not isinstance(root.obj, common.State):  # the root callback does not run while completing
        params = root.params or {}
        root.obj = common.State(config_path=params.get("config"), database=params.get("database"))
    return root.obj


def _quiet(fn: Callable[[Any, str], Iterable[tuple[str, str]]]) -> Callable[..., list[tuple[str, str]]]:
    """A Typer `autocompletion` function from `fn(state, incomplete)`: de-duplicated, prefix-filtered, and
    silent on any error."""

    def complete(ctx: Any, args: list[str], incomplete: str) -> list[tuple[str, str]]:
        try:
            st = _state(ctx)
            if st is None:
                return []
            seen: dict[str, str] = {}
            for value, help_text in fn(st, incomplete):
                if value and value.startswith(incomplete) and value not in seen:
                    seen[value] = common.one_line(help_text, 60)
            return list(seen.items())
        except BaseException:  # noqa: BLE001 - a Tab press must never print a traceback or exit non-zero
            return []
        finally:
            st_obj = ctx.find_root().obj
            if isinstance(st_obj, common.State):
                st_obj.close()

    return complete


def _queue(st: common.State) -> Any:
    return common.open_queue(st, handlers=False)


def _config(st: common.State) -> Any:
    try:
        return st.config()
    except Exception:
        return None


def _job_types(st: common.State, incomplete: str) -> Iterable[tuple[str, str]]:
    conf = _config(st)
    if conf is not None:
        for name, job in conf.jobs.items():
            yield name, f"handler {job.handler}"
        for name in conf.workflows:
            yield name, "workflow"
    queue = _queue(st)
    known_types: Any = getattr(queue, "known_types", None)
    if known_types is not None:
        for t in known_types():
            yield t.name, f"queue {t.queue}"
    for job in queue.list_jobs(limit=200):
        yield job.type, f"queue {job.queue}"


def _queue_names(st: common.State, incomplete: str) -> Iterable[tuple[str, str]]:
    conf = _config(st)
    if conf is not None:
        for name, n in conf.queues.items():
            yield name, f"concurrency {n}"
    queue = _queue(st)
    for w in queue.workers():
        for name in w.queues:
            yield name, f"served by {w.id}"
    for name in queue.paused_queues():
        yield name, "paused"
    for job in queue.list_jobs(limit=200):
        yield job.queue, "has jobs"


def _job_ids(*statuses: str) -> Callable[[common.State, str], Iterable[tuple[str, str]]]:
    def ids(st: common.State, incomplete: str) -> Iterable[tuple[str, str]]:
        queue = _queue(st)
        for status in statuses or (None,):
            for job in queue.list_jobs(status=status, limit=RECENT):
                yield job.id, f"{job.type} {getattr(job.status, 'value', job.status)}"

    return ids


def _worker_ids(st: common.State, incomplete: str) -> Iterable[tuple[str, str]]:
    for w in _queue(st).workers():
        yield w.id, f"{w.host} pid {w.pid}" + (" (paused)" if w.paused else "")


def _schedule_names(st: common.State, incomplete: str) -> Iterable[tuple[str, str]]:
    for s in _queue(st).schedules():
        yield s.name, f"{s.job} {s.spec}" + (" (paused)" if s.paused else "")
    conf = _config(st)
    if conf is not None:
        for name, s in conf.schedules.items():
            yield name, f"{s.job} (config)"


job_types = _quiet(_job_types)
queue_names = _quiet(_queue_names)
any_job = _quiet(_job_ids())
unfinished_job = _quiet(_job_ids("pending", "running", "waiting", "retrying", "paused"))
pausable_job = _quiet(_job_ids("pending", "running", "waiting", "retrying"))
paused_job = _quiet(_job_ids("paused"))
finished_badly = _quiet(_job_ids("failed", "cancelled"))
worker_ids = _quiet(_worker_ids)
schedule_names = _quiet(_schedule_names)


# ------------------------------------------------------------------------------------ the scripts


def script(shell: str) -> str:
    """The completion script for `shell`, as the shell sources it (calls `djobs` on each Tab)."""
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    from djobs.cli.app import app

    completion_init()
    cls = get_completion_class(shell)
    if cls is None:
        raise common.UsageProblem(f"no completion for shell {shell!r} (use {', '.join(SHELLS)})")
    command = typer.main.get_command(app)
    return str(cls(command, {}, "djobs", "_DJOBS_COMPLETE").source())


def install_path(shell: str, env: dict[str, str] | None = None) -> Path:
    """Where `shell` looks for djobs's completion without any set-up (zsh: a directory to add to fpath)."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("HOME") or Path.home())
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    if shell == "bash":  # bash-completion 2 loads completions/NAME on first Tab of NAME
        return Path(env.get("BASH_COMPLETION_USER_DIR") or data / "bash-completion") / "completions" / "djobs"
    if shell == "zsh":
        return home / ".zfunc" / "_djobs"
    if shell == "fish":  # fish loads completions/NAME.fish by itself
        return config / "fish" / "completions" / "djobs.fish"
    raise common.UsageProblem(f"no completion for shell {shell!r} (use {', '.join(SHELLS)})")


def how_to_enable(shell: str, path: Path) -> str:
    """What the user still has to do (if anything) for the installed file to be used."""
    if shell == "bash":
        return (f"bash-completion loads it in new shells. Without the bash-completion package, add this line "
                f"to ~/.bashrc:  source {path}")  # fmt: skip
    if shell == "zsh":
        return (f"add these lines to ~/.zshrc (before any other compinit), then open a new shell:  "
                f"fpath=({path.parent} $fpath); autoload -Uz compinit && compinit")  # fmt: skip
    return "fish loads it in new shells."


def detect_shell(env: dict[str, str] | None = None) -> str:
    """The user's shell from $SHELL (bash, zsh or fish); raises UsageProblem otherwise."""
    name = Path((env or os.environ).get("SHELL", "")).name
    if name not in SHELLS:
        raise common.UsageProblem(
            f"cannot tell your shell from $SHELL ({name or 'unset'}): name it, e.g. djobs completion install bash"
        )
    return name
