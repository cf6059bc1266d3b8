"""The httpx / httpx2 benchmark runs end to end: ``bench_httpx2.py --quick`` prints its table and ratio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_run_prints_the_cpu_figures_and_the_ratio() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_httpx2.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for client in ("guard.check (core, httpx)", "bare httpx.Client", "bare httpx2.Client"):
        assert re.search(rf"^{re.escape(client)}\s+\d+\.\d\s+\d+\.\d$", run.stdout, re.MULTILINE), client
    assert re.search(r"^CPU ratio httpx2 / httpx \(bare send\): \d+\.\d\d$", run.stdout, re.MULTILINE)
