"""What the WSGI middleware costs, and that it does not serialise requests.

1. Throughput: requests/s of a Flask chat endpoint guarded with an instant in-process guard vs the
   same app unguarded, on the same threaded server (werkzeug's and waitress), load from a separate
   process over keep-alive connections, rounds interleaved. Target: ratio >= 0.85.
2. Concurrency: the app runs under waitress with 32 threads and its guard takes 100 ms (an
   in-process guard sleeping, then the Trend v3 API of the emulator in its own process); 64
   requests sent at once must finish in about two guard latencies (64 / 32 threads), not
   sixty-four: no global lock.

Run with ``python benchmarks/bench_wsgi.py [--seconds S] [--rounds N]`` (about a minute by default).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import multiprocessing
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import uvicorn
from flask import Flask, request
from waitress.server import create_server
from werkzeug.serving import make_server

from guardrails._guard import InProcessGuard
from guardrails._models import Action, Content, Verdict
from guardrails._routing import Route
from guardrails.guards.trend import TrendAIGuard
from guardrails.testing.emulator import create_app as create_emulator
from guardrails.wsgi import GuardMiddleware

PATH = "/v1/chat/completions"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
HEADERS = {"Content-Type": "application/json"}
GUARD_LATENCY = 0.1


class InstantGuard(InProcessGuard):
    """Allows everything at once: what is left is the middleware's own cost."""

    name = "instant"
    _verdict = Verdict(action=Action.ALLOW, guard="instant", id="instant")

    def _decide(self, content: Content) -> Verdict:
        return self._verdict


class SleepingGuard(InProcessGuard):
    """Takes the guard latency and allows: the baseline for the remote guard (no network, no CPU)."""

    name = "sleeping"
    _verdict = Verdict(action=Action.ALLOW, guard="sleeping", id="sleeping")

    def _decide(self, content: Content) -> Verdict:
        time.sleep(GUARD_LATENCY)
        return self._verdict


def flask_app() -> Any:
    app = Flask(__name__)

    @app.post(PATH)
    def chat() -> dict[str, Any]:
        body = request.get_json()
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": body["messages"][-1]}}]}

    return app.wsgi_app


# -- servers (in this process, in threads) -----------------------------------------------------------


@contextmanager
def werkzeug_server(app: Any) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def waitress_server(app: Any, threads: int = 8) -> Iterator[int]:
    server = create_server(app, host="127.0.0.1", port=0, threads=threads, connection_limit=200)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.close()


def run_emulator(port: int, latency: float) -> None:
    """The guard service: the emulator under uvicorn, in its own process as a remote guard would be."""
    uvicorn.run(create_emulator(latency=latency), host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def emulator_process(latency: float) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = multiprocessing.get_context("spawn").Process(
        target=run_emulator, args=(port, latency), daemon=True
    )
    process.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError("the emulator did not start") from None
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)


# -- load (in a separate process) ---------------------------------------------------------------------


def throughput(port: int, seconds: float, connections: int) -> float:
    """Requests/s over ``connections`` keep-alive connections for ``seconds``."""
    stop = time.monotonic() + seconds
    counts = [0] * connections

    def run(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            conn.request("POST", PATH, BODY, HEADERS)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"unexpected status {response.status}")
            counts[index] += 1
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(index,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def burst(port: int, requests: int) -> float:
    """Seconds for ``requests`` requests sent at once (connections opened beforehand) to all finish."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(requests)]
    for conn in conns:
        conn.connect()
    go = threading.Barrier(requests + 1)
    statuses: list[int] = []

    def run(conn: http.client.HTTPConnection) -> None:
        go.wait()
        conn.request("POST", PATH, BODY, HEADERS)
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        conn.close()

    threads = [threading.Thread(target=run, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if statuses != [200] * requests:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return elapsed


# -- the benchmarks -----------------------------------------------------------------------------------


def compare_throughput(
    pool: ProcessPoolExecutor, server: Callable[[Any], Any], name: str, seconds: float, rounds: int
) -> float:
    plain = flask_app()
    guarded = GuardMiddleware(flask_app(), guard=InstantGuard(), routes=[Route(PATH)])
    results: dict[str, list[float]] = {"unguarded": [], "guarded": []}
    with server(plain) as plain_port, server(guarded) as guarded_port:
        pool.submit(throughput, plain_port, 0.5, 8).result()  # warm-up
        pool.submit(throughput, guarded_port, 0.5, 8).result()
        for _ in range(rounds):
            results["unguarded"].append(pool.submit(throughput, plain_port, seconds, 8).result())
            results["guarded"].append(pool.submit(throughput, guarded_port, seconds, 8).result())
    unguarded, guarded_rps = statistics.median(results["unguarded"]), statistics.median(results["guarded"])
    ratio = guarded_rps / unguarded
    print(
        f"{name:<9} unguarded {unguarded:8.0f} req/s   guarded {guarded_rps:8.0f} req/s   "
        f"ratio {ratio:.3f} (target >= 0.85)"
    )
    return ratio


def concurrency(pool: ProcessPoolExecutor, rounds: int) -> None:
    def measure(guard: Any, what: str) -> None:
        app = GuardMiddleware(flask_app(), guard=guard, routes=[Route(PATH)])
        with waitress_server(app, threads=32) as port:
            pool.submit(burst, port, 32).result()  # warm-up: opens the guard's pooled connections
            times = [pool.submit(burst, port, 64).result() for _ in range(rounds)]
        elapsed = statistics.median(times)
        print(
            f"{what:<38} median {elapsed * 1000:4.0f} ms = {elapsed / GUARD_LATENCY:.1f} guard latencies "
            f"(rounds {', '.join(f'{t * 1000:.0f}' for t in times)} ms)"
        )

    print(
        f"64 requests at once, waitress with 32 threads, guard latency {GUARD_LATENCY * 1000:.0f} ms "
        f"(ideal 2 latencies; serialised would be 64):"
    )
    measure(SleepingGuard(), "in-process guard sleeping 100 ms")
    # The same remote guard answering at once: the CPU floor of 64 guarded requests on this machine.
    for latency in (0.0, GUARD_LATENCY):
        with emulator_process(latency) as emulator_url:
            guard = TrendAIGuard("test-v1-key", base_url=emulator_url, timeout=10)
            measure(guard, f"Trend v3 API on the emulator, {latency * 1000:.0f} ms")
            guard.close()


def main() -> None:
    # Per-request access logs and waitress's queue-depth warnings would drown the figures.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("waitress").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds of load per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        compare_throughput(pool, werkzeug_server, "werkzeug", args.seconds, args.rounds)
        compare_throughput(pool, waitress_server, "waitress", args.seconds, args.rounds)
        concurrency(pool, args.rounds)


if __name__ == "__main__":
    main()
