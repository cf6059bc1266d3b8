"""The httpx / httpx2 benchmarks run end to end: ``bench_httpx2.py --quick`` prints its table and
ratio; ``bench_transports.py --quick`` prints every row, and with ``--trees`` compares two package
trees (here the worktree with itself) in one run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSPORT_ROWS = (
    "bare httpx",
    "guarded httpx",
    "bare httpx2",
    "guarded httpx2",
    "overhead httpx",
    "overhead httpx2",
)


def _quick_run(script: str, *arguments: str) -> str:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *arguments],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_the_quick_run_prints_the_cpu_figures_and_the_ratio() -> None:
    out = _quick_run("bench_httpx2.py")
    for client in ("guard.check (core, httpx)", "bare httpx.Client", "bare httpx2.Client"):
        assert re.search(rf"^{re.escape(client)}\s+\d+\.\d\s+\d+\.\d$", out, re.MULTILINE), client
    assert re.search(r"^CPU ratio httpx2 / httpx \(bare send\): \d+\.\d\d$", out, re.MULTILINE)


def test_the_transports_quick_run_prints_every_row() -> None:
    out = _quick_run("bench_transports.py")
    for row in TRANSPORT_ROWS:
        assert re.search(rf"^{row}\s+-?\d+\.\d$", out, re.MULTILINE), row


def test_the_transports_of_two_trees_are_compared_in_one_run() -> None:
    out = _quick_run("bench_transports.py", "--trees", str(ROOT), str(ROOT))
    for row in TRANSPORT_ROWS:
        assert re.search(rf"^{row}\s+-?\d+\.\d\s+-?\d+\.\d\s+-?\d+\.\d\d\d$", out, re.MULTILINE), row
