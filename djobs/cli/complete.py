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
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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


Provider = Callable[[common.State], Iterable[tuple[str, str]]]


def offer(st: common.State, kind: str, fn: Provider, incomplete: str) -> list[tuple[str, str]]:
    """The (value, help) pairs a Tab offers for `incomplete`: de-duplicated, prefix-filtered, answered
    through the cache on PostgreSQL, and empty on any error. Closes what it opened on `st`. Used by the
    Typer completers below and by the typer-free fast path (djobs/cli/fast.py)."""
    try:
        seen: dict[str, str] = {}
        for value, help_text in answers(st, kind, fn):
            if value and value.startswith(incomplete) and value not in seen:
                seen[value] = common.one_line(help_text, 60)
        return list(seen.items())
    except BaseException:  # noqa: BLE001 - a Tab press must never print a traceback or exit non-zero
        return []
    finally:
        st.close()


def _quiet(kind: str, fn: Provider) -> Callable[..., list[tuple[str, str]]]:
    """A Typer `autocompletion` function from a provider `fn(state)` of (value, help) pairs (see `offer`)."""

    def complete(ctx: Any, args: list[str], incomplete: str) -> list[tuple[str, str]]:
        try:
            st = _state(ctx)
        except BaseException:  # noqa: BLE001
            return []
        return [] if st is None else offer(st, kind, fn, incomplete)

    complete.djobs_kind = kind  # type: ignore[attr-defined]  # how djobs/cli/specgen.py names the completer
    return complete


# ------------------------------------------------------------------------- the PostgreSQL answer cache
#
# On SQLite a Tab reads the database directly (well under the 150 ms a Tab may take). On PostgreSQL,
# importing the driver alone takes most of that budget, so a Tab answers from a small cache file of the
# last answers (per database and config, readable by the user only) and, when they are more than a few
# seconds old, refreshes them in a detached process for the next Tab. The first Tab, and one after an
# hour without any, reads the database directly.

CACHE_FRESH = 3.0  # seconds: answers younger than this are not refreshed
CACHE_MAX_AGE = 3600.0  # seconds: answers older than this are not used


def answers(st: common.State, kind: str, fn: Provider) -> list[tuple[str, str]]:
    """The (value, help) pairs for `kind`: straight from `fn` on SQLite, through the cache on PostgreSQL."""
    url = st.database_url()
    if not url.lower().startswith(("postgres", "psycopg")):
        return list(fn(st))
    path = cache_file(st, url)
    entry = _read_cache(path).get(kind)
    age = time.time() - float(entry["t"]) if isinstance(entry, dict) and "t" in entry else None
    if entry is None or age is None or not 0 <= age <= CACHE_MAX_AGE:
        values = list(fn(st))
        _write_cache(path, kind, values)
        return values
    if age > CACHE_FRESH:
        _refresh_later(st, kind)
    return [(str(v), str(h)) for v, h in entry["values"]]


def cache_file(st: common.State, url: str) -> Path:
    """Where the answers for this database and config are kept."""
    import hashlib

    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{url}\n{st.config_path or ''}\n{os.getcwd()}".encode()).hexdigest()[:20]
    return home / "djobs" / f"complete-{key}.json"


def _read_cache(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, kind: str, values: list[tuple[str, str]]) -> None:
    import json
    import tempfile

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = _read_cache(path)
        data[kind] = {"t": time.time(), "values": values}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".complete-")  # created 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # no cache: the next Tab reads the database again


def _refresh_later(st: common.State, kind: str) -> None:
    """Recompute `kind` in a detached process (it outlives this Tab by about a second)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("_DJOBS_COMPLETE")}
    if st.config_path:
        env["DJOBS_CONFIG"] = st.config_path
    if st.database:
        env["DJOBS_DATABASE_URL"] = st.database
    try:
        subprocess.Popen(
            [sys.executable, "-m", "djobs.cli.complete", kind], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )  # fmt: skip
    except OSError:
        pass


def _refresh(kind: str) -> None:
    """`python -m djobs.cli.complete KIND`: recompute one kind of answers into the cache."""
    st = common.State(config_path=os.environ.get("DJOBS_CONFIG"), database=os.environ.get("DJOBS_DATABASE_URL"))
    try:
        _write_cache(cache_file(st, st.database_url()), kind, list(PROVIDERS[kind](st)))
    finally:
        st.close()


def _queue(st: common.State) -> Any:
    return common.open_queue(st, handlers=False)


def _config(st: common.State) -> Any:
    try:
        return st.config()
    except Exception:
        return None


def _job_types(st: common.State) -> Iterable[tuple[str, str]]:
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


def _queue_names(st: common.State) -> Iterable[tuple[str, str]]:
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


def _job_ids(*statuses: str) -> Provider:
    def ids(st: common.State) -> Iterable[tuple[str, str]]:
        queue = _queue(st)
        for status in statuses or (None,):
            for job in queue.list_jobs(status=status, limit=RECENT):
                yield job.id, f"{job.type} {getattr(job.status, 'value', job.status)}"

    return ids


def _worker_ids(st: common.State) -> Iterable[tuple[str, str]]:
    for w in _queue(st).workers():
        yield w.id, f"{w.host} pid {w.pid}" + (" (paused)" if w.paused else "")


def _schedule_names(st: common.State) -> Iterable[tuple[str, str]]:
    for s in _queue(st).schedules():
        yield s.name, f"{s.job} {s.spec}" + (" (paused)" if s.paused else "")
    conf = _config(st)
    if conf is not None:
        for name, s in conf.schedules.items():
            yield name, f"{s.job} (config)"


PROVIDERS: dict[str, Provider] = {
    "job_types": _job_types,
    "queue_names": _queue_names,
    "any_job": _job_ids(),
    "unfinished_job": _job_ids("pending", "running", "waiting", "retrying", "paused"),
    "pausable_job": _job_ids("pending", "running", "waiting", "retrying"),
    "paused_job": _job_ids("paused"),
    "finished_badly": _job_ids("failed", "cancelled"),
    "worker_ids": _worker_ids,
    "schedule_names": _schedule_names,
}
job_types = _quiet("job_types", _job_types)
queue_names = _quiet("queue_names", _queue_names)
any_job = _quiet("any_job", PROVIDERS["any_job"])
unfinished_job = _quiet("unfinished_job", PROVIDERS["unfinished_job"])
pausable_job = _quiet("pausable_job", PROVIDERS["pausable_job"])
paused_job = _quiet("paused_job", PROVIDERS["paused_job"])
finished_badly = _quiet("finished_badly", PROVIDERS["finished_badly"])
worker_ids = _quiet("worker_ids", _worker_ids)
schedule_names = _quiet("schedule_names", _schedule_names)


# ------------------------------------------------------------------------------------ the scripts


def script(shell: str) -> str:
    """The completion script for `shell`, as the shell sources it (calls `djobs` on each Tab)."""
    import typer
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


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 2 and sys.argv[1] in PROVIDERS:
        _refresh(sys.argv[1])
