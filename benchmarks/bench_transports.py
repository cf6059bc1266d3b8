"""Per-request CPU of the guarded OpenAI transports (httpx and httpx2), next to the bare clients.

One chat-completions POST, answered by an in-process mock transport (``MockTransport``: no network,
no server) with a small JSON completion, checked both ways by a guard that allows at once (a
`FakeGuard` keeping no history): what is measured is the transport's own work per request
(reading the request, the `Judge`, the answer's reading and rebuild), not the guard's or the
network's. The overhead is guarded minus bare, per package.

``--trees A B`` measures the package trees A and B (``PYTHONPATH`` each, e.g. a checkout before
and after a change) in child processes, in alternating rounds so that machine load hits each
alike, and prints both with the ratio after / before. Every figure is the least of its rounds.

Run ``PYTHONPATH=. python benchmarks/bench_transports.py`` (about 10 s); ``--quick`` for tiny counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from _load import fmt, print_table, ratio

COMPLETION = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
        ],
    }
).encode()
REQUEST = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ],
}
URL = "https://api.test/v1/chat/completions"
ROWS = ("bare httpx", "guarded httpx", "bare httpx2", "guarded httpx2")


def _steps() -> dict[str, Callable[[], object]]:
    import httpx
    import httpx2

    from guardrails.integrations.openai import GuardedHttpx2Transport, GuardedTransport
    from guardrails.testing import FakeGuard

    guard = FakeGuard(lambda content: False, history=0)
    headers = {"content-type": "application/json"}

    def answer_httpx(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=COMPLETION, headers=headers)

    def answer_httpx2(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=COMPLETION, headers=headers)

    clients: dict[str, httpx.Client | httpx2.Client] = {
        "bare httpx": httpx.Client(transport=httpx.MockTransport(answer_httpx)),
        "guarded httpx": httpx.Client(
            transport=GuardedTransport(guard, transport=httpx.MockTransport(answer_httpx))
        ),
        "bare httpx2": httpx2.Client(transport=httpx2.MockTransport(answer_httpx2)),
        "guarded httpx2": httpx2.Client(
            transport=GuardedHttpx2Transport(guard, transport=httpx2.MockTransport(answer_httpx2))
        ),
    }

    def step(client: httpx.Client | httpx2.Client) -> Callable[[], object]:
        return lambda: client.post(URL, json=REQUEST).json()

    return {name: step(client) for name, client in clients.items()}


def _measure(count: int, rounds: int) -> dict[str, float]:
    """CPU microseconds per request of each row: the least of `rounds` rounds of `count` requests
    (the least is the figure machine load disturbs least: load only ever adds CPU time)."""
    steps = _steps()
    for step in steps.values():  # warm up
        for _ in range(10 if count < 100 else 50):
            step()
    figures: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            started = time.process_time()
            for _ in range(count):
                step()
            figures[name].append((time.process_time() - started) / count * 1e6)
    return {name: min(values) for name, values in figures.items()}


def _child(tree: str, count: int, rounds: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, os.path.dirname(os.path.abspath(__file__))])}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(count), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    parser.add_argument("--trees", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two package trees")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(_measure(*options.child)))
        return
    count, rounds = (20, 1) if options.quick else (2000, 5)
    started = time.perf_counter()
    if not options.trees:
        cpu = _measure(count, rounds)
        rows = [[name, fmt(cpu[name], ".1f")] for name in ROWS]
        for package in ("httpx", "httpx2"):
            rows.append(
                [f"overhead {package}", fmt(cpu[f"guarded {package}"] - cpu[f"bare {package}"], ".1f")]
            )
        print_table(
            "guarded OpenAI transports, CPU us per request (least of rounds)", ["row", "cpu us"], rows
        )
    else:
        before, after = options.trees
        runs: dict[str, list[dict[str, float]]] = {before: [], after: []}
        for _ in range(3 if not options.quick else 1):  # alternate the trees
            for tree in (before, after):
                runs[tree].append(_child(tree, count, rounds))
        by_tree = {
            tree: {name: min(run[name] for run in figures) for name in ROWS} for tree, figures in runs.items()
        }
        rows = [
            [
                name,
                fmt(by_tree[before][name], ".1f"),
                fmt(by_tree[after][name], ".1f"),
                fmt(ratio(by_tree[after][name], by_tree[before][name]), ".3f"),
            ]
            for name in ROWS
        ]
        for package in ("httpx", "httpx2"):
            over = [
                by_tree[tree][f"guarded {package}"] - by_tree[tree][f"bare {package}"]
                for tree in (before, after)
            ]
            rows.append(
                [
                    f"overhead {package}",
                    fmt(over[0], ".1f"),
                    fmt(over[1], ".1f"),
                    fmt(ratio(over[1], over[0]), ".3f"),
                ]
            )
        print_table(
            "guarded OpenAI transports, CPU us per request (least of rounds)",
            ["row", "before", "after", "after/before"],
            rows,
            note=f"before: {before}; after: {after}",
        )
    print(f"bench_transports: {time.perf_counter() - started:.0f} s{' (quick)' if options.quick else ''}")


if __name__ == "__main__":
    main()
