"""The guides' code is run: every fenced block is included from a tested file, executed here, or
says why it cannot be.

The line before a fenced block (an HTML comment, invisible on the rendered page) says which:

- `<!-- include: path/in/repo#region -->`: the block must equal that region of the file (between
  `--8<-- [start:region]` and `--8<-- [end:region]` lines, dedented); the file is run by a test
  (the Django site, the Laravel package's PHPUnit suite, …). Without `#region`, the whole file.
- `<!-- run: python -->`, `<!-- run: sh -->`: executed against a real tidings server, with the
  shared `.env` names in the environment (TIDINGS_URL, TIDINGS_PUBLISHER_KEY, TIDINGS_SECRET,
  and TIDINGS_DATABASE_URL for `tidings send`); it must exit 0 and print no `"error"`.
- `<!-- run: env -->`: a `.env` file; tidings must accept it (`Settings.from_env`).
- `<!-- not run: why -->`: the reason, in words.

After changing an included file, `.venv/bin/python -m tests.test_docs` copies every region into
the guides (a guide whose block differs fails this test until then).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import PUBLISHER_KEY, SECRET, Server, serving
from tidings.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [
    "api.md",
    "architecture.md",
    "away.md",
    "bell.md",
    "client.md",
    "configuration.md",
    "django.md",
    "laravel.md",
    "python-client.md",
]
MARKER = re.compile(r"^<!-- (include|run|not run): (.+?) -->$")
FENCE = re.compile(r"^(```+)(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    language: str
    code: str
    kind: str | None  # include | run | not run | None (unmarked)
    argument: str

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> Iterator[Block]:
    lines = (ROOT / "docs" / doc).read_text().splitlines()
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        start = index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(opened.group(1)))
        previous = lines[start - 1].strip() if start > 0 else ""
        marker = MARKER.match(previous)
        yield Block(
            doc=doc,
            line=start + 1,
            language=opened.group(2),
            code="\n".join(lines[start + 1 : end]),
            kind=marker.group(1) if marker else None,
            argument=marker.group(2).strip() if marker else "",
        )
        index = end + 1


def name_of(block: Block) -> str:
    return block.name


ALL = [block for doc in GUIDES if (ROOT / "docs" / doc).exists() for block in blocks(doc)]


def of_kind(*kinds: str) -> list[Block]:
    return [block for block in ALL if block.kind in kinds]


def region(target: str) -> str:
    path, _, name = target.partition("#")
    text = (ROOT / path).read_text()
    if not name:
        return text.strip("\n")
    marker = r"^[^\n]*--8<-- \[{}:" + re.escape(name) + r"\][^\n]*"
    found = re.search(
        marker.format("start") + r"\n(.*?)" + marker.format("end"), text, re.MULTILINE | re.DOTALL
    )
    assert found, f"{path} has no region {name!r}"
    assert found.group(1).strip(), f"{path}: region {name!r} is empty"
    return textwrap.dedent(found.group(1)).strip("\n")


def test_every_block_of_every_guide_is_included_run_or_says_why() -> None:
    unmarked = [block.name for block in ALL if block.kind is None]
    assert unmarked == [], "mark these blocks (see tests/test_docs.py)"
    vague = [b.name for b in of_kind("not run") if len(b.argument.split()) < 3]
    assert vague == [], "say why in a few words"
    assert len(of_kind("include")) >= 10
    assert len(of_kind("run")) >= 6


@pytest.mark.parametrize("block", of_kind("include"), ids=name_of)
def test_an_included_block_is_the_tested_file(block: Block) -> None:
    assert block.code.strip("\n") == region(block.argument), (
        f"{block.name} differs from {block.argument}: copy the region into the guide"
    )


@pytest.mark.parametrize("block", [b for b in of_kind("run") if b.argument == "env"], ids=name_of)
def test_an_env_file_of_a_guide_is_accepted_by_tidings(block: Block) -> None:
    environ = {}
    for line in block.code.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            environ[name.strip()] = value.strip()
    settings = Settings.from_env(environ)
    assert settings.secret == environ["TIDINGS_SECRET"]
    assert {"TIDINGS_URL", "TIDINGS_PUBLISHER_KEY"} <= set(environ)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("docs")) as started:
        yield started


@pytest.mark.parametrize(
    "block", [b for b in of_kind("run") if b.argument in ("python", "sh")], ids=name_of
)
def test_a_runnable_block_runs_against_a_real_server(
    block: Block, server: Server, tmp_path: Path
) -> None:
    env = {
        **server.env,
        "TIDINGS_URL": server.url,
        "TIDINGS_PUBLISHER_KEY": PUBLISHER_KEY,
        "TIDINGS_SECRET": SECRET,
        # `tidings` as the README installs it, next to this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = (
        [sys.executable, "-c", block.code]
        if block.argument == "python"
        else ["bash", "-euo", "pipefail", "-c", block.code]
    )
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{block.name}:\n{result.stdout}\n{result.stderr}"
    assert '"error"' not in result.stdout, f"{block.name}:\n{result.stdout}"


def sync() -> None:
    """Rewrite every included block of the guides from its region."""
    for doc in GUIDES:
        path = ROOT / "docs" / doc
        lines = path.read_text().splitlines()
        for block in sorted(blocks(doc), key=lambda b: -b.line):
            if block.kind != "include":
                continue
            end = block.line + len(block.code.splitlines()) if block.code else block.line
            lines[block.line : end] = region(block.argument).splitlines()
        path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sync()
