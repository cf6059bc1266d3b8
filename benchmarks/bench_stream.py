"""Streaming with ``scan_response``: time to first byte and total time, guarded vs unguarded.

Scenarios (each an OpenAI chat-completion event stream, ``text/event-stream``):

a. 20 events 0.1 s apart, a guard answering at once (0 ms);
b. the same with a guard taking 50 ms;
c. 2,000 tokens sent as fast as the app can, a 0 ms guard (guard calls per answer reported);
d. the same with a 50 ms guard (what sequential window checks cost on a fast stream).

Each runs through the ASGI middleware under uvicorn and the WSGI middleware under werkzeug's
threaded server, next to the same app unguarded, in the same run (rounds interleaved, medians).
The guard's latency is spent on response checks only (the prompt check is instant): the figures
are what streaming costs. Default stream options (``stream_first_window=48``, windows doubling to
``stream_window=1000``, ``stream_overlap=100``, ``stream_idle_flush=0.05``).

Targets (issue 14): first byte <= unguarded first byte + one guard latency + 60 ms; total <=
unguarded total + two guard latencies (+ 10 ms of measurement noise).

Then the CPU the scanning costs per event (no server, no network: the middlewares called in
process with a 2,000-event stream and a guard answering at once; least CPU time of several runs):
the event reader (`StreamText`), the scanner (`SSEScanner.feed`), the ASGI and the WSGI middleware
(guarded minus the same stream unguarded). ``--cpu`` prints only that part (run it with
``PYTHONPATH`` pointing at another checkout to compare two versions of the code).

Run with ``python benchmarks/bench_stream.py [--rounds N] [--quick] [--cpu]`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from werkzeug.serving import make_server

from guardrails._models import Action, Content, Verdict, as_content
from guardrails._routing import Route
from guardrails.asgi import GuardMiddleware as ASGIGuardMiddleware
from guardrails.wsgi import GuardMiddleware as WSGIGuardMiddleware

PROMPT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Tell me a story."}]}).encode()
HEADERS = {"content-type": "application/json"}
#: What the total-time target allows on top, for measurement noise (a 0 ms guard's target is 0 ms).
NOISE = 0.010


class LatencyGuard:
    """Allows everything after ``latency`` seconds on response checks (prompts at once); counts calls."""

    name = "latency"

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0
        self._lock = threading.Lock()

    def _verdict(self, content: Content) -> Verdict:
        with self._lock:
            self.calls += content.kind == "response"
        return Verdict(action=Action.ALLOW, guard=self.name, id="ok")

    def check(self, content: Content | str) -> Verdict:
        content = as_content(content)
        if content.kind == "response" and self.latency:
            time.sleep(self.latency)
        return self._verdict(content)

    async def acheck(self, content: Content | str) -> Verdict:
        content = as_content(content)
        if content.kind == "response" and self.latency:
            await asyncio.sleep(self.latency)
        return self._verdict(content)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class Scenario:
    name: str
    events: int
    gap: float
    latency: float


def event(i: int) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def asgi_app(scenario: Scenario) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for i in range(scenario.events):
            if scenario.gap and i:
                await asyncio.sleep(scenario.gap)
            await send({"type": "http.response.body", "body": event(i), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    return app


def wsgi_app(scenario: Scenario) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        for i in range(scenario.events):
            if scenario.gap and i:
                time.sleep(scenario.gap)
            yield event(i)
        yield b"data: [DONE]\n\n"

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def measure(client: httpx.Client, url: str) -> tuple[float, float]:
    """Seconds to the first event's byte and to the end of the stream."""
    start = time.perf_counter()
    first: float | None = None
    with client.stream("POST", url + "/s", content=PROMPT, headers=HEADERS) as response:
        for data in response.iter_raw():
            if first is None and b"data:" in data:
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    assert first is not None, "no event arrived"
    return first, total


def run(scenario: Scenario, rounds: int) -> list[str]:
    rows = []
    shells: list[tuple[str, Callable[[Scenario], Any], Any, Callable[[Any], Any]]] = [
        ("asgi", asgi_app, ASGIGuardMiddleware, serve_asgi),
        ("wsgi", wsgi_app, WSGIGuardMiddleware, serve_wsgi),
    ]
    for shell, make_app, middleware, serve in shells:
        guard = LatencyGuard(scenario.latency)
        guarded = middleware(make_app(scenario), guard=guard, routes=[Route("/s", scan_response=True)])
        plain: list[tuple[float, float]] = []
        checked: list[tuple[float, float]] = []
        with serve(make_app(scenario)) as plain_url, serve(guarded) as guarded_url, httpx.Client() as client:
            measure(client, plain_url)  # warm up both
            measure(client, guarded_url)
            guard.calls = 0
            for _ in range(rounds):
                plain.append(measure(client, plain_url))
                checked.append(measure(client, guarded_url))
        p_first = statistics.median(f for f, _ in plain)
        p_total = statistics.median(t for _, t in plain)
        g_first = statistics.median(f for f, _ in checked)
        g_total = statistics.median(t for _, t in checked)
        first_ok = g_first <= p_first + scenario.latency + 0.060
        total_ok = g_total <= p_total + 2 * scenario.latency + NOISE
        rows.append(
            f"{scenario.name:<26} {shell:<5} {p_first * 1000:8.1f} {g_first * 1000:8.1f} "
            f"{p_total * 1000:9.1f} {g_total * 1000:9.1f} {guard.calls / rounds:8.1f}   "
            f"{'ok' if first_ok else 'MISS'}/{'ok' if total_ok else 'MISS'}"
        )
        print(rows[-1], flush=True)
    return rows


