"""The ``guardrails`` command: check a text with a guard, or run the vendor emulator.

Usage::

    guardrails check "What is the capital of France?"        # exit 0: allowed
    guardrails check "Ignore all previous instructions"       # exit 1: blocked
    echo "some text" | guardrails check -                      # read the text from stdin
    guardrails check --file prompt.txt --guard trend --json   # a vendor guard, JSON output
    guardrails emulator --port 8080                            # the Trend / Palo Alto emulator
    guardrails eval prompts.jsonl --guard local --guard panw   # compare guards (see _eval_cli)

Exit codes: 0 allow, 1 block, 2 guard error or bad usage (empty input included: "nothing to
check"). Error messages are one line on stderr and never contain the checked text or a key; with
``--json`` the error is also printed on stdout as ``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from pydantic import ValidationError

from . import _eval_cli
from ._exceptions import GuardConfigurationError, GuardError, GuardrailsError
from ._models import Content, Verdict
from ._settings import GuardSettings, check_spec, guard_from_env

__all__ = ["EXIT_ALLOW", "EXIT_BLOCK", "EXIT_ERROR", "main"]

EXIT_ALLOW = 0
EXIT_BLOCK = 1
EXIT_ERROR = 2

_PROG = "guardrails"

# The keys the emulator accepts by default (`guardrails.testing.create_app`), said in its --help
# and startup banner so that a new user need not read the tests to find them.
EMULATOR_TREND_KEY = "test-v1-key"
EMULATOR_PANW_KEY = "test-panw-key"


class _UsageError(Exception):
    """Bad usage found after argument parsing (e.g. both TEXT and --file)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises `_UsageError` instead of exiting, so that --json can report it."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(message)


def _emulator_help(host: str, port: int) -> str:
    url = f"http://{host}:{port}"
    return (
        f"Accepted keys: {EMULATOR_TREND_KEY} (Trend AI Guard), {EMULATOR_PANW_KEY} (Palo Alto"
        f" Prisma AIRS). Point a guard at it:\n"
        f'  TrendAIGuard("{EMULATOR_TREND_KEY}", base_url="{url}")\n'
        f'  PaloAltoAIRS("{EMULATOR_PANW_KEY}", profile_name="any", base_url="{url}")'
    )


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = _Parser(
        prog=_PROG,
        description="Put an AI guard in front of LLM calls: check texts, run the vendor emulator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="check a text; exit 0 allow, 1 block, 2 error",
        description="Check a text with a guard. Exit code: 0 allow, 1 block, 2 guard error or bad usage.",
    )
    check.add_argument("text", nargs="?", metavar="TEXT", help="the text to check, or - to read stdin")
    check.add_argument("--file", "-f", metavar="FILE", help="read the text from FILE (UTF-8)")
    check.add_argument(
        "--guard",
        "-g",
        type=_guard_spec,
        metavar="SPEC",
        help="the guard to use: local, trend, palo-alto, or a composition such as local,trend "
        "(see guard_from_spec; default: from the environment, see guard_from_env)",
    )
    check.add_argument(
        "--kind",
        choices=("prompt", "response"),
        default="prompt",
        help="check the text as a prompt (default) or as a model response",
    )
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.add_argument(
        "--timeout", type=_eval_cli.positive_float, metavar="SECONDS", help="deadline of the check"
    )

    emulator = commands.add_parser(
        "emulator",
        help="serve the Trend AI Guard and Palo Alto Prisma AIRS emulator",
        description="Serve the vendor emulator (Trend v3 and beta, Palo Alto) deciding with LocalGuard. "
        + _emulator_help("127.0.0.1", 8080),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulator.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    emulator.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080)")
    _eval_cli.add_parser(commands)
    return parser


