"""The screenshot script of docs/img runs and photographs every state it names (not pixels)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import require_chromium
from tests.browser.screenshots import SHOTS

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"

# A browser through every state of the bell, in its own process: started first on the workers.
pytestmark = pytest.mark.slow


def test_the_screenshot_script_writes_every_picture(tmp_path: Path) -> None:
    require_chromium()
    result = subprocess.run(
        [sys.executable, "-m", "tests.browser.screenshots", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in SHOTS:
        shot = tmp_path / name
        assert shot.read_bytes().startswith(PNG), name
        assert shot.stat().st_size > 2_000, name  # a picture, not an empty clip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SHOTS)
    # The ones the docs show are committed.
    for name in SHOTS:
        assert (ROOT / "docs" / "img" / name).is_file(), name
