"""Counting the calls a check sends to its vendor, for ``guardrails eval``.

`exchange` reports every attempt it sends (retries included) to the counter of the current
context, when one is set. ``guardrails.eval`` sets a fresh counter around each check it runs, so
the calls of one check are counted whatever guard made them: a vendor guard, or one inside a
composition, windows of a long text included. A verdict served from a cache, or by an identical
check already in flight, sends nothing and counts nothing. Outside an eval no counter is set and
the cost is one context-variable lookup per attempt.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["CallMeter", "count_call", "metering"]


class CallMeter:
    """A mutable count shared by a check and the tasks it starts (they copy the context)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0


metering: ContextVar[CallMeter | None] = ContextVar("guardrails_call_meter", default=None)


def count_call() -> None:
    """Count one request sent to a vendor, if a meter is set in this context."""
    meter = metering.get()
    if meter is not None:
        meter.calls += 1
