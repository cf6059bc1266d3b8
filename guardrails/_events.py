"""One frozen event per decision, delivered to hooks and counted.

The decorator and both middlewares call `record(...)` once per decision. Hooks registered with
`add_hook` (globally) or passed as ``on_decision=`` (per decorator / middleware) receive the
`Decision`; a hook that raises is logged and never breaks the request. `stats()` is a snapshot
of the counters per outcome. Every decision is also reported to OpenTelemetry when it is
installed (see `guardrails._otel`).

`log_extra` gives the structured fields every ``guardrails`` log line about a decision carries,
the same names wherever the line is logged from.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from . import _otel

__all__ = [
    "OUTCOMES",
    "Decision",
    "DecisionHook",
    "Outcome",
    "add_hook",
    "count",
    "hooks_of",
    "log_extra",
    "record",
    "remove_hook",
    "reset_stats",
    "safe_text",
    "stats",
    "wanted",
]

logger = logging.getLogger("guardrails")

Outcome = Literal[
    "allowed",
    "blocked",
    "error",
    "failed_open",
    "too_large",
    "skipped",
    "monitored",
    "invalid",
    "masked",
]
OUTCOMES: tuple[Outcome, ...] = (
    "allowed",
    "blocked",
    "error",
    "failed_open",
    "too_large",
    "skipped",
    "monitored",
    "invalid",
    "masked",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one guarded call or request.

    Attributes:
        outcome: ``allowed``, ``blocked``, ``error`` (failed closed), ``failed_open``,
            ``too_large``, ``skipped`` (nothing to scan), ``monitored`` (would have blocked, shadow
            mode), ``invalid`` (the body could not be parsed), ``masked`` (went on with the
            sensitive spans masked).
        guard: name of the guard asked ("" if none was).
        target: the function's qualified name, or ``"METHOD /route"``.
        kind: ``"prompt"`` or ``"response"``.
        verdict_id: the guard's id for the evaluation, if any.
        reasons: the guard's reasons (never the scanned text).
        error: class name of the `GuardError`, if the guard failed.
        latency: seconds spent asking the guard.
        cached: True when the verdict came from a cache.
        degraded: True when a fallback guard decided because the primary one failed.
    """

    outcome: Outcome
    guard: str
    target: str
    kind: str = "prompt"
    verdict_id: str | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None
    latency: float = 0.0
    cached: bool = False
    degraded: bool = False


class DecisionHook(Protocol):
    """Receives every `Decision`."""

    def __call__(self, decision: Decision, /) -> None: ...


_lock = threading.Lock()
# Replaced, never mutated: `record` reads it without the lock.
_hooks: tuple[DecisionHook, ...] = ()
_counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
#: Counted beside the outcomes: decisions a fallback guard made because the primary one failed.
DEGRADED = "degraded"
_counts[DEGRADED] = 0


def hooks_of(on_decision: DecisionHook | Iterable[DecisionHook] | None) -> tuple[DecisionHook, ...]:
    """The hooks of an ``on_decision=`` option: a hook, an iterable of hooks, or None.

    Raises:
        TypeError: something in it is not callable.
    """
    if on_decision is None:
        return ()
    hooks = (on_decision,) if callable(on_decision) else tuple(on_decision)
    if not all(callable(hook) for hook in hooks):
        raise TypeError("on_decision must be a callable or an iterable of callables")
    return hooks


def add_hook(hook: DecisionHook) -> None:
    """Register a hook called with every decision, process-wide."""
    global _hooks
    with _lock:
        _hooks = (*_hooks, hook)


def remove_hook(hook: DecisionHook) -> None:
    """Unregister a hook added with `add_hook` (no error if it is not registered)."""
    global _hooks
    with _lock:
        if hook in _hooks:
            index = _hooks.index(hook)
            _hooks = _hooks[:index] + _hooks[index + 1 :]


