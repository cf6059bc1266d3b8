"""Remote-guard throughput, concurrency scaling and memory, against the emulator in another process.

Sections (one table each, medians over several runs; the machine is noisy, so read the ratios):

1. ``acheck`` throughput (checks/s) at concurrency 1, 10, 100, 500 for each vendor guard, next to a
   minimal hand-written ``httpx.AsyncClient`` loop and an ``aiohttp`` loop sending the identical
   request (same URL, headers and body bytes) over plain http; then Palo Alto over https next to the
   official ``pan-aisecurity`` SDK's asyncio scanner (it accepts https endpoints only: the emulator is
   served with a throw-away trustme CA, which the SDK trusts through ``SSL_CERT_FILE``).
   Client CPU microseconds per check (``time.process_time``) sit beside each figure: the server
   shares the machine's two cores, so at high concurrency the CPU figure is the one that tells how
   much our stack costs.
2. Concurrency scaling: the emulator answers after 100 ms; the wall time of N concurrent checks, for
   the guard's default connection pool and for a pool of 1000 connections.
3. Peak memory: RSS growth of a fresh process with 1000 checks in flight (emulator latency 2 s).
4. Tuning (issue item 4): keep-alive pool size (rows in section 1), HTTP/2, JSON encoding and
   decoding cost, and the in-process cost of our stack over a bare httpx call with no network.

Run ``python benchmarks/bench_guards.py`` (about three minutes), or ``--quick`` for tiny counts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from _load import (
    PANW_KEY,
    TREND_KEY,
    Server,
    fmt,
    median,
    peak_rss_bytes,
    percentile,
    print_table,
    ratio,
    reset_peak_rss,
    rss_bytes,
    serve_emulators,
)

from guardrails._client import AsyncBackend, RemoteGuard
from guardrails._exchange import GuardResponse
from guardrails._models import Content
from guardrails.guards.paloalto import PaloAltoAIRS
from guardrails.guards.trend import TrendAIGuard

PROMPT = "What is the capital of France? Answer in one short sentence, please."
PROFILE = "bench-profile"
SCALING_LATENCY = 0.1

Call = Callable[[], Awaitable[object]]
Close = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Plan:
    """How much to measure: counts per concurrency level, runs, sizes."""

    concurrency: tuple[int, ...]
    checks: dict[int, int]
    runs: int
    scaling: tuple[int, ...]
    scaling_runs: int
    in_flight: int
    memory_latency: float
    # Quick runs start the memory children together: their RSS is their own, only wall time suffers.
    memory_parallel: bool
    micro_iterations: int


FULL = Plan(
    concurrency=(1, 10, 100, 500),
    checks={1: 60, 10: 200, 100: 300, 500: 500},
    runs=3,
    scaling=(1, 10, 100, 1000),
    scaling_runs=3,
    in_flight=1000,
    memory_latency=1.0,
    memory_parallel=False,
    micro_iterations=3000,
)
QUICK = Plan(
    concurrency=(1, 10),
    checks={1: 5, 10: 10},
    runs=1,
    scaling=(1, 10),
    scaling_runs=1,
    in_flight=50,
    memory_latency=0.5,
    memory_parallel=True,
    micro_iterations=50,
)


@dataclass
class Client:
    """One way of sending the check: a label, the call, and how to close it."""

    label: str
    call: Call
    close: Close
    # checks/s and CPU us/check for each concurrency level, one value per run
    rate: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float]] = field(default_factory=dict)
    # per-call latencies (s) of every run, and the calls that raised, for each concurrency level
    latency: dict[int, list[float]] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Wire:
    """The request a guard sends for `PROMPT`: what the hand-written loops send too."""

    url: str
    headers: dict[str, str]
    body: bytes


def default_limits() -> httpx.Limits:
    """The connection pool limits a guard uses unless told otherwise."""
    limits: httpx.Limits = TrendAIGuard(TREND_KEY, base_url="http://127.0.0.1:1")._limits
    return limits


def wire_of(guard: RemoteGuard) -> Wire:
    request = guard._build_requests(Content(text=PROMPT))[0]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    return Wire(str(request.url), headers, request.content)


def make_guard(
    api: str,
    server: Server,
    limits: httpx.Limits | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 10.0,
    backend: AsyncBackend = "auto",
) -> RemoteGuard:
    """A guard on `server`; ``backend="auto"`` is the default: aiohttp when installed."""
    verify = server.tls.client_context() if server.tls is not None else True
    if api == "trend-v3":
        return TrendAIGuard(
            TREND_KEY,
            base_url=server.url,
            app_name="bench",
            limits=limits,
            transport=transport,
            timeout=timeout,
            async_backend=backend,
            verify=verify,
        )
    return PaloAltoAIRS(
        PANW_KEY,
        base_url=server.url,
        profile_name=PROFILE,
        limits=limits,
        transport=transport,
        timeout=timeout,
        async_backend=backend,
        verify=verify,
    )


def guard_client(label: str, guard: RemoteGuard) -> Client:
    async def call() -> object:
        return await guard.acheck(PROMPT)

    return Client(label, call, guard.aclose)


def httpx_client(label: str, wire: Wire, server: Server, limits: httpx.Limits) -> Client:
    verify = server.tls.client_context() if server.tls else True
    client = httpx.AsyncClient(limits=limits, verify=verify, trust_env=False, timeout=10)

    async def call() -> object:
        response = await client.post(wire.url, headers=wire.headers, content=wire.body)
        response.raise_for_status()
        return response.json()["action"]

    return Client(label, call, client.aclose)


def aiohttp_client(label: str, wire: Wire, limit: int) -> Client:
    import aiohttp

    session: aiohttp.ClientSession | None = None

    async def call() -> object:
        nonlocal session
        if session is None:  # a session belongs to the running loop
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))
        async with session.post(wire.url, headers=wire.headers, data=wire.body) as response:
            response.raise_for_status()
            return json.loads(await response.read())["action"]

    async def close() -> None:
        if session is not None:
            await session.close()

    return Client(label, call, close)


def sdk_client(label: str, server: Server) -> Client | str:
    """The official SDK's asyncio scanner, or why it cannot run."""
    if importlib.util.find_spec("aisecurity") is None:
        return "pan-aisecurity is not installed (pip install pan-aisecurity)"
    assert server.tls is not None
    # The SDK builds its SSL context with the default verify paths, which honour SSL_CERT_FILE,
    # and its aiohttp session trusts the environment's proxies: keep loopback off any proxy.
    os.environ["SSL_CERT_FILE"] = str(server.tls.ca_file)
    os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    import aisecurity
    from aisecurity.generated_openapi_client.models.ai_profile import AiProfile
    from aisecurity.scan.asyncio.scanner import Scanner
    from aisecurity.scan.models.content import Content as SDKContent

    aisecurity.init(api_key=PANW_KEY, api_endpoint=server.url)
    scanner = Scanner()
    profile = AiProfile(profile_name=PROFILE)

    async def call() -> object:
        response = await scanner.sync_scan(ai_profile=profile, content=SDKContent(prompt=PROMPT))
        return response.action

    return Client(label, call, scanner.close)


