"""Resilience decisions, in one place for every guard and every shell.

- `FailOpen` and `should_fail_open`: what the decorator and middlewares do when a guard fails.
- `Retry`: which failures are retried, and the jittered backoff schedule (honouring Retry-After).
- `Deadline`: the overall time budget of one check, retries and backoff included.
- `CircuitBreaker`: fail fast while the guard is down, then let one probe through.

Nothing here does I/O or sleeps: the sync and async drivers in `_client` do.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Union

from ._exceptions import GuardError, GuardRateLimited, GuardUnavailable

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Deadline",
    "FailOpen",
    "Permit",
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
        import email.utils  # here: an HTTP-date is rare, and importing email costs milliseconds

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
    """The overall time budget of one check (monotonic clock, or the `clock` given)."""

    __slots__ = ("clock", "expires", "timeout")

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self.expires = clock() + timeout

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.expires


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# Module globals: an enum member read through its class costs several times a global's read
# (3.11), and the breaker is read on every check.
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN


@dataclass(frozen=True)
class Permit:
    """What `CircuitBreaker.before_call` hands a call: end it with one of the breaker's `record_*`
    methods or `release`.

    Attributes:
        probe: this call is the half-open probe: until it ends no other call goes through.
        epoch: how many times the breaker had opened when the call started. A failure of a call
            that started before the latest opening is old news and does not count again.
        seq: the probe's number (0 for an ordinary call).
    """

    probe: bool
    epoch: int
    seq: int = 0


@dataclass
class CircuitBreaker:
    """Fails fast while a guard is down.

    After ``failure_threshold`` consecutive transient failures the breaker opens: checks raise
    `GuardUnavailable` at once, without touching the network, for ``cooldown`` seconds. Then it is
    half-open: one probe goes through; success closes it, failure opens it again. Thread-safe, and
    safe to share between tasks (its critical sections never await).

    The state machine, with the rules that keep it from wedging::

        CLOSED --threshold transient failures--> OPEN --cooldown--> HALF_OPEN --probe fails--> OPEN
        HALF_OPEN --probe succeeds, or the guard answers at all (even a 4xx)--> CLOSED
        HALF_OPEN --probe released (cancelled, learnt nothing)--> HALF_OPEN, next call probes

    - at most one probe of the current opening is out at a time;
    - a failure of a call that started before the breaker last opened (a `Permit` of an older
      epoch) is not counted again: it neither re-opens a half-open breaker nor extends a cooldown;
    - only the probe itself can free the probe slot (a stale release is ignored).

    Args:
        failure_threshold: consecutive transient failures that open the breaker; 0 disables it.
        cooldown: seconds to stay open before letting a probe through.
        clock: the monotonic clock (a fake one in tests).
    """

    failure_threshold: int = 5
    cooldown: float = 10.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)
    _opened_at: float = field(default=0.0, init=False, repr=False)
    _epoch: int = field(default=0, init=False, repr=False)
    _probe: int = field(default=0, init=False, repr=False)  # seq of the probe out, 0 for none
    _seq: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    # The permit of an ordinary call in the current epoch: immutable, so shared by every such call.
    _closed_permit: Permit = field(default=Permit(False, 0), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 0 or self.cooldown < 0:
            raise ValueError("failure_threshold and cooldown must not be negative")

    @property
    def state(self) -> BreakerState:
        """Closed, open or half-open, as of now."""
        if self._state is _CLOSED:
            return _CLOSED  # only a call's failure leaves it, never the clock: no lock
        with self._lock:
            return self._current_state(self.clock())

    @property
    def probing(self) -> bool:
        """Whether the half-open probe is out."""
        with self._lock:
            return self._probe != 0

    def _current_state(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.cooldown:
            self._state = BreakerState.HALF_OPEN
            self._probe = 0
        return self._state

    def before_call(self, guard: str = "unknown") -> Permit:
        """Raise `GuardUnavailable` (``circuit_open=True``) if calls must fail fast now.

        Returns:
            The call's `Permit`. A probe's caller must end it with `record_success`,
            `record_failure` or, if it learnt nothing, `release`.
        """
        # Closed (the common case) without the lock: the permit's epoch is read first, so a call
        # that sees it closed is one that started before any opening after that epoch.
        permit = self._closed_permit
        if self._state is _CLOSED and permit.epoch == self._epoch:
            return permit
        with self._lock:
            if self.failure_threshold == 0:
                return Permit(False, self._epoch)
            state = self._current_state(self.clock())
            if state is BreakerState.CLOSED:
                self._closed_permit = permit = Permit(False, self._epoch)
                return permit
            if state is BreakerState.HALF_OPEN and not self._probe:
                self._seq += 1
                self._probe = self._seq
                return Permit(True, self._epoch, self._seq)
        raise GuardUnavailable(
            f"{guard} guard circuit breaker is open: failing fast", guard=guard, circuit_open=True
        )

    def record_success(self, permit: Permit | None = None) -> None:
        """The guard answered: close the breaker."""
        if self._state is _CLOSED and not self._failures and not self._probe:
            return  # nothing to change (as after nearly every call): no lock
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probe = 0

    def record_failure(self, error: GuardError, permit: Permit | None = None) -> None:
        """Count a failed attempt; only transient failures say the guard is down.

        Args:
            error: what the attempt failed with.
            permit: the attempt's permit; without one the failure counts as a current one.
        """
        if self.failure_threshold == 0:
            return
        with self._lock:
            if not error.transient:
                # The guard answered: it is up, just unhappy with us.
                self._failures = 0
                if self._state is BreakerState.HALF_OPEN:
                    self._state = BreakerState.CLOSED
                if permit is None or permit.seq == self._probe:
                    self._probe = 0
                return
            if permit is not None and permit.epoch != self._epoch:
                return  # started before the latest opening: already accounted for
            state = self._current_state(self.clock())
            if state is BreakerState.HALF_OPEN:
                if permit is not None and not (permit.probe and permit.seq == self._probe):
                    return
                self._open()
            elif state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self.clock()
        self._epoch += 1
        self._probe = 0

    def release(self, permit: Permit) -> None:
        """The call ended without an answer (cancelled, abandoned): free its probe slot, if it held it.

        Without this, a cancelled probe would leave the breaker half-open with its one probe
        slot taken, failing every later call fast for good.
        """
        if not permit.probe:
            return
        with self._lock:
            if self._probe == permit.seq:
                self._probe = 0

    def release_probe(self) -> None:
        """Free the probe slot whoever holds it (prefer `release` with the probe's permit)."""
        with self._lock:
            self._probe = 0

    def reset(self) -> None:
        """Close the breaker and forget past failures."""
        self.record_success()
