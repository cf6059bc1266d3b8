"""The Redis benchmark harness runs end to end: ``bench_redis.py --quick`` prints its three tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import redis_binary

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_redis.py"


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    if redis_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Redis benchmark smoke test: install redis-server")
        pytest.skip("redis-server is not installed")
    return subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=180, check=False
    )


def test_quick_run_succeeds(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The quick run exits 0 and prints its closing line."""
    assert quick_run.returncode == 0, quick_run.stderr[-2000:]
    assert "bench_redis: " in quick_run.stdout


@pytest.mark.parametrize(
    "heading",
    ["## 1. Cache hit on Redis", "## 2. Vendor calls with 4 workers", "## 3. Fleet rate budget"],
)
def test_quick_run_prints_each_section(quick_run: subprocess.CompletedProcess[str], heading: str) -> None:
    """Every section's table is printed."""
    assert heading in quick_run.stdout


def test_the_shared_cache_row_makes_one_call_per_prompt(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The fleet row of the shared cache shows 1.00 vendor call per prompt, none failed."""
    row = next(line for line in quick_run.stdout.splitlines() if line.startswith("RedisCache shared"))
    assert row.split()[-3:-1] == ["1.00", "0"], quick_run.stdout
