"""The real `djobs` executable: version, burst worker, --wait, SIGTERM drain, --reload, a TOML workflow
resumed after `kill -9`, config check, an unreachable database, `events --follow`, and lazy imports.

Generous timeouts only; no assertion on how fast things are except the 10 s bound for exit 75.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DJOBS = Path(sys.executable).with_name("djobs")

HANDLERS = '''
import json, os, time
import djobs

def _log(path, line):
    with open(path, "a") as fh:
        fh.write(line + "\\n")

@djobs.job("add")
def add(args):
    return args["a"] + args["b"]

@djobs.job("boom", retries=0)
def boom(args):
    raise djobs.NoRetry("boom")

@djobs.job("nap", retries=0)
def nap(args):
    _log(args["log"], "nap started")
    time.sleep(args["seconds"])
    _log(args["log"], "nap finished")
    return "rested"

@djobs.job("first")
def first(args):
    _log(args["log"], "first")
    return {"items": [{"n": n, "log": args["log"], "sleep": args["sleep"]} for n in (1, 2, 3)]}

@djobs.job("part")
def part(item):
    _log(item["log"], f"part {item['n']}")
    time.sleep(item["sleep"])
    return item["n"] * 10

@djobs.job("last")
def last(results):
    return {"total": sum(results), "parts": results}
'''

CONFIG = """
[djobs]
database = "{db}"
modules = ["subjobs"]