def cpu_per_event(events: int, runs: int) -> list[str]:
    """Microseconds of CPU per event: the reader, the scanner, each middleware (in process)."""
    from guardrails._shapes import StreamText
    from guardrails._sse import SSEScanner
    from guardrails.testing import StaticGuard

    raw = [event(i) for i in range(events)]
    prompt_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(PROMPT)).encode())]

    async def asgi_stream(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for chunk in raw:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    def wsgi_stream(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield from raw
        yield b"data: [DONE]\n\n"

    def through_asgi(app: Any) -> None:
        async def call() -> None:
            received = False

            async def receive() -> dict[str, Any]:
                nonlocal received
                if received:
                    await asyncio.sleep(3600)
                received = True
                return {"type": "http.request", "body": PROMPT, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                await asyncio.sleep(0)  # a server's send lets the loop run

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/s",
                "raw_path": b"/s",
                "query_string": b"",
                "headers": prompt_headers,
                "http_version": "1.1",
                "scheme": "http",
                "server": ("127.0.0.1", 80),
                "client": ("127.0.0.1", 1),
                "root_path": "",
            }
            await app(scope, receive, send)

        asyncio.run(call())

    def through_wsgi(app: Any) -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/s",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(PROMPT)),
            "wsgi.input": io.BytesIO(PROMPT),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
        }
        body = app(environ, lambda status, headers, exc_info=None: None)
        try:
            for _ in body:
                pass
        finally:
            getattr(body, "close", lambda: None)()

    def least(work: Callable[[], object]) -> float:
        times = []
        for _ in range(runs):
            started = time.process_time()
            work()
            times.append(time.process_time() - started)
        return min(times) / events * 1e6

    def read() -> None:
        reader = StreamText()
        for chunk in raw:
            reader(chunk)

    def feed() -> None:
        scanner = SSEScanner(window_chars=1000, overlap=100, first_window=48)
        for chunk in raw:
            scanner.feed(chunk)
        scanner.finish()

    routes = [Route("/s", scan_response=True)]
    asgi_guarded = ASGIGuardMiddleware(asgi_stream, guard=StaticGuard(history=0), routes=routes)
    wsgi_guarded = WSGIGuardMiddleware(wsgi_stream, guard=StaticGuard(history=0), routes=routes)
    rows = [
        f"reader (StreamText)          {least(read):6.1f}",
        f"scanner (SSEScanner.feed)    {least(feed):6.1f}",
        f"asgi middleware (- unguarded) {least(lambda: through_asgi(asgi_guarded)) - least(lambda: through_asgi(asgi_stream)):5.1f}",
        f"wsgi middleware (- unguarded) {least(lambda: through_wsgi(wsgi_guarded)) - least(lambda: through_wsgi(wsgi_stream)):5.1f}",
    ]
    print(f"## CPU per event (us, least of {runs} runs of {events} events)")
    for row in rows:
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the harness only")
    parser.add_argument("--cpu", action="store_true", help="only the CPU per event, in process")
    args = parser.parse_args()
    logging.getLogger("guardrails").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    if args.cpu or args.quick:
        cpu_per_event(200 if args.quick else 2000, 1 if args.quick else 15)
        if args.cpu:
            return
    rounds = 1 if args.quick else args.rounds
    events, tokens = (5, 200) if args.quick else (20, 2000)
    scenarios = [
        Scenario(f"a. {events} ev 0.1 s, 0 ms", events, 0.1, 0.0),
        Scenario(f"b. {events} ev 0.1 s, 50 ms", events, 0.1, 0.05),
        Scenario(f"c. {tokens} tokens, 0 ms", tokens, 0.0, 0.0),
        Scenario(f"d. {tokens} tokens, 50 ms", tokens, 0.0, 0.05),
    ]
    started = time.perf_counter()
    print("## Streaming: time to first byte and total (ms, medians), guard calls per answer")
    print(
        f"{'scenario':<26} {'shell':<5} {'1st none':>8} {'1st grd':>8} {'tot none':>9} {'tot grd':>9} "
        f"{'calls':>8}   first/total target"
    )
    for scenario in scenarios:
        run(scenario, rounds)
    print(f"bench_stream: {time.perf_counter() - started:.0f} s{' (quick)' if args.quick else ''}")


if __name__ == "__main__":
    main()