# -- 1. throughput ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """What one measurement of one client at one concurrency level saw."""

    rate: float
    cpu_us: float
    latencies: list[float]
    errors: int


async def measure(call: Call, concurrency: int, checks: int) -> Sample:
    """Checks/s, client CPU us/check and per-call latency of `checks` calls by `concurrency` workers.

    A call that raises (e.g. a guard's deadline passing while it waits for a pooled connection)
    is counted, not fatal: the figure is still printed, with its error count.
    """
    await asyncio.gather(*(call() for _ in range(min(concurrency, 100))), return_exceptions=True)
    remaining = checks
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - began)

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return Sample(checks / wall, (time.process_time() - cpu) / checks * 1e6, latencies, errors)


async def run_throughput(groups: Sequence[tuple[str, list[Client]]], plan: Plan) -> None:
    clients = [client for _, group in groups for client in group]
    for _ in range(plan.runs):
        for concurrency in plan.concurrency:
            for client in clients:
                sample = await measure(client.call, concurrency, plan.checks[concurrency])
                client.rate.setdefault(concurrency, []).append(sample.rate)
                client.cpu.setdefault(concurrency, []).append(sample.cpu_us)
                client.latency.setdefault(concurrency, []).extend(sample.latencies)
                client.errors[concurrency] = client.errors.get(concurrency, 0) + sample.errors
    headers = ["client", *(f"c={c}" for c in plan.concurrency)]
    rows: list[list[str]] = []
    for title, group in groups:
        rows.append([f"[{title}]", *("" for _ in plan.concurrency)])
        for client in group:
            rows.append(
                [
                    "  " + client.label,
                    *(
                        f"{fmt(median(client.rate[c]))} /s ({fmt(median(client.cpu[c]))} us)"
                        + (f" {client.errors[c]} ERR" if client.errors[c] else "")
                        for c in plan.concurrency
                    ),
                ]
            )
        ours = group[0]
        for other in group[1:]:
            rows.append(
                [
                    f"  {ours.label} / {other.label}",
                    *(
                        fmt(ratio(median(ours.rate[c]), median(other.rate[c])), ".2f", "x")
                        + f" (cpu {fmt(ratio(median(ours.cpu[c]), median(other.cpu[c])), '.2f', 'x')})"
                        for c in plan.concurrency
                    ),
                ]
            )
    print_table(
        "1. acheck throughput against the emulator on 127.0.0.1",
        headers,
        rows,
        f"checks/s (client CPU us/check), median of {plan.runs} run(s); ratios: throughput (CPU per check). "
        f"Pools: {default_limits().max_connections} connections, {default_limits().max_keepalive_connections} "
        "kept alive (the guard's default) unless the label says otherwise; aiohttp and the SDK keep 100.",
    )

    latency_rows: list[list[str]] = []
    for title, group in groups:
        latency_rows.append([f"[{title}]", *("" for _ in plan.concurrency)])
        for client in group:
            latency_rows.append(
                [
                    "  " + client.label,
                    *(
                        f"{percentile(client.latency[c], 50) * 1000:.1f} / {percentile(client.latency[c], 99) * 1000:.1f}"
                        for c in plan.concurrency
                    ),
                ]
            )
    print_table(
        "1b. acheck latency per call, p50 / p99 ms (the calls of table 1, all runs)",
        headers,
        latency_rows,
        "at c=500 four calls in five wait for one of the pool's 100 connections: p99 shows how fair the wait is",
    )


