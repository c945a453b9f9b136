"""The documentation under docs/: its getting-started page runs as written, its links stay in the
repository, and the README points into it.

The getting-started convention: a fenced block with a `title="FILE"` is written to FILE; a `sh` block is
run with bash (in order, in one scratch project directory, `set -e`); `shell` blocks (installation) are
shown, not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
FENCE = re.compile(r"^```(?P<lang>[\w-]+)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```$", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str | None, str]]:
    """(language, title or None, body) of every fenced block of `page`, in order."""
    found = []
    for m in FENCE.finditer(page.read_text(encoding="utf-8")):
        title = re.search(r'title="([^"]+)"', m.group("attrs"))
        found.append((m.group("lang"), title.group(1) if title else None, m.group("body")))
    return found


def test_getting_started_runs_as_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "120"
    ran = 0
    script = ["set -euo pipefail"]
    for lang, title, body in blocks(DOCS / "getting-started.md"):
        if title is not None:
            script.append(f"cat > {title} <<'DJOBS_DOC_EOF'\n{body}DJOBS_DOC_EOF")
        elif lang == "sh":
            script.append(body)
            ran += 1
    assert ran >= 5
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert ": ok (1 jobs" in out
    assert "backing off until" in out  # djobs why, after the first failed attempt
    assert "attempt    2 of 3" in out and "hello Bob" in out
    assert '"hello Cleo"' in out and out.rstrip().endswith("hello Dan")


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", sorted(p.relative_to(REPO).as_posix() for p in DOCS.rglob("*.md")))
def test_docs_links_stay_in_the_repository_and_resolve(page):
    path = REPO / page
    text = path.read_text(encoding="utf-8")
    for target in _links(text):
        assert not re.match(r"^[a-z]+://", target), f"{page} links outside the repository: {target}"
        file = target.split("#", 1)[0]
        if file:
            assert (path.parent / file).resolve().is_file(), f"{page}: broken link {target}"
    # The docs stand alone: no pointers to notes outside the repository or to an issue tracker.
    team_folder = "../" + "shared"  # spelled in two parts so this guard is not itself such a pointer
    outside = re.compile(re.escape(team_folder) + r"|\b(?:API|CLI|SEMANTICS)\.md\b|issue #\d")
    found = outside.search(text)
    assert found is None, f"{page} points outside the repository: {found and found.group(0)}"


def test_readme_links_into_docs_and_keeps_its_two_setup_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    links = _links(text)
    assert links and all(not re.match(r"^[a-z]+://", t) for t in links)
    assert any(t.startswith("docs/") for t in links)
    for target in links:
        assert (REPO / target.split("#", 1)[0]).exists(), target
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [b.strip() for lang, _, b in blocks_of(setup) if lang == "sh"]
    assert commands == ["scripts/demo", "scripts/test"]


def blocks_of(text: str) -> list[tuple[str, None, str]]:
    return [(m.group("lang"), None, m.group("body")) for m in FENCE.finditer(text)]


def test_every_page_is_in_the_navigation():
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        assert page.relative_to(DOCS).as_posix() in nav, page
