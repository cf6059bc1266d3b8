"""Instructions per request of the body reading and of the ASGI guarded route (callgrind).

    python benchmarks/ir_body.py [--calls N] [--only read|asgi]

Counts, under ``valgrind --tool=callgrind`` (repeatable under load, unlike CPU time on a shared
machine), the instructions per call of, on ``bench_floors``' 1 KB four-message chat body:

- ``read``: the floor's reading (``json.loads``, the message texts joined, a ``Content``); the
  default extractor ``default_body`` (its fast path taken); ``_full_body`` (the superset reading
  without the fast path, what ``default_body`` did before it);
- ``asgi``: one request through ``bench_floors``' in-process ASGI loop: app alone, the floor
  middleware, our ``GuardMiddleware`` with a ``Guard``-protocol guard and with an
  ``InProcessGuard``; ratios are on the extra over the app alone, as ``bench_floors`` prints them.

Each variant runs once with N calls and once with none (same warm-up): (Ir(N) - Ir(0)) / N.
Needs valgrind; skipped with a message without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

READ_VARIANTS = ("floor", "default_body", "full")
ASGI_VARIANTS = ("none", "floor", "ours", "ours-inprocess")
WARM_UP = 200


def _reader(variant: str) -> Any:
    import bench_floors as floors

    from guardrails import _body
    from guardrails._body import HTTPBody, default_body
    from guardrails._models import Content
    from guardrails._routing import Route

    body = floors.BODY
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    scope = Route("/guarded").scope

    def floor() -> Any:
        data = json.loads(body)
        return Content(
            "\n".join(
                m["content"]
                for m in data["messages"]
                if isinstance(m, dict) and isinstance(m.get("content"), str)
            )
        )

    def ours() -> Any:
        request = HTTPBody("POST", "/guarded", headers, body, metadata={"route": "/guarded"})
        return default_body(request, scope)

    def full() -> Any:
        request = HTTPBody("POST", "/guarded", headers, body, metadata={"route": "/guarded"})
        # Before the fast path (the branch point), default_body was the full reading.
        return getattr(_body, "_full_body", default_body)(request, scope)

    return {"floor": floor, "default_body": ours, "full": full}[variant]


def child(group: str, variant: str, calls: int) -> None:
    if group == "read":
        function = _reader(variant)
        for _ in range(WARM_UP):
            function()
        for _ in range(calls):
            function()
        return
    import bench_floors as floors

    app = floors.build_app(variant)

    async def run() -> None:
        await floors._asgi_us(app, "/guarded", WARM_UP)
        if calls:
            await floors._asgi_us(app, "/guarded", calls)

    asyncio.run(run())


def instructions(group: str, variant: str, calls: int) -> int:
    from _load import callgrind_instructions

    return callgrind_instructions(__file__, [group, variant, str(calls)])


def per_call(group: str, variant: str, calls: int) -> float:
    return (instructions(group, variant, calls) - instructions(group, variant, 0)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--only", choices=("read", "asgi"), action="append")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if shutil.which("valgrind") is None:
        print("ir_body: skipped, valgrind is not installed")
        return
    groups = args.only or ["read", "asgi"]
    if "read" in groups:
        read = {variant: per_call("read", variant, args.calls) for variant in READ_VARIANTS}
        floor = read["floor"]
        print(f"body reading, instructions per call ({args.calls} calls):")
        for variant, value in read.items():
            print(f"  {variant:14} {value:9.0f}  ({value / floor:.2f}x the floor's)")
    if "asgi" in groups:
        asgi = {variant: per_call("asgi", variant, args.calls) for variant in ASGI_VARIANTS}
        base = asgi["none"]
        floor = asgi["floor"] - base
        print(f"ASGI guarded route, instructions per request ({args.calls} requests):")
        print(f"  app alone      {base:9.0f}")
        for variant in ASGI_VARIANTS[1:]:
            extra = asgi[variant] - base
            print(f"  {variant:14} +{extra:8.0f}  ({extra / floor:.2f}x the floor's extra)")


if __name__ == "__main__":
    main()
