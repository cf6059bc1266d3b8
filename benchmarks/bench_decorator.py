"""What @guarded costs per call: a bare call vs the same call guarded by an instant in-process guard.

The guard always allows at once, so what is measured is the decorator itself: binding the arguments,
extracting the prompt, building the `Content`, the policy and the decision event. Times are CPU
time of this process (`time.process_time`), so other work on a shared machine does not inflate
them. Targets: under 5 µs of overhead per call sync, under 15 µs async.

Run with ``python benchmarks/bench_decorator.py [--runs N] [--iterations N] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable

import wrapt

from guardrails._events import Decision, record
from guardrails._guard import InProcessGuard
from guardrails._models import Action, Content, Verdict
from guardrails.decorator import guarded

TARGETS = {"sync": 5.0, "async": 15.0}
PROMPT = "What is the capital of France?"


def bare_sync(prompt: str, model: str = "stand-in") -> str:
    return prompt


async def bare_async(prompt: str, model: str = "stand-in") -> str:
    return prompt


class InstantGuard(InProcessGuard):
    """`StaticGuard(ALLOW)` without its recording: StaticGuard keeps every Content it is sent, and
    the garbage collector walking those would be counted as decorator overhead."""

    name = "instant"
    verdict = Verdict(action=Action.ALLOW, guard="instant", id="instant")

    def _decide(self, content: Content) -> Verdict:
        return self.verdict


guard = InstantGuard()
guarded_sync = guarded(guard)(bare_sync)
guarded_async = guarded(guard)(bare_async)


def per_call_sync(function: Callable[[str], str], iterations: int) -> float:
    """Mean microseconds per call over `iterations` calls."""
    started = time.process_time()
    for _ in range(iterations):
        function(PROMPT)
    return (time.process_time() - started) / iterations * 1e6


def per_call_async(function: Callable[[str], Awaitable[str]], iterations: int) -> float:
    """Mean microseconds per awaited call over `iterations` calls, inside one event loop."""

    async def loop() -> float:
        started = time.process_time()
        for _ in range(iterations):
            await function(PROMPT)
        return (time.process_time() - started) / iterations * 1e6

    return asyncio.run(loop())


def measure(flavour: str, runs: int, iterations: int) -> tuple[float, float]:
    """Median over `runs` of (bare, guarded) microseconds per call, runs interleaved."""
    bare: list[float] = []
    wrapped: list[float] = []
    for _ in range(runs):
        if flavour == "sync":
            bare.append(per_call_sync(bare_sync, iterations))
            wrapped.append(per_call_sync(guarded_sync, iterations))
        else:
            bare.append(per_call_async(bare_async, iterations))
            wrapped.append(per_call_async(guarded_async, iterations))
    return statistics.median(bare), statistics.median(wrapped)


def components(iterations: int) -> dict[str, float]:
    """CPU microseconds of the building blocks of one guarded call, best of three."""
    signature = inspect.signature(bare_sync)
    content = Content(PROMPT)
    passthrough = wrapt.FunctionWrapper(bare_sync, lambda wrapped, instance, args, kwargs: wrapped(*args))
    blocks: dict[str, Callable[[], object]] = {
        "wrapt dispatch": lambda: passthrough(PROMPT),
        "inspect.Signature.bind (not used)": lambda: signature.bind(PROMPT),
        "Content(prompt)": lambda: Content(PROMPT),
        "guard.check(content)": lambda: guard.check(content),
        "record(Decision(...))": lambda: record(
            Decision("allowed", "instant", "bench", "prompt", "instant", (), None, 0.0)
        ),
    }
    timings: dict[str, float] = {}
    for name, block in blocks.items():
        runs = []
        for _ in range(3):
            started = time.process_time()
            for _ in range(iterations):
                block()
            runs.append((time.process_time() - started) / iterations * 1e6)
        timings[name] = min(runs)
    return timings


def profile(iterations: int) -> None:
    """Print where the sync overhead goes."""
    profiler = cProfile.Profile()
    profiler.runcall(per_call_sync, guarded_sync, iterations)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=50_000)
    parser.add_argument("--profile", action="store_true", help="also profile the sync guarded call")
    options = parser.parse_args()

    print(
        f"@guarded overhead, instant ALLOW guard, CPU time, median of {options.runs} runs x {options.iterations} calls"
    )
    print(f"{'':6} {'bare µs':>9} {'guarded µs':>11} {'overhead µs':>12} {'ratio':>8} {'target µs':>10}")
    for flavour in ("sync", "async"):
        bare, wrapped = measure(flavour, options.runs, options.iterations)
        overhead = wrapped - bare
        verdict = "ok" if overhead < TARGETS[flavour] else "MISSED"
        print(
            f"{flavour:6} {bare:9.2f} {wrapped:11.2f} {overhead:12.2f} {wrapped / bare:7.1f}x "
            f"{'< ' + format(TARGETS[flavour], 'g'):>10} {verdict}"
        )
    print("\nwhere a sync call's overhead goes (CPU µs per operation):")
    for name, microseconds in components(options.iterations).items():
        print(f"  {name:36} {microseconds:6.2f}")
    if options.profile:
        profile(options.iterations)


if __name__ == "__main__":
    main()
