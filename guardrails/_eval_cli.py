"""``guardrails eval``: compare guards on a labelled data file from the command line.

Usage::

    guardrails eval prompts.jsonl --guard local --guard panw --out eval-out
    guardrails eval prompts.csv --guard fast=local --guard layered=local>panw --rate 5 --json

DATA is JSONL (one object a line) or CSV (a header line). Each ``--guard`` is ``NAME=SPEC`` or a
SPEC alone (named after itself); a SPEC is what `guard_from_spec` builds (``local``, ``trend``,
``panw``, compositions), configured from the environment. With ``--out DIR`` the run keeps its
results in ``DIR/results.jsonl`` (running the same command again continues an interrupted run
without checking a recorded pair twice) and writes ``report.md``, ``report.html`` (with the
``eval`` extra) and ``summary.json`` there. The Markdown report goes to stdout; ``--json`` prints
the JSON summary instead and nothing else. Progress goes to stderr: a bar on a terminal, a plain
line every tenth of the rows otherwise.

Exit codes: 0 every check gave a verdict, 1 some checks failed (errors in the report), 2 bad
usage or data, 130 interrupted (Ctrl-C lets the checks in flight finish and records them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ._eval_data import EvalDataError, count_rows, read_rows
from ._guard import Guard
from ._settings import guard_from_spec

__all__ = ["add_parser", "run"]

logger = logging.getLogger("guardrails")

EXIT_DONE = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_parser(commands: Any) -> None:
    """Add the ``eval`` subcommand to the CLI's subparsers."""
    parser = commands.add_parser(
        "eval",
        help="compare guards on a labelled JSONL or CSV file",
        description="Check every row of DATA with every guard; report TP/FP/TN/FN, precision, recall, "
        "F1, categories, latency, vendor calls and agreement. No prompt text is shown unless asked.",
    )
    parser.add_argument("data", metavar="DATA", help="a JSONL or CSV file of rows")
    parser.add_argument(
        "--guard",
        "-g",
        action="append",
        required=True,
        metavar="NAME[=SPEC]",
        help="a guard to evaluate (repeat): local, trend, panw, a composition, or NAME=SPEC",
    )
    parser.add_argument("--text-field", default="prompt", help="the field holding the text (default prompt)")
    parser.add_argument("--label-field", default="label", help="the field holding the label (default label)")
    parser.add_argument("--concurrency", type=_positive_int, default=8, metavar="N", help="checks in flight")
    parser.add_argument("--rate", type=positive_float, metavar="R", help="checks per second for the run")
    parser.add_argument("--out", metavar="DIR", help="keep results (resumable) and write the reports here")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    parser.add_argument("--show-text", action="store_true", help="put row text in the results and reports")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return number


def positive_float(value: str) -> float:
    """An argparse type: a number greater than 0 (``--rate`` here, ``check --timeout`` too)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {value!r}")
    return number


def _guard_specs(values: list[str]) -> dict[str, str]:
    specs: dict[str, str] = {}
    for value in values:
        name, equals, spec = value.partition("=")
        name, spec = name.strip(), spec.strip()
        if not equals:
            spec = name
        if not name or not spec:
            raise EvalDataError(f"--guard {value!r}: give NAME=SPEC or a SPEC such as local, trend or panw")
        if name in specs:
            raise EvalDataError(f"--guard: the name {name!r} is given twice; name them NAME=SPEC")
        specs[name] = spec
    return specs


def run(args: argparse.Namespace) -> int:
    """Run ``guardrails eval`` with parsed arguments; returns the exit code."""
    try:
        specs = _guard_specs(args.guard)
        data = Path(args.data)
        total = count_rows(data)
    except EvalDataError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.data}: {exc.strerror or exc}")
    out = Path(args.out) if args.out else None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _fail(f"cannot create {out}: {exc.strerror or exc}")
    progress = None if args.json else _Progress(total, sys.stderr)
    try:
        report = asyncio.run(_evaluate(specs, data, args, out, progress))
    except KeyboardInterrupt:
        if progress is not None:
            progress.end()
        where = f"{out / 'results.jsonl'}; run the same command again to continue" if out else "nothing kept"
        print(f"guardrails: eval interrupted: results so far in {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EvalDataError as exc:
        return _fail(str(exc))
    if progress is not None:
        progress.end()
    summary = report.to_json()
    if out is not None:
        (out / "report.md").write_text(report.to_markdown(), encoding="utf-8")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        try:
            report.to_html(out / "report.html")
        except ImportError as exc:
            logger.warning("no HTML report: %s", exc)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(report.to_markdown(), end="")
    return EXIT_ERRORS if any(m.errors for m in report.guards.values()) else EXIT_DONE


async def _evaluate(
    specs: dict[str, str], data: Path, args: argparse.Namespace, out: Path | None, progress: _Progress | None
) -> Any:
    from .eval import aevaluate

    guards: dict[str, Guard] = {}
    try:
        for name, spec in specs.items():
            guards[name] = guard_from_spec(spec)
        return await aevaluate(
            read_rows(data),
            guards,
            text_field=args.text_field,
            label_field=args.label_field,
            concurrency=args.concurrency,
            rate=args.rate,
            results=out / "results.jsonl" if out is not None else None,
            show_text=args.show_text,
            progress=progress,
        )
    finally:
        for guard in guards.values():
            await guard.aclose()


class _Progress:
    """Rows done, rate, ETA and errors on stderr: a bar redrawn in place on a terminal, a plain
    line every tenth of the rows (or every 10 s) otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.shown_at = 0.0
        self.next_step = 1
        self.drawn = False

    def __call__(self, done: int, errors: int, elapsed: float) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self.shown_at < 0.1 and done < self.total:
                return
            width = 30
            filled = width * done // self.total if self.total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self._figures(done, errors, now)}\x1b[K")
            self.stream.flush()
            self.drawn = True
        else:
            step = 10 * done // self.total if self.total else 10
            if step < self.next_step and now - self.shown_at < 10:
                return
            self.next_step = step + 1
            self.stream.write(f"guardrails: eval: {self._figures(done, errors, now)}\n")
            self.stream.flush()
        self.shown_at = now

    def _figures(self, done: int, errors: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = self.total - done
        eta = _duration(left / rate) if rate > 0 and left > 0 else "0:00"
        return f"{done}/{self.total} rows, {rate:.1f} rows/s, ETA {eta}, {errors} errors"

    def end(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _fail(message: str) -> int:
    print(f"guardrails: error: eval: {message}", file=sys.stderr)
    return EXIT_USAGE
