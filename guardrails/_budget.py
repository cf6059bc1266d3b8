"""Rate budgets: how many checks per second a guard may send its vendor.

A `RateBudget` is asked once per vendor call. `take()` returns ``0.0`` when a call may go now (one
unit of the budget is spent), or the seconds until one may, spending nothing. A guard given
``rate_limit=`` raises `GuardRateLimited` (with that ``retry_after``) instead of calling the vendor
when its budget is spent, so an exhausted budget follows the fail-open policy like a vendor 429,
and a `Fallback` can decide instead. Batch callers (``guardrails eval``) wait the returned time and
ask again.

`RateLimit` is the in-process budget (a token bucket); ``guardrails.redis.RedisRateLimit`` shares
one budget across processes with the same protocol.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["RateBudget", "RateLimit", "as_budget"]


@runtime_checkable
class RateBudget(Protocol):
    """A budget of vendor calls, shared by whoever holds it."""

    def take(self) -> float:
        """Spend one call: ``0.0`` when granted, else the seconds until one may be (nothing spent)."""
        ...

    async def atake(self) -> float:
        """`take` for async callers (a shared budget may need I/O)."""
        ...


class RateLimit:
    """A token bucket: `rate` calls per second on average, bursts of up to `burst`.

    Thread-safe; `atake` never blocks the event loop (the lock is held for microseconds).

    Args:
        rate: calls per second (> 0).
        burst: the most calls that may go at once after a quiet spell; default ``max(1, rate)``.
    """

    __slots__ = ("_lock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 calls per second, not {rate!r}")
        if burst is None:
            burst = max(1, int(rate))
        if burst < 1:
            raise ValueError(f"burst must be >= 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    async def atake(self) -> float:
        return self.take()

    def __repr__(self) -> str:
        return f"RateLimit(rate={self.rate:g}, burst={self.burst})"


def as_budget(value: RateBudget | float | None) -> RateBudget | None:
    """The ``rate_limit=`` option of a guard: a budget, calls per second, or None (no limit)."""
    if value is None or isinstance(value, RateBudget):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return RateLimit(float(value))
    raise TypeError(
        f"rate_limit must be a RateBudget (e.g. RateLimit(5, burst=10)) or calls per second, "
        f"not {type(value).__name__}"
    )
