"""A fleet of workers sharing a verdict cache, a circuit breaker and a rate budget on Redis.

Each worker is its own uvicorn process serving `create_app`: ``POST /check`` ``{"text": ...,
"guard": "main" | "local" | "metered"}`` checks the text with a `TrendAIGuard` against the vendor emulator
(its own uvicorn process too) and answers the verdict or the error; ``GET /stats`` tells the state
of the worker's Redis objects. ``main`` has a `RedisCache` and a `RedisBreaker`; ``local`` an
in-process cache (for comparison); ``metered`` no cache and a `RedisRateLimit`. `fleet` starts them all on 127.0.0.1, polls each until it
answers under a bounded deadline, and stops them on exit. Used by ``tests/test_redis_fleet.py``
and ``benchmarks/bench_redis.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guardrails import GuardError, GuardUnavailable, TrendAIGuard
from guardrails._policy import CircuitBreaker
from guardrails.redis import RedisBreaker, RedisCache, RedisRateLimit

__all__ = ["Fleet", "create_app", "fleet"]

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0
TREND_KEY = "test-v1-key"


def create_app() -> Starlette:
    """One worker, configured by ``FLEET_*`` environment variables (see `fleet`)."""
    env = os.environ
    url, prefix = env["FLEET_REDIS_URL"], env["FLEET_PREFIX"]
    # A generous timeout: the fleet shows coordination, on a machine other work may load (the
    # short default is what a timeout test checks).
    common: dict[str, Any] = {"prefix": prefix, "retry_interval": 0.2, "timeout": 1.0}
    cache = RedisCache(url, **common)
    breaker = RedisBreaker(url, name="trend", failure_threshold=3, cooldown=60, **common)
    budget = RedisRateLimit(
        url, rate=float(env["FLEET_RATE"]), burst=int(env["FLEET_BURST"]), name="trend", **common
    )
    guards = {
        "main": TrendAIGuard(
            TREND_KEY, base_url=env["FLEET_EMULATOR_URL"], retries=0, cache=cache, breaker=breaker
        ),
        # For comparison: each worker with its own in-process cache and single-flight.
        "local": TrendAIGuard(TREND_KEY, base_url=env["FLEET_EMULATOR_URL"], retries=0, cache=True),
        "metered": TrendAIGuard(
            TREND_KEY,
            base_url=env["FLEET_EMULATOR_URL"],
            retries=0,
            rate_limit=budget,
            breaker=CircuitBreaker(failure_threshold=0),
        ),
    }

    async def check(request: Request) -> Response:
        body = await request.json()
        guard = guards[body.get("guard", "main")]
        try:
            verdict = await guard.acheck(body["text"])
        except GuardError as exc:
            circuit_open = isinstance(exc, GuardUnavailable) and exc.circuit_open
            return JSONResponse({"error": type(exc).__name__, "circuit_open": circuit_open})
        return JSONResponse({"action": verdict.action.value, "cached": verdict.cached})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                name: {"available": item.available, "outages": item.outages, "recoveries": item.recoveries}
                for name, item in (("cache", cache), ("breaker", breaker), ("budget", budget))
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid()})

    return Starlette(
        routes=[
            Route("/check", check, methods=["POST"]),
            Route("/stats", stats),
            Route("/health", health),
        ]
    )


@dataclass
class Fleet:
    """The running fleet: the emulator's URL and each worker's."""

    emulator: str
    workers: list[str]

    def emulator_calls(self) -> int:
        """Vendor calls the emulator answered since its last reset."""
        response = httpx.get(f"{self.emulator}/_emulator/requests", trust_env=False, timeout=10)
        return sum(response.json()["counts"].values())

    def emulator_admin(self, path: str, payload: object = None) -> None:
        httpx.post(f"{self.emulator}{path}", json=payload, trust_env=False, timeout=10).raise_for_status()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited with status {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} was not ready within {READY_TIMEOUT:g}s")
            time.sleep(0.02)  # a poll interval, not a wait for readiness


@contextmanager
def fleet(
    redis_url: str, *, workers: int = 4, prefix: str, rate: float = 20, burst: int = 5
) -> Iterator[Fleet]:
    """Start the emulator and `workers` worker processes on 127.0.0.1; stop them all on exit."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    emulator_port = _free_port()
    emulator = f"http://127.0.0.1:{emulator_port}"
    env.update(
        FLEET_REDIS_URL=redis_url,
        FLEET_PREFIX=prefix,
        FLEET_EMULATOR_URL=emulator,
        FLEET_RATE=str(rate),
        FLEET_BURST=str(burst),
    )
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "cwd": ROOT, "env": env}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "guardrails", "emulator", "--port", str(emulator_port)],
            stderr=subprocess.DEVNULL,
            **quiet,  # type: ignore[call-overload]
        )
    ]
    urls: list[str] = []
    try:
        for _ in range(workers):
            port = _free_port()
            urls.append(f"http://127.0.0.1:{port}")
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "tests.redis_fleet:create_app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "error",
                        "--no-access-log",
                    ],
                    **quiet,  # type: ignore[call-overload]
                )
            )
        _wait_ready(processes[0], f"{emulator}/_emulator/health")
        for process, url in zip(processes[1:], urls, strict=True):
            _wait_ready(process, f"{url}/health")
        yield Fleet(emulator, urls)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
