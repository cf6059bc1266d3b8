"""The floors benchmark harness runs end to end: ``bench_floors.py --quick`` prints its summary rows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_floors.py"


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    # The in-process sections only: the server and remote sections start processes (seconds each).
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "decorator", "--only", "asgi", "--only", "import"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_quick_run_succeeds(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The quick run exits 0 and prints its closing line."""
    assert quick_run.returncode == 0, quick_run.stderr[-2000:]
    assert re.search(r"^bench_floors: \d+ s \(quick", quick_run.stdout, re.MULTILINE)


@pytest.mark.parametrize(
    "row",
    [
        "@guarded sync",
        "@guarded async",
        "ASGI guarded route (Guard protocol)",
        "ASGI guarded route (InProcessGuard)",
        "ASGI unguarded route of guarded app",
        "import guardrails (every name)",
    ],
)
def test_summary_has_the_row_with_a_measured_ratio_or_figure(
    quick_run: subprocess.CompletedProcess[str], row: str
) -> None:
    """Each row of the summary holds today's figure and the floor's, measured."""
    summary = quick_run.stdout.split("## summary")[1]
    line = next(line for line in summary.splitlines() if line.startswith(row))
    assert re.search(r"\d+(\.\d+)? (us|ms)", line), line
