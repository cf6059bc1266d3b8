"""Run every benchmark script in this folder, one after the other, and print their tables.

Run ``python benchmarks/run_all.py`` (add ``--quick`` to check the harness with tiny counts, passed to the scripts that accept it; or name
scripts to run only those: ``python benchmarks/run_all.py bench_guards.py``). Scripts run one at a
time, each in its own process, so no benchmark measures another's load. The exit status is
non-zero if any script failed. The rows of ours vs the hand-written floors (`bench_floors.py`)
are printed again at the end, in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts(names: list[str]) -> list[Path]:
    """The benchmark scripts to run: the named ones, or every ``bench_*.py`` here in name order."""
    if names:
        return [HERE / Path(name).name for name in names]
    return sorted(HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", help="scripts to run (default: every bench_*.py)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the scripts that have it")
    args = parser.parse_args()

    failed: list[str] = []
    timings: list[tuple[str, float, int]] = []
    summary = Path(tempfile.mkstemp(prefix="guardrails-floors-", suffix=".jsonl")[1])
    env = {**os.environ, "GUARDRAILS_BENCH_SUMMARY": str(summary)}
    for script in scripts(args.scripts):
        print(f"\n# {script.name}", flush=True)
        start = time.perf_counter()
        # Not every script has a quick mode; those that do name the flag in their source.
        quick = args.quick and "--quick" in script.read_text(encoding="utf-8")
        command = [sys.executable, str(script), *(["--quick"] if quick else [])]
        status = subprocess.run(command, cwd=HERE.parent, check=False, env=env).returncode
        timings.append((script.name, time.perf_counter() - start, status))
        if status:
            failed.append(script.name)
    rows = [json.loads(line) for line in summary.read_text(encoding="utf-8").splitlines() if line]
    summary.unlink()
    if rows:
        print("\n# ours vs the hand-written floors (issue 15)")
        print(f"{'path':38} {'today':>16} {'floor':>20} {'ratio':>7}  {'target':11} met")
        for row in rows:
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
            print(
                f"{row['path']:38} {row['ours']:>16} {row['floor']:>20} {ratio:>7}  {row['target']:11} {met}"
            )
    print("\n# summary")
    for name, seconds, status in timings:
        print(f"{name:<24} {seconds:6.0f} s  {'ok' if status == 0 else f'FAILED ({status})'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
