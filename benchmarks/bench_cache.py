"""Verdict cache, single-flight and circuit-breaker figures (issue 7, items 2 and 3).

Sections (medians of several runs; µs figures are CPU time of this process, `time.process_time`,
so other work on a shared machine does not inflate them):

1. Cache hit: µs per ``check``/``acheck`` served from the cache (target < 10 µs), next to the same
   check with no cache through `httpx.MockTransport` (no network: the cheapest a guard call gets).
2. Miss overhead: µs per check of always-new contents, with and without a cache (key hashing,
   single-flight bookkeeping, storing the verdict).
3. Single-flight: 100 concurrent identical checks (tasks on ``acheck``, threads on ``check``)
   against a guard answering after 50 ms: guard calls made (target exactly 1), and wall time.
4. Circuit breaker open: µs for a check to fail fast (target < 100 µs), no request sent.

The guard is a `TrendAIGuard` (v3) with a `MockTransport`, so the figures are those of our stack.
Run with ``python benchmarks/bench_cache.py [--runs N] [--iterations N]``, or ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from guardrails._cache import LRUCache
from guardrails._exceptions import GuardUnavailable
from guardrails._models import Content
from guardrails._policy import BreakerState, CircuitBreaker
from guardrails.guards.trend import TrendAIGuard

PROMPT = "What is the capital of France? Answer in one short sentence, please."
BASE_URL = "https://trend.bench"
API_KEY = "tmv1-bench-0123456789abcdef"
ALLOW = b'{"id":"bench","action":"Allow","reasons":[]}'
TARGET_HIT_US = 10.0
TARGET_BREAKER_US = 100.0
CONCURRENCY = 100
LATENCY = 0.05
# Checked before timing: opening the HTTP client is a one-off cost, not the cost of a check.
WARM_UP = Content("warm-up")


def instant(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=ALLOW, headers={"content-type": "application/json"})


async def instant_async(request: httpx.Request) -> httpx.Response:
    return instant(request)


def make_guard(handler: Callable[[httpx.Request], Any], **options: Any) -> TrendAIGuard:
    return TrendAIGuard(API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(handler), **options)


def cpu_us(call: Callable[[], object], iterations: int) -> float:
    """CPU µs per call of `call`."""
    started = time.process_time()
    for _ in range(iterations):
        call()
    return (time.process_time() - started) / iterations * 1e6


def cpu_us_each(call: Callable[[Content], object], items: Sequence[Content]) -> float:
    """CPU µs per ``call(item)``."""
    started = time.process_time()
    for item in items:
        call(item)
    return (time.process_time() - started) / len(items) * 1e6


def cpu_us_async_each(call: Callable[[Content], Awaitable[object]], items: Sequence[Content]) -> float:
    """CPU µs per awaited ``call(item)``, inside one event loop; a first, untimed call warms it up."""

    async def loop() -> float:
        await call(WARM_UP)
        started = time.process_time()
        for item in items:
            await call(item)
        return (time.process_time() - started) / len(items) * 1e6

    return asyncio.run(loop())


def cpu_us_async(make: Callable[[int], Any], iterations: int) -> float:
    """CPU µs per awaited ``make(i)``, inside one event loop."""

    async def loop() -> float:
        started = time.process_time()
        for index in range(iterations):
            await make(index)
        return (time.process_time() - started) / iterations * 1e6

    return asyncio.run(loop())


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str = "") -> None:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    print(f"\n## {title}")
    if note:
        print(note)
    for number, row in enumerate([headers, *rows]):
        print(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
            )
        )
        if number == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


# -- 1. cache hit ------------------------------------------------------------------------------------


def cache_hits(runs: int, iterations: int) -> None:
    content = Content(PROMPT)
    cached = make_guard(instant, cache=True)
    uncached = make_guard(instant)
    cached.check(content)
    acached = make_guard(instant_async, cache=True)
    auncached = make_guard(instant_async)
    asyncio.run(acached.acheck(content))

    rows = []
    hit = median_of(runs, lambda: cpu_us(lambda: cached.check(content), iterations))
    miss = median_of(runs, lambda: cpu_us(lambda: uncached.check(content), max(iterations // 20, 1)))
    rows.append(
        ["check(Content)", f"{hit:.2f}", f"{miss:.1f}", f"{miss / hit:.0f}x", verdict(hit, TARGET_HIT_US)]
    )
    hit_str = median_of(runs, lambda: cpu_us(lambda: cached.check(PROMPT), iterations))
    rows.append(["check(str)", f"{hit_str:.2f}", "", "", verdict(hit_str, TARGET_HIT_US)])
    ahit = median_of(runs, lambda: cpu_us_async(lambda _: acached.acheck(content), iterations))
    amiss = median_of(
        runs, lambda: cpu_us_async(lambda _: auncached.acheck(content), max(iterations // 20, 1))
    )
    rows.append(
        [
            "acheck(Content)",
            f"{ahit:.2f}",
            f"{amiss:.1f}",
            f"{amiss / ahit:.0f}x",
            verdict(ahit, TARGET_HIT_US),
        ]
    )
    print_table(
        f"1. Cache hit (CPU µs per check, median of {runs} runs; target < {TARGET_HIT_US:g} µs)",
        ["", "hit µs", "no cache µs", "saved", "target"],
        rows,
        note="no cache: the same check through httpx.MockTransport (no network), the floor of a guard call",
    )
    for guard in (cached, uncached):
        guard.close()


# -- 2. miss overhead --------------------------------------------------------------------------------


def miss_overhead(runs: int, iterations: int) -> None:
    count = max(iterations // 20, 1)
    rows = []
    for flavour in ("check", "acheck"):
        results: dict[str, list[float]] = {"none": [], "lru": []}
        for run in range(runs):
            # Fresh contents every run: every check is a miss.
            contents = [Content(f"{PROMPT} #{run}-{index}") for index in range(count)]
            for label in ("none", "lru"):
                cache = LRUCache(maxsize=count * runs + 1) if label == "lru" else None
                if flavour == "check":
                    guard = make_guard(instant, cache=cache)
                    guard.check(WARM_UP)
                    results[label].append(cpu_us_each(guard.check, contents))
                    guard.close()
                else:
                    aguard = make_guard(instant_async, cache=cache)
                    results[label].append(cpu_us_async_each(aguard.acheck, contents))
        bare, lru = statistics.median(results["none"]), statistics.median(results["lru"])
        rows.append([flavour, f"{bare:.1f}", f"{lru:.1f}", f"{lru - bare:+.1f}", f"{lru / bare:.3f}"])
    print_table(
        f"2. Miss overhead (CPU µs per check of a new content, median of {runs} runs)",
        ["", "no cache µs", "cache, miss µs", "overhead µs", "ratio"],
        rows,
    )


# -- 3. single-flight --------------------------------------------------------------------------------


class SlowService:
    """Answers after `LATENCY` seconds and counts the requests it got."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls += 1
        time.sleep(LATENCY)  # the guard's latency: what concurrent checks overlap on
        return instant(request)

    async def answer_async(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await asyncio.sleep(LATENCY)
        return instant(request)


def flight_tasks(cache: bool) -> tuple[int, float]:
    service = SlowService()
    guard = make_guard(service.answer_async, cache=cache)

    async def burst() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(guard.acheck(PROMPT) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        await guard.aclose()
        return elapsed

    elapsed = asyncio.run(burst())
    return service.calls, elapsed


def flight_threads(cache: bool) -> tuple[int, float]:
    service = SlowService()
    guard = make_guard(service, cache=cache, limits=httpx.Limits(max_connections=CONCURRENCY))
    start = threading.Barrier(CONCURRENCY + 1)

    def one() -> None:
        start.wait()
        guard.check(PROMPT)

    threads = [threading.Thread(target=one) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    guard.close()
    return service.calls, elapsed


def single_flight(runs: int) -> None:
    rows = []
    for label, measure in (("tasks, acheck", flight_tasks), ("threads, check", flight_threads)):
        for cache in (True, False):
            outcomes = [measure(cache) for _ in range(runs)]
            calls = sorted({calls for calls, _ in outcomes})
            wall = statistics.median(elapsed for _, elapsed in outcomes) * 1e3
            target = ("ok" if calls == [1] else "MISSED") if cache else ""
            rows.append(
                [
                    f"{label}, {'cache' if cache else 'no cache'}",
                    "/".join(map(str, calls)),
                    f"{wall:.0f}",
                    target,
                ]
            )
    print_table(
        f"3. Single-flight: {CONCURRENCY} concurrent identical checks, guard latency {LATENCY * 1e3:.0f} ms "
        f"({runs} runs)",
        ["", "guard calls", "wall ms", "target 1"],
        rows,
    )


# -- 4. breaker open ---------------------------------------------------------------------------------


def unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


async def unavailable_async(request: httpx.Request) -> httpx.Response:
    return unavailable(request)


def open_guard(handler: Callable[[httpx.Request], Any]) -> TrendAIGuard:
    return make_guard(handler, retries=0, breaker=CircuitBreaker(failure_threshold=1, cooldown=3600))


def breaker_open(runs: int, iterations: int) -> None:
    content = Content(PROMPT)
    guard = open_guard(unavailable)
    with contextlib.suppress(GuardUnavailable):
        guard.check(content)
    assert guard.breaker.state is BreakerState.OPEN

    def fail_fast() -> None:
        try:
            guard.check(content)
        except GuardUnavailable as exc:
            if not exc.circuit_open:
                raise

    aguard = open_guard(unavailable_async)

    async def afail_fast(_: int) -> None:
        try:
            await aguard.acheck(content)
        except GuardUnavailable as exc:
            if not exc.circuit_open:
                raise

    async def open_it() -> None:
        with contextlib.suppress(GuardUnavailable):
            await aguard.acheck(content)

    asyncio.run(open_it())
    sync = median_of(runs, lambda: cpu_us(fail_fast, iterations))
    asyncs = median_of(runs, lambda: cpu_us_async(afail_fast, iterations))
    print_table(
        f"4. Circuit breaker open: CPU µs for a check to fail fast (median of {runs} runs; "
        f"target < {TARGET_BREAKER_US:g} µs)",
        ["", "µs", "target"],
        [
            ["check", f"{sync:.1f}", verdict(sync, TARGET_BREAKER_US)],
            ["acheck", f"{asyncs:.1f}", verdict(asyncs, TARGET_BREAKER_US)],
        ],
        note="GuardUnavailable(circuit_open=True), no request sent; includes raising and catching it",
    )
    guard.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: checks the harness, measures nothing"
    )
    options = parser.parse_args()
    runs, iterations = (2, 200) if options.quick else (options.runs, options.iterations)
    started = time.perf_counter()
    cache_hits(runs, iterations)
    miss_overhead(runs, iterations)
    single_flight(min(runs, 3))
    breaker_open(runs, iterations)
    print(
        f"\nbench_cache: {time.perf_counter() - started:.0f} s{' (quick: figures are not meaningful)' if options.quick else ''}"
    )


if __name__ == "__main__":
    main()
