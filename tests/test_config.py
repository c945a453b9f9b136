"""djobs.toml: discovery, validation naming file/table/key, imports, and `check` reporting every problem."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from djobs import config as cfg
from djobs.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Undo sys.path and sys.modules changes made by importing handler modules from tmp dirs."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if not name.startswith("djobs"):  # djobs's own modules hold state (the @djobs.job registry)
            del sys.modules[name]


def write(tmp_path: Path, text: str, name: str = "djobs.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def handler_module(tmp_path: Path, body: str) -> str:
    """A uniquely named module next to the config; returns its name."""
    name = "h_" + uuid.uuid4().hex[:10]
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return name


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(cfg.ConfigProblems) as info:
        cfg.load(path)
    return info.value.problems


# ------------------------------------------------------------------------------------------- discovery


def test_discover_prefers_explicit_then_local_then_xdg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert cfg.discover(None) is None
    (xdg / "djobs").mkdir(parents=True)
    (xdg / "djobs" / "djobs.toml").write_text("")
    assert cfg.discover(None) == xdg / "djobs" / "djobs.toml"
    (tmp_path / "djobs.toml").write_text("")
    assert cfg.discover(None) == Path("djobs.toml")
    other = write(tmp_path, "", "other.toml")
    assert cfg.discover(str(other)) == other


def test_discover_explicit_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml: config file not found"):
        cfg.discover(str(tmp_path / "missing.toml"))


# ------------------------------------------------------------------------------------------ validation


def test_full_config_loads(tmp_path):
    conf = cfg.load(
        write(
            tmp_path,
            """
            [djobs]
            database = "sqlite:///x.db"
            modules = ["a.b", "c"]
            [queues.default]
            concurrency = 3
            [queues.emails]
            [worker]
            scheduler = false
            drain_timeout = "1m"
            stale_after = 10
            [tui]
            refresh = 0.5
            [jobs.send-email]
            handler = "myapp.jobs:send_email"
            queue = "emails"
            retries = 5
            priority = 2
            [schedules.cleanup]
            job = "send-email"
            cron = "*/5 * * * *"
            timezone = "Europe/Paris"
            args = {x = 1}
            [workflows.etl]
            steps = ["a", { fan_out = "b", over = "items" }, { fan_out = "c" }]
            retries = 1
            """,
        )
    )
    assert conf.database == f"sqlite:///{tmp_path}/x.db"  # relative to the config file, not the cwd
    assert conf.modules == ("a.b", "c")
    assert conf.queues == {"default": 3, "emails": 10}
    assert conf.scheduler is False and conf.drain_timeout == 60 and conf.stale_after == 10
    assert conf.tui == {"refresh": 0.5}
    assert conf.jobs["send-email"] == cfg.JobConfig("send-email", "myapp.jobs:send_email", "emails", 5, 2)
    assert conf.schedules["cleanup"].timezone == "Europe/Paris"
    assert conf.schedules["cleanup"].args == {"x": 1}
    assert conf.workflows["etl"].steps == (
        cfg.Step("a"),
        cfg.Step("b", fan_out=True, over="items"),
        cfg.Step("c", fan_out=True, over=None),
    )
    assert conf.handler_modules() == ["a.b", "c", "myapp.jobs"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[bogus]\n", "djobs.toml: unknown table [bogus]"),
        ("[djobs]\ndatabse = 'x'\n", "djobs.toml: [djobs] databse: unknown key"),
        ("[djobs]\ndatabase = 'mysql://x'\n", "djobs.toml: [djobs] database: bad database URL 'mysql://x'"),
        ("[djobs]\ndatabase = 'djobs.db'\n", "djobs.toml: [djobs] database: bad database URL"),
        ("[djobs]\nmodules = 'x'\n", "djobs.toml: [djobs] modules: must be a list of module names"),
        ("[queues.q]\nconcurrency = 0\n", "djobs.toml: [queues.q] concurrency: must be from 1 to 10000, got 0"),
        ("[queues.q]\nconcurrency = 99999\n", "djobs.toml: [queues.q] concurrency: must be from 1 to 10000"),
        ("[jobs.a]\nhandler = 'm:f'\npriority = 2147483648\n", "[jobs.a] priority: must be from -2147483648 to 2147483647"),
        ("[jobs.a]\nhandler = 'm:f'\nretries = 9223372036854775807\n", "[jobs.a] retries: must be from 0 to 2147483647"),
        ("[queues.q]\nconcurrency = 'ten'\n", "djobs.toml: [queues.q] concurrency: must be an integer"),
        ("[worker]\nscheduler = 'yes'\n", "djobs.toml: [worker] scheduler: must be true or false"),
        ("[worker]\ndrain_timeout = 'long'\n", "djobs.toml: [worker] drain_timeout: bad duration 'long'"),
        ("[worker]\nstale_after = 0\n", "djobs.toml: [worker] stale_after: must be more than zero"),
        ("[tui]\nrefresh = 0\n", "djobs.toml: [tui] refresh: must be a number of seconds"),
        ("[tui]\ncolour = 1\n", "djobs.toml: [tui] colour: unknown key"),
        ("[jobs.a]\nqueue = 'q'\n", "djobs.toml: [jobs.a] handler: missing (required)"),
        ("[jobs.a]\nhandler = 'nocolon'\n", "djobs.toml: [jobs.a] handler: must be 'module:function'"),
        ("[jobs.a]\nhandler = 'm:f'\nretries = -1\n", "djobs.toml: [jobs.a] retries: must be from 0 to 2147483647"),
        ("[jobs.a]\nhandler = 'm:f'\nretry = 1\n", "djobs.toml: [jobs.a] retry: unknown key"),
        ("[schedules.s]\njob = 'a'\nevery = '5x'\n", "djobs.toml: [schedules.s] every: bad duration '5x'"),
        ("[schedules.s]\njob = 'a'\nevery = '0s'\n", "djobs.toml: [schedules.s] every: bad duration '0s'"),
        ("[schedules.s]\njob = 'a'\ncron = '61 * * * *'\n", "djobs.toml: [schedules.s] cron: invalid cron"),
        ("[schedules.s]\njob = 'a'\ncron = '0 0 31 2 *'\n", "djobs.toml: [schedules.s] cron: invalid cron"),
        ("[schedules.s]\njob = 'a'\ndaily = '25:00'\n", "djobs.toml: [schedules.s] daily: bad time '25:00'"),
        ("[schedules.s]\njob = 'a'\nweekly = 'funday 09:00'\n", "djobs.toml: [schedules.s] weekly: bad weekly"),
        ("[schedules.s]\njob = 'a'\ndaily = '02:00'\ntimezone = 'Mars/Base'\n",
         "djobs.toml: [schedules.s] timezone: unknown time zone 'Mars/Base'"),
        ("[schedules.s]\njob = 'a'\n", "djobs.toml: [schedules.s]: needs exactly one of every, cron, daily, weekly"),
        ("[schedules.s]\njob = 'a'\nevery = '1m'\ncron = '* * * * *'\n", "[schedules.s]: needs exactly one of"),
        ("[schedules.s]\nevery = '1m'\n", "djobs.toml: [schedules.s] job: missing (required)"),
        ("[schedules.s]\njob = 'a'\nevery = '1m'\nargs = 1979-05-27\n", "djobs.toml: [schedules.s] args: must be JSON"),
        ("[workflows.w]\n", "djobs.toml: [workflows.w] steps: missing (required)"),
        ("[workflows.w]\nsteps = []\n", "djobs.toml: [workflows.w] steps: must be a non-empty list"),
        ("[workflows.w]\nsteps = [1]\n", "djobs.toml: [workflows.w] steps[0]: must be a job name or"),
        ("[workflows.w]\nsteps = [{fan_out = 'x', ovr = 'k'}]\n", "djobs.toml: [workflows.w] steps[0].ovr: unknown key"),
        ("[workflows.w]\nsteps = [{over = 'k'}]\n", "djobs.toml: [workflows.w] steps[0].fan_out: must name a job"),
        ("[jobs.w]\nhandler = 'm:f'\n[workflows.w]\nsteps = ['a']\n", "[workflows.w]: name 'w' is also a [jobs] table"),
        ('[jobs."a b"]\nhandler = 1\n', 'djobs.toml: [jobs."a b"] handler: must be a non-empty string'),
        ("x = 1 = 2\n", "djobs.toml: invalid TOML"),
    ],
)  # fmt: skip
def test_each_problem_names_file_table_and_key(tmp_path, text, expected):
    problems = problems_of(tmp_path, text)
    assert any(expected in p for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_all_problems_are_reported_not_just_the_first(tmp_path):
    problems = problems_of(
        tmp_path,
        """
        [djobs]
        databse = "x"
        [jobs.a]
        handler = "bad"
        [schedules.s]
        job = "a"
        every = "soon"
        [workflows.w]
        steps = []
        """,
    )
    assert len(problems) == 4, problems


def test_non_utf8_file_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "djobs.toml"
    path.write_bytes(b"\xff\xfe[djobs]\n")
    conf, problems = cfg.read(path)
    assert problems == [f"{path}: not UTF-8 text"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), ("250ms", 0.25), ("12", 12), (1.5, 1.5), (0, 0)],
)
def test_parse_duration(text, seconds):
    assert cfg.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5x", "-1s", "1e400", "nan", True, -3, float("inf"), "9" * 30 + "d"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="bad duration"):
        cfg.parse_duration(text)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///djobs.db", "sqlite:///{d}/djobs.db"),
        ("sqlite:///data/../jobs.db", "sqlite:///{d}/jobs.db"),
        ("sqlite:///my%20jobs.db?mode=rw", "sqlite:///{d}/my%20jobs.db?mode=rw"),
        ("sqlite:////var/lib/djobs.db", "sqlite:////var/lib/djobs.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path, monkeypatch, url, expected):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    monkeypatch.chdir(tmp_path)  # elsewhere: the working directory must not matter
    path = write(conf_dir, f"[djobs]\ndatabase = '{url}'\n")
    assert cfg.load(path).database == expected.format(d=conf_dir)
    assert cfg.load(Path("conf/djobs.toml")).database == expected.format(d=conf_dir)


def test_to_dict_round_trips_through_validate(tmp_path):
    conf = cfg.load(REPO / "workflows.example.toml")
    again, problems = cfg.validate(conf.to_dict(), conf.path)
    assert problems == []
    assert again.workflows == conf.workflows and again.schedules == conf.schedules and again.jobs == conf.jobs


# ----------------------------------------------------------------------------- check: imports and names


def test_check_accepts_the_shipped_example(isolated_imports):
    assert cfg.check(REPO / "workflows.example.toml") == []


def test_check_reports_import_problems_per_handler(tmp_path, isolated_imports):
    good = handler_module(tmp_path, "def f(args):\n    return 1\nx = 3\n")
    broken = handler_module(tmp_path, "raise RuntimeError('boom at import')\n")
    path = write(
        tmp_path,
        f"""
        [djobs]
        modules = ["{broken}"]
        [jobs.a]
        handler = "{good}:f"
        [jobs.b]
        handler = "{good}:missing"
        [jobs.c]
        handler = "{good}:x"
        [jobs.d]
        handler = "nosuchmodule_{uuid.uuid4().hex[:6]}:f"
        """,
    )
    problems = cfg.check(path)
    text = "\n".join(problems)
    assert f"[djobs] modules: cannot import '{broken}': RuntimeError: boom at import" in text
    assert f"[jobs.b] handler: '{good}' has no attribute 'missing'" in text
    assert f"[jobs.c] handler: '{good}:x' is not callable" in text
    assert "[jobs.d] handler: cannot import 'nosuchmodule_" in text and "ModuleNotFoundError" in text
    assert not any("[jobs.a]" in p for p in problems)
    assert len(problems) == 4


def test_check_reports_unknown_job_names_and_accepts_module_jobs(tmp_path, isolated_imports):
    name = "mod-" + uuid.uuid4().hex[:8]
    module = handler_module(tmp_path, f"import djobs\n@djobs.job({name!r})\ndef f(args):\n    return args\n")
    path = write(
        tmp_path,
        f"""
        [djobs]
        modules = ["{module}"]
        [schedules.s]
        job = "nope"
        every = "1m"
        [schedules.ok]
        job = "{name}"
        every = "1m"
        [workflows.w]
        steps = ["{name}", {{ fan_out = "ghost", over = "k" }}, "w"]
        """,
    )
    problems = cfg.check(path)
    assert any("[schedules.s] job: unknown job 'nope'" in p for p in problems), problems
    assert any("[workflows.w] steps[1].fan_out: unknown job 'ghost'" in p for p in problems), problems
    assert any("[workflows.w] steps[2]: a workflow cannot call itself" in p for p in problems), problems
    assert not any("[schedules.ok]" in p for p in problems)
    assert len(problems) == 3


def test_import_modules_raises_config_error(tmp_path, isolated_imports):
    path = write(tmp_path, "[djobs]\nmodules = ['nosuch_" + uuid.uuid4().hex[:6] + "']\n")
    with pytest.raises(ConfigError, match=r"\[djobs\] modules: cannot import"):
        cfg.import_modules(cfg.load(path))


def test_starter_config_is_valid():
    conf, problems = cfg.validate(cfg.starter("sqlite:///x.db"))
    assert problems == [] and conf.database == "sqlite:///x.db" and conf.queues == {"default": 10}


@pytest.mark.parametrize(("text", "parsed"), [("mon 09:00", ("mon", 9, 0)), ("Sunday 23:59", ("sun", 23, 59)),
                                              ("fri 7:05", ("fri", 7, 5))])  # fmt: skip
def test_parse_weekly(text, parsed):
    assert cfg.parse_weekly(text) == parsed


@pytest.mark.parametrize("text", ["monday", "mo 09:00", "mon 9", "mon 24:00", "mon 09:60", 5])
def test_parse_weekly_rejects(text):
    with pytest.raises(ValueError, match="bad"):
        cfg.parse_weekly(text)
