"""One frozen event per decision, delivered to hooks and counted.

The decorator and both middlewares call `record(...)` once per decision (an Allow that would reach
no hook and no telemetry, see `quiet`, is only counted with `count`). Hooks registered with
`add_hook` (globally) or passed as ``on_decision=`` (per decorator / middleware) receive the
`Decision`; a hook that raises is logged and never breaks the request. `stats()` is a snapshot
of the counters per outcome. Every decision is also reported to OpenTelemetry when it is
installed (see `guardrails._otel`).

Usage: every request a remote guard sends is counted by `spend` (characters sent for scanning,
vendor calls, the vendor's billing units where documented), per guard, in `stats()` and `usage()`
and on the `Decision` of the check that sent it (`metered` collects a check's spending).

`log_extra` gives the structured fields every ``guardrails`` log line about a decision carries,
the same names wherever the line is logged from.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from . import _otel

__all__ = [
    "OUTCOMES",
    "Decision",
    "DecisionHook",
    "Meter",
    "Outcome",
    "add_hook",
    "count",
    "counter",
    "hooks_of",
    "log_extra",
    "meter_var",
    "metered",
    "quiet",
    "record",
    "remove_hook",
    "reset_stats",
    "safe_text",
    "spend",
    "stats",
    "usage",
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
        scanned_characters: characters sent to the vendor for scanning by this decision's check
            (0 for an in-process guard, a cache hit, or messages already allowed).
        vendor_calls: requests sent to the vendor (windows count one each; retries do not).
        billing_units: the vendor's billing units for them where it documents them (Palo Alto:
            one token per four characters), else None.
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
    scanned_characters: int = 0
    vendor_calls: int = 0
    billing_units: int | None = None


class Meter:
    """What one check spent at the vendor: characters sent for scanning, calls, billing units.

    Thread-safe: the windows of one check are sent from several threads. (One lock for every
    meter: a meter is made per check, an add happens per vendor request, and a lock per meter
    would cost more to make than all its adds.)
    """

    __slots__ = ("billing_units", "characters", "vendor_calls")

    def __init__(self) -> None:
        self.characters = 0
        self.vendor_calls = 0
        self.billing_units: int | None = None

    def add(self, characters: int, billing_units: int | None) -> None:
        with _meter_lock:
            self.characters += characters
            self.vendor_calls += 1
            if billing_units is not None:
                self.billing_units = (self.billing_units or 0) + billing_units


_meter_lock = threading.Lock()

#: The `Meter` of the check running in this context (set by the `Judge`; threads and tasks
#: started by the check see it when they copy the context, as `RemoteGuard` does for its windows).
meter_var: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("guardrails_meter", default=None)


@contextmanager
def metered() -> Iterator[Meter]:
    """Collect what the checks run inside the block spend (for code asking a guard directly)."""
    meter = Meter()
    token = meter_var.set(meter)
    try:
        yield meter
    finally:
        meter_var.reset(token)


Decision.__module__ = "guardrails"  # reprs and tracebacks show the public path


class DecisionHook(Protocol):
    """Receives every `Decision`."""

    def __call__(self, decision: Decision, /) -> None: ...


_lock = threading.Lock()
# Replaced, never mutated: `record` reads it without the lock.
_hooks: tuple[DecisionHook, ...] = ()
#: Counted beside the outcomes: decisions a fallback guard made because the primary one failed.
DEGRADED = "degraded"
# One `itertools.count` per outcome (and `DEGRADED`), never replaced: ``next()`` on one is a single
# C call that the GIL keeps whole, so counting takes no lock (a lock cost more than the rest of an
# allowed call's recording). `_base` holds each counter's value at the last `reset_stats`.
_counters: dict[str, itertools.count[int]] = {name: itertools.count() for name in (*OUTCOMES, DEGRADED)}
_base: dict[str, int] = dict.fromkeys(_counters, 0)


def _value(counter: itertools.count[int]) -> int:
    """How many times `counter` was advanced: an ``itertools.count`` shows its next value in its
    repr (``count(41)``) and nowhere else (its pickling support is going away)."""
    return int(repr(counter)[6:-1])


def counter(outcome: str) -> itertools.count[int]:
    """The counter of `outcome`: ``next(counter(outcome))`` counts one, as `count` does, from a hot
    path that would rather hold the counter than look it up."""
    return _counters[outcome]


# Per guard: [characters sent for scanning, vendor calls, billing units].
_usage: dict[str, list[int]] = {}


def spend(guard: str, characters: int, billing_units: int | None = None) -> None:
    """Count one request sent to a vendor: in the process-wide counters and the current `Meter`."""
    with _lock:
        counts = _usage.get(guard)
        if counts is None:
            counts = _usage[guard] = [0, 0, 0]
        counts[0] += characters
        counts[1] += 1
        counts[2] += billing_units or 0
    meter = meter_var.get()
    if meter is not None:
        meter.add(characters, billing_units)


def usage() -> Mapping[str, Mapping[str, int]]:
    """A snapshot of the vendor usage per guard: ``scanned_characters``, ``vendor_calls``,
    ``billing_units`` (0 where the vendor documents no unit)."""
    with _lock:
        return {
            guard: {"scanned_characters": c, "vendor_calls": n, "billing_units": b}
            for guard, (c, n, b) in _usage.items()
        }


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
    """A snapshot of the decision counters, one per outcome, ``degraded`` (decisions made by a
    `Fallback`'s secondary guard, also counted under their outcome), and the vendor usage per guard.

    Usage entries appear once a guard has sent a request: ``"scanned_characters:trend"`` and
    ``"vendor_calls:trend"`` (the counters ``guardrails.scanned_characters`` and
    ``guardrails.vendor_calls`` by guard; `usage` has them as a mapping per guard).
    """
    snapshot = {name: _value(counting) - _base[name] for name, counting in _counters.items()}
    with _lock:
        for guard, (characters, calls, _) in _usage.items():
            snapshot[f"scanned_characters:{guard}"] = characters
            snapshot[f"vendor_calls:{guard}"] = calls
        return snapshot


def reset_stats() -> None:
    """Set every counter back to zero (for tests)."""
    with _lock:
        for name, counting in _counters.items():
            _base[name] = _value(counting)
        _usage.clear()


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
    """Count a decision nobody else would see (see `quiet`): no `Decision` needs building."""
    next(_counters[outcome])


def quiet(hooks: Sequence[DecisionHook] = ()) -> bool:
    """Whether a `Decision` would reach no one but the counters: no hook, no OpenTelemetry.

    The hot path (an allowed call with no hooks and no telemetry) then only counts (`count`).
    """
    return not (_hooks or hooks) and _otel.idle()


def wanted(hooks: Sequence[DecisionHook] = ()) -> bool:
    """Whether a `Decision` would reach anyone but the counters: a hook, or OpenTelemetry."""
    return not quiet(hooks)


def record(decision: Decision, hooks: Iterable[DecisionHook] = ()) -> None:
    """Count a decision, report it to OpenTelemetry, then hand it to the global hooks and `hooks`.

    Thread-safe and task-safe: each count is one atomic step (see `_counters`). A hook that
    raises is logged on the ``guardrails`` logger; the other hooks still run and the exception
    never reaches the caller.

    Args:
        decision: what happened.
        hooks: the call site's own hooks (the decorator's or middleware's ``on_decision``), called
            after the global ones.
    """
    next(_counters[decision.outcome])
    if decision.degraded:
        next(_counters[DEGRADED])
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
