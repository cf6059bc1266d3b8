"""The guard benchmark harness runs end to end: ``bench_guards.py --quick`` in a subprocess prints its tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SECTIONS = [
    "## 1. acheck throughput",
    "## 2. Concurrency scaling",
    "## 3. Peak memory",
    "## 4. Tuning",
]


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_guards.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_quick_run_succeeds(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The quick run exits 0 and prints its closing line."""
    assert quick_run.returncode == 0, quick_run.stderr[-2000:]
    assert re.search(r"^bench_guards: \d+ s \(quick", quick_run.stdout, re.MULTILINE)


@pytest.mark.parametrize("heading", [pytest.param(h, id=h.split(". ")[1].split()[0]) for h in SECTIONS])
def test_quick_run_prints_each_section(quick_run: subprocess.CompletedProcess[str], heading: str) -> None:
    """Every section's table is printed."""
    assert heading in quick_run.stdout


@pytest.mark.parametrize(
    "row",
    [
        pytest.param("  guard / httpx loop", id="guard-vs-httpx"),
        pytest.param("  guard / aiohttp loop", id="guard-vs-aiohttp"),
        pytest.param("[trend-v3, http]", id="trend"),
        pytest.param("[panw, http]", id="panw"),
        pytest.param("[panw, https]", id="panw-https"),
    ],
)
def test_quick_run_prints_throughput_rows(quick_run: subprocess.CompletedProcess[str], row: str) -> None:
    """The throughput table has a group per vendor and the ratio rows."""
    assert row in quick_run.stdout


def test_throughput_cells_are_measured(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The guard's throughput cells hold numbers, not n/a."""
    table = quick_run.stdout.split("## 1. ")[1].split("## 1b.")[0]
    guard_rows = [line for line in table.splitlines() if line.startswith("  guard  ")]
    assert len(guard_rows) == 3
    for line in guard_rows:
        assert re.fullmatch(r"\s+guard(\s+\d+ /s \(\d+ us\))+", line), line


def test_memory_growth_is_reported(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The memory table reports a growth figure for the guard."""
    line = next(line for line in quick_run.stdout.splitlines() if line.startswith("guard, default pool"))
    assert re.search(r"\d+\.\d", line)
