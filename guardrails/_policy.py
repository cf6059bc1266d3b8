"""Resilience decisions, in one place for every guard and every shell.

- `FailOpen` and `should_fail_open`: what the decorator and middlewares do when a guard fails.
- `Retry`: which failures are retried, and the jittered backoff schedule (honouring Retry-After).
- `Deadline`: the overall time budget of one check, retries and backoff included.
- `CircuitBreaker`: fail fast while the guard is down, then let one probe through.

Nothing here does I/O or sleeps: the sync and async drivers in `_client` do.
"""

from __future__ import annotations

import email.utils
import enum
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, Union

from ._exceptions import GuardError, GuardRateLimited, GuardUnavailable

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Deadline",
    "FailOpen",
    "Retry",
    "parse_retry_after",
    "should_fail_open",
    "validate_fail_open",
]

#: ``False`` (fail closed, the default), ``True`` (fail open on transient errors only) or
#: ``"always"`` (fail open on every guard error, configuration errors included).
FailOpen = Union[bool, Literal["always"]]  # noqa: UP007 - a runtime alias on Python 3.10


def validate_fail_open(value: object) -> FailOpen:
    """Check a user's fail_open setting; a typo must not silently mean fail-closed or fail-open."""
    if isinstance(value, bool):
        return value
    if value == "always":
        return "always"
    raise ValueError(f"fail_open must be False, True or 'always', not {value!r}")


def should_fail_open(fail_open: FailOpen, error: GuardError) -> bool:
    """Whether a guard failure lets the call through.

    Transient errors follow the user's choice; configuration errors (bad credentials, a 400) fail
    closed unless the user opted in with ``fail_open="always"``.
    """
    if fail_open == "always":
        return True
    return fail_open is True and error.transient


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return seconds


@dataclass(frozen=True)
class Retry:
    """Retry schedule of one check.

    Args:
        attempts: total attempts, the first included (``retries + 1``).
        backoff: base delay in seconds; attempt n waits ``backoff * 2**(n-1)`` at most.
        max_backoff: cap of one delay.
        jitter: "full" jitter: each delay is drawn uniformly in ``[0, cap]``; False for exact delays.
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1 (retries must be >= 0)")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff delays must not be negative")

    def delay(self, attempt: int, error: GuardError, deadline: Deadline) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise `error`.

        Args:
            attempt: the number of attempts made so far (1 after the first).
            error: what the last attempt failed with.
            deadline: the overall deadline; never wait past it.
        """
        if not error.transient or attempt >= self.attempts:
            return None
        if isinstance(error, GuardUnavailable) and error.circuit_open:
            return None
        cap = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        wait = random.uniform(0, cap) if self.jitter else cap
        if isinstance(error, GuardRateLimited) and error.retry_after is not None:
            # The service said when: waiting less would only earn another 429.
            wait = max(wait, error.retry_after)
        if wait >= deadline.remaining():
            return None
        return wait


class Deadline:
    """The overall time budget of one check (monotonic clock)."""

    __slots__ = ("expires", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.expires = time.monotonic() + timeout

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    """Fails fast while a guard is down.

    After ``failure_threshold`` consecutive transient failures the breaker opens: checks raise
    `GuardUnavailable` at once, without touching the network, for ``cooldown`` seconds. Then it is
    half-open: one probe goes through; success closes it, failure opens it again. Thread-safe, and
    safe to share between tasks (its critical sections never await).

    Args:
        failure_threshold: consecutive transient failures that open the breaker; 0 disables it.
        cooldown: seconds to stay open before letting a probe through.
    """

    failure_threshold: int = 5
    cooldown: float = 10.0
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)
    _opened_at: float = field(default=0.0, init=False, repr=False)
    _probing: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 0 or self.cooldown < 0:
            raise ValueError("failure_threshold and cooldown must not be negative")

    @property
    def state(self) -> BreakerState:
        """Closed, open or half-open, as of now."""
        with self._lock:
            return self._current_state(time.monotonic())

    def _current_state(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.cooldown:
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        return self._state

    def before_call(self, guard: str = "unknown") -> bool:
        """Raise `GuardUnavailable` (``circuit_open=True``) if calls must fail fast now.

        Returns:
            True when this call is the half-open probe: its caller must end it with
            `record_success`, `record_failure` or, if it learnt nothing, `release_probe`.
        """
        if self.failure_threshold == 0:
            return False
        with self._lock:
            state = self._current_state(time.monotonic())
            if state is BreakerState.CLOSED:
                return False
            if state is BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
        raise GuardUnavailable(
            f"{guard} guard circuit breaker is open: failing fast", guard=guard, circuit_open=True
        )

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probing = False

    def record_failure(self, error: GuardError) -> None:
        """Count a failed attempt; only transient failures say the guard is down."""
        if self.failure_threshold == 0:
            return
        with self._lock:
            if not error.transient:
                # The guard answered: it is up, just unhappy with us.
                self._failures = 0
                if self._state is BreakerState.HALF_OPEN:
                    self._state = BreakerState.CLOSED
                self._probing = False
                return
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = BreakerState.OPEN
                self._opened_at = time.monotonic()
                self._probing = False

    def release_probe(self) -> None:
        """The probe ended without an answer (cancelled, abandoned): let the next call probe.

        Without this, a cancelled probe would leave the breaker half-open with its one probe
        slot taken, failing every later call fast for good.
        """
        with self._lock:
            self._probing = False

    def reset(self) -> None:
        """Close the breaker and forget past failures."""
        self.record_success()