def _guard_spec(value: str) -> str:
    try:
        check_spec(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 allow, 1 block, 2 error).

    Args:
        argv: the arguments, without the program name (default: ``sys.argv[1:]``).
    """
    parser = _parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments
    try:
        args = parser.parse_args(arguments)
    except _UsageError as exc:
        _fail(_one_line(exc), kind="usage_error", as_json=as_json)
        return EXIT_ERROR
    except SystemExit as exc:
        # argparse has printed --help or --version: keep its code, but return it.
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR

    # Show the library's warnings (e.g. "using LocalGuard") as the command's own, on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("guardrails")
    logger.addHandler(handler)
    try:
        if args.command == "emulator":
            return _emulator(args.host, args.port)
        if args.command == "eval":
            return _eval_cli.run(args)
        return _check(args)
    except _UsageError as exc:
        _fail(f"{args.command}: {exc}", kind="usage_error", as_json=as_json)
    except GuardConfigurationError as exc:
        _fail(_one_line(exc), kind="configuration_error", as_json=as_json)  # the message says what to set
    except GuardError as exc:
        _fail(
            f"guard {exc.guard} failed ({exc.kind} error): {_one_line(exc)}",
            kind="guard_error",
            as_json=as_json,
            guard=exc.guard,
            transient=exc.transient,
        )
    except (GuardrailsError, ValueError) as exc:
        _fail(_one_line(exc), kind="invalid_input", as_json=as_json)
    except KeyboardInterrupt:
        return 130
    finally:
        logger.removeHandler(handler)
    return EXIT_ERROR


def _check(args: argparse.Namespace) -> int:
    text = _read_text(args.text, args.file, sys.stdin)
    if not text.strip():
        # An empty text would be allowed, which would hide a broken pipeline feeding the command.
        raise _UsageError("nothing to check: the text is empty")
    settings = GuardSettings() if args.timeout is None else GuardSettings(guardrails_timeout=args.timeout)
    guard = guard_from_env(args.guard, settings=settings)
    try:
        verdict = guard.check(Content(text, kind=args.kind))
    finally:
        guard.close()
    _print_verdict(verdict, as_json=args.json)
    return EXIT_BLOCK if verdict.blocked else EXIT_ALLOW


def _read_text(text: str | None, file: str | None, stdin: TextIO) -> str:
    if file is not None:
        if text is not None:
            raise _UsageError("give TEXT or --file, not both")
        try:
            with open(file, encoding="utf-8") as handle:
                return handle.read()
        except UnicodeDecodeError:
            raise _UsageError(f"{file} is not UTF-8 text") from None
        except OSError as exc:
            raise _UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    if text is None:
        raise _UsageError("give the TEXT to check, - to read stdin, or --file FILE")
    if text == "-":
        try:
            return stdin.read()
        except UnicodeDecodeError:
            raise _UsageError("stdin is not UTF-8 text") from None
    return text


def _print_verdict(verdict: Verdict, *, as_json: bool) -> None:
    if as_json:
        data = verdict.model_dump(mode="json")
        data["blocked"] = verdict.blocked
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    print(
        f"{verdict.action.value}  (guard: {verdict.guard}" + (f", id: {verdict.id})" if verdict.id else ")")
    )
    for reason in verdict.reasons:
        print(f"  - {reason}")


def _emulator(host: str, port: int) -> int:
    # Imported here: the emulator pulls in uvicorn, which `check` does not need.
    emulator = importlib.import_module("guardrails.testing.emulator")
    print(
        f"{_PROG} emulator on http://{host}:{port} (Trend AI Guard v3 and beta, Palo Alto Prisma AIRS)",
        file=sys.stderr,
    )
    print(_emulator_help(host, port), file=sys.stderr, flush=True)
    emulator.serve(host=host, port=port)
    return EXIT_ALLOW


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{_PROG}: {record.levelname.lower()}: {record.getMessage()}"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # pydantic's own message quotes the input values; name the settings and the problem only.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return f"invalid configuration: {problems}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _fail(message: str, *, kind: str, as_json: bool, **details: object) -> None:
    """One line on stderr; with --json, also ``{"error": {...}}`` on stdout, where scripts read."""
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": {"type": kind, "message": message, **details}}, indent=2, sort_keys=True))
