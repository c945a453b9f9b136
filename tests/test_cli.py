"""Every `djobs` command and error path through Typer's CliRunner, on SQLite and PostgreSQL.

Each test runs in a project directory holding `djobs.toml` (pointing at the test's fresh database) and a
handler module `clijobs.py`, the way users run djobs.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import djobs
from djobs.cli import app

HANDLERS = '''
import time
import djobs

@djobs.job("add")
def add(args):
    return args["a"] + args["b"]

@djobs.job("echo", retries=0)
def echo(args):
    return args

@djobs.job("boom", retries=0)
def boom(args):
    raise djobs.NoRetry("boom: " + str(args))

@djobs.job("nap", queue="slow", retries=0)
def nap(args):
    time.sleep(float(args or 0))
    return "rested"

def tagged(args):
    return {"tagged": args}
'''

CONFIG = """
[djobs]
database = "{db}"
modules = ["clijobs"]

[queues.default]
concurrency = 2
[queues.slow]
concurrency = 1

[jobs.tag]
handler = "clijobs:tagged"
queue = "tags"
retries = 1

[workflows.pipeline]
steps = ["echo", {{ fan_out = "echo", over = "items" }}]

[schedules.tick]
job = "echo"
every = "1h"
args = {{ tick = true }}
"""


class Cli:
    """Runs `djobs` in-process in the project directory."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        return self.runner.invoke(app, list(args), input=input, env={"COLUMNS": "250", **(env or {})})

    def ok(self, *args: str, **kw: Any) -> Any:
        r = self(*args, **kw)
        assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr, r.exception)
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args).stdout)

    def fails(self, code: int, *args: str, **kw: Any) -> str:
        """Run, expect exit `code`, return stderr (checked to be one line without a traceback)."""
        r = self(*args, **kw)
        assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr, r.exception)
        assert "Traceback" not in r.output
        return r.stderr

    def queue(self) -> djobs.Queue:
        from djobs import config as cfg

        conf = cfg.load(self.root / "djobs.toml")
        cfg.import_modules(conf)
        q = djobs.Queue(djobs.connect(self.db_url))
        cfg.apply(conf, q)
        return q

    def enqueue(self, *args: str, **kw: Any) -> str:
        return self.ok("enqueue", *args, **kw).stdout.strip()

    def burst(self) -> None:
        self.ok("worker", "--burst", "--no-scheduler", "--queue", "default", "--queue", "slow", "--queue", "tags")


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    (tmp_path / "clijobs.py").write_text(HANDLERS)
    (tmp_path / "djobs.toml").write_text(CONFIG.format(db=db_url))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = list(sys.path)
    yield Cli(tmp_path, db_url)
    sys.path[:] = path
    sys.modules.pop("clijobs", None)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ basics


def test_help_lists_every_command(cli):
    out = cli.ok("--help").stdout
    for command in ("init", "config", "enqueue", "worker", "pause", "resume", "cancel", "retry", "inspect",
                    "jobs", "why", "events", "workers", "schedules", "purge", "tui"):  # fmt: skip
        assert f"  {command} " in out or f"  {command}\n" in out, command
    assert "check" in cli.ok("config", "--help").stdout
    for sub in ("job", "queue", "worker", "schedule"):
        assert sub in cli.ok("pause", "--help").stdout and sub in cli.ok("resume", "--help").stdout


def test_version(cli):
    from importlib.metadata import version

    assert cli.ok("--version").stdout == f"djobs {version('djobs')}\n"


def test_every_option_has_an_explicit_djobs_env_var():
    import typer

    def walk(cmd: Any, path: str) -> Iterator[tuple[str, Any]]:
        for p in cmd.params:
            yield path, p
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    missing = [
        (path, p.name)
        for path, p in walk(typer.main.get_command(app), "djobs")
        if p.param_type_name == "option" and p.name not in ("help", "version")
        and not (isinstance(p.envvar, str) and p.envvar.startswith("DJOBS_"))
    ]  # fmt: skip
    assert missing == []


