"""Run every benchmark script in this folder, one after the other, and print their tables.

Run ``python benchmarks/run_all.py`` (add ``--quick`` to check the harness with tiny counts, passed to the scripts that accept it; or name
scripts to run only those: ``python benchmarks/run_all.py bench_guards.py``). Scripts run one at a
time, each in its own process, so no benchmark measures another's load. The exit status is
non-zero if any script failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
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
    for script in scripts(args.scripts):
        print(f"\n# {script.name}", flush=True)
        start = time.perf_counter()
        # Not every script has a quick mode; those that do name the flag in their source.
        quick = args.quick and "--quick" in script.read_text(encoding="utf-8")
        command = [sys.executable, str(script), *(["--quick"] if quick else [])]
        status = subprocess.run(command, cwd=HERE.parent, check=False).returncode
        timings.append((script.name, time.perf_counter() - start, status))
        if status:
            failed.append(script.name)
    print("\n# summary")
    for name, seconds, status in timings:
        print(f"{name:<24} {seconds:6.0f} s  {'ok' if status == 0 else f'FAILED ({status})'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
