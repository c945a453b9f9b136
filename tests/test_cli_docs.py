"""The generated man page, completions and systemd/crontab examples are committed and up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from djobs.cli import docs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return docs.artefacts(REPO)


def test_generated_files_are_committed_and_fresh(generated):
    stale = [rel for rel, content in generated.items() if (REPO / rel).read_text(encoding="utf-8") != content]
    assert stale == [], f"stale generated files {stale}: run scripts/gen-docs and commit"


def test_man_page_covers_every_command_and_section(generated):
    page = generated[docs.MAN_PAGE]
    for command in ("init", "config check", "config show", "enqueue", "worker", "pause job", "pause queue",
                    "pause worker", "pause schedule", "resume job", "resume queue", "resume worker",
                    "resume schedule", "cancel", "retry", "inspect", "jobs", "why", "events", "workers",
                    "schedules", "schedules rm", "purge", "tui", "config apply", "completion show", "signal",
                    "completion install", "limits", "limits set", "limits clear", "dlq", "dlq requeue"):  # fmt: skip
        assert f".SS djobs {command}\n" in page, command
    for section in ("CONFIGURATION FILE", "ENVIRONMENT", "EXIT STATUS", "EXAMPLES"):
        assert f".SH {section}\n" in page
    assert "DJOBS_ENQUEUE_DELAY" in page and "RestartPreventExitStatus=78" in page and "crontab" in page


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o default -F"), ("zsh", "#compdef djobs"),
                                               ("fish", "complete --command djobs")])  # fmt: skip
def test_completion_scripts_call_djobs(generated, shell, marker):
    script = generated[docs.COMPLETIONS[shell]]
    assert marker in script and "_DJOBS_COMPLETE=complete_" in script


def test_systemd_unit_is_a_notify_service_that_outlives_the_drain():
    unit = (REPO / docs.SYSTEMD_UNIT).read_text()
    assert "Type=notify" in unit and "KillSignal=SIGTERM" in unit and "Restart=on-failure" in unit
    stop = int(next(line.split("=")[1] for line in unit.splitlines() if line.startswith("TimeoutStopSec=")))
    from djobs.cli.worker import DRAIN_TIMEOUT

    assert stop > DRAIN_TIMEOUT


def test_man_page_is_dated_and_lint_clean(generated):
    import re
    import shutil
    import subprocess

    page = generated[docs.MAN_PAGE]
    assert re.match(r'\.TH DJOBS 1 "\d{4}-\d\d-\d\d" "djobs [^"]+" "User Commands"\n', page)
    assert all(len(line.encode()) <= 80 or line.startswith(".") for line in page.splitlines())
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed")
    done = subprocess.run(["mandoc", "-T", "lint", "-W", "style"], input=page, capture_output=True, text=True)
    assert done.stdout + done.stderr == "", done.stdout + done.stderr


def test_wrapped_literal_lines_join_back():
    line = "x" * 70 + "\\-\\-args '{\"a\": 1}'" + "y" * 100
    pieces = docs._split_literal(line)
    assert all(len(p) <= 80 for p in pieces)
    assert "".join(p[:-1] if p.endswith("\\") and i < len(pieces) - 1 else p for i, p in enumerate(pieces)) == line


def test_the_wheel_carries_the_examples_and_init_example_works_from_it(tmp_path):
    """Build the wheel, check what it carries, then run `djobs init --example etl` from the unpacked wheel
    (not the source tree) and use what it wrote."""
    import os
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("djobs-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for inside in ("djobs/examples/workflows.example.toml", "djobs/examples/examples/etl.py",
                   "djobs/examples/examples/crontab", "djobs/examples/examples/systemd/djobs-worker@.service"):
        assert inside in names, inside
    assert any(n.endswith("data/share/man/man1/djobs.1") for n in names)
    assert any(n.endswith("data/share/bash-completion/completions/djobs") for n in names)
    unpacked, project = tmp_path / "unpacked", tmp_path / "project"
    zipfile.ZipFile(wheel).extractall(unpacked)
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_")}
    env["PYTHONPATH"] = str(unpacked)

    def djobs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "djobs", *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip

    made = djobs("init", "--example", "etl")
    assert made.returncode == 0, made.stderr
    assert (project / "examples" / "etl.py").read_text() == (REPO / "examples" / "etl.py").read_text()
    assert (project / "examples" / "crontab").is_file() and (project / "djobs.toml").is_file()
    where = subprocess.run([sys.executable, "-c", "import djobs; print(djobs.__file__)"], env=env, cwd=project,
                           capture_output=True, text=True).stdout  # fmt: skip
    assert where.startswith(str(unpacked))
    assert djobs("config", "check").returncode == 0
    assert djobs("enqueue", "nightly-etl", "--args", '{"day": "2026-12-01"}').returncode == 0
    assert djobs("worker", "--burst").returncode == 0
    assert '"completed"' in djobs("--json", "jobs", "--type", "nightly-etl").stdout
