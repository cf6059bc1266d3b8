"""Verdict cache, breaker and budget shared on Redis (issue 19): what a hit costs, what a fleet saves.

Sections (a real redis-server on 127.0.0.1 started for the run; wall-clock figures, since a hit's
cost is a round trip):

1. Cache hit on Redis: µs per hit, p50 and p99, of ``RedisCache.get`` / ``aget`` alone and of a
   whole ``TrendAIGuard.check`` / ``acheck`` served from Redis (the guard answered by an
   `httpx.MockTransport`, so the figures are those of our stack), next to the same with the
   in-process `LRUCache`. Target: < 300 µs on loopback.
2. Vendor calls saved with 4 workers: 4 uvicorn worker processes in front of the emulator (its own
   process, answering in 100 ms) receive rounds of 100 concurrent identical prompts spread over the
   workers; vendor calls with a `RedisCache` shared by the workers, and with an in-process cache in
   each worker (single-flight per worker only).
3. Fleet rate budget: the 4 workers asked as fast as they answer for 10 s with a `RedisRateLimit`
   of 20 calls/s (burst 5); vendor calls per second seen by the emulator.

The fleet is ``tests/redis_fleet.py`` (the one the fleet test uses). Run with
``python benchmarks/bench_redis.py [--runs N] [--iterations N]``, or ``--quick`` (tiny counts, to
check the harness; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

# The fleet and the redis-server helper live in tests/ (the fleet test runs the same fleet).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _load import percentile, print_table

from guardrails._cache import LRUCache
from guardrails._models import Action, Content, Verdict
from guardrails.guards.trend import TrendAIGuard
from guardrails.redis import RedisCache
from tests.redis_fleet import fleet
from tests.redis_server import redis_server

TARGET_HIT_US = 300.0
PROMPT = "What is the capital of France? Answer in one short sentence, please."
ALLOW = b'{"id":"bench","action":"Allow","reasons":[]}'
RATE = 20.0
BURST = 5


def instant(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=ALLOW, headers={"content-type": "application/json"})


async def instant_async(request: httpx.Request) -> httpx.Response:
    return instant(request)


def wall_us(call: Callable[[], object], iterations: int) -> list[float]:
    """Wall µs of each of `iterations` calls."""
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def wall_us_async(call: Callable[[], Awaitable[object]], iterations: int) -> list[float]:
    async def loop() -> list[float]:
        await call()  # warm-up: the loop's connection
        samples = []
        for _ in range(iterations):
            started = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - started) * 1e6)
        return samples

    return asyncio.run(loop())


def cache_hits(url: str, iterations: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    redis_cache = RedisCache(url, prefix=prefix)
    stored = Verdict(action=Action.ALLOW, reasons=[], id="bench", guard="trend")
    redis_cache.set("k", stored)
    local = LRUCache()
    local.set("k", stored)

    def guard(cache: Any, *, sync: bool) -> TrendAIGuard:
        transport = httpx.MockTransport(instant if sync else instant_async)
        return TrendAIGuard("tmv1-bench", base_url="https://trend.bench", transport=transport, cache=cache)

    sync_redis, sync_local = guard(RedisCache(url, prefix=prefix), sync=True), guard(LRUCache(), sync=True)
    content = Content(PROMPT)
    sync_redis.check(content)
    sync_local.check(content)
    async_cache = RedisCache(url, prefix=prefix)
    async_redis, async_local = guard(async_cache, sync=False), guard(LRUCache(), sync=False)

    async def aget() -> object:
        return await redis_cache.aget("k")

    async def acheck_redis() -> object:
        return await async_redis.acheck(content)

    async def acheck_local() -> object:
        return await async_local.acheck(content)

    async def close_async() -> None:
        await redis_cache.aclose()
        await async_cache.aclose()

    rows_data = [
        ("RedisCache.get", wall_us(lambda: redis_cache.get("k"), iterations)),
        ("RedisCache.aget", wall_us_async(aget, iterations)),
        ("check, hit on Redis", wall_us(lambda: sync_redis.check(content), iterations)),
        ("acheck, hit on Redis", wall_us_async(acheck_redis, iterations)),
        ("check, hit in-process (LRUCache)", wall_us(lambda: sync_local.check(content), iterations)),
        ("acheck, hit in-process (LRUCache)", wall_us_async(acheck_local, iterations)),
    ]
    rows = []
    for name, samples in rows_data:
        p50 = statistics.median(samples)
        verdict = "" if "LRUCache" in name else ("ok" if p50 < TARGET_HIT_US else "MISSED")
        rows.append((name, f"{p50:.0f}", f"{percentile(samples, 99):.0f}", verdict))
    print_table(
        "1. Cache hit on Redis (µs per hit, wall clock, loopback)",
        ["what", "p50", "p99", f"< {TARGET_HIT_US:.0f} µs"],
        rows,
        note=f"{iterations} hits each; a hit on Redis is one round trip (a GET)",
    )
    redis_cache.close()
    sync_redis.cache.close()  # type: ignore[union-attr]


async def rounds_of_identical(workers: list[str], guard: str, rounds: int, per_round: int) -> list[str]:
    outcomes: list[str] = []
    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
        for _ in range(rounds):
            text = f"fleet prompt {uuid.uuid4().hex}"

            async def one(worker: str, text: str = text) -> None:
                response = await client.post(f"{worker}/check", json={"text": text, "guard": guard})
                body = response.json()
                outcomes.append(body.get("error") or body["action"])

            await asyncio.gather(*(one(workers[i % len(workers)]) for i in range(per_round)))
    return outcomes


async def hammer(workers: list[str], seconds: float) -> list[str]:
    outcomes: list[str] = []
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:

        async def lane(worker: str) -> None:
            while time.monotonic() < until:
                response = await client.post(
                    f"{worker}/check", json={"text": f"budget {uuid.uuid4().hex}", "guard": "metered"}
                )
                body = response.json()
                outcomes.append(body.get("error") or body["action"])

        await asyncio.gather(*(lane(worker) for worker in workers for _ in range(3)))
    return outcomes


def fleet_sections(url: str, rounds: int, per_round: int, seconds: float) -> None:
    with fleet(url, workers=4, prefix=f"bench-{uuid.uuid4().hex[:8]}:", rate=RATE, burst=BURST) as running:
        rows = []
        for guard, label in (
            ("main", "RedisCache shared by the 4 workers"),
            ("local", "in-process cache per worker"),
        ):
            running.emulator_admin("/_emulator/reset")
            running.emulator_admin("/_emulator/faults", {"kind": "latency", "seconds": 0.1})
            started = time.perf_counter()
            outcomes = asyncio.run(rounds_of_identical(running.workers, guard, rounds, per_round))
            elapsed = time.perf_counter() - started
            calls = running.emulator_calls()
            failed = sum(outcome not in ("allow", "block") for outcome in outcomes)
            rows.append(
                (
                    label,
                    str(len(outcomes)),
                    str(calls),
                    f"{calls / rounds:.2f}",
                    str(failed),
                    f"{elapsed:.1f}",
                )
            )
        shared, local = int(rows[0][2]), int(rows[1][2])
        rows.append(
            ("vendor calls saved by sharing", "", f"{local - shared}", f"{1 - shared / local:.0%}", "", "")
        )
        print_table(
            "2. Vendor calls with 4 workers (rounds of identical prompts, vendor answering in 100 ms)",
            ["cache", "checks", "vendor calls", "calls/prompt", "failed", "s"],
            rows,
            note=f"{rounds} rounds of {per_round} concurrent identical checks spread over 4 worker processes",
        )

        running.emulator_admin("/_emulator/reset")
        started = time.perf_counter()
        outcomes = asyncio.run(hammer(running.workers, seconds))
        elapsed = time.perf_counter() - started
        calls = running.emulator_calls()
        ceiling = RATE * elapsed + BURST
        print_table(
            f"3. Fleet rate budget over {seconds:g} s (RedisRateLimit {RATE:g}/s, burst {BURST})",
            ["checks asked", "vendor calls", "calls/s", "ceiling (rate x s + burst)", "under"],
            [
                (
                    str(len(outcomes)),
                    str(calls),
                    f"{calls / elapsed:.1f}",
                    f"{ceiling:.0f}",
                    "ok" if calls <= ceiling else "OVER",
                )
            ],
            note="4 workers x 3 lanes asking as fast as they are answered; refused checks raise GuardRateLimited",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="hits timed per row")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of identical prompts")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the rate window")
    parser.add_argument("--quick", action="store_true", help="tiny counts: check the harness")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.rounds, args.seconds = 50, 1, 1.0
    started = time.perf_counter()
    with redis_server() as server:
        cache_hits(server.url, args.iterations)
        fleet_sections(server.url, args.rounds, 100, args.seconds)
    print(
        f"\nbench_redis: {time.perf_counter() - started:.0f} s{' (quick: figures mean nothing)' if args.quick else ''}"
    )


if __name__ == "__main__":
    main()
