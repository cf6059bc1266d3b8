"""Client cost per check of `TrendAIGuard.acheck` and of a raw aiohttp loop, repeatable under load.

    [GUARDRAILS_ROOT=DIR] python benchmarks/ir_remote.py [--checks N] [--profile]

The emulator runs natively in a child process (on core 1 when ``taskset`` is there). The client
runs under ``valgrind --tool=callgrind`` once per variant with N checks and with N/5, at
concurrency 100 as in `bench_floors.py`'s remote row, and the script prints
(Ir(N) - Ir(N/5)) / (N - N/5), the instructions per check once warm, for ours and for the raw
aiohttp loop (the floor), and their ratio. Instruction counts move far less with the machine's
load than CPU time does (not zero: how many answers each event-loop iteration finds ready
depends on timing); compare the figures of one run, and run it again when they look off.
``GUARDRAILS_ROOT`` measures the guardrails package of another checkout (the branch point, say)
with the same harness; ``--profile ours|raw`` instead runs one variant natively under cProfile
and prints where its time goes (function calls per check, functions by own time).
Needs valgrind for the counts; skipped with a message without it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GUARDRAILS_ROOT", str(HERE.parent)))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

PROMPT = "What is the capital of France?"
CONCURRENCY = 100


async def _run(variant: str, url: str, checks: int) -> None:
    import aiohttp

    from guardrails._models import Content
    from guardrails.guards.trend import TrendAIGuard

    # A long deadline: under valgrind the client runs ~50x slower than natively.
    guard = TrendAIGuard("test-v1-key", base_url=url, app_name="bench", timeout=300)
    request = guard._build_requests(Content(text=PROMPT))[0]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    target, body = str(request.url), request.content
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))

    async def raw() -> object:
        async with session.post(target, headers=headers, data=body) as response:
            response.raise_for_status()
            return json.loads(await response.read())["action"]

    async def ours() -> object:
        return await guard.acheck(PROMPT)

    call = ours if variant == "ours" else raw
    remaining = checks

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    try:
        await asyncio.gather(*(call() for _ in range(CONCURRENCY)))  # warm: connections open
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        await guard.aclose()
        await session.close()


def instructions(variant: str, url: str, checks: int) -> int:
    from _load import callgrind_instructions

    return callgrind_instructions(__file__, [variant, url, str(checks)], env={"GUARDRAILS_ROOT": str(ROOT)})


def profile(variant: str, url: str, checks: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_run(variant, url, checks))
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    print(f"function calls per check: {stats.total_calls / checks:.0f}")  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(30)
    print(stream.getvalue())


def main() -> None:
    from _load import free_port, serve_process

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--profile", choices=("ours", "raw"), help="cProfile one variant instead of counting")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        variant, url, checks = options.child
        asyncio.run(_run(variant, url, int(checks)))
        return
    if not options.profile and shutil.which("valgrind") is None:
        print("ir_remote: valgrind is not installed; skipped")
        return
    port = free_port()
    # The emulator keeps idle connections for 10 minutes: under valgrind a round of 100 checks
    # can outlast uvicorn's default 5 s keep-alive, and reconnecting is not what is measured.
    serve = (
        "import uvicorn\nfrom guardrails.testing.emulator import create_app\n"
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning', "
        "access_log=False, backlog=4096, timeout_keep_alive=600)"
    )
    argv = [sys.executable, "-c", serve]
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        argv = ["taskset", "-c", "1", *argv]
    with serve_process(argv, url=f"http://127.0.0.1:{port}", health_path="/_emulator/health") as server:
        print(f"guardrails from {ROOT}")
        if options.profile:
            profile(options.profile, server.url, options.checks)
            return
        low = max(1, options.checks // 5)
        per_check: dict[str, float] = {}
        for variant in ("ours", "raw"):
            high_ir = instructions(variant, server.url, options.checks)
            low_ir = instructions(variant, server.url, low)
            per_check[variant] = (high_ir - low_ir) / (options.checks - low)
            print(f"  {variant:5} {per_check[variant] / 1000:8.1f}k instructions per check")
        print(f"  ours / raw aiohttp loop: {per_check['ours'] / per_check['raw']:.2f}x")


if __name__ == "__main__":
    main()