[workflows.wf]
steps = ["first", {{ fan_out = "part", over = "items" }}, "last"]
"""


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_")}
    e.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    return e


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DJOBS), *args], cwd=self.root, env=env(), capture_output=True, text=True, timeout=timeout,
            input=input,
        )  # fmt: skip

    def ok(self, *args: str, **kw: Any) -> str:
        done = self.run(*args, **kw)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))

    def spawn(self, *args: str, name: str = "proc") -> subprocess.Popen[bytes]:
        out = open(self.root / f"{name}.out", "wb")  # files, not pipes: nobody has to drain them
        err = open(self.root / f"{name}.err", "wb")
        proc = subprocess.Popen([str(DJOBS), *args], cwd=self.root, env=env(), stdout=out, stderr=err)
        self.procs.append(proc)
        return proc

    def text(self, name: str) -> str:
        path = self.root / name
        return path.read_text() if path.exists() else ""


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module", autouse=True)
def executable() -> None:
    assert DJOBS.exists(), f"{DJOBS} missing: run `.venv/bin/pip install -e . --no-deps`"


def _project(root: Path, url: str) -> Iterator[Project]:
    (root / "subjobs.py").write_text(HANDLERS)
    (root / "djobs.toml").write_text(CONFIG.format(db=url))
    p = Project(root)
    yield p
    for proc in p.procs:  # whatever a failed test left running
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    yield from _project(tmp_path, db_url)


@pytest.fixture
def sqlite_project(tmp_path: Path, sqlite_url: str) -> Iterator[Project]:
    """For process-control tests (signals, reload) whose behaviour does not depend on the backend."""
    yield from _project(tmp_path, sqlite_url)


def test_version(tmp_path):
    from importlib.metadata import version

    done = subprocess.run([str(DJOBS), "--version"], capture_output=True, text=True, env=env(), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"djobs {version('djobs')}\n")


def test_help_and_completion_do_not_import_heavy_modules(tmp_path):
    for extra in ({}, {"_DJOBS_COMPLETE": "complete_bash", "COMP_WORDS": "djobs pa", "COMP_CWORD": "1"}):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "djobs", *([] if extra else ["--help"])],
            capture_output=True, text=True, env={**env(), **extra}, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert ("djobs.cli.app" if not extra else "djobs.cli.fast") in modules  # a Tab on a name needs no Typer
        heavy = {m for m in modules if m.split(".")[0] in ("peewee", "textual", "rich", "psycopg", "croniter")}
        assert heavy == set()
    assert "pause" in done.stdout.split()


def test_enqueue_burst_worker_then_inspect_shows_the_result(project):
    job_id = project.ok("enqueue", "add", "--args", '{"a": 40, "b": 2}').strip()
    failed = project.ok("enqueue", "boom").strip()
    project.ok("worker", "--burst", timeout=60)
    data = project.json("inspect", job_id)
    assert (data["status"], data["result"]) == ("completed", 42)
    assert project.json("inspect", failed)["status"] == "failed"


def test_enqueue_wait_with_a_background_worker(project):
    worker = project.spawn("worker", "--no-scheduler", name="worker")
    try:
        assert project.ok("enqueue", "add", "--args", '{"a": 1, "b": 2}', "--wait", "--timeout", "60") == "3\n"
        done = project.run("enqueue", "boom", "--wait", "--timeout", "60")
        assert done.returncode == 1 and "failed" in done.stderr and "Traceback" not in done.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(40) == 0


def test_sigterm_drains_running_jobs_then_exits_0(project):
    p = project
    log = str(p.root / "nap.log")
    job_id = p.ok("enqueue", "nap", "--args", json.dumps({"log": log, "seconds": 2})).strip()
    worker = p.spawn("worker", "--drain-timeout", "20s", name="worker")
    wait_until(lambda: "nap started" in p.text("nap.log"), what="the job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, p.text("worker.err")
    assert "nap finished" in p.text("nap.log")
    assert p.json("inspect", job_id)["status"] == "completed"
    assert p.json("workers") == []


def test_sd_notify_stopping_is_sent_when_the_drain_begins(sqlite_project):
    import socket

    p = sqlite_project
    path = p.root / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(30)
    log = str(p.root / "nap.log")
    p.ok("enqueue", "nap", "--args", json.dumps({"log": log, "seconds": 3}))
    out = open(p.root / "worker.err", "wb")
    worker = subprocess.Popen([str(DJOBS), "worker"], cwd=p.root, env={**env(), "NOTIFY_SOCKET": str(path)},
                              stdout=out, stderr=out)  # fmt: skip
    p.procs.append(worker)
    try:
        assert server.recv(4096).decode().startswith("READY=1")
        wait_until(lambda: "nap started" in p.text("nap.log"), what="the job to start")
        worker.send_signal(signal.SIGTERM)
        assert server.recv(4096) == b"STOPPING=1"
        assert "nap finished" not in p.text("nap.log")  # sent as the drain begins, not after it
        assert worker.wait(30) == 0
    finally:
        server.close()
    assert "nap finished" in p.text("nap.log")


RELOADABLE = '''
import djobs
VERSION = "{v}"

@djobs.job("version")
def version(args):
    return VERSION
'''


def test_reload_restarts_the_worker_when_a_handler_file_changes(sqlite_project):
    p = sqlite_project
    (p.root / "reloadme.py").write_text(RELOADABLE.format(v="v1"))
    (p.root / "djobs.toml").write_text((p.root / "djobs.toml").read_text().replace('"subjobs"', '"subjobs", "reloadme"'))
    parent = p.spawn("worker", "--reload", "--no-scheduler", name="reload")
    try:
        assert p.ok("enqueue", "version", "--wait", "--timeout", "60") == '"v1"\n'
        [first] = [w["id"] for w in p.json("workers")]
        (p.root / "reloadme.py").write_text(RELOADABLE.format(v="v2"))
        wait_until(lambda: "restarting" in p.text("reload.err"), what="the reload")
        wait_until(lambda: [w["id"] for w in p.json("workers")] not in ([], [first]), what="a new worker")
        assert p.ok("enqueue", "version", "--wait", "--timeout", "60") == '"v2"\n'
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(40) == 0, p.text("reload.err")
    assert p.json("workers") == []


def test_toml_workflow_with_fan_out_resumes_after_kill_9(project):
    log = project.root / "wf.log"
    job_id = project.ok("enqueue", "wf", "--args", json.dumps({"log": str(log), "sleep": 2})).strip()
    first = project.spawn("worker", "--no-scheduler", name="first")
    wait_until(lambda: "part " in project.text("wf.log"), what="a fan-out sub-job to start")
    first.kill()  # SIGKILL mid-workflow: the sub-jobs are running, the parent is waiting
    first.wait(10)
    assert project.json("inspect", job_id)["status"] == "waiting"
    second = project.spawn("worker", "--no-scheduler", "--stale-after", "1s", name="second")
    try:
        done = wait_until(
            lambda: (d := project.json("inspect", job_id))["status"] in ("completed", "failed") and d,
            timeout=90, what="the workflow to finish",
        )  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(40) == 0
    assert done["status"] == "completed", done
    assert done["result"] == {"total": 60, "parts": [10, 20, 30]}
    lines = log.read_text().splitlines()
    assert lines.count("first") == 1  # the finished step was not re-run
    assert {f"part {n}" for n in (1, 2, 3)} <= set(lines)
    names = [c["name"] for c in done["checkpoints"]]
    assert names[:1] == ["first"] and "last" in names
    assert len(done["sub_jobs"]) == 3


def test_config_check_on_good_and_bad_files(tmp_path):
    good = subprocess.run(
        [str(DJOBS), "--config", str(REPO / "workflows.example.toml"), "config", "check"],
        capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert good.returncode == 0 and ": ok (" in good.stdout, good.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [djobs]
        modules = ["no_such_module_here"]
        [schedules.s]
        job = "x"
        every = "5 minutes"
        timezone = "Nowhere/City"
        """))  # fmt: skip
    done = subprocess.run(
        [str(DJOBS), "--config", str(bad), "config", "check"], capture_output=True, text=True, env=env(),
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 78 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{bad}: ") for line in lines), lines


def test_unreachable_postgres_exits_75_quickly(tmp_path):
    started = time.monotonic()
    done = subprocess.run(
        [str(DJOBS), "--database", "postgresql://postgres@127.0.0.1:1/nothing", "jobs"],
        capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert done.returncode == 75, done.stderr
    assert time.monotonic() - started < 10
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_events_follow_tails_until_interrupted(project):
    follower = project.spawn("--json", "events", "--follow", "--since", "1h", name="follow")
    job_id = project.ok("enqueue", "add", "--args", '{"a": 1, "b": 1}').strip()
    project.ok("worker", "--burst")

    def kinds() -> list[str]:
        rows = [json.loads(line) for line in project.text("follow.out").splitlines() if line.strip()]
        return [r["kind"] for r in rows if r["job_id"] == job_id]

    wait_until(lambda: "job_completed" in kinds(), what="the completion event")
    follower.send_signal(signal.SIGINT)
    assert follower.wait(20) == 0
    assert "Traceback" not in project.text("follow.err")


def test_a_relative_sqlite_path_follows_the_config_file_not_the_cwd(tmp_path):
    app_dir, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    app_dir.mkdir()
    elsewhere.mkdir()
    (app_dir / "subjobs.py").write_text(HANDLERS)
    (app_dir / "djobs.toml").write_text(CONFIG.format(db="sqlite:///jobs.db"))
    run_env = {**env(), "DJOBS_CONFIG": str(app_dir / "djobs.toml")}
    done = subprocess.run([str(DJOBS), "enqueue", "add", "--args", '{"a": 1, "b": 2}'], cwd=elsewhere, env=run_env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (app_dir / "jobs.db").is_file() and list(elsewhere.iterdir()) == []
    listed = subprocess.run([str(DJOBS), "--json", "jobs"], cwd=app_dir, env=run_env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert [j["id"] for j in json.loads(listed.stdout)] == [done.stdout.strip()]


def test_the_shipped_crontab_lines_run_from_another_directory(tmp_path):
    """Each line of examples/crontab, run as cron would (`sh -c`, `\\%` unescaped, in $HOME), against the
    example config copied to an app directory: the enqueue lands in the app's database with args the
    workflow reads, twice in a day is one job, and the burst worker and purge exit 0."""
    app_dir, home = tmp_path / "srv-app", tmp_path / "home"
    home.mkdir()
    shutil.copytree(REPO / "examples", app_dir / "examples")
    (app_dir / "djobs.toml").write_text((REPO / "workflows.example.toml").read_text())
    crontab = (REPO / "examples" / "crontab").read_text()
    settings = dict(line.split("=", 1) for line in crontab.splitlines() if re.match(r"^[A-Z_]+=", line))
    assert settings == {"DJOBS_CONFIG": "/srv/app/djobs.toml"}
    commands = [line.split(None, 5)[5] for line in crontab.splitlines() if line.strip() and not line.startswith("#")
                and not re.match(r"^[A-Z_]+=", line)]  # fmt: skip
    assert len(commands) == 3
    run_env = {**env(), "DJOBS_CONFIG": str(app_dir / "djobs.toml"), "HOME": str(home)}
    for command in [commands[0], commands[0], *commands[1:]]:
        command = command.replace("\\%", "%").replace("/srv/app/.venv/bin/djobs", str(DJOBS))
        done = subprocess.run(["sh", "-c", command], cwd=home, env=run_env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
    assert list(home.iterdir()) == []
    listed = subprocess.run([str(DJOBS), "--json", "jobs", "--type", "nightly-etl"], cwd=home, env=run_env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    [job] = json.loads(listed.stdout)
    assert set(job["args"]) == {"day", "regions"} and job["args"]["regions"] == ["eu", "us"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", job["args"]["day"])


LOADED = """
import json, sys
from djobs.cli import main
try:
    main()
finally:
    sys.stderr.write("\\nLOADED " + json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))
"""


def _imported(args: list[str], cwd: Path, extra: dict[str, str] | None = None) -> tuple[set[str], str]:
    """The modules loaded by the end of `djobs ARGS` (as the console script runs it), and its stdout."""
    done = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True,
                          env={**env(), **(extra or {})}, cwd=cwd, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stderr.rsplit("LOADED ", 1)[1])), done.stdout


def test_enqueue_of_a_config_declared_type_imports_no_user_code_and_no_unused_driver(tmp_path):
    """The [jobs] handler's module would fail at import: enqueue never imports it (the worker will);
    nor does it load the PostgreSQL driver on SQLite, pydantic or rich."""
    (tmp_path / "heavy.py").write_text("raise RuntimeError('imported!')\ndef run(args):\n    return args\n")
    (tmp_path / "djobs.toml").write_text('[djobs]\ndatabase = "sqlite:///jobs.db"\n[jobs.heavy]\n'
                                         'handler = "heavy:run"\nqueue = "slow"\nretries = 7\n')  # fmt: skip
    modules, out = _imported(["enqueue", "heavy", "--args", "{}"], tmp_path)
    assert {"heavy", "psycopg", "psycopg2", "pydantic", "rich", "textual", "croniter"} & modules <= {"croniter"}
    [job] = json.loads(subprocess.run([str(DJOBS), "--json", "jobs"], capture_output=True, text=True, env=env(),
                                      cwd=tmp_path, timeout=60).stdout)  # fmt: skip
    assert job["id"] == out.strip() and (job["queue"], job["max_retries"]) == ("slow", 7)
    modules, listed = _imported(["jobs"], tmp_path)
    assert not {"heavy", "psycopg", "pydantic", "textual", "rich"} & modules and out.strip() in listed
    bad = subprocess.run([str(DJOBS), "worker", "--burst"], capture_output=True, text=True, env=env(), cwd=tmp_path,
                         timeout=60)  # fmt: skip
    assert bad.returncode == 78 and "cannot import 'heavy': RuntimeError: imported!" in bad.stderr


def test_a_module_calling_sys_exit_at_import_is_exit_78_naming_it(tmp_path):
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "djobs.toml").write_text('[djobs]\ndatabase = "sqlite:///jobs.db"\nmodules = ["quits"]\n')
    for args in (["config", "check"], ["worker", "--burst"], ["enqueue", "anything"]):
        done = subprocess.run([str(DJOBS), *args], capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60)
        assert done.returncode == 78, (args, done.returncode, done.stderr)
        assert "cannot import 'quits': it called sys.exit(3)" in done.stderr and "Traceback" not in done.stderr


def test_why_after_kill_9_speaks_of_recovery_at_the_stale_age(project):
    log = str(project.root / "nap.log")
    job_id = project.ok("enqueue", "nap", "--args", json.dumps({"log": log, "seconds": 60})).strip()
    worker = project.spawn("worker", "--no-scheduler", name="worker")
    wait_until(lambda: "nap started" in project.text("nap.log"), what="the job to start")
    worker.kill()
    worker.wait(10)
    said = project.json("why", job_id)["reasons"]
    assert said[0].startswith("the job is running on worker ")
    assert any("returns the job to pending" in r and "stale age (30s)" in r for r in said), said


def _tab(project: Project, line: str) -> list[str]:
    """What bash offers for `line<TAB>`: the installed completion script run by a real bash."""
    script = subprocess.run([str(DJOBS), "completion", "show", "bash"], capture_output=True, text=True, env=env(),
                            cwd=project.root, timeout=60).stdout  # fmt: skip
    words = line.split(" ")
    program = (f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
               f"_djobs_completion {DJOBS}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")  # fmt: skip
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, cwd=project.root, timeout=60,
                          env={**env(), "XDG_CACHE_HOME": str(project.root / "cache")})  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_tab_completes_types_queues_ids_workers_and_schedules_from_the_database(project):
    p = project
    (p.root / "djobs.toml").write_text((p.root / "djobs.toml").read_text() + textwrap.dedent("""
        [queues.emails]
        [jobs.tagged]
        handler = "subjobs:add"
        queue = "tags"
        [schedules.hourly]
        job = "add"
        every = "1h"
        """))  # fmt: skip
    pending = p.ok("enqueue", "add", "--args", '{"a": 1, "b": 1}', "--queue", "reports").strip()
    failed = p.ok("enqueue", "boom").strip()
    p.ok("worker", "--burst", "--queue", "default")
    assert {"tagged", "wf", "add", "boom"} <= set(_tab(p, "djobs enqueue "))
    assert _tab(p, "djobs enqueue ta") == ["tagged"]
    assert {"emails", "reports", "default"} <= set(_tab(p, "djobs jobs --queue "))
    assert _tab(p, "djobs cancel ") == [pending]
    assert _tab(p, "djobs retry ") == [failed]
    assert {pending, failed} <= set(_tab(p, "djobs inspect "))
    assert _tab(p, "djobs schedules rm ") == ["hourly"]
    assert _tab(p, "djobs completion show ") == ["bash", "zsh", "fish"]
    worker = p.spawn("worker", "--no-scheduler", name="worker")
    try:
        wid = wait_until(lambda: p.json("workers"), what="the worker to register")[0]["id"]
        assert _tab(p, "djobs pause worker ") == [wid]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(40) == 0
    (p.root / "djobs.toml").write_text("[djobs\nbroken")
    assert _tab(p, "djobs cancel ") == []  # a broken config completes nothing, and says nothing


def test_completion_install_writes_where_each_shell_looks(tmp_path):
    home = tmp_path / "home"
    base = {**env(), "HOME": str(home)}
    base.pop("XDG_DATA_HOME", None)
    base.pop("XDG_CONFIG_HOME", None)
    expected = {"bash": home / ".local/share/bash-completion/completions/djobs", "zsh": home / ".zfunc/_djobs",
                "fish": home / ".config/fish/completions/djobs.fish"}  # fmt: skip
    for shell, path in expected.items():
        done = subprocess.run([str(DJOBS), "completion", "install"], capture_output=True, text=True, cwd=tmp_path,
                              env={**base, "SHELL": f"/usr/bin/{shell}"}, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {path}\n")
        shown = subprocess.run([str(DJOBS), "completion", "show", shell], capture_output=True, text=True, env=base,
                               timeout=60).stdout  # fmt: skip
        assert path.read_text() == shown and "_DJOBS_COMPLETE" in shown
    zsh = subprocess.run([str(DJOBS), "completion", "install", "zsh"], capture_output=True, text=True, env=base,
                         timeout=60)  # fmt: skip
    assert f"fpath=({home}/.zfunc $fpath)" in zsh.stdout
    odd = subprocess.run([str(DJOBS), "completion", "install"], capture_output=True, text=True, cwd=tmp_path,
                         env={**base, "SHELL": "/bin/tcsh"}, timeout=60)  # fmt: skip
    assert odd.returncode == 2 and "cannot tell your shell from $SHELL (tcsh)" in odd.stderr
    assert subprocess.run([str(DJOBS), "completion", "show", "csh"], capture_output=True, env=base,
                          timeout=60).returncode == 2  # fmt: skip


def test_tab_on_postgresql_answers_from_a_private_cache_refreshed_in_the_background(tmp_path, pg_url):
    """Importing the PostgreSQL driver costs most of a Tab's budget: the first Tab reads the database and
    keeps its answers; later ones answer from them (without loading the driver) and refresh them for
    the next Tab once they are a few seconds old."""
    from djobs.cli.complete import CACHE_FRESH

    (tmp_path / "djobs.toml").write_text(f'[djobs]\ndatabase = "{pg_url}"\n[jobs.send]\nhandler = "nowhere:send"\n')
    run_env = {**env(), "XDG_CACHE_HOME": str(tmp_path / "cache"), "_DJOBS_COMPLETE": "complete_bash",
               "COMP_WORDS": "djobs cancel ", "COMP_CWORD": "2"}  # fmt: skip

    def tab() -> list[str]:
        done = subprocess.run([str(DJOBS)], env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return done.stdout.split()

    def enqueue() -> str:
        return subprocess.run([str(DJOBS), "enqueue", "send"], env=env(), cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, check=True).stdout.strip()  # fmt: skip

    first = enqueue()
    assert tab() == [first]
    [cache] = (tmp_path / "cache" / "djobs").iterdir()
    assert cache.stat().st_mode & 0o777 == 0o600 and cache.parent.stat().st_mode & 0o777 == 0o700
    second = enqueue()
    time.sleep(CACHE_FRESH + 0.5)
    assert tab() == [first]  # the kept answers, now stale: this Tab starts a refresh
    wait_until(lambda: tab() == [second, first], timeout=30, what="the refreshed answers")
    modules, out = _imported([], tmp_path, extra={k: v for k, v in run_env.items() if k != "PATH"})
    assert out.split() == [second, first] and "psycopg" not in modules and "peewee" not in modules


def test_a_type_workers_registered_is_enqueued_without_importing_modules(project):
    import djobs

    if not hasattr(djobs.Queue, "known_types"):
        pytest.skip("the library does not know types registered by workers yet")
    project.ok("worker", "--burst")  # registers the module's types (add, boom, ...) in the database
    (project.root / "subjobs.py").write_text("raise RuntimeError('must not be imported')\n")
    job_id = project.ok("enqueue", "add", "--args", '{"a": 1, "b": 2}').strip()
    assert project.json("inspect", job_id)["type"] == "add"
    done = project.run("enqueue", "no-such-type")  # unknown everywhere: the modules are tried, and fail
    assert done.returncode == 78 and "must not be imported" in done.stderr
