"""Compare the built-in LocalGuard with Palo Alto Prisma AIRS on a small labelled sample.

Reads ``eval_sample.jsonl`` (next to this file: ``id``, ``prompt``, ``label``), checks every row
with both guards, and prints the Markdown report (no prompt text in it). Palo Alto is configured
from the environment: ``PANW_AI_SEC_API_KEY``, ``PANW_AI_PROFILE_NAME`` and, for the emulator,
``PANW_AI_SEC_API_ENDPOINT``::

    guardrails emulator --port 8080 &
    export PANW_AI_SEC_API_KEY=test-panw-key PANW_AI_PROFILE_NAME=demo
    export PANW_AI_SEC_API_ENDPOINT=http://127.0.0.1:8080
    python examples/eval_local_vs_panw.py [report.html] [--results results.jsonl]

The same from the command line: ``guardrails eval examples/eval_sample.jsonl --guard local
--guard panw --out eval-out``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from guardrails import LocalGuard, PaloAltoAIRS
from guardrails.eval import EvalReport, aevaluate, read_rows

SAMPLE = Path(__file__).resolve().parent / "eval_sample.jsonl"


async def compare(results: str | None) -> EvalReport:
    async with PaloAltoAIRS(app_name="eval-example") as panw:  # key and profile from the environment
        return await aevaluate(
            read_rows(SAMPLE),
            {"local": LocalGuard(), "panw": panw},
            concurrency=4,
            results=results,  # given: a rerun resumes, and pays for no row twice
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="LocalGuard vs Palo Alto on eval_sample.jsonl")
    parser.add_argument("html", nargs="?", help="also write the HTML report (needs the eval extra)")
    parser.add_argument("--results", help="a JSONL file keeping each (row, guard) result")
    args = parser.parse_args()
    report = asyncio.run(compare(args.results))
    print(report.to_markdown(), end="")
    if args.html:
        report.to_html(args.html)
    return 1 if any(m.errors for m in report.guards.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
