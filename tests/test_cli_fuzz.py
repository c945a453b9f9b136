"""Fuzz the CLI's inputs (hypothesis): `--args`, `--delay`, `--at` and whole config files.

Whatever comes in: never a traceback, never an internal error, and the exit code is 0, 1, 2 or 78.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from djobs.cli import app

ALLOWED = {0, 1, 2, 78}
SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("CLI_FUZZ_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

HANDLERS = """
import djobs
from dataclasses import dataclass

@dataclass
class Point:
    x: int
    y: int

@djobs.job("fuzz-echo", retries=0)
def echo(args):
    return args

@djobs.job("fuzz-point", retries=0)
def point(args: Point):
    return args.x + args.y
"""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
args_text = st.one_of(
    json_values.map(json.dumps), st.text(max_size=40), st.sampled_from(["", "-", "@", "@nofile", "{", "[1,", "NaN"])
)
delay_text = st.one_of(
    st.from_regex(r"-?\d{1,12}(\.\d{1,3})?(ms|s|m|h|d|w)?", fullmatch=True), st.text(max_size=12),
    st.floats().map(str),
)  # fmt: skip
at_text = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    st.from_regex(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?(Z|[+-]\d{2}:\d{2})?", fullmatch=True),
)


def _project(tmp_path: Path, url: str) -> Iterator[dict[str, str]]:
    (tmp_path / "fuzzjobs.py").write_text(HANDLERS)
    (tmp_path / "djobs.toml").write_text('[djobs]\nmodules = ["fuzzjobs"]\n')
    path = list(sys.path)
    yield {"config": str(tmp_path / "djobs.toml"), "db": url, "dir": str(tmp_path)}
    sys.path[:] = path
    sys.modules.pop("fuzzjobs", None)


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[dict[str, str]]:
    """Both backends: what --args holds is stored (PostgreSQL and SQLite differ on odd text)."""
    yield from _project(tmp_path, db_url)


@pytest.fixture
def sqlite_project(tmp_path: Path, sqlite_url: str) -> Iterator[dict[str, str]]:
    """Parsing --delay/--at and config files happens before the database matters: SQLite is enough."""
    yield from _project(tmp_path, sqlite_url)


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), input="")
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exit_code in ALLOWED, (args, result.exit_code, result.output, result.exception)
    if result.exit_code != 0:
        assert result.stderr.strip(), "a failure must say why on stderr"
    return result


@SETTINGS
@given(job=st.sampled_from(["fuzz-echo", "fuzz-point", "nope"]), args=args_text)
def test_fuzz_enqueue_args(project, job, args):
    r = run("--config", project["config"], "--database", project["db"], "enqueue", job, f"--args={args}")
    if r.exit_code == 0:
        assert r.stdout.strip() and len(r.stdout.splitlines()) == 1


@SETTINGS
@given(delay=delay_text)
def test_fuzz_enqueue_delay(sqlite_project, delay):
    project = sqlite_project
    run("--config", project["config"], "--database", project["db"], "enqueue", "fuzz-echo", f"--delay={delay}")


@SETTINGS
@given(at=at_text)
def test_fuzz_enqueue_at(sqlite_project, at):
    project = sqlite_project
    run("--config", project["config"], "--database", project["db"], "enqueue", "fuzz-echo", f"--at={at}")


KEYS = ["database", "modules", "concurrency", "scheduler", "drain_timeout", "stale_after", "handler", "queue",
        "retries", "priority", "job", "every", "cron", "daily", "weekly", "args", "timezone", "steps", "fan_out",
        "over", "bogus"]  # fmt: skip
scalars = st.one_of(
    st.booleans(), st.integers(-5, 100), st.text(max_size=15),
    st.sampled_from(["fuzz-echo", "fuzzjobs:echo", "5m", "*/5 * * * *", "02:00", "mon 09:00", "UTC", "x:y",
                     "Europe/Paris", "sqlite:///fuzz.db", "0 0 31 2 *", "fuzzjobs"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=8,
)
table = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)
named_tables = st.dictionaries(st.sampled_from(["a", "fuzz-echo", "w", "q"]), table, max_size=3)
config_docs = st.fixed_dictionaries(
    {},
    optional={
        "djobs": table, "queues": named_tables, "worker": table, "jobs": named_tables,
        "schedules": named_tables, "workflows": named_tables, "extra": table,
    },
)  # fmt: skip


@SETTINGS
@given(doc=config_docs, raw=st.one_of(st.none(), st.text(max_size=80)))
def test_fuzz_config_files(sqlite_project, doc, raw):
    project = sqlite_project
    path = Path(project["dir"]) / "fuzz.toml"
    path.write_text(raw if raw is not None else tomli_w.dumps(doc), encoding="utf-8")
    checked = run("--config", str(path), "config", "check")
    assert checked.exit_code in (0, 78)
    used = run("--config", str(path), "--database", project["db"], "jobs")
    assert used.exit_code in (0, 78)
    if checked.exit_code == 78:
        assert all(line.startswith(str(path)) or line.startswith("djobs: ") for line in checked.stderr.splitlines())
