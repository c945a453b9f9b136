"""What a careless or hostile user can send the command line, and what it answers: one line and the
documented exit code, nothing written, and stored text that can never drive the terminal.

CliRunner on both backends (the real executable's share is in test_cli_subprocess.py).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import djobs
from djobs.cli import app

HANDLERS = """
import djobs

@djobs.job("echo", retries=0)
def echo(args):
    return args

@djobs.job("needs-dict", retries=0)
def needs_dict(args: dict):
    return len(args)

@djobs.job("boom", retries=0)
def boom(args):
    raise djobs.NoRetry("it broke")
"""


class Cli:
    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url

    def __call__(self, *args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "100"})

    def ok(self, *args: str) -> Any:
        r = self(*args)
        assert r.exit_code == 0, (args, r.exit_code, r.output, r.exception)
        return r

    def fails(self, code: int, *args: str) -> str:
        r = self(*args)
        assert r.exit_code == code, (args, r.exit_code, r.output, r.exception)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("djobs: ") and "Traceback" not in r.output, r.stderr
        return lines[0]

    def queue(self) -> djobs.Queue:
        return djobs.Queue(djobs.connect(self.url))


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    (tmp_path / "robustjobs.py").write_text(HANDLERS)
    (tmp_path / "djobs.toml").write_text(f'[djobs]\ndatabase = "{db_url}"\nmodules = ["robustjobs"]\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = list(sys.path)
    yield Cli(tmp_path, db_url)
    sys.path[:] = path
    sys.modules.pop("robustjobs", None)


# --------------------------------------------------------------------------------- control characters

EVIL = "q\x1b[2J\x1b]0;pwned\x07\u202eevil"
HANDLERS_EVIL = """
import djobs

@djobs.job("evil-fail", retries=0)
def evil_fail(args):
    raise djobs.NoRetry(args["text"])
