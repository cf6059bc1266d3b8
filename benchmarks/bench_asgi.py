"""Throughput and latency of the ASGI middleware under uvicorn, load from a separate process.

    python benchmarks/bench_asgi.py [--seconds 1.5] [--rounds 7] [--connections 16]

First the middleware's own cost per request, in-process (stable on a busy machine). Then each app
runs in its own uvicorn process; this process generates the load over keep-alive
connections with a minimal asyncio HTTP/1.1 client (a heavier client would be the bottleneck).
Rounds alternate between the apps so that drift on a shared machine hits them all alike; the
median of the rounds is reported.

- throughput: no middleware; a guarded route with an instant in-process guard (always Allow);
  an unguarded route of the guarded app. Targets: guarded/none >= 0.85, unguarded/none >= 0.97.
- latency: one connection, sequential requests; p50 of a route guarded by TrendAIGuard against the
  emulator on loopback, minus the p50 of the unguarded app and the p50 of the emulator asked
  directly. Target: <= 1.5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
).encode()
TREND_BODY = json.dumps({"prompt": "What is the capital of France?"}).encode()
ROOT = Path(__file__).resolve().parent.parent


def instant_guard() -> Any:
    """An in-process guard (no I/O, like LocalGuard) that allows everything at once.

    Not `StaticGuard`: that one records every Content it sees, and a list growing by thousands of
    objects a second makes the garbage collector, not the middleware, the thing measured.
    """
    from guardrails._guard import InProcessGuard
    from guardrails._models import Action, Content, Verdict

    class InstantGuard(InProcessGuard):
        name = "instant"
        verdict = Verdict(action=Action.ALLOW, guard="instant")

        def _decide(self, content: Content) -> Verdict:
            return self.verdict

    return InstantGuard()


# -- servers (run in child processes) --------------------------------------------------------------


def build_app(kind: str, emulator_url: str | None) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route as StarletteRoute

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    app: Any = Starlette(
        routes=[
            StarletteRoute("/guarded", endpoint, methods=["POST"]),
            StarletteRoute("/open", endpoint, methods=["POST"]),
        ]
    )
    if kind == "none":
        return app
    from guardrails._routing import Route
    from guardrails.asgi import GuardMiddleware

    if kind == "static":
        return GuardMiddleware(app, guard=instant_guard(), routes=[Route("/guarded")])
    if kind == "emulator":
        from guardrails.guards.trend import TrendAIGuard

        assert emulator_url is not None
        guard = TrendAIGuard("test-v1-key", base_url=emulator_url, timeout=5)
        return GuardMiddleware(app, guard=guard, routes=[Route("/guarded")])
    if kind == "emulator-server":
        from guardrails.testing.emulator import create_app

        return create_app()
    raise SystemExit(f"unknown app {kind}")


def serve(kind: str, port: int, emulator_url: str | None) -> None:
    import uvicorn

    uvicorn.run(
        build_app(kind, emulator_url), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(kind: str, emulator_url: str | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    if emulator_url:
        command += ["--emulator-url", emulator_url]
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


# -- load ---------------------------------------------------------------------------------------------


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def throughput(port: int, path: str, seconds: float, connections: int) -> float:
    request = request_bytes(port, path, BODY)
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            status = await roundtrip(reader, writer, request)
            assert status == 200, status
            done += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - started)


async def latencies(
    port: int, path: str, count: int, body: bytes = BODY, headers: dict[str, str] | None = None
) -> float:
    request = request_bytes(port, path, body, headers)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        status = await roundtrip(reader, writer, request)
        samples.append(time.perf_counter() - started)
        assert status == 200, status
    writer.close()
    return statistics.median(samples[count // 10 :]) * 1000


async def guard_latency(emulator_url: str, count: int) -> float:
    from guardrails.guards.trend import TrendAIGuard

    async with TrendAIGuard("test-v1-key", base_url=emulator_url, timeout=5) as guard:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await guard.acheck("What is the capital of France?")
            samples.append(time.perf_counter() - started)
    return statistics.median(samples[count // 10 :]) * 1000


async def in_process_overhead(count: int) -> tuple[float, float, float]:
    """Microseconds per request: the app alone, through the middleware guarded, and unguarded."""
    from guardrails._routing import Route
    from guardrails.asgi import GuardMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Any) -> None:
        return None

    middleware = GuardMiddleware(app, guard=instant_guard(), routes=[Route("/guarded")])
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

    async def per_request(target: Any, path: str) -> float:
        started = time.perf_counter()
        for _ in range(count):
            scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": headers}
            message = {"type": "http.request", "body": BODY, "more_body": False}

            async def receive(message: Any = message) -> Any:
                return message

            await target(scope, receive, send)
        return (time.perf_counter() - started) / count * 1e6

    await per_request(middleware, "/guarded")
    return (
        await per_request(app, "/guarded"),
        await per_request(middleware, "/guarded"),
        await per_request(middleware, "/open"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve")
    parser.add_argument("--port", type=int)
    parser.add_argument("--emulator-url")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--latency-requests", type=int, default=2000)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.emulator_url)
        return

    alone, guarded_us, open_us = asyncio.run(in_process_overhead(20_000))
    print("in-process, per request (no server, no network)")
    print(
        f"  app alone {alone:.1f} us; guarded route +{guarded_us - alone:.1f} us; unguarded route +{open_us - alone:.1f} us"
    )

    servers = {kind: start(kind) for kind in ("none", "static", "emulator-server")}
    emulator_url = f"http://127.0.0.1:{servers['emulator-server'][1]}"
    servers["emulator"] = start("emulator", emulator_url)
    try:
        ports = {kind: port for kind, (_, port) in servers.items()}
        cases = {
            "no middleware": (ports["none"], "/guarded"),
            "guarded route, instant guard": (ports["static"], "/guarded"),
            "unguarded route, guarded app": (ports["static"], "/open"),
        }
        for port, path in cases.values():  # warm up
            asyncio.run(throughput(port, path, 0.5, args.connections))
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (port, path) in cases.items():
                results[name].append(asyncio.run(throughput(port, path, args.seconds, args.connections)))
        rps = {name: statistics.median(values) for name, values in results.items()}
        base = rps["no middleware"]
        print(f"throughput ({args.connections} connections, median of {args.rounds} x {args.seconds:g}s)")
        for name, value in rps.items():
            print(f"  {name:32s} {value:9.0f} req/s  ratio {value / base:.3f}")
        print("  targets: guarded route >= 0.85, unguarded route >= 0.97")

        count = args.latency_requests
        trend_headers = {"Authorization": "Bearer test-v1-key", "TMV1-Application-Name": "guardrails"}
        asyncio.run(latencies(ports["emulator"], "/guarded", 200))
        plain = asyncio.run(latencies(ports["none"], "/guarded", count))
        guard_own = asyncio.run(
            latencies(
                ports["emulator-server"], "/v3.0/aiSecurity/applyGuardrails", count, TREND_BODY, trend_headers
            )
        )
        guard_acheck = asyncio.run(guard_latency(emulator_url, count))
        guarded = asyncio.run(latencies(ports["emulator"], "/guarded", count))
        print(f"latency p50 (1 connection, {count} requests)")
        print(f"  unguarded app                    {plain:.3f} ms")
        print(f"  emulator asked directly          {guard_own:.3f} ms")
        print(f"  TrendAIGuard.acheck (emulator)   {guard_acheck:.3f} ms")
        print(f"  guarded by TrendAIGuard+emulator {guarded:.3f} ms")
        print(f"  added over the emulator's time   {guarded - plain - guard_own:.3f} ms (target <= 1.5 ms)")
        print(
            f"  added over TrendAIGuard.acheck   {guarded - plain - guard_acheck:.3f} ms (the middleware's share)"
        )
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            process.wait(10)


if __name__ == "__main__":
    main()
