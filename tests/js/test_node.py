"""Runs the `node --test` suite of the browser client's pure logic, so `pytest` covers it too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_services

ROOT = Path(__file__).resolve().parents[2]


def test_node_suite_passes() -> None:
    node = shutil.which("node")
    if node is None:
        reason = "node is missing: the JS tests in tests/js need Node.js 18 or newer"
        if require_services():
            pytest.fail(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
