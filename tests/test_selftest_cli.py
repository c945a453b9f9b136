"""`djobs selftest` from the command line: JSON on stdout, exit 0 only when every invariant holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from djobs.proof.invariants import Verdict
from djobs.proof.report import SelftestReport

pytestmark = pytest.mark.timeout(300)


def test_selftest_command_runs_and_reports_json(tmp_path: Any) -> None:
    from djobs.cli.app import app

    result = CliRunner().invoke(
        app, ["--database", f"sqlite:///{tmp_path / 'mine.db'}", "selftest", "--json"],
        env={"DJOBS_SELFTEST_DURATION": "2s", "DJOBS_SELFTEST_WORKERS": "1"},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and len(data["invariants"]) == 11
    assert data["stats"]["workers"] == 1 and data["stats"]["chaos"] is False
    assert not (tmp_path / "mine.db").exists()  # a throwaway database, never the configured one


@pytest.mark.parametrize(
    ("verdicts", "errors", "code"),
    [
        ([Verdict("a", True, 1, "fine")], [], 0),
        ([Verdict("a", True, 1, "fine"), Verdict("b", False, 1, "bad", ("x",))], [], 1),
        ([Verdict("a", True, 1, "fine")], ["worker process 1 exited by itself"], 1),
    ],
)
def test_exit_code_follows_the_verdicts(monkeypatch: pytest.MonkeyPatch, verdicts: list[Verdict],
                                        errors: list[str], code: int) -> None:
    from djobs import selftest
    from djobs.cli.app import app

    stats = {"backend": "sqlite", "jobs_total": 1, "workers": 1, "kills": 0, "graceful_stops": 0,
             "db_restarts": 0, "duration_s": 1.0, "seed": 1}
    seen: dict[str, Any] = {}

    def fake_run(url: str | None, **kwargs: Any) -> SelftestReport:
        seen.update(kwargs, url=url)
        return SelftestReport(verdicts, stats, None, errors)

    monkeypatch.setattr(selftest, "run", fake_run)
    result = CliRunner().invoke(app, ["selftest", "--chaos", "--kills", "7", "--duration", "90s"])
    assert result.exit_code == code, result.output
    assert ("VIOLATED" in result.stdout) is (not all(v.ok for v in verdicts))
    assert seen["chaos"] is True and seen["kills"] == 7 and seen["duration"] == 90.0 and seen["url"] is None