"""


def test_stored_control_characters_are_shown_escaped(cli, tmp_path):
    """Args, results, errors, pause reasons and event data hold whatever their writers sent."""
    (tmp_path / "eviljobs.py").write_text(HANDLERS_EVIL)
    (tmp_path / "djobs.toml").write_text(
        (tmp_path / "djobs.toml").read_text().replace('["robustjobs"]', '["robustjobs", "eviljobs"]')
    )
    args = json.dumps({"text": EVIL})
    job_id = cli.ok("enqueue", "echo", "--args", args).stdout.strip()
    failed = cli.ok("enqueue", "evil-fail", "--args", args).stdout.strip()
    cli.ok("worker", "--burst")
    cli.ok("pause", "queue", "default", "--reason", EVIL)
    held = cli.ok("enqueue", "echo").stdout.strip()
    cli.ok("pause", "job", held, "--reason", EVIL)
    outputs = [cli.ok(*a).stdout for a in (["jobs"], ["inspect"], ["inspect", job_id], ["inspect", failed],
                                           ["why", held], ["events"], ["why", failed], ["--wide", "jobs"])]  # fmt: skip
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, out
    assert all(any("q\\x1b[2J" in out for out in group) for group in (outputs[1:2], outputs[2:4], outputs[4:5]))
    assert "\\u202eevil" in outputs[3] and "\\u202eevil" in outputs[6]  # the error, in inspect and why
    assert json.loads(cli.ok("--json", "inspect", job_id).stdout)["result"] == {"text": EVIL}  # JSON keeps it
    sys.modules.pop("eviljobs", None)


def test_arguments_echoed_back_are_escaped(cli):
    assert "\x1b" not in cli.fails(1, "cancel", "x\x1b[31m")
    assert "\x1b" not in cli.fails(2, "frob\x1bnicate")
    said = cli("pause", "queue", "a\x1bb", "--force")  # refused by the library, or stored and echoed
    assert "\x1b" not in said.stdout + said.stderr and said.exit_code in (0, 2)


# ------------------------------------------------------------------------------------- enqueue input

@pytest.mark.parametrize(
    ("at", "ok"),
    [
        ("9999-12-31T23:59:59-05:00", False),  # year 10000 in UTC
        ("0001-01-01T00:00:00+05:00", False),  # before year 1 in UTC
        ("1969-12-31T23:59:59Z", False),
        ("1970-01-01T00:00:00Z", True),
        ("9999-12-30T00:00:00Z", True),
    ],
)
def test_at_must_fall_within_years_1970_to_9999(cli, at, ok):
    if ok:
        job_id = cli.ok("enqueue", "echo", "--at", at).stdout.strip()
        assert cli.queue().get_job(job_id).run_at == datetime.fromisoformat(at).astimezone(UTC)
        assert cli.ok("jobs").stdout and cli.ok("inspect", job_id).stdout  # readers are fine with it
    else:
        assert "out of range (times must fall within years 1970 to 9999 UTC)" in cli.fails(2, "enqueue", "echo", "--at", at)
        assert cli.queue().list_jobs() == []


def test_enqueue_without_args_means_null_and_says_so(cli):
    job_id = cli.ok("enqueue", "echo").stdout.strip()
    assert cli.queue().get_job(job_id).args is None
    said = cli.fails(2, "enqueue", "needs-dict")
    assert "job type 'needs-dict' needs args" in said and "without --args the args are null" in said
    assert cli.ok("enqueue", "needs-dict", "--args", "{}").stdout.strip()


def test_enqueue_wait_failure_is_said_once(cli):
    q = cli.queue()
    q.register("boom", lambda args: (_ for _ in ()).throw(djobs.NoRetry("it broke")))
    w = q.worker(queues={"default": 1}, scheduler=False)
    w.start()
    try:
        said = cli.fails(1, "enqueue", "boom", "--args", '"x"', "--wait", "--timeout", "60")
    finally:
        w.stop(timeout=10)
    assert said.count("failed") == 1 and said.endswith("it broke"), said


def test_bad_database_urls_are_one_line(cli, tmp_path):
    said = cli.fails(2, "--database", "postgresql://postgres@127.0.0.1:5432/test?bogus=1", "jobs")
    assert "bad database URL" in said and "bogus" in said
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n" * 100)
    said = cli.fails(2, "--database", f"sqlite:///{tmp_path}/notes.db", "jobs")
    assert "is not an SQLite database" in said
    (tmp_path / "bad.toml").write_text(f'[djobs]\ndatabase = "sqlite:///{tmp_path}/notes.db"\n')
    assert "is not an SQLite database" in cli.fails(78, "--config", "bad.toml", "jobs")
    assert (tmp_path / "notes.db").read_text().startswith("these are my notes")  # never touched


# ----------------------------------------------------------------------------------- pause and resume

def test_pause_refuses_a_queue_djobs_does_not_know(cli, tmp_path):
    said = cli.fails(1, "pause", "queue", "emials")
    assert "no queue 'emials'" in said and "--force" in said and "default" in said
    assert cli.queue().paused_queues() == []
    cli.queue().enqueue("echo", None, queue="emails")
    cli.ok("pause", "queue", "emails")  # it has jobs: known
    cli.ok("pause", "queue", "later", "--force")
    assert cli.queue().paused_queues() == ["emails", "later"]
    (tmp_path / "djobs.toml").write_text(
        (tmp_path / "djobs.toml").read_text() + '[queues.reports]\n[jobs.t]\nhandler = "robustjobs:echo"\nqueue = "tq"\n'
    )
    cli.ok("pause", "queue", "reports")  # named by the config
    cli.ok("pause", "queue", "tq")  # a config job's queue
    cli.ok("resume", "queue", "reports")
    assert "queue 'reports' is not paused" in cli.fails(1, "resume", "queue", "reports")


# ------------------------------------------------------------------------------------------ schedules

def test_an_overdue_schedule_says_so(capsys):
    from djobs.cli import render

    now = datetime.now(UTC)
    info = djobs.ScheduleInfo(
        name="tick", job="echo", spec="every 300s", args=None, queue="default", priority=0, timezone=None,
        paused=False, last_fire=None, next_fire=now - timedelta(minutes=13),
    )  # fmt: skip
    render.schedules_table([info, dataclasses.replace(info, name="later", next_fire=now + timedelta(hours=2))])
    out = capsys.readouterr().out
    tick = next(line for line in out.splitlines() if line.startswith("tick"))
    later = next(line for line in out.splitlines() if line.startswith("later"))
    assert "(overdue by 13m)" in tick and "overdue" not in later and "(in 2.0h)" in later


def test_config_schedules_are_listed_before_they_are_applied_and_applied_by_config_apply(cli, tmp_path):
    (tmp_path / "djobs.toml").write_text(
        (tmp_path / "djobs.toml").read_text() + '[schedules.nightly]\njob = "echo"\ndaily = "02:00"\n'
    )
    [listed] = json.loads(cli.ok("--json", "schedules").stdout)
    assert listed["name"] == "nightly" and listed["applied"] is False and listed["next_fire"]
    assert "not applied yet" in cli.ok("schedules").stdout
    assert cli.queue().schedules() == []  # reading wrote nothing
    done = json.loads(cli.ok("--json", "config", "apply").stdout)
    assert done["added"] == ["nightly"] and done["removed"] == []
    assert [s.name for s in cli.queue().schedules()] == ["nightly"]
    assert json.loads(cli.ok("--json", "config", "apply").stdout)["unchanged"] == ["nightly"]
    assert "schedules 0 added, 0 updated, 1 unchanged, 0 removed" in cli.ok("config", "apply").stdout


# -------------------------------------------------------------------------------------- config check

@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import sys\nsys.exit(3)\n", "it called sys.exit(3) while being imported"),
        ("class Stop(BaseException):\n    pass\nraise Stop('no')\n", "Stop: no"),
        ("raise SystemExit\n", "it called sys.exit(None)"),
        ("raise GeneratorExit('odd')\n", "GeneratorExit: odd"),
    ],
)
def test_a_module_that_exits_or_raises_anything_at_import_is_a_config_error(cli, tmp_path, body, expected):
    name = "mod_" + str(abs(hash(body)))
    (tmp_path / f"{name}.py").write_text(body)
    (tmp_path / "djobs.toml").write_text(f'[djobs]\ndatabase = "{cli.url}"\nmodules = ["{name}"]\n')
    r = cli("config", "check")
    [line] = r.stderr.strip().splitlines()
    assert r.exit_code == 78 and line.startswith(f"djobs.toml: [djobs] modules: cannot import '{name}': {expected}")
    assert expected in cli.fails(78, "worker", "--burst")
    assert cli.ok("jobs").stdout  # commands that run no user code are unaffected


def test_wrong_handler_signature_and_workflow_cycles_fail_config_check(cli, tmp_path):
    (tmp_path / "shapes.py").write_text("def three(a, b, c):\n    return 1\n")
    (tmp_path / "djobs.toml").write_text(textwrap.dedent(f"""
        [djobs]
        database = "{cli.url}"
        modules = ["robustjobs"]
        [jobs.bad]
        handler = "shapes:three"
        [workflows.w1]
        steps = ["echo", "w2"]
        [workflows.w2]
        steps = ["w3"]
        [workflows.w3]
        steps = ["w1"]
        """))  # fmt: skip
    r = cli("config", "check")
    assert r.exit_code == 78
    lines = r.stderr.strip().splitlines()
    assert any("[jobs.bad] handler: shapes:three: handler 'bad' must take (ctx, args), (args) or nothing" in x for x in lines)
    assert any("[workflows.w1] steps: workflows call each other in a cycle: w1 → w2 → w3 → w1" in x for x in lines)
    assert len(lines) == 2, lines
    assert cli("worker", "--burst").exit_code == 78


def test_config_check_counts_jobs_registered_by_modules(cli):
    assert cli.ok("config", "check").stdout.startswith("djobs.toml: ok (3 jobs, 0 workflows")


# ------------------------------------------------------------------------------------------ output

def test_tables_are_never_cut_in_a_pipe(cli):
    long_type_queue = "queue-with-a-rather-long-name-" + "x" * 40
    cli.ok("enqueue", "echo", "--queue", long_type_queue)
    cli.ok("worker", "--burst", "--queue", long_type_queue)
    out = CliRunner().invoke(app, ["jobs"], env={"COLUMNS": "60"}).stdout
    assert long_type_queue in out and "…" not in out
    events = CliRunner().invoke(app, ["events"], env={"COLUMNS": "60"}).stdout
    assert long_type_queue in events


def test_huge_args_and_concurrencies_are_refused(cli, tmp_path):
    assert "more than 16 MiB of JSON" in cli.fails(2, "enqueue", "echo", "--args", "@/dev/zero")
    (tmp_path / "big.json").write_text('"' + "x" * (17 << 20) + '"')
    assert "more than 16 MiB" in cli.fails(2, "enqueue", "echo", "--args", "@big.json")
    assert "from 1 to 10000" in cli.fails(2, "worker", "--burst", "--queue", f"default:{10**12}")
    assert "out of range" in cli.fails(2, "worker", "--burst", "-c", "10001")
    assert cli.queue().list_jobs() == []


def _has(cls: Any, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(cls)}


def test_a_schedule_removed_from_the_config_is_deleted_on_apply(cli, tmp_path):
    if not _has(djobs.ScheduleInfo, "source"):
        pytest.skip("the library does not record schedule sources yet")
    base = (tmp_path / "djobs.toml").read_text()
    (tmp_path / "djobs.toml").write_text(
        base + '[schedules.a]\njob = "echo"\nevery = "1h"\n[schedules.b]\njob = "echo"\ndaily = "02:00"\n'
    )
    q = cli.queue()
    q.register("echo", lambda args: args)
    q.schedule("echo", djobs.every(timedelta(minutes=5)), name="from-code")
    assert json.loads(cli.ok("--json", "config", "apply").stdout)["added"] == ["a", "b"]
    (tmp_path / "djobs.toml").write_text(base + '[schedules.a]\njob = "echo"\nevery = "1h"\n')
    done = json.loads(cli.ok("--json", "config", "apply").stdout)
    assert done["removed"] == ["b"] and done["unchanged"] == ["a"]
    assert sorted(s.name for s in q.schedules()) == ["a", "from-code"]  # the code's schedule is left alone
    assert {s["name"]: s["source"] for s in json.loads(cli.ok("--json", "schedules").stdout)} == {
        "a": "config", "from-code": "api"
    }