# -- 2. scaling ------------------------------------------------------------------------------------


async def run_scaling(server: Server, plan: Plan) -> None:
    server.set_latency(SCALING_LATENCY)
    big = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    configs: list[tuple[str, Client]] = [
        ("guard, default pool (100)", guard_client("guard", make_guard("trend-v3", server))),
        ("guard, max_connections=1000", guard_client("guard", make_guard("trend-v3", server, big))),
        (
            "guard, httpx backend, max_connections=1000",
            guard_client("guard", make_guard("trend-v3", server, big, backend="httpx")),
        ),
    ]
    wire = wire_of(make_guard("trend-v3", server))
    configs.append(("httpx loop, max_connections=1000", httpx_client("httpx", wire, server, big)))
    rows: list[list[str]] = []
    try:
        for label, client in configs:
            cells: list[str] = []
            for n in plan.scaling:
                await asyncio.gather(*(client.call() for _ in range(n)), return_exceptions=True)  # warm up
                walls: list[float] = []
                cpus: list[float] = []
                errors = 0
                for _ in range(plan.scaling_runs):
                    cpu = time.process_time()
                    start = time.perf_counter()
                    results = await asyncio.gather(*(client.call() for _ in range(n)), return_exceptions=True)
                    walls.append(time.perf_counter() - start)
                    cpus.append(time.process_time() - cpu)
                    errors += sum(isinstance(result, Exception) for result in results)
                wall = median(walls)
                failed = f" {errors} ERR" if errors else ""
                cells.append(
                    f"{wall * 1000:.0f} ms ({wall / SCALING_LATENCY:.1f}x, cpu {median(cpus) * 1000:.0f} ms){failed}"
                )
            rows.append([label, *cells])
    finally:
        for _, client in configs:
            await client.close()
        server.set_latency(0)
    print_table(
        f"2. Concurrency scaling: wall time of N concurrent acheck, emulator latency {SCALING_LATENCY * 1000:.0f} ms",
        ["client", *(f"N={n}" for n in plan.scaling)],
        rows,
        f"median of {plan.scaling_runs} run(s) after a warm-up round; (wall / latency, client CPU time); "
        "ERR: checks that failed (the guard's 10 s deadline) over all runs",
    )


