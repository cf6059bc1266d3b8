"""One frozen event per decision, delivered to hooks and counted.

The decorator and both middlewares call `record(...)` once per decision. Hooks registered with
`add_hook` (globally) or passed as ``on_decision=`` (per decorator / middleware) receive the
`Decision`; a hook that raises is logged and never breaks the request. `stats()` is a snapshot
of the counters per outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "OUTCOMES",
    "Decision",
    "DecisionHook",
    "Outcome",
    "add_hook",
    "record",
    "remove_hook",
    "reset_stats",
    "stats",
]

logger = logging.getLogger("guardrails")

Outcome = Literal[
    "allowed", "blocked", "error", "failed_open", "too_large", "skipped", "monitored", "invalid"
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
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one guarded call or request.

    Attributes:
        outcome: ``allowed``, ``blocked``, ``error`` (failed closed), ``failed_open``,
            ``too_large``, ``skipped`` (nothing to scan), ``monitored`` (would have blocked, shadow
            mode), ``invalid`` (the body could not be parsed).
        guard: name of the guard asked ("" if none was).
        target: the function's qualified name, or ``"METHOD /route"``.
        kind: ``"prompt"`` or ``"response"``.
        verdict_id: the guard's id for the evaluation, if any.
        reasons: the guard's reasons (never the scanned text).
        error: class name of the `GuardError`, if the guard failed.
        latency: seconds spent asking the guard.
        cached: True when the verdict came from a cache.
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


class DecisionHook(Protocol):
    """Receives every `Decision`."""

    def __call__(self, decision: Decision, /) -> None: ...


_lock = threading.Lock()
_hooks: list[DecisionHook] = []
_counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)


def add_hook(hook: DecisionHook) -> None:
    """Register a hook called with every decision, process-wide."""
    with _lock:
        _hooks.append(hook)


def remove_hook(hook: DecisionHook) -> None:
    """Unregister a hook added with `add_hook` (no error if it is not registered)."""
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def stats() -> Mapping[str, int]:
    """A snapshot of the decision counters, one per outcome."""
    with _lock:
        return dict(_counts)


def reset_stats() -> None:
    """Set every counter back to zero (for tests)."""
    with _lock:
        for outcome in _counts:
            _counts[outcome] = 0


def record(decision: Decision, hooks: Iterable[DecisionHook] = ()) -> None:
    """Count a decision and hand it to the global hooks, then to `hooks` (per call site)."""
    with _lock:
        _counts[decision.outcome] += 1
        everyone = [*_hooks, *hooks] if _hooks else list(hooks)
    for hook in everyone:
        try:
            hook(decision)
        except Exception:
            logger.exception(
                "guardrails decision hook %r raised; the request goes on",
                getattr(hook, "__qualname__", hook),
            )
