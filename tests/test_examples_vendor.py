"""examples/check_with_vendor.py run as a program, its guards pointed at the emulator through the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guardrails.testing.emulator import Emulator
from tests.helpers import PANW_KEY, TREND_KEY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "check_with_vendor.py"


def run_example(**env: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: the developer's own V1_* / PANW_* variables must not leak in.
    clean = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def trend_env(emulator_url: str, key: str = TREND_KEY) -> dict[str, str]:
    return {"V1_API_KEY": key, "V1_BASE_URL": emulator_url}


def panw_env(emulator_url: str, key: str = PANW_KEY) -> dict[str, str]:
    return {
        "PANW_AI_SEC_API_KEY": key,
        "PANW_AI_SEC_API_ENDPOINT": emulator_url,
        "PANW_AI_PROFILE_NAME": "demo",
    }


def test_both_guards_allow_the_benign_prompt_and_block_the_malicious_one(
    emulator_url: str, emulator: Emulator
) -> None:
    """With both vendors configured, each guard prints an Allow and a Block, asking the emulator."""
    result = run_example(**trend_env(emulator_url), **panw_env(emulator_url))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:4] for line in lines] == [
        ["trend", "benign", "->", "allow"],
        ["trend", "malicious", "->", "block"],
        ["palo-alto", "benign", "->", "allow"],
        ["palo-alto", "malicious", "->", "block"],
    ]
    assert "['prompt_injection']" in lines[3]
    assert emulator.counts == {"trend-v3": 2, "trend-beta": 0, "panw": 2}


def test_only_the_configured_guard_runs(emulator_url: str, emulator: Emulator) -> None:
    """With only Palo Alto configured, Trend is skipped."""
    result = run_example(**panw_env(emulator_url))
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["palo-alto", "palo-alto"]
    assert emulator.count("trend-v3") == 0


def test_a_rejected_key_is_reported_without_the_key(emulator_url: str, emulator: Emulator) -> None:
    """A key the service refuses is a configuration error: printed, exit status 1, key not shown."""
    result = run_example(**trend_env(emulator_url, key="rejected-key-123"))
    assert result.returncode == 1
    assert result.stdout.count("-> error (configuration)") == 2
    assert "rejected-key-123" not in result.stdout + result.stderr


def test_no_configuration_is_explained(emulator: Emulator) -> None:
    """With no vendor key set the program says what to set and exits 2."""
    result = run_example()
    assert result.returncode == 2
    assert "V1_API_KEY" in result.stderr