# -- 3. memory -------------------------------------------------------------------------------------


async def memory_child(url: str, client_kind: str, in_flight: int, max_connections: int) -> dict[str, Any]:
    """Run in a fresh process: RSS before and at the peak of `in_flight` concurrent checks.

    The guard's deadline is raised to 60 s: on a 100-connection pool most of the checks queue for
    a connection, and the figure wanted is their memory, not the deadline.
    """
    server = Server(url)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(max_connections, default_limits().max_keepalive_connections or 20),
    )
    guard = make_guard("trend-v3", server, limits, timeout=60)
    client: Client
    if client_kind == "guard":
        client = guard_client("guard", guard)
    elif client_kind == "guard-httpx":
        client = guard_client("guard", make_guard("trend-v3", server, limits, timeout=60, backend="httpx"))
    else:
        client = httpx_client("httpx", wire_of(guard), server, limits)
    sampled = 0

    async def sample() -> None:
        nonlocal sampled
        while True:
            sampled = max(sampled, rss_bytes())
            await asyncio.sleep(0.01)

    try:
        for _ in range(3):
            await client.call()
        gc.collect()
        baseline = rss_bytes()
        reset = reset_peak_rss()
        sampler = asyncio.create_task(sample())
        start = time.perf_counter()
        results = await asyncio.gather(*(client.call() for _ in range(in_flight)), return_exceptions=True)
        wall = time.perf_counter() - start
        sampler.cancel()
        peak = peak_rss_bytes() if reset else sampled
    finally:
        await client.close()
    errors = sum(isinstance(result, Exception) for result in results)
    return {"baseline": baseline, "peak": max(peak, sampled), "wall": wall, "errors": errors}