def stats() -> Mapping[str, int]:
    """A snapshot of the decision counters: one per outcome, and ``degraded`` (decisions made by
    a `Fallback`'s secondary guard, also counted under their outcome)."""
    with _lock:
        return dict(_counts)


def reset_stats() -> None:
    """Set every counter back to zero (for tests)."""
    with _lock:
        for outcome in _counts:
            _counts[outcome] = 0


#: Longest client-influenced value written into a log record, in characters.
MAX_LOG_VALUE = 200
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a log viewer
# could take for the end of a line (a forged record) or a terminal for a command.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def safe_text(value: str, *, limit: int = MAX_LOG_VALUE) -> str:
    """`value` made safe for a log record: controls escaped (``\\n``), at most `limit` characters.

    Client-controlled values (a path, a method, a vendor's reason) pass through here before they
    reach a log line, in text and structured formats alike, so no request can forge a record.
    """
    if len(value) > limit:
        value = value[:limit] + "..."
    if _UNSAFE.search(value) is None:
        return value
    escaped = _UNSAFE.sub(_escape, value)
    return escaped if len(escaped) <= limit + 3 else escaped[:limit] + "..."


def log_extra(decision: Decision, **fields: Any) -> dict[str, Any]:
    """The structured ``extra`` fields of a log line about `decision`.

    Every field is prefixed ``guardrails_`` so that it cannot collide with a `logging.LogRecord`
    attribute or another library's fields: ``guardrails_outcome``, ``guardrails_guard``,
    ``guardrails_target``, ``guardrails_kind``, ``guardrails_verdict_id``, ``guardrails_reasons``
    (a list), ``guardrails_error`` (an exception class name) and ``guardrails_latency_ms``. None of
    them can hold the scanned text.

    Args:
        decision: the decision the line is about.
        **fields: more fields, prefixed the same way (e.g. ``status_code=401``).

    Example::

        logger.info("guardrails blocked ...", extra=log_extra(decision))
    """
    extra: dict[str, Any] = {
        "guardrails_outcome": decision.outcome,
        "guardrails_guard": safe_text(decision.guard),
        "guardrails_target": safe_text(decision.target),
        "guardrails_kind": decision.kind,
        "guardrails_verdict_id": None if decision.verdict_id is None else safe_text(decision.verdict_id),
        "guardrails_reasons": [safe_text(reason) for reason in decision.reasons],
        "guardrails_error": decision.error,
        "guardrails_latency_ms": round(decision.latency * 1000.0, 3),
    }
    for name, value in fields.items():
        extra[f"guardrails_{name}"] = value
    return extra


def count(outcome: Outcome) -> None:
    """Count a decision nobody else would see (see `wanted`): no `Decision` needs building."""
    with _lock:
        _counts[outcome] += 1


def wanted(hooks: Sequence[DecisionHook] = ()) -> bool:
    """Whether a `Decision` would reach anyone but the counters: a hook, or OpenTelemetry.

    The hot path (an allowed call with no hooks and no telemetry) then only calls `count`.
    """
    return bool(_hooks or hooks) or _otel.wanted()


def record(decision: Decision, hooks: Iterable[DecisionHook] = ()) -> None:
    """Count a decision, report it to OpenTelemetry, then hand it to the global hooks and `hooks`.

    Thread-safe and task-safe: counting happens under a lock no code awaits under. A hook that
    raises is logged on the ``guardrails`` logger; the other hooks still run and the exception
    never reaches the caller.

    Args:
        decision: what happened.
        hooks: the call site's own hooks (the decorator's or middleware's ``on_decision``), called
            after the global ones.
    """
    with _lock:
        _counts[decision.outcome] += 1
        if decision.degraded:
            _counts[DEGRADED] += 1
    _otel.emit(decision)
    for group in (_hooks, hooks):
        for hook in group:
            try:
                hook(decision)
            except Exception:
                logger.exception(
                    "guardrails decision hook %r raised; the request goes on",
                    getattr(hook, "__qualname__", hook),
                )
