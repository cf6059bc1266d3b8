"""What a conversation costs at the vendor, with and without incremental scanning; rate budgets (issue 17).

Sections (the emulator runs under uvicorn in a child process on 127.0.0.1):

1. A 20-turn conversation through ``@guarded(guard, extract=extractors.openai_chat, ...)``: each
   turn sends the whole history plus a new user message, as chat clients do; the model's answer is
   appended for the next turn. Characters sent for scanning, vendor calls and billing units (Palo
   Alto: one token per four characters) over the 20 turns, from the decisions' own counts, for
   Trend (v3) and Palo Alto, without and with ``incremental=True``; with ``roles=("user", "tool")``
   too. The emulator's request count is printed beside the guard's own count as a check.
2. Rate budget: ``rate_limit=RateLimit(rate, burst)`` on a Trend guard; checks sent as fast as one
   thread can for a fixed time: checks/s granted vs configured, and how many were refused with
   `GuardRateLimited` (failing closed) or went on unscanned (failing open).

Run with ``python benchmarks/bench_conversation.py [--turns N] [--seconds S]``, or ``--quick``.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from _load import Server, print_table, serve_emulator

from guardrails import GuardRateLimited, PaloAltoAIRS, TrendAIGuard, extractors, guarded
from guardrails._budget import RateLimit
from guardrails._events import Decision

TREND_KEY = "test-v1-key"
PANW_KEY = "test-panw-key"
SYSTEM = (
    "You are a travel assistant for a rail company. Answer in two sentences at most, politely, and "
    "refuse anything unrelated to trains, tickets and timetables."
)


def question(turn: int) -> str:
    return f"Turn {turn}: which train leaves Zurich for Geneva after {8 + turn % 12}:00, and from which platform?"


def answer(turn: int) -> str:
    return (
        f"The {8 + turn % 12}:04 InterCity leaves Zurich HB from platform {turn % 18 + 1} and reaches "
        "Geneva about two hours and forty minutes later; seats can be reserved online."
    )


def run_conversation(guard: Any, turns: int, **options: Any) -> dict[str, float]:
    decisions: list[Decision] = []

    @guarded(guard, on_decision=decisions.append, **options)
    def chat(messages: list[dict[str, Any]]) -> str:
        return "ok"

    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    started = time.perf_counter()
    for turn in range(turns):
        history.append({"role": "user", "content": question(turn)})
        chat(history)
        history.append({"role": "assistant", "content": answer(turn)})
    elapsed = time.perf_counter() - started
    return {
        "characters": sum(d.scanned_characters for d in decisions),
        "calls": sum(d.vendor_calls for d in decisions),
        "units": sum(d.billing_units or 0 for d in decisions),
        "last_turn_characters": decisions[-1].scanned_characters,
        "seconds": elapsed,
    }


def emulator_calls(server: Server) -> int:
    counts = server.admin("GET", "/_emulator/requests").json()["counts"]
    return sum(int(value) for value in counts.values())


def conversation_section(server: Server, turns: int) -> None:
    url = server.url
    rows: list[list[str]] = []
    ratios: list[str] = []
    variants: list[tuple[str, dict[str, Any]]] = [
        ("every message, every turn", {"extract": extractors.openai_chat}),
        ("incremental=True", {"extract": extractors.openai_chat, "incremental": True}),
        (
            "roles=(user, tool), incremental",
            {"extract": extractors.openai_chat(roles=("user", "tool")), "incremental": True},
        ),
    ]
    for vendor in ("trend", "palo-alto"):
        base: dict[str, float] | None = None
        for label, options in variants:
            # A fresh guard per run: incremental history is per guard (its cache identity).
            if vendor == "trend":
                guard: Any = TrendAIGuard(TREND_KEY, base_url=url, app_name=f"bench-{len(rows)}")
            else:
                guard = PaloAltoAIRS(PANW_KEY, profile_name=f"bench-{len(rows)}", base_url=url)
            before = emulator_calls(server)
            with guard:
                figures = run_conversation(guard, turns, **options)
            figures["emulator"] = emulator_calls(server) - before
            base = base or figures
            rows.append(
                [
                    f"{vendor}: {label}",
                    f"{figures['characters']:,.0f}",
                    f"{figures['last_turn_characters']:,.0f}",
                    f"{figures['calls']:.0f}",
                    f"{figures['emulator']:.0f}",
                    f"{figures['units']:,.0f}" if vendor == "palo-alto" else "-",
                    f"{figures['seconds'] * 1000:.0f}",
                ]
            )
            if figures is not base:
                ratios.append(
                    f"{vendor}: {label}: {base['characters'] / max(1.0, figures['characters']):.1f}x fewer "
                    "characters scanned than every message, every turn"
                )
    print_table(
        f"1. A {turns}-turn conversation: what is sent for scanning",
        [
            "run",
            "chars scanned",
            "chars, last turn",
            "vendor calls",
            "emulator saw",
            "PANW tokens",
            "wall ms",
        ],
        rows,
        note="Each turn sends the whole history plus one new user message (the answer joins the next turn).",
    )
    for line in ratios:
        print(line)


def rate_section(url: str, seconds: float) -> None:
    # One WARNING per refused check otherwise: the table counts them.
    logging.getLogger("guardrails").setLevel(logging.ERROR)
    rows: list[list[str]] = []
    for rate, burst in ((5.0, 1), (20.0, 5), (50.0, 10)):
        for fail_open in (False, True):
            guard = TrendAIGuard(TREND_KEY, base_url=url, rate_limit=RateLimit(rate, burst=burst))
            outcomes: list[Decision] = []

            @guarded(guard, fail_open=fail_open, on_decision=outcomes.append)
            def ask(prompt: str) -> str:
                return prompt

            refused = 0
            started = time.perf_counter()
            with guard:
                while time.perf_counter() - started < seconds:
                    try:
                        ask("Which platform for the Geneva train?")
                    except GuardRateLimited:
                        refused += 1
            elapsed = time.perf_counter() - started
            allowed = sum(1 for d in outcomes if d.outcome == "allowed")
            unscanned = sum(1 for d in outcomes if d.outcome == "failed_open")
            expected = rate + burst / elapsed
            rows.append(
                [
                    f"rate {rate:g}/s, burst {burst}, {'fail open' if fail_open else 'fail closed'}",
                    f"{allowed / elapsed:.1f}",
                    f"{expected:.1f}",
                    f"{allowed / elapsed / expected:.2f}",
                    str(refused),
                    str(unscanned),
                ]
            )
    print_table(
        f"2. Rate budget: checks/s granted vs configured ({seconds:g} s per row, one thread, no pause)",
        ["budget", "checked/s", "rate + burst/s", "ratio", "raised", "failed open"],
        rows,
        note="'raised': GuardRateLimited (fail closed); 'failed open': went on unscanned. No vendor call either way.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per rate-budget row")
    parser.add_argument("--quick", action="store_true", help="tiny counts, to check the harness")
    options = parser.parse_args()
    turns = 4 if options.quick else options.turns
    seconds = 0.3 if options.quick else options.seconds
    started = time.perf_counter()
    with serve_emulator() as server:
        conversation_section(server, turns)
        rate_section(server.url, seconds)
    print(f"\nbench_conversation: {time.perf_counter() - started:.0f} s{' (quick)' if options.quick else ''}")


if __name__ == "__main__":
    main()
