"""`benchmarks/ir_asgi.py`'s children run (without valgrind: the harness only, a few requests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("variant", ["ours-shell", "unguarded-state"])
def test_a_variant_runs_its_requests(variant: str) -> None:
    """Each variant answers the harness's requests (its own asserts: a 200 for every app)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ir_asgi.py"), "--child", variant, "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