def test_global_flags_work_before_and_after_the_command(cli):
    job_id = cli.enqueue("echo", "--args", '{"x": 1}')
    before = cli.ok("--json", "inspect", job_id).stdout
    after = cli.ok("inspect", job_id, "--json").stdout
    assert json.loads(before)["id"] == json.loads(after)["id"] == job_id
    assert json.loads(cli.ok("jobs", "--json", "--limit", "1").stdout)[0]["id"] == job_id
    r = cli("inspect", "nope", "--debug")
    assert isinstance(r.exception, djobs.JobNotFound)  # --debug lets the exception (and traceback) through


def test_env_vars_set_global_and_command_options(cli, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(CONFIG.format(db=cli.db_url).replace("[jobs.tag]", "[jobs.tag2]\nhandler = 'clijobs:tagged'\n[jobs.tag]"))
    r = cli("enqueue", "tag2", env={"DJOBS_CONFIG": str(other), "DJOBS_JSON": "1", "DJOBS_ENQUEUE_PRIORITY": "7"})
    assert r.exit_code == 0, r.output
    job = cli.queue().get_job(json.loads(r.stdout)["id"])
    assert job.type == "tag2" and job.priority == 7


# ----------------------------------------------------------------------------------------- enqueue


def test_enqueue_prints_exactly_the_id_and_stores_every_option(cli):
    r = cli.ok("enqueue", "add", "--args", '{"a": 1, "b": 2}', "--queue", "q2", "--priority", "5", "--retries", "7",
               "--delay", "5m", "--unique", "k1")  # fmt: skip
    job_id = r.stdout[:-1]
    assert r.stdout == job_id + "\n" and job_id and " " not in job_id
    job = cli.queue().get_job(job_id)
    assert (job.type, job.args, job.queue, job.priority, job.max_retries, job.unique_key) == (
        "add", {"a": 1, "b": 2}, "q2", 5, 7, "k1"
    )
    assert timedelta(minutes=4) < job.run_at - datetime.now(UTC) <= timedelta(minutes=5)
    assert cli.json("enqueue", "echo") == {"id": cli.json("jobs", "--limit", "1")[0]["id"]}


def test_enqueue_at_naive_means_utc_and_config_job_defaults_apply(cli):
    job_id = cli.enqueue("tag", "--at", "2031-01-02T03:04:05")
    job = cli.queue().get_job(job_id)
    assert job.run_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (job.queue, job.max_retries) == ("tags", 1)
    job_id = cli.enqueue("echo", "--at", "2031-01-02T04:04:05+01:00")
    assert cli.queue().get_job(job_id).run_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_enqueue_args_from_file_and_stdin(cli, tmp_path):
    (tmp_path / "args.json").write_text('{"from": "file"}')
    a = cli.enqueue("echo", "--args", "@args.json")
    b = cli.enqueue("echo", "--args", "-", input='["from", "stdin"]')
    q = cli.queue()
    assert q.get_job(a).args == {"from": "file"}
    assert q.get_job(b).args == ["from", "stdin"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "echo", "--args", "{nope"], "--args: bad JSON"),
        (["enqueue", "echo", "--args", "@missing.json"], "--args: cannot read 'missing.json'"),
        (["enqueue", "echo", "--delay", "soon"], "--delay: bad duration 'soon'"),
        (["enqueue", "echo", "--at", "tomorrow"], "--at: bad time 'tomorrow'"),
        (["enqueue", "echo", "--delay", "1s", "--at", "2030-01-01"], "give --delay or --at, not both"),
        (["enqueue", "echo", "--timeout", "3"], "--timeout needs --wait"),
        (["enqueue", "no-such-type"], "unknown job type 'no-such-type'"),
        (["jobs", "--status", "sleeping"], "Invalid value"),
        (["purge", "--older-than", "forever"], "--older-than: bad duration"),
        (["purge"], "Missing option '--older-than'"),
        (["events", "--since", "the dawn of time"], "--since: bad time"),
        (["worker", "--queue", "emails:zero"], "--queue: bad concurrency in 'emails:zero'"),
        (["worker", "--queue", ":3"], "--queue: bad spec"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_exits_2_with_a_message(cli, args, message):
    stderr = cli.fails(2, *args)
    assert message in stderr
    assert one_line(stderr).startswith("djobs: ")  # Click's usage errors too are one line


def test_unique_duplicate_fails_or_skips(cli):
    first = cli.enqueue("echo", "--unique", "only-one")
    assert "duplicate: job " + first in cli.fails(1, "enqueue", "echo", "--unique", "only-one")
    assert cli.enqueue("echo", "--unique", "only-one", "--if-exists", "skip") == first
    assert cli.json("enqueue", "echo", "--unique", "only-one", "--if-exists", "skip") == {"id": first}
    cli.ok("cancel", first)
    assert cli.enqueue("echo", "--unique", "only-one") != first  # the key frees once the job is finished


# ---------------------------------------------------------------------------- worker and --wait


def test_worker_burst_runs_jobs_and_inspect_shows_results(cli):
    ok = cli.enqueue("add", "--args", '{"a": 2, "b": 3}')
    bad = cli.enqueue("boom", "--args", '"x"')
    tagged = cli.enqueue("tag", "--args", "[1]")
    cli.burst()
    assert cli.json("inspect", ok)["result"] == 5 and cli.json("inspect", ok)["status"] == "completed"
    failed = cli.json("inspect", bad)
    assert failed["status"] == "failed" and "boom: x" in failed["last_error"]
    assert cli.json("inspect", tagged)["result"] == {"tagged": [1]}
    human = cli.ok("inspect", bad).stdout
    assert bad in human and "failed" in human and "boom: x" in human


def test_worker_queue_resolution_and_concurrency():
    from djobs.cli.worker import resolve_queues

    assert resolve_queues([], None, {}) == {"default": 10}
    assert resolve_queues([], 3, {"a": 5, "b": 1}) == {"a": 3, "b": 3}
    assert resolve_queues([], None, {"a": 5}) == {"a": 5}
    assert resolve_queues(["x", "y:2"], 4, {"a": 5}) == {"x": 4, "y": 2}


def test_enqueue_wait_prints_result_or_fails(cli):
    q = cli.queue()
    w = q.worker(queues={"default": 2}, scheduler=False)
    w.start()
    try:
        r = cli.ok("enqueue", "add", "--args", '{"a": 20, "b": 22}', "--wait", "--timeout", "30")
        assert r.stdout == "42\n"
        out = cli.json("enqueue", "echo", "--args", '{"k": [1]}', "--wait")
        assert out["status"] == "completed" and out["result"] == {"k": [1]}
        stderr = cli.fails(1, "enqueue", "boom", "--args", '"bad"', "--wait", "--timeout", "30")
        assert "failed" in one_line(stderr) and "boom: bad" in stderr
        r = cli("--json", "enqueue", "boom", "--args", '"j"', "--wait")
        assert r.exit_code == 1 and json.loads(r.stdout)["status"] == "failed"
    finally:
        w.stop(timeout=10)
    stderr = cli.fails(1, "enqueue", "nap", "--wait", "--timeout", "0.2")  # queue "slow" has no worker
    assert "did not finish within 0.2 s" in one_line(stderr)


# ------------------------------------------------------------------------- inspect, jobs, why


def test_inspect_job_json_has_checkpoints_sub_jobs_and_events(cli):
    job_id = cli.enqueue("echo", "--args", "1")
    cli.burst()
    data = cli.json("inspect", job_id)
    for key in ("id", "type", "args", "queue", "priority", "status", "attempt", "max_retries", "last_error",
                "run_at", "started_at", "completed_at", "created_at", "result", "checkpoints", "sub_jobs"):  # fmt: skip
        assert key in data, key
    assert data["checkpoints"] == [] and data["sub_jobs"] == []
    assert any(e["kind"].startswith("job_") for e in data["events"])
    assert "no job 'missing'" in one_line(cli.fails(1, "inspect", "missing"))


def test_inspect_a_workflow_shows_checkpoints_and_sub_jobs(cli):
    job_id = cli.enqueue("pipeline", "--args", '{"items": ["x", "y"]}')
    cli.burst()
    data = cli.json("inspect", job_id)
    assert data["status"] == "completed" and data["result"] == ["x", "y"]
    assert len(data["sub_jobs"]) == 2 and data["checkpoints"][0]["name"] == "echo"
    human = cli.ok("inspect", job_id).stdout
    assert "checkpoints" in human and "sub-jobs" in human and "recent events" in human
    assert data["sub_jobs"][0]["id"] in human


def test_inspect_overview_shape(cli):
    cli.enqueue("echo")
    cli.enqueue("nap")
    cli.ok("pause", "queue", "slow", "--reason", "maintenance")
    data = cli.json("inspect")
    assert set(data) == {"queues", "workers", "schedules"}
    queues = {q["name"]: q for q in data["queues"]}
    assert queues["default"]["counts"].get("pending") == 1 and not queues["default"]["paused"]
    assert queues["slow"]["paused"] is True
    assert [s["name"] for s in data["schedules"]] == ["tick"]
    human = cli.ok("inspect").stdout
    assert "slow" in human and "tick" in human and "no live workers" in human


def test_jobs_filters_and_limit(cli):
    a = cli.enqueue("echo", "--queue", "one")
    b = cli.enqueue("add", "--args", '{"a": 1, "b": 1}')
    c = cli.enqueue("echo")
    cli.ok("cancel", c)
    assert [j["id"] for j in cli.json("jobs")] == [c, b, a]  # newest first
    assert [j["id"] for j in cli.json("jobs", "--queue", "one")] == [a]
    assert [j["id"] for j in cli.json("jobs", "--type", "add")] == [b]
    assert [j["id"] for j in cli.json("jobs", "--status", "cancelled")] == [c]
    assert len(cli.json("jobs", "--limit", "2")) == 2
    human = cli.ok("jobs").stdout
    assert a in human and "cancelled" in human
    assert "no jobs" in cli.ok("jobs", "--type", "nothing").stdout


def test_why_explains_in_words(cli):
    pending = cli.enqueue("echo")
    later = cli.enqueue("echo", "--delay", "2h")
    reasons = cli.json("why", pending)["reasons"]
    assert "no live worker serves queue 'default'" in reasons
    assert any(r.startswith("it is due at ") and "(in " in r for r in cli.json("why", later)["reasons"])
    cli.ok("pause", "queue", "default", "--reason", "deploy")
    assert "queue 'default' is paused: deploy" in cli.json("why", pending)["reasons"]
    cli.ok("pause", "job", pending, "--reason", "hold")
    assert any(r.startswith("the job is paused: hold") for r in cli.json("why", pending)["reasons"])
    cli.ok("resume", "queue", "default")
    cli.ok("resume", "job", pending)
    cli.burst()
    done = cli.json("why", pending)
    assert done["status"] == "completed" and "will not run again" in done["reasons"][0]
    assert pending in cli.ok("why", pending).stdout
    assert "no job" in cli.fails(1, "why", "missing")


# ------------------------------------------------------------------- cancel, retry, pause, resume


def test_cancel_and_retry(cli):
    job_id = cli.enqueue("echo")
    assert cli.ok("cancel", job_id).stdout == f"cancelled {job_id}\n"
    assert "already cancelled" in one_line(cli.fails(1, "cancel", job_id))
    assert cli.json("retry", job_id) == {"id": job_id, "status": "pending"}
    assert "only failed or cancelled" in one_line(cli.fails(1, "retry", job_id))
    assert "no job" in cli.fails(1, "cancel", "missing") and "no job" in cli.fails(1, "retry", "missing")
    cli.burst()
    assert cli.json("inspect", job_id)["status"] == "completed"


def test_pause_and_resume_everything(cli):
    job_id = cli.enqueue("echo")
    assert cli.json("pause", "job", job_id, "--reason", "r")["action"] == "paused"
    assert cli.json("inspect", job_id)["status"] == "paused"
    cli.burst()
    assert cli.json("inspect", job_id)["status"] == "paused"
    cli.ok("resume", "job", job_id)
    assert cli.json("inspect", job_id)["status"] == "pending"
    assert "not paused" in cli.fails(1, "resume", "job", job_id)

    cli.ok("pause", "queue", "default")
    cli.burst()
    assert cli.json("inspect", job_id)["status"] == "pending"
    cli.ok("resume", "queue", "default")
    cli.burst()
    assert cli.json("inspect", job_id)["status"] == "completed"
    assert "only unfinished jobs" in cli.fails(1, "pause", "job", job_id)

    cli.ok("pause", "schedule", "tick", "--reason", "quiet")
    assert cli.json("schedules")[0]["paused"] is True
    cli.ok("resume", "schedule", "tick")
    assert cli.json("schedules")[0]["paused"] is False
    assert "no schedule 'nope'" in one_line(cli.fails(1, "pause", "schedule", "nope"))
    assert "no worker 'nope'" in one_line(cli.fails(1, "pause", "worker", "nope", "--aggressive"))
    assert "no worker 'nope'" in one_line(cli.fails(1, "resume", "worker", "nope"))


def test_pause_and_resume_a_live_worker(cli):
    q = cli.queue()
    w = q.worker(queues={"default": 1}, scheduler=False)
    w.start()
    try:
        deadline = time.monotonic() + 20
        while not cli.json("workers") and time.monotonic() < deadline:
            time.sleep(0.05)
        [info] = cli.json("workers")
        assert info["id"] == w.id and info["queues"] == {"default": 1} and info["paused"] is False
        cli.ok("pause", "worker", w.id, "--reason", "look")
        assert cli.json("workers")[0]["paused"] is True
        assert w.id in cli.ok("workers").stdout
        cli.ok("resume", "worker", w.id)
        assert cli.json("workers")[0]["paused"] is False
    finally:
        w.stop(timeout=10)


# ------------------------------------------------------------------- schedules, events, purge


def test_schedules_lists_config_schedules_before_any_scheduler_ran(cli):
    [s] = cli.json("schedules")
    assert s["name"] == "tick" and s["job"] == "echo" and s["last_fire"] is None and s["next_fire"]
    assert set(s) >= {"name", "job", "next_fire", "last_fire", "paused"}
    assert "tick" in cli.ok("schedules").stdout


def test_events_lists_and_filters(cli):
    a = cli.enqueue("echo")
    b = cli.enqueue("echo", "--queue", "slow")
    cli.burst()
    events = cli.json("events")
    assert {e["job_id"] for e in events} >= {a, b}
    assert {e["job_id"] for e in cli.json("events", "--job", a)} == {a}
    assert {e["queue"] for e in cli.json("events", "--queue", "slow")} == {"slow"}
    assert cli.json("events", "--since", "1h") and cli.json("events", "--since", "2999-01-01T00:00:00") == []
    assert a in cli.ok("events").stdout


def test_purge(cli):
    done = cli.enqueue("echo")
    pending = cli.enqueue("echo", "--delay", "1h")
    cli.burst()
    assert cli.json("purge", "--older-than", "1h")["purged"] == 0
    assert cli.json("purge", "--status", "failed", "--older-than", "0s")["purged"] == 0
    assert cli.ok("purge", "--older-than", "0s").stdout == "purged 1 job\n"
    assert "no job" in cli.fails(1, "inspect", done)
    assert cli.json("inspect", pending)["status"] == "pending"


# ----------------------------------------------------------------------------- init and config


def test_init_writes_a_valid_config_and_never_overwrites(cli, tmp_path, monkeypatch):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    assert cli.ok("init", "--database", "sqlite:///app.db").stdout == f"wrote djobs.toml; the database is {fresh}/app.db\n"
    text = (fresh / "djobs.toml").read_text()
    assert 'database = "sqlite:///app.db"' in text
    assert "already exists" in one_line(cli.fails(1, "init"))
    assert (fresh / "djobs.toml").read_text() == text
    cli.ok("init", "--force")
    assert 'database = "sqlite:///djobs.db"' in (fresh / "djobs.toml").read_text()
    assert "ok" in cli.ok("config", "check").stdout
    said = cli.json("--config", "sub/dir/my.toml", "init")
    assert (fresh / "sub/dir/my.toml").is_file()
    assert said == {"path": "sub/dir/my.toml", "database": "sqlite:///djobs.db",
                    "database_location": f"{fresh}/sub/dir/djobs.db", "files": ["sub/dir/my.toml"]}  # fmt: skip
    said = cli.json("--config", "pg.toml", "init", "--database", "postgresql://ann:secret@db.example/app")
    assert said["database_location"] == "postgresql://ann:***@db.example/app"


def test_config_check_good_and_bad(cli, tmp_path):
    out = cli.ok("config", "check").stdout
    assert out.startswith("djobs.toml: ok (5 jobs, 1 workflows, 1 schedules, 2 queues)")
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [djobs]
        modules = ["clijobs", "nosuchmodule_xyz"]
        colour = "blue"
        [schedules.s]
        job = "ghost"
        cron = "every day"
        """))  # fmt: skip
    stderr = cli.fails(78, "--config", str(bad), "config", "check")
    lines = stderr.strip().splitlines()
    assert any("[djobs] colour: unknown key" in line for line in lines)
    assert any("[schedules.s] cron: " in line for line in lines)
    assert any("[djobs] modules: cannot import 'nosuchmodule_xyz'" in line for line in lines)
    assert all(line.startswith(str(bad)) for line in lines) and len(lines) == 3
    r = cli("--json", "--config", str(bad), "config", "check")
    assert r.exit_code == 78 and json.loads(r.stdout)["ok"] is False and len(json.loads(r.stdout)["problems"]) == 3
    assert "config file not found" in cli.fails(78, "--config", "nope.toml", "config", "check")


def test_config_check_without_any_config(cli, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert "no config file" in one_line(cli.fails(78, "config", "check"))
    shown = cli.ok("config", "show").stdout
    assert "defaults" in shown and 'database = "sqlite:///djobs.db"' in shown


def test_config_show_resolves_the_database_override(cli):
    data = cli.json("--database", "sqlite:///other.db", "config", "show")
    assert data["djobs"]["database"] == "sqlite:///other.db" and data["djobs"]["config_file"] == "djobs.toml"
    assert data["jobs"]["tag"] == {"handler": "clijobs:tagged", "queue": "tags", "retries": 1}
    assert '[schedules.tick]' in cli.ok("config", "show").stdout


def test_bad_config_exits_78_with_one_line(cli, tmp_path):
    (tmp_path / "djobs.toml").write_text("[jobs.a]\nhandler = 'x'\n[jobs.b]\nretries = 'many'\n")
    line = one_line(cli.fails(78, "jobs"))
    assert "djobs.toml: [jobs.a] handler: must be 'module:function'" in line and "and 2 more" in line
    # Names are judged where handler code is loaded (the worker, config check, config apply); commands that
    # only read or control the database import no user code and keep working.
    (tmp_path / "djobs.toml").write_text(
        f"[djobs]\ndatabase = '{cli.db_url}'\nmodules = ['clijobs']\n[schedules.s]\njob = 'ghost'\nevery = '1m'\n"
    )
    for command in (["worker", "--burst"], ["config", "apply"]):
        assert "[schedules.s] job: unknown job 'ghost'" in one_line(cli.fails(78, *command))
    assert "[schedules.s] job: unknown job 'ghost'" in cli.fails(78, "config", "check")
    assert cli.ok("jobs").stdout.strip() == "no jobs"


def test_unreachable_postgres_exits_75(cli):
    started = time.monotonic()
    stderr = cli.fails(75, "--database", "postgresql://postgres@127.0.0.1:1/none", "jobs")
    assert one_line(stderr).startswith("djobs: ") and time.monotonic() - started < 10


def test_worker_sends_sd_notify_ready_watchdog_and_stopping(cli, tmp_path):
    import socket

    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.5)
    messages: list[str] = []

    def read() -> None:  # like systemd: read as the messages come, until the worker says it stops
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "STOPPING=1" not in messages:
            try:
                messages.append(server.recv(4096).decode())
            except TimeoutError:
                continue
        try:  # anything sent after STOPPING=1 (a second STOPPING would be a bug)
            while True:
                messages.append(server.recv(4096).decode())
        except TimeoutError:
            return

    job_id = cli.enqueue("nap", "--args", "0.6")
    reader = threading.Thread(target=read)
    reader.start()
    try:
        cli.ok("worker", "--burst", "--queue", "slow", env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
        reader.join(10)
    finally:
        server.close()
    assert messages[0].startswith("READY=1\nSTATUS=serving slow\nMAINPID=")
    assert "WATCHDOG=1" in messages and messages.count("STOPPING=1") == 1
    assert cli.json("inspect", job_id)["status"] == "completed"


def test_sd_notify_abstract_socket_and_absent_socket(monkeypatch):
    import socket
    import uuid

    from djobs.cli.worker import sd_notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    name = "djobs-test-" + uuid.uuid4().hex
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("READY=1") is True
        assert server.recv(100) == b"READY=1"
    finally:
        server.close()
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/socket")
    assert sd_notify("READY=1") is False


def test_worker_takes_drain_and_stale_settings_from_config(cli, tmp_path):
    (tmp_path / "djobs.toml").write_text(
        CONFIG.format(db=cli.db_url) + "\n[worker]\nscheduler = false\ndrain_timeout = 'soon'\n"
    )
    assert "[worker] drain_timeout: bad duration 'soon'" in one_line(cli.fails(78, "worker", "--burst"))
    (tmp_path / "djobs.toml").write_text(CONFIG.format(db=cli.db_url))
    assert "--stale-after: must be more than zero" in cli.fails(2, "worker", "--burst", "--stale-after", "0s")
    assert "--drain-timeout: bad duration" in cli.fails(2, "worker", "--burst", "--drain-timeout", "x")


def test_sd_notify_never_blocks_on_a_full_socket(tmp_path, monkeypatch):
    import socket

    from djobs.cli.worker import sd_notify

    path = tmp_path / "full.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        results = [sd_notify("WATCHDOG=1") for _ in range(2000)]  # nobody reads: the queue fills up
    finally:
        server.close()
    assert results[0] is True and results[-1] is False


def test_init_example_etl_writes_a_working_project(cli, tmp_path, monkeypatch):
    fresh = tmp_path / "etl"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    said = cli.json("init", "--example", "etl", "--database", "sqlite:///etl.db")
    assert said["files"] == ["djobs.toml", "examples/etl.py", "examples/systemd/djobs-worker@.service",
                             "examples/crontab"]  # fmt: skip
    assert said["database_location"] == f"{fresh}/etl.db"
    assert 'database = "sqlite:///etl.db"' in (fresh / "djobs.toml").read_text()
    assert "already exist" in one_line(cli.fails(1, "init", "--example", "etl"))
    assert "no example 'nope'" in one_line(cli.fails(2, "init", "--example", "nope", "--force"))
