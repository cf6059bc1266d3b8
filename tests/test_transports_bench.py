"""The transports benchmark runs end to end: ``bench_transports.py --quick`` prints every row, and
``--trees`` compares two package trees (here the worktree with itself) in one run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("bare httpx", "guarded httpx", "bare httpx2", "guarded httpx2", "overhead httpx", "overhead httpx2")


def _run(*arguments: str) -> str:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_transports.py"), "--quick", *arguments],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_the_quick_run_prints_every_row() -> None:
    out = _run()
    for row in ROWS:
        assert re.search(rf"^{row}\s+-?\d+\.\d$", out, re.MULTILINE), row


def test_two_trees_are_compared_in_one_run() -> None:
    out = _run("--trees", str(ROOT), str(ROOT))
    for row in ROWS:
        assert re.search(rf"^{row}\s+-?\d+\.\d\s+-?\d+\.\d\s+-?\d+\.\d\d\d$", out, re.MULTILINE), row
