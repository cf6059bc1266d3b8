"""Instructions per call of ``@guarded`` and its floor, counted by callgrind (repeatable under load).

    python benchmarks/ir_decorator.py [--calls N]

Runs this file under ``valgrind --tool=callgrind`` once per variant (bare, floor, ours; sync and
async) with one warm-up call and N calls, and with the warm-up call only, and prints
(Ir(N) - Ir(0)) / N per call and ours/floor on the overhead over the bare call. Needs valgrind;
skipped with a message without it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def child(variant: str, flavour: str, calls: int) -> None:
    import bench_floors as floors

    from guardrails.decorator import guarded

    guard = floors.instant_guard()
    bare = floors.bare_sync if flavour == "sync" else floors.bare_async
    function = {"bare": bare, "floor": floors.floor_guarded(guard)(bare), "ours": guarded(guard)(bare)}[
        variant
    ]
    # One call first, in the run without calls too: what the first call does once (the judge
    # loads OpenTelemetry's API to ask whether a provider is set: ~30M instructions) is not a
    # per-call cost, and divided by N it would read as one.
    if flavour == "sync":
        function("What is the capital of France?")
        for _ in range(calls):
            function("What is the capital of France?")
    else:

        async def run() -> None:
            await function("What is the capital of France?")
            for _ in range(calls):
                await function("What is the capital of France?")

        asyncio.run(run())


def instructions(variant: str, flavour: str, calls: int) -> int:
    from _load import callgrind_instructions

    return callgrind_instructions(__file__, [variant, flavour, str(calls)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if shutil.which("valgrind") is None:
        print("ir_decorator: skipped, valgrind is not installed")
        return
    for flavour in ("sync", "async"):
        per_call = {}
        for variant in ("bare", "floor", "ours"):
            total = instructions(variant, flavour, args.calls) - instructions(variant, flavour, 0)
            per_call[variant] = total / args.calls
        floor = per_call["floor"] - per_call["bare"]
        ours = per_call["ours"] - per_call["bare"]
        print(
            f"{flavour:5} instructions per call: bare {per_call['bare']:.0f}; floor +{floor:.0f}; "
            f"@guarded +{ours:.0f}; ratio {ours / floor:.2f}x"
        )


if __name__ == "__main__":
    main()
