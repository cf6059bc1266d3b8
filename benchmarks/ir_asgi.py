"""Instructions per ASGI request of `GuardMiddleware` and its floor, counted by callgrind.

    python benchmarks/ir_asgi.py [--requests N] [--only VARIANT ...]

The requests of ``bench_floors.py``'s ASGI rows (a 1 KB four-message chat body, the app called
directly), run under ``valgrind --tool=callgrind`` once per variant with N requests and with none;
prints (Ir(N) - Ir(0)) / N per request, the overhead over the app alone, and ours/floor. Unlike CPU
time, instruction counts do not move with the load of a shared machine. Needs valgrind; skipped
with a message without it.

Variants: ``none`` (the app alone), ``floor`` (the hand-written floor middleware), ``ours`` (a
guard implementing the `Guard` protocol), ``ours-inprocess`` (an `InProcessGuard`), ``unguarded``
(ours, a path no route guards), ``passthrough`` (a class middleware that only awaits the app:
the least any middleware adds on a path it leaves alone), ``unguarded-state`` (the same with a ``state`` dict in the scope,
as uvicorn and other servers send), ``ours-shell`` (``ours`` with the body reading and the
`Judge` taken out: `Inspection.prepare` returns a ready `Content` and `Inspection.acheck` awaits
the guard alone; what the middleware's own code costs).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

VARIANTS = (
    "none",
    "floor",
    "ours",
    "ours-inprocess",
    "ours-shell",
    "unguarded",
    "unguarded-state",
    "passthrough",
)


class Passthrough:
    """The least a class middleware costs on a path it leaves alone: it awaits the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def child(variant: str, requests: int) -> None:
    import bench_floors as floors

    if variant == "ours-shell":
        from guardrails._http import Inspection
        from guardrails._models import Content

        content = Content("What is the capital of France?", metadata={"route": "/guarded"})

        def prepare(self: Inspection, body: bytes) -> Content:
            self.body, self.content = body, content
            return content

        async def acheck(self: Inspection, guard: Any, content: Content) -> None:
            await guard.acheck(content)

        Inspection.prepare = prepare  # type: ignore[method-assign]
        Inspection.acheck = acheck  # type: ignore[method-assign]
    app = floors.build_app(variant if variant in ("none", "floor", "ours-inprocess") else "ours")
    if variant == "passthrough":
        app = Passthrough(floors.build_app("none"))
    path = "/open" if variant.startswith("unguarded") or variant == "passthrough" else "/guarded"
    state = variant == "unguarded-state"

    async def run() -> None:
        await floors._asgi_us(app, path, 50, state=state)  # warm up: first-use imports and caches
        if requests:
            await floors._asgi_us(app, path, requests, state=state)

    asyncio.run(run())


def instructions(variant: str, requests: int) -> int:
    from _load import callgrind_instructions

    return callgrind_instructions(__file__, [variant, str(requests)], env={"PYTHONHASHSEED": "0"})


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
            if floor is None
            or variant in ("floor", "ours-shell", "passthrough")
            or variant.startswith("unguarded")
            else f"; ours/floor {added / (floor - base):.2f}x"
        )
        print(f"  {variant:15} +{added:.0f}{ratio}")


if __name__ == "__main__":
    main()
