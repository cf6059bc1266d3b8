"""Instructions per ASGI request of `GuardMiddleware` and its floor, counted by callgrind.

    python benchmarks/ir_asgi.py [--requests N] [--only VARIANT ...]

The requests of ``bench_floors.py``'s ASGI rows (a 1 KB four-message chat body, the app called
directly), run under ``valgrind --tool=callgrind`` once per variant with N requests and with none;
prints (Ir(N) - Ir(0)) / N per request, the overhead over the app alone, and ours/floor. Unlike CPU
time, instruction counts do not move with the load of a shared machine. Needs valgrind; skipped
with a message without it.

Variants: ``none`` (the app alone), ``floor`` (the hand-written floor middleware), ``ours`` (a
guard implementing the `Guard` protocol), ``ours-inprocess`` (an `InProcessGuard`), ``unguarded``
(ours, a path no route guards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

VARIANTS = ("none", "floor", "ours", "ours-inprocess", "unguarded")


def child(variant: str, requests: int) -> None:
    import bench_floors as floors

    app = floors.build_app("ours" if variant == "unguarded" else variant)
    path = "/open" if variant == "unguarded" else "/guarded"

    async def run() -> None:
        await floors._asgi_us(app, path, 50)  # warm up: first-use imports and caches
        if requests:
            await floors._asgi_us(app, path, requests)

    asyncio.run(run())


def instructions(variant: str, requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--child", variant, str(requests)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        text = Path(out).read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^totals:\s+(\d+)", text, re.MULTILINE
    )
    assert match is not None
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", action="append", choices=VARIANTS, help="these variants (and none)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        print("ir_asgi: skipped, valgrind is not installed")
        return
    variants = ["none", *(v for v in VARIANTS if v != "none" and (not args.only or v in args.only))]
    per_request = {}
    for variant in variants:
        total = instructions(variant, args.requests) - instructions(variant, 0)
        per_request[variant] = total / args.requests
    base = per_request["none"]
    print(
        f"instructions per request (callgrind, {args.requests} requests, PYTHONHASHSEED=0): app alone {base:.0f}"
    )
    floor = per_request.get("floor")
    for variant in variants[1:]:
        added = per_request[variant] - base
        ratio = (
            ""
            if floor is None or variant in ("floor", "unguarded")
            else f"; ours/floor {added / (floor - base):.2f}x"
        )
        print(f"  {variant:15} +{added:.0f}{ratio}")


if __name__ == "__main__":
    main()
