"""examples/eval_local_vs_panw.py run as a program against the emulator's Palo Alto endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guardrails.testing.emulator import Emulator
from tests.helpers import PANW_KEY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "eval_local_vs_panw.py"
SAMPLE_ROWS = 16


def run_example(emulator_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: the developer's own PANW_* variables must not leak in.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PANW_AI_SEC_API_KEY": PANW_KEY,
        "PANW_AI_SEC_API_ENDPOINT": emulator_url,
        "PANW_AI_PROFILE_NAME": "demo",
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_example_reports_both_guards_on_the_sample(
    emulator_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    """Both guards catch 8 of the 9 attacks and flag 1 of the 7 benign rows; one vendor call a row."""
    results = tmp_path / "results.jsonl"
    result = run_example(emulator_url, "--results", str(results))
    assert result.returncode == 0, result.stderr
    assert "| local | 8 | 1 | 6 | 1 | 0.889 | 0.889 | 0.889 | 0 | 0 |" in result.stdout
    assert f"| panw | 8 | 1 | 6 | 1 | 0.889 | 0.889 | 0.889 | 0 | {SAMPLE_ROWS} |" in result.stdout
    assert "| local / panw | 1.000 |" in result.stdout
    assert "Ignore all previous" not in result.stdout  # rows by id, never by text
    assert emulator.count("panw") == SAMPLE_ROWS

    again = run_example(emulator_url, "--results", str(results))
    assert again.returncode == 0, again.stderr
    assert emulator.count("panw") == SAMPLE_ROWS  # resumed: no row paid for twice
    assert f"{SAMPLE_ROWS * 2} results resumed" in again.stdout
