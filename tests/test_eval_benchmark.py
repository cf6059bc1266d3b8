"""The eval benchmark runs end to end: ``bench_eval.py --quick`` in a subprocess prints its tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_run_prints_both_tables() -> None:
    """The quick run exits 0 with the throughput ratio and the memory table."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_eval.py"), "--quick"],
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^guardrails\.eval\.aevaluate\s+\d+\s+\d+\.\d\d$", result.stdout, re.MULTILINE)
    assert re.search(r"^growth x\d+\.\d\d for x10 rows", result.stdout, re.MULTILINE)
    assert re.search(r"^bench_eval: \d+ s \(quick\)", result.stdout, re.MULTILINE)