def run_memory(server: Server, plan: Plan) -> None:
    server.set_latency(plan.memory_latency)
    pool = default_limits().max_connections or 100
    configs = [
        (f"guard, default pool ({pool})", "guard", pool),
        (f"guard, {plan.in_flight} connections", "guard", plan.in_flight),
        (f"guard, httpx backend, pool of {pool}", "guard-httpx", pool),
        (f"httpx loop, pool of {pool}", "httpx", pool),
    ]

    def child(kind: str, connections: int) -> subprocess.Popen[str]:
        options = {"url": server.url, "client": kind, "in_flight": plan.in_flight, "connections": connections}
        argv = [sys.executable, os.path.abspath(__file__), "--memory-child", json.dumps(options)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    def result(process: subprocess.Popen[str]) -> dict[str, Any]:
        output, _ = process.communicate(timeout=120)
        if process.returncode:
            raise RuntimeError(f"memory child exited with status {process.returncode}")
        parsed: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return parsed

    rows: list[list[str]] = []
    try:
        if plan.memory_parallel:
            children = [child(kind, connections) for _, kind, connections in configs]
            results = [result(process) for process in children]
        else:
            results = [result(child(kind, connections)) for _, kind, connections in configs]
        for (label, _, _), measured in zip(configs, results, strict=True):
            growth = (measured["peak"] - measured["baseline"]) / 2**20
            rows.append(
                [
                    label,
                    f"{measured['baseline'] / 2**20:.1f}",
                    f"{measured['peak'] / 2**20:.1f}",
                    f"{growth:.1f}",
                    f"{growth * 1024 / plan.in_flight:.1f}",
                    f"{measured['wall']:.2f}",
                    str(measured["errors"]),
                ]
            )
    finally:
        server.set_latency(0)
    print_table(
        f"3. Peak memory with {plan.in_flight} checks in flight (emulator latency {plan.memory_latency:g} s, fresh process)",
        ["client", "RSS before MB", "peak RSS MB", "growth MB", "KiB/check", "wall s", "errors"],
        rows,
        "peak = VmHWM after resetting it through /proc/self/clear_refs (or RSS sampled every 10 ms)",
    )


# -- 4. tuning -------------------------------------------------------------------------------------


def _per_call_us(function: Callable[[], object], iterations: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(iterations):
            function()
        runs.append((time.perf_counter() - start) / iterations * 1e6)
    return median(runs)


async def _async_per_call_us(function: Call, iterations: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(iterations):
            await function()
        runs.append((time.perf_counter() - start) / iterations * 1e6)
    return median(runs)


async def _stack_costs(api: str, answer: bytes, iterations: int) -> list[list[str]]:
    """Our stack's in-process cost per check over a bare httpx call, both answered by a MockTransport."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer, headers={"content-type": "application/json"})

    guard = make_guard(api, Server("http://127.0.0.1:9"), transport=httpx.MockTransport(handler))
    wire = wire_of(guard)
    bare = httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def bare_call() -> object:
        response = await bare.post(wire.url, headers=wire.headers, content=wire.body)
        return response.json()["action"]

    async def guard_call() -> object:
        return await guard.acheck(PROMPT)

    try:
        ours = await _async_per_call_us(guard_call, iterations)
        floor = await _async_per_call_us(bare_call, iterations)
    finally:
        await guard.aclose()
        await bare.aclose()
    content = Content(text=PROMPT)
    response = GuardResponse(200, httpx.Headers(), answer, guard._requests(content)[0])
    build = _per_call_us(lambda: guard._build_requests(content), iterations)
    parse = _per_call_us(lambda: guard._parse_response(response), iterations)
    return [
        [f"{api}: guard.acheck, MockTransport (no network)", fmt(ours, ".1f")],
        [f"{api}: bare httpx post + json, MockTransport", fmt(floor, ".1f")],
        [f"{api}: our stack over bare httpx", fmt(ours - floor, ".1f")],
        [f"{api}:   of which _build_requests", fmt(build, ".1f")],
        [f"{api}:   of which _parse_response (Verdict)", fmt(parse, ".1f")],
    ]


async def run_tuning(plan: Plan) -> None:
    from guardrails.guards._common import encode_json

    n = plan.micro_iterations
    rows: list[list[str]] = []
    # JSON: the trend v3 request body and a typical answer, with the stdlib and with orjson.
    body = {"prompt": PROMPT}
    answer = json.dumps({"id": "0" * 32, "action": "Allow", "reasons": []}).encode()
    rows.append(
        [
            "encode request body, json (as the guards do)",
            fmt(_per_call_us(lambda: encode_json(body, guard="t"), n), ".2f"),
        ]
    )
    rows.append(["decode answer, json.loads", fmt(_per_call_us(lambda: json.loads(answer), n), ".2f")])
    if importlib.util.find_spec("orjson") is not None:
        import orjson

        rows.append(
            ["encode request body, orjson.dumps", fmt(_per_call_us(lambda: orjson.dumps(body), n), ".2f")]
        )
        rows.append(
            ["decode answer, orjson.loads", fmt(_per_call_us(lambda: orjson.loads(answer), n), ".2f")]
        )

    # Our stack with no network: the same exchange answered by an in-process MockTransport.
    canned = {
        "trend-v3": answer,
        "panw": json.dumps(
            {
                "action": "allow",
                "category": "benign",
                "scan_id": "s",
                "report_id": "r",
                "profile_name": PROFILE,
                "prompt_detected": {"injection": False, "dlp": False},
                "timeout": False,
                "error": False,
                "errors": [],
            }
        ).encode(),
    }
    for api, answer_bytes in canned.items():
        rows += await _stack_costs(api, answer_bytes, n)

    http2 = "h2 installed" if importlib.util.find_spec("h2") else "h2 not installed"
    rows.append([f"HTTP/2 ({http2})", "not measured"])
    print_table(
        "4. Tuning: per-operation costs in-process",
        ["operation", "us/op"],
        rows,
        f"median of 5 x {n} calls. HTTP/2 needs an h2 server; uvicorn (the emulator's) speaks HTTP/1.1 only. "
        "The guard's async backend: the 'httpx backend' rows of tables 1-3.",
    )


# -- main ------------------------------------------------------------------------------------------


SECTIONS = ("throughput", "scaling", "memory", "tuning")


async def run_throughput_section(http: Server, https: Server, plan: Plan) -> None:
    limits = default_limits()
    groups: list[tuple[str, list[Client]]] = []
    for api in ("trend-v3", "panw"):
        wire = wire_of(make_guard(api, http))
        group = [
            guard_client("guard", make_guard(api, http)),
            httpx_client("httpx loop", wire, http, limits),
            aiohttp_client("aiohttp loop", wire, 100),
            guard_client("guard, httpx backend", make_guard(api, http, backend="httpx")),
        ]
        groups.append((f"{api}, http", group))
    https_group = [
        guard_client("guard", make_guard("panw", https)),
        httpx_client("httpx loop", wire_of(make_guard("panw", https)), https, limits),
        guard_client("guard, httpx backend", make_guard("panw", https, backend="httpx")),
    ]
    sdk = sdk_client("pan-aisecurity SDK", https)
    if isinstance(sdk, Client):
        https_group.insert(1, sdk)
    groups.append(("panw, https", https_group))
    try:
        await run_throughput(groups, plan)
    finally:
        for _, group in groups:
            for client in group:
                await client.close()
    if isinstance(sdk, str):
        print(f"pan-aisecurity SDK: not measured: {sdk}")


async def bench(plan: Plan, sections: Sequence[str] = SECTIONS) -> None:
    if {"throughput", "scaling", "memory"} & set(sections):
        with serve_emulators(tls=(False, True)) as (http, https):
            if "throughput" in sections:
                await run_throughput_section(http, https, plan)
            if "scaling" in sections:
                await run_scaling(http, plan)
            if "memory" in sections:
                run_memory(http, plan)
    if "tuning" in sections:
        await run_tuning(plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: checks the harness, measures nothing"
    )
    parser.add_argument("--runs", type=int, help="runs per figure (median taken)")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        options = json.loads(args.memory_child)
        result = asyncio.run(
            memory_child(options["url"], options["client"], options["in_flight"], options["connections"])
        )
        print(json.dumps(result))
        return
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = Plan(**{**plan.__dict__, "runs": args.runs, "scaling_runs": args.runs})
    start = time.perf_counter()
    asyncio.run(bench(plan, args.only or SECTIONS))
    print(
        f"\nbench_guards: {time.perf_counter() - start:.0f} s{' (quick: figures are not meaningful)' if args.quick else ''}"
    )


if __name__ == "__main__":
    main()
