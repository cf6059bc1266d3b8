"""Should the core's sync path send through httpx or httpx2? Client CPU per check, one run.

The vendor emulator runs in a child process (its CPU is not counted). In this process, for the
same Trend v3 request (URL, headers and body bytes identical), one keep-alive client each:

- ``guard.check`` through our core (httpx today): the whole sync check, for reference;
- a bare ``httpx.Client.send`` of the request and ``json.loads`` of the answer;
- a bare ``httpx2.Client.send`` of the same request and ``json.loads`` of the answer.

Rounds alternate between the clients so that machine load hits each alike; the table gives the
median of the rounds. Client CPU (``time.process_time``) per check is the figure that matters: the
wall time includes the server. The ratio httpx2 / httpx says what switching the core would save.

Run ``PYTHONPATH=. python benchmarks/bench_httpx2.py`` (about 20 s), ``--quick`` for tiny counts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import httpx
import httpx2
from _load import TREND_KEY, fmt, median, print_table, ratio, serve_emulator

from guardrails import Content, TrendAIGuard


def _measure(step: Callable[[], object], count: int) -> tuple[float, float]:
    """CPU and wall microseconds per call over `count` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        step()
    return (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    options = parser.parse_args()
    count, rounds = (50, 2) if options.quick else (400, 7)
    started = time.perf_counter()
    with serve_emulator() as server:
        guard = TrendAIGuard(api_key=TREND_KEY, base_url=server.url, retries=0)
        [request] = guard._build_requests(guard_content := _content())
        url, headers, body = str(request.url), list(request.headers.items()), request.content
        one = httpx.Client()
        two = httpx2.Client()
        one_request = one.build_request("POST", url, headers=headers, content=body)
        two_request = two.build_request("POST", url, headers=headers, content=body)

        def core() -> object:
            return guard.check(guard_content)

        def bare_httpx() -> object:
            return json.loads(one.send(one_request).content)

        def bare_httpx2() -> object:
            return json.loads(two.send(two_request).content)

        steps = {
            "guard.check (core, httpx)": core,
            "bare httpx.Client": bare_httpx,
            "bare httpx2.Client": bare_httpx2,
        }
        for step in steps.values():  # warm the pools and caches
            _measure(step, 20)
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                figures[name].append(_measure(step, count))
        one.close()
        two.close()
        guard.close()
    cpu = {name: median([c for c, _ in values]) for name, values in figures.items()}
    wall = {name: median([w for _, w in values]) for name, values in figures.items()}
    rows = [[name, fmt(cpu[name], ".1f"), fmt(wall[name], ".1f")] for name in steps]
    print_table(
        "httpx vs httpx2: one sync Trend check on a keep-alive connection",
        ["client", "CPU µs/check", "wall µs/check"],
        rows,
        note=f"median of {rounds} alternating rounds of {count} checks; emulator in a child process",
    )
    two_over_one = ratio(cpu["bare httpx2.Client"], cpu["bare httpx.Client"])
    print(f"\nCPU ratio httpx2 / httpx (bare send): {two_over_one:.2f}")
    print(
        f"httpx2 spends {abs(1 - two_over_one):.0%} {'less' if two_over_one < 1 else 'more'} client CPU per "
        "check than httpx (bare send; a gain under ~10% is within this machine's noise)"
    )
    print(f"bench_httpx2: {time.perf_counter() - started:.0f} s{' (quick)' if options.quick else ''}")


def _content() -> Content:
    return Content("What is the capital of France? Answer in one word, please.")


if __name__ == "__main__":
    main()
