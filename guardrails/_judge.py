"""What the decorator, both middlewares and the OpenAI transport do with a guard's answer.

`Judge` applies the policy to one check's outcome, records the `Decision` and writes the one log
line about it, the same way everywhere:

- a Block: outcome ``blocked`` (``monitored`` in shadow mode), one INFO line with the reasons;
- an Allow: outcome ``allowed``, no log line;
- a guard failure: ``failed_open`` when the policy lets the call through (WARNING; ERROR for a
  configuration error), else ``error`` (WARNING for a transient error, ERROR for a configuration
  error).

Log lines carry the structured fields of `log_extra` and never the scanned text, nor the guard's
own error message (a vendor's message may quote the request): only the error's class and status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ._events import Decision, DecisionHook, Outcome, count, log_extra, record, wanted
from ._exceptions import GuardError
from ._models import Verdict
from ._policy import FailOpen, should_fail_open

__all__ = ["Judge", "as_guard_error"]

logger = logging.getLogger("guardrails")


def as_guard_error(error: BaseException, guard: str) -> GuardError:
    """A `GuardError` for any exception a guard raised.

    A guard raising anything but a `GuardError` is broken: a configuration error, never transient.
    """
    if isinstance(error, GuardError):
        return error
    return GuardError(f"{guard} guard raised {type(error).__name__}", guard=guard, transient=False)


class Judge:
    """Records and logs the decisions about one call, request or stream.

    Args:
        target: what is guarded: a function's qualified name or ``"METHOD /route"``.
        hooks: the call site's own decision hooks.
        fail_open: the policy for guard failures.
        monitor: shadow mode: record and log, never block, never fail closed.
    """

    __slots__ = ("fail_open", "hooks", "monitor", "target")

    def __init__(
        self,
        target: str,
        *,
        hooks: Sequence[DecisionHook] = (),
        fail_open: FailOpen = False,
        monitor: bool = False,
    ) -> None:
        self.target = target
        self.hooks = hooks
        self.fail_open: FailOpen = fail_open
        self.monitor = monitor

    def record(
        self,
        outcome: Outcome,
        *,
        guard: str = "",
        kind: str = "prompt",
        verdict: Verdict | None = None,
        error: BaseException | None = None,
        latency: float = 0.0,
    ) -> Decision:
        """Record one decision (counters, OpenTelemetry, hooks) and return it."""
        if verdict is not None:
            decision = Decision(
                outcome,
                verdict.guard,
                self.target,
                kind,
                verdict.id,
                tuple(verdict.reasons),
                None,
                latency,
                verdict.cached,
            )
        else:
            decision = Decision(
                outcome,
                guard,
                self.target,
                kind,
                error=type(error).__name__ if error else None,
                latency=latency,
            )
        record(decision, self.hooks)
        return decision

    def verdict(self, verdict: Verdict, *, kind: str = "prompt", latency: float = 0.0) -> bool:
        """Record a verdict; True when the caller must refuse (a Block outside monitor mode)."""
        if not verdict.blocked:
            if wanted(self.hooks):
                self.record("allowed", kind=kind, verdict=verdict, latency=latency)
            else:
                count("allowed")  # the hot path: nobody would read the event
            return False
        outcome: Outcome = "monitored" if self.monitor else "blocked"
        decision = self.record(outcome, kind=kind, verdict=verdict, latency=latency)
        logger.info(
            "guardrails: %s guard %s the %s of %s: %s (verdict id %s)",
            verdict.guard,
            "would have blocked (monitor mode)" if self.monitor else "blocked",
            kind,
            self.target,
            "; ".join(verdict.reasons) or "no reason given",
            verdict.id,
            extra=log_extra(decision),
        )
        return not self.monitor

    def failure(
        self, error: GuardError, *, guard: str | None = None, kind: str = "prompt", latency: float = 0.0
    ) -> bool:
        """Record a guard failure; True when the call goes on (fail open, monitor mode).

        Args:
            error: what the guard raised.
            guard: the name of the guard asked (default: the error's).
            kind: ``"prompt"`` or ``"response"``.
            latency: seconds spent asking.
        """
        proceed = self.monitor or should_fail_open(self.fail_open, error)
        name = guard or error.guard
        decision = self.record(
            "failed_open" if proceed else "error", guard=name, kind=kind, error=error, latency=latency
        )
        if self.monitor:
            then = "monitor mode: the call goes on"
        else:
            then = "failing open, unscanned" if proceed else "failing closed"
        # A configuration error is an ERROR even when the policy lets the call through.
        logger.log(
            logging.WARNING if error.transient else logging.ERROR,
            "guardrails: %s guard %s (%s, status %s) checking the %s of %s: %s",
            name,
            "failed" if error.transient else "configuration error",
            type(error).__name__,
            error.status_code,
            kind,
            self.target,
            then,
            extra=log_extra(decision, status_code=error.status_code),
        )
        return proceed
