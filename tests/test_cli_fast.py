"""The typer-free fast path (djobs/cli/fast.py) answers exactly as the Typer app: the real `djobs`
executable against `main()` of djobs/cli/app.py (the Typer app alone), same stdout, stderr, exit code and
job row, for enqueue command lines, the read commands and Tab presses in each shell."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DJOBS = Path(sys.executable).with_name("djobs")
TYPER = [sys.executable, "-c", "from djobs.cli.app import main; main()"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Spans counted from now move with the clock between the two runs (it once read 54625.2h, then 54625.3h).
SPAN = re.compile(r"\b(waiting|waited|in) \d+(\.\d+)?[smhd]\b|\b\d+(\.\d+)?[smhd] ago\b")

CONFIG = """
[djobs]
modules = ["producermods"]

[queues.emails]

[jobs.send-email]
handler = "sendmail:send"
queue = "emails"
"""


def _env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DJOBS_", "_DJOBS_", "COMP_", "_TYPER_"))}
    e.update(COLUMNS="200", **extra)
    return e


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "djobs.toml").write_text(CONFIG)
    (root / "sendmail.py").write_text("import sys\nprint('sendmail imported', file=sys.stderr)\ndef send(a): pass\n")
    (root / "producermods.py").write_text("import djobs\n@djobs.job('resize')\ndef resize(args):\n    return args\n")
    (root / "args.json").write_text('{"from": "file"}')
    return root


def _row(root: Path, job_id: str) -> dict:
    import djobs

    queue = djobs.Queue(djobs.connect(f"sqlite:///{root / 'djobs.db'}"))
    try:
        job = queue.get_job(job_id)
        return {k: _recent(v) for k, v in json.loads(json.dumps(vars(job), default=str)).items() if k != "id"}
    finally:
        queue.storage.close()


def _recent(value: object) -> object:
    """Times within a day of now (creation, a --delay, a unique key's end) as "recent"; others kept."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return value
    return "recent" if t.tzinfo and abs((t - datetime.now(UTC)).total_seconds()) < 86400 else value


def _both(tmp: Path, args: list[str], env: dict[str, str], stdin: str = "", db: Path | None = None) -> None:
    """Run `args` through the executable and through the Typer app in twin projects (each with a copy of
    the database `db`, if given); assert the same output and, with `db`, the same database after."""
    fast_root, typer_root = _project(tmp / "fast"), _project(tmp / "typer")
    if db is not None:
        for root in (fast_root, typer_root):
            _copy_db(db, root / "djobs.db")
    out = []
    for root, argv in ((fast_root, [str(DJOBS)]), (typer_root, TYPER)):
        done = subprocess.run([*argv, *args], cwd=root, env=env, input=stdin, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        ids = UUID.findall(done.stdout)
        rows = [_row(root, i) for i in ids]
        state = _state(root / "djobs.db") if db is not None else None
        shown = SPAN.sub("SPAN", UUID.sub("ID", done.stdout))
        out.append((done.returncode, shown, done.stderr, rows, state))
    assert out[0] == out[1], args


def _state(path: Path) -> dict[str, list[tuple]]:
    """Every row of the database but its clock readings (and the worker leases' holders)."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'djobs%'")]
        state: dict[str, list[tuple]] = {}
        for table in sorted(set(tables) - {"djobs_leases", "djobs_key_buckets"}):
            cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")
                    if not r[1].endswith(("_at", "_fire", "ts", "_until")) and r[1] != "data"]  # fmt: skip
            state[table] = sorted(db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)
        return state
    finally:
        db.close()


ENQUEUES = [
    ["enqueue", "send-email", "--args", '{"to": "a@example.com"}'],
    ["enqueue", "resize", "--args", "[1, 2]", "-q", "other", "-p", "5", "--retries=3", "--key", "k:1"],
    ["--json", "enqueue", "send-email", "--meta", "a=1", "--meta", "b=2", "--unique", "u", "--unique-for", "1h"],
    ["enqueue", "send-email", "--json", "--at", "2030-01-01T00:00:00Z", "--time-limit", "5m", "--if-exists", "skip"],
    ["enqueue", "send-email", "--args", "@args.json", "--priority", "1", "--priority", "2"],
    ["enqueue", "send-email", "--args", "-"],
    ["--database", "sqlite:///djobs.db", "enqueue", "send-email", "--delay", "30s"],
    ["enqueue", "send-email", "--args", "{bad"],
    ["enqueue", "nosuchtype"],
    ["enqueue", "send-email", "--delay", "5m", "--at", "2030-01-01"],
    ["enqueue", "send-email", "--unique-for", "1h"],
    ["enqueue", "send-email", "--priority", "99999999999"],
    ["enqueue", "send-email", "--priority", "3.0"],
    ["enqueue", "send-email", "--if-exists", "nope"],
    ["enqueue", "send-email", "--bogus"],
    ["enqueue", "send-email", "extra"],
    ["enqueue"],
    ["enqueue", "--help"],
    ["enqueue", "--", "send-email"],
    ["enqueue", "send-email", "--timeout", "3"],
    ["enqueue", "send-email", "--meta", "novalue"],
    ["enqueue", "send-email", "--time-limit", "0s"],
    ["enqueue", "send-email", "--args"],
    ["--config", "missing.toml", "enqueue", "send-email"],
    ["enqueue", ""],
    ["enqueue", "t\u202eype\x1b[31m"],
    ["enqueue", "send-email", "--retries", "-1"],
    ["enqueue", "send-email", "--json", "--wide", "--queue="],
]


@pytest.mark.parametrize("args", ENQUEUES, ids=lambda a: " ".join(a)[:60])
def test_enqueue_answers_as_the_typer_app(tmp_path, args):
    _both(tmp_path, args, _env(), stdin='{"from": "stdin"}')


def test_enqueue_reads_the_environment_as_the_typer_app(tmp_path):
    _both(tmp_path, ["enqueue", "send-email"], _env(DJOBS_ENQUEUE_QUEUE="envq", DJOBS_CONFIG="djobs.toml"))
    _both(tmp_path / "2", ["enqueue", "send-email"], _env(DJOBS_ENQUEUE_PRIORITY="7", DJOBS_JSON="1"))


_WORDS = st.sampled_from(["send-email", "resize", "--args", "--queue", "-q", "--priority", "-p", "--retries",
                          "--delay", "--at", "--unique", "--unique-for", "--if-exists", "--meta", "--key", "--json",
                          "--wide", "--", "-", "=", "--args=[]", "-p1", "1", "-1", "5m", "a=b", '{"a": 1}', "[",
                          "skip", "return", "2030-01-01", "--time-limit", "--wait", "--help", "x\u202ey"])  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(_WORDS, max_size=7))
def test_any_enqueue_command_line_answers_as_the_typer_app(tmp_path_factory, words):
    _both(tmp_path_factory.mktemp("fuzz"), ["enqueue", *words], _env())


def test_enqueue_imports_no_typer_driver_dashboard_or_handler_code(tmp_path):
    root = _project(tmp_path)
    done, modules = _modules(root, ["enqueue", "send-email", "--args", "{}"], _env())
    assert done.returncode == 0 and UUID.fullmatch(done.stdout.strip()), done.stderr[-2000:]
    assert {"djobs.cli.fast", "djobs.cli.produce", "peewee"} <= modules  # the parse worked: it ran here
    heavy = {m for m in modules if m.split(".")[0] in ("typer", "click", "textual", "rich", "psycopg", "psycopg2",
                                                        "sendmail", "producermods", "pydantic")}  # fmt: skip
    assert heavy == set()
    assert "sendmail imported" not in done.stderr
    # nor the records a producer never makes (their dataclasses are made on first use)
    assert {"djobs.info", "djobs.event_types", "djobs.outcomes", "djobs.schedule"} & modules == set()


def _copy_db(source: Path, target: Path) -> None:
    """A copy of the SQLite database `source`, with what is still in its write-ahead log."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


PAST = 1_600_000_000.0  # 2020-09-13: every time in the seeded database, so ages read the same in both runs


def _seeded(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A database with a pending, a delayed, a failed, a cancelled and a paused job, their events, a
    stopped worker, a paused queue and a schedule, every time in it moved to PAST; and the jobs' ids."""
    import sqlite3

    import djobs

    path = tmp / "seed.db"
    queue = djobs.Queue(djobs.connect(f"sqlite:///{path}"))
    try:
        queue.register("send-email", lambda args: None, queue="emails")

        def decline(args: object) -> None:
            raise RuntimeError("card declined")

        queue.register("charge", decline, queue="payments", retries=0)
        ids = {"pending": queue.enqueue("send-email", {"to": "a@example.com"}, unique="mail:a", meta={"t": "1"})}
        ids["delayed"] = queue.enqueue("send-email", {"to": "b@example.com"}, at=datetime(2030, 1, 1, tzinfo=UTC))
        ids["failed"] = queue.enqueue("charge", {"n": 1})
        ids["cancelled"] = queue.enqueue("send-email", [1, 2])
        queue.cancel_job(ids["cancelled"])
        ids["paused"] = queue.enqueue("send-email", {"to": "c@example.com"}, key="tenant:1")
        queue.pause_job(ids["paused"], reason="checking")
        queue.pause_queue("reports", reason="quarter end")
        queue.schedule("send-email", djobs.every(timedelta(hours=24)), name="nightly")
        queue.worker(queues={"payments": 1}, burst=True, poll_interval=0.05).run()
    finally:
        queue.storage.close()
    db = sqlite3.connect(path)
    try:
        for table, cols in (("djobs_jobs", "created_at updated_at started_at completed_at last_heartbeat_at"),
                            ("djobs_events", "ts"), ("djobs_workers", "started_at heartbeat_at stopped_at"),
                            ("djobs_schedules", "created_at last_fire next_fire")):
            for col in cols.split():
                db.execute(f"UPDATE {table} SET {col} = {PAST} WHERE {col} IS NOT NULL")
        db.execute(f"UPDATE djobs_jobs SET run_at = {PAST} WHERE run_at < 1800000000")
        db.commit()
    finally:
        db.close()
    return path, ids


READS = [
    ["jobs"], ["jobs", "--status", "pending"], ["jobs", "-q", "emails", "-t", "send-email", "-n", "1"],
    ["--json", "jobs"], ["jobs", "--wide", "--status=failed"], ["jobs", "--status", "bogus"], ["jobs", "-n", "0"],
    ["jobs", "-n", "1e3"], ["jobs", "extra"], ["jobs", "--help"], ["why", "{pending}"], ["why", "{delayed}"],
    ["--json", "why", "{failed}"], ["why", "no-such-id"], ["why"], ["inspect"], ["inspect", "{failed}"],
    ["--json", "inspect", "{cancelled}"], ["inspect", "nope"], ["workers"], ["workers", "-a"],
    ["workers", "--all", "--json"], ["schedules"], ["--json", "schedules"],
    ["--database", "sqlite:///elsewhere.db", "jobs"], ["--config", "missing.toml", "workers"], ["health"],
    ["health", "-q", "emails", "-q", "payments", "--max-lag", "9999d"], ["--json", "health", "--queue=nope"],
    ["health", "--max-lag", "0s"], ["health", "-q", " "], ["health", "--max-lag", "soon"],
    ["--database", "sqlite:///new.db", "health"], ["events"], ["--json", "events", "--job", "{failed}"],
    ["events", "-q", "payments", "--since", "2020-01-01"], ["events", "--since", "never"], ["events", "-f", "--help"],
    ["limits"], ["limits", "emails"], ["limits", "show", "emails"], ["--json", "limits"], ["limits", "a", "b"],
    ["limits", "nosuch-sub", "--rate"], ["dlq"], ["dlq", "-q", "payments", "-n", "1"], ["--json", "dlq", "-t", "x"],
]
CHANGES = [
    ["cancel", "{pending}"], ["cancel", "{failed}"], ["cancel", "no-such-id"], ["--json", "cancel", "{delayed}"],
    ["retry", "{failed}"], ["retry", "{pending}"], ["--json", "retry", "{cancelled}"], ["retry"],
    ["purge", "--older-than", "1d"], ["purge", "--older-than", "1d", "--status", "failed", "--status", "cancelled"],
    ["purge"], ["purge", "--older-than", "-1d"], ["purge", "--older-than", "1d", "--status", "pending"],
    ["signal", "{pending}", "approved", "--payload", '{"by": "ann"}'], ["signal", "{failed}", "approved"],
    ["signal", "{pending}", "go", "--payload", "-"], ["signal", "{pending}", "go", "--payload", "{bad"],
    ["signal", "{pending}"], ["pause", "job", "{pending}", "--reason", "hold on"], ["pause", "job", "{failed}"],
    ["pause", "job", "{delayed}", "--aggressive"], ["pause", "queue", "emails"], ["pause", "queue", "typo"],
    ["pause", "queue", "typo", "--force", "--reason", "later"], ["pause", "worker", "nobody"],
    ["pause", "schedule", "nightly"], ["pause"], ["pause", "everything"], ["resume", "job", "{pending}"],
    ["resume", "job", "{paused}"], ["--json", "resume", "queue", "reports"], ["resume", "queue", "emails"], ["resume", "worker", "nobody"], ["resume", "schedule", "nightly"],
    ["limits", "set", "emails", "--rate", "5/s", "--running", "2"], ["limits", "set", "emails"],
    ["limits", "set", "emails", "--key-rate", "lots"], ["limits", "set", "emails", "--running", "-1"],
    ["--json", "limits", "set", "emails", "--key-running", "1"], ["limits", "clear", "emails"],
    ["dlq", "requeue"], ["--json", "dlq", "requeue", "-q", "payments", "--since", "1h"],
    ["dlq", "-q", "payments", "requeue"], ["dlq", "requeue", "--since", "someday"], ["schedules", "rm", "nightly"],
    ["schedules", "rm", "nightly", "--force"], ["schedules", "rm"],
]  # fmt: skip


@pytest.mark.parametrize("args", READS + CHANGES, ids=lambda a: " ".join(a)[:60])
def test_a_command_without_handler_code_answers_as_the_typer_app(tmp_path, args):
    db, ids = _seeded(tmp_path)
    filled = [ids[a[1:-1]] if a[1:-1] in ids and a[0] + a[-1] == "{}" else a for a in args]
    _both(tmp_path, filled, _env(), stdin='{"from": "stdin"}', db=db)


def test_reads_take_their_options_from_the_environment_as_the_typer_app(tmp_path):
    db, _ = _seeded(tmp_path)
    _both(tmp_path / "1", ["jobs"], _env(DJOBS_JOBS_STATUS="failed", DJOBS_JOBS_QUEUE="payments"), db=db)
    _both(tmp_path / "2", ["jobs"], _env(DJOBS_JOBS_LIMIT="1", DJOBS_JSON="1"), db=db)
    _both(tmp_path / "3", ["workers"], _env(DJOBS_WORKERS_ALL="true"), db=db)
    _both(tmp_path / "4", ["health"], _env(DJOBS_HEALTH_MAX_LAG="5m", DJOBS_HEALTH_QUEUE="emails"), db=db)


def test_a_command_without_handler_code_imports_no_typer_driver_or_handler_code(tmp_path):
    db, ids = _seeded(tmp_path)
    root = _project(tmp_path / "p")
    _copy_db(db, root / "djobs.db")
    lines = (["jobs"], ["why", ids["pending"]], ["inspect"], ["inspect", ids["failed"]], ["workers"], ["schedules"],
             ["health", "-q", "nope"], ["events"], ["limits"], ["dlq"], ["dlq", "-q", "payments", "-n", "5"],
             ["limits", "emails"], ["pause", "job", ids["pending"]],
             ["resume", "job", ids["pending"]], ["cancel", ids["delayed"]], ["retry", ids["failed"]],
             ["signal", ids["pending"], "go"], ["limits", "set", "emails", "--rate", "1/s"], ["dlq", "requeue"],
             ["purge", "--older-than", "1d"], ["schedules", "rm", "nightly"])  # fmt: skip
    for args in lines:
        done, modules = _modules(root, args, _env())
        assert done.returncode == 0 and done.stdout.strip(), (args, done.stderr[-2000:])
        assert {"djobs.cli.fast", "peewee"} <= modules and {"djobs.cli.reads", "djobs.cli.acts"} & modules, args
        heavy = {m for m in modules if m.split(".")[0] in ("typer", "click", "textual", "rich", "psycopg", "sendmail",
                                                            "producermods", "pydantic")}  # fmt: skip
        assert heavy == set(), args


def _modules(root: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `djobs ARGS` as the console script does; also what it had imported when it exited."""
    program = ("import atexit, sys\n"
               "atexit.register(lambda: print('MODULES', *[m for m, v in sys.modules.items() if v is not None],"
               " file=sys.stderr))\n"
               f"sys.argv = ['djobs', *{args!r}]\nfrom djobs.cli import main\nmain()\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", program], cwd=root, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES "))
    return done, set(line.split()[1:])


def _tab_env(shell: str, line: str, **extra: str) -> dict[str, str]:
    if shell == "bash":
        words = line.split(" ")
        return _env(_DJOBS_COMPLETE="complete_bash", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1), **extra)
    return _env(_DJOBS_COMPLETE=f"complete_{shell}", _TYPER_COMPLETE_ARGS=line, **extra)


TABS = ["djobs enqueue se", "djobs enqueue ", "djobs enqueue --queue ", "djobs enqueue --queue=em", "djobs ",
        "djobs pa", "djobs pause ", "djobs pause job ", "djobs cancel ", "djobs enqueue --", "djobs enqueue -q x --",
        "djobs --json jobs --status ", "djobs enqueue --if-exists ", "djobs completion show ", "djobs nosuch ",
        "djobs enqueue send-email ", "djobs --config djobs.toml enqueue r", "djobs enqueue -- ", "djobs schedules rm "]  # fmt: skip


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_tab_answers_as_the_typer_app_in_each_shell(tmp_path, shell):
    root = _project(tmp_path)
    subprocess.run([str(DJOBS), "enqueue", "send-email"], cwd=root, env=_env(), check=True, capture_output=True)
    subprocess.run([str(DJOBS), "enqueue", "resize", "--queue", "reports"], cwd=root, env=_env(), check=True,
                   capture_output=True)  # fmt: skip
    checked = 0
    for line in TABS:
        for action in (("get-args", "is-args") if shell == "fish" else ("",)):
            env = _tab_env(shell, line, _TYPER_COMPLETE_FISH_ACTION=action) if action else _tab_env(shell, line)
            fast, typer = (subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=60)
                           for argv in ([str(DJOBS)], TYPER))  # fmt: skip
            assert (fast.returncode, fast.stdout, fast.stderr) == (typer.returncode, typer.stdout, typer.stderr), line
            checked += bool(fast.stdout.strip())
    assert checked >= len(TABS) // 2  # most lines offer something: the comparison is not of empty answers


def test_a_tab_on_a_value_imports_no_typer(tmp_path):
    root = _project(tmp_path)
    subprocess.run([str(DJOBS), "enqueue", "send-email"], cwd=root, env=_env(), check=True, capture_output=True)
    done, modules = _modules(root, [], _tab_env("bash", "djobs enqueue se"))
    assert done.returncode == 0 and done.stdout == "send-email\n", done.stderr[-2000:]
    assert "djobs.cli.fast" in modules and not {m for m in modules if m.split(".")[0] in ("typer", "sendmail")}


SITE = """
import atexit, os, threading, time
out = os.environ["DJOBS_TEST_MARKS"]
atexit.register(lambda: open(os.path.join(out, "atexit"), "w").close())
if os.environ.get("DJOBS_TEST_THREAD"):
    def late():
        time.sleep(0.3)
        open(os.path.join(out, "thread"), "w").close()
    threading.Thread(target=late).start()  # not a daemon: an ordinary exit waits for it
"""


@pytest.mark.parametrize("thread", [False, True])
def test_the_quick_exit_runs_exit_hooks_and_waits_for_threads_it_did_not_start(tmp_path, thread):
    # The executable leaves without the interpreter's teardown once no user code ran; what the
    # environment set up at start-up (an exporter's flush hook, a thread) must still see an ordinary exit.
    root, site, marks = _project(tmp_path / "p"), tmp_path / "site", tmp_path / "marks"
    site.mkdir()
    marks.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    env = _env(PYTHONPATH=str(site), DJOBS_TEST_MARKS=str(marks), **({"DJOBS_TEST_THREAD": "1"} if thread else {}))
    done = subprocess.run([str(DJOBS), "enqueue", "send-email", "--args", "{}"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and UUID.fullmatch(done.stdout.strip()), done.stderr[-2000:]
    assert (marks / "atexit").exists()
    assert (marks / "thread").exists() == thread
    assert _row(root, done.stdout.strip())["queue"] == "emails"
