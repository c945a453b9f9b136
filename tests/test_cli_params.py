"""The CLI's own parameter conversion (djobs/cli/params.py) against Typer's, on every option of the app.

djobs converts `str`/`int`/`float`/`bool`/enum options itself so that no command imports pydantic. These
tests throw generated values at every parameter through both converters: the results must agree, except
that djobs refuses non-finite floats. A range error is a usage error (exit 2) in one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._coercion import build_runtime_param
from typer.testing import CliRunner

from djobs.cli import app, params

ROOT = typer.main.get_command(app)
CTX = typer.Context(ROOT)


def walk(cmd: Any) -> Iterator[Any]:
    yield from cmd.params
    for sub in getattr(cmd, "commands", {}).values():
        yield from walk(sub)


PARAMS = list(walk(ROOT))


def outcome(runtime: Any, parameter: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", runtime.coerce(value, param=parameter, ctx=CTX)
    except typer.BadParameter:
        return "error", None


def test_every_parameter_of_the_app_gets_a_plain_converter():
    assert [p.name for p in PARAMS if params.plain_param(p) is None] == []


values = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1", "0", "-1", " 7 ", "true", "False", "yes", "off", "failed", "skip", "fail", "1_000",
                     "0x10", "1e3", "٣", "2147483648", "-2147483649", ""]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(PARAMS) - 1), value=values)
def test_plain_conversion_agrees_with_typer(index, value):
    parameter = PARAMS[index]
    given_value = (value,) if parameter.multiple else value
    fast = outcome(params.plain_param(parameter), parameter, given_value)
    slow = outcome(build_runtime_param(parameter.type_descriptor), parameter, given_value)
    if parameter.type_descriptor.annotation is float and fast[0] == "error" and slow[0] == "ok":
        assert not math.isfinite(slow[1])  # the one intended difference: nan and inf are refused
        return
    assert fast == slow, (parameter.name, value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "x", "--priority", str(2**63)], "out of range (must be from -2147483648 to 2147483647)"),
        (["enqueue", "x", "--priority", "-2147483649"], "out of range"),
        (["enqueue", "x", "--retries", str(2**31)], "out of range (must be from 0 to 2147483647)"),
        (["enqueue", "x", "--retries", "-1"], "out of range"),
        (["enqueue", "x", "--wait", "--timeout", "nan"], "'nan' is not a valid finite number"),
        (["enqueue", "x", "--wait", "--timeout", "inf"], "'inf' is not a valid finite number"),
        (["jobs", "--limit", str(2**70)], "out of range (must be from 1 to 100000)"),
        (["jobs", "--limit", "0"], "out of range"),
        (["jobs", "--status", "sleeping"], "'sleeping' is not a valid one of pending, running"),
        (["worker", "--concurrency", "0"], "out of range"),
    ],
)
def test_out_of_range_is_a_usage_error_in_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--database", f"sqlite:///{tmp_path}/x.db", *args])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("djobs: ") and message in lines[0], result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before the database is touched


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(
    st.text(max_size=40),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", fullmatch=True),
))  # fmt: skip
def test_at_parser_gives_a_utc_time_in_range_or_a_usage_problem(text):
    from datetime import UTC

    from djobs.cli.common import UsageProblem
    from djobs.cli.jobs import EARLIEST, LATEST, parse_at

    try:
        at = parse_at(text)
    except UsageProblem as exc:
        assert str(exc).startswith("--at: ")
        return
    assert at.tzinfo is UTC and EARLIEST <= at <= LATEST


@settings(max_examples=300, deadline=None)
@given(specs=st.lists(st.one_of(st.text(max_size=12), st.from_regex(r"[a-z]{1,5}:\d{1,4}", fullmatch=True)),
                      max_size=4), concurrency=st.none() | st.integers(1, 50))  # fmt: skip
def test_queue_spec_parser_gives_positive_concurrencies_or_a_usage_problem(specs, concurrency):
    from djobs.cli.common import UsageProblem
    from djobs.cli.worker import parse_queue_specs

    try:
        queues = parse_queue_specs(specs, concurrency)
    except UsageProblem as exc:
        assert str(exc).startswith("--queue: ")
        return
    assert all(name.strip() and n >= 1 for name, n in queues.items())


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=20), st.from_regex(r"-?\d{1,20}(\.\d+)?(ms|s|m|h|d|w)?", fullmatch=True)))
def test_duration_and_since_parsers_never_fail_otherwise(text):
    from djobs.cli.common import UsageProblem
    from djobs.cli.jobs import parse_duration_option
    from djobs.cli.reads import parse_since

    for parse in (lambda t: parse_duration_option("--delay", t), parse_since):
        try:
            parse(text)
        except UsageProblem:
            pass
