"""Resilience decisions: fail-open, Retry-After, the retry schedule, the deadline, the circuit breaker."""

from __future__ import annotations

import email.utils
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from guardrails._exceptions import (
    GuardAuthError,
    GuardError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from guardrails._policy import (
    BreakerState,
    CircuitBreaker,
    Deadline,
    FailOpen,
    Retry,
    parse_retry_after,
    should_fail_open,
    validate_fail_open,
)

TRANSIENT = GuardUnavailable("down", guard="test")
CONFIGURATION = GuardAuthError("bad key", guard="test")
PLENTY = Deadline(3600)

# -- fail-open -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_open", "error", "expected"),
    [
        pytest.param(False, TRANSIENT, False, id="closed-transient"),
        pytest.param(False, CONFIGURATION, False, id="closed-configuration"),
        pytest.param(True, TRANSIENT, True, id="open-transient"),
        pytest.param(True, CONFIGURATION, False, id="open-configuration"),
        pytest.param("always", TRANSIENT, True, id="always-transient"),
        pytest.param("always", CONFIGURATION, True, id="always-configuration"),
        pytest.param(True, GuardResponseError("400", transient=False), False, id="open-400"),
        pytest.param(True, GuardTimeout("slow"), True, id="open-timeout"),
    ],
)
def test_should_fail_open(fail_open: FailOpen, error: GuardError, expected: bool) -> None:
    """Transient errors follow the setting; configuration errors fail open only with "always"."""
    assert should_fail_open(fail_open, error) is expected


@pytest.mark.parametrize("value", [False, True, "always"])
def test_validate_fail_open_accepts_the_three_settings(value: FailOpen) -> None:
    """False, True and "always" are returned unchanged."""
    assert validate_fail_open(value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("yes", id="yes"),
        pytest.param("true", id="true-string"),
        pytest.param("Always", id="capitalised"),
        pytest.param("", id="empty"),
        pytest.param(1, id="one"),
        pytest.param(0, id="zero"),
        pytest.param(None, id="none"),
    ],
)
def test_validate_fail_open_rejects_anything_else(value: object) -> None:
    """A typo is an error, never a silent fail-open or fail-closed."""
    with pytest.raises(ValueError, match="fail_open"):
        validate_fail_open(value)


# -- Retry-After -----------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("3", 3.0, id="seconds"),
        pytest.param("1.5", 1.5, id="fractional-seconds"),
        pytest.param(" 7 ", 7.0, id="padded"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("-5", 0.0, id="negative"),
        pytest.param("nan", 0.0, id="nan"),
        pytest.param(email.utils.formatdate(NOW + 30, usegmt=True), 30.0, id="http-date"),
        pytest.param(email.utils.formatdate(NOW - 30, usegmt=True), 0.0, id="http-date-past"),
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("Mon, 99 Foo 2025 25:61:00 GMT", None, id="bad-date"),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Delta-seconds and HTTP dates are read; the past is zero; garbage is None."""
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_dates_are_relative_to_the_clock() -> None:
    """Without `now`, an HTTP date is measured from the current time."""
    header = email.utils.formatdate(time.time() + 100, usegmt=True)
    wait = parse_retry_after(header)
    assert wait is not None
    assert 98 < wait <= 100


# -- Retry -----------------------------------------------------------------------------------------


def test_retry_without_jitter_doubles_up_to_the_cap() -> None:
    """Delays are backoff * 2**(n-1), capped at max_backoff."""
    retry = Retry(attempts=8, backoff=0.1, max_backoff=1.0, jitter=False)
    delays = [retry.delay(attempt, TRANSIENT, PLENTY) for attempt in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_retry_jitter_stays_between_zero_and_the_cap() -> None:
    """Full jitter draws each delay in [0, cap], and does vary."""
    retry = Retry(attempts=10, backoff=0.1, max_backoff=0.5)
    for attempt in range(1, 10):
        cap = min(0.5, 0.1 * 2 ** (attempt - 1))
        draws = [retry.delay(attempt, TRANSIENT, PLENTY) for _ in range(200)]
        assert all(draw is not None and 0 <= draw <= cap for draw in draws)
        assert len(set(draws)) > 1


def test_retry_gives_up_after_the_attempts() -> None:
    """No delay is offered once `attempts` attempts were made."""
    retry = Retry(attempts=3, jitter=False)
    assert retry.delay(2, TRANSIENT, PLENTY) is not None
    assert retry.delay(3, TRANSIENT, PLENTY) is None


def test_a_single_attempt_never_retries() -> None:
    """attempts=1 means no retry at all."""
    assert Retry(attempts=1).delay(1, TRANSIENT, PLENTY) is None


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(CONFIGURATION, id="auth"),
        pytest.param(GuardResponseError("400", transient=False), id="bad-request"),
        pytest.param(GuardUnavailable("open", circuit_open=True), id="circuit-open"),
    ],
)
def test_retry_does_not_retry(error: GuardError) -> None:
    """Configuration errors and an open circuit are not retried."""
    assert Retry(attempts=5).delay(1, error, PLENTY) is None


def test_retry_after_wins_over_a_shorter_backoff() -> None:
    """A 429's Retry-After is waited even when the backoff would be shorter."""
    retry = Retry(attempts=3, backoff=0.1, max_backoff=0.2)
    error = GuardRateLimited("slow down", retry_after=1.5)
    assert retry.delay(1, error, PLENTY) == 1.5


def test_a_shorter_retry_after_does_not_cut_the_backoff() -> None:
    """The wait is the longer of the backoff and Retry-After."""
    retry = Retry(attempts=3, backoff=1.0, jitter=False)
    assert retry.delay(1, GuardRateLimited("slow down", retry_after=0.1), PLENTY) == 1.0


def test_retry_never_waits_past_the_deadline() -> None:
    """A delay that would not end before the deadline is None: give up now."""
    retry = Retry(attempts=5, backoff=1.0, jitter=False)
    assert retry.delay(1, TRANSIENT, Deadline(0.5)) is None
    assert retry.delay(1, GuardRateLimited("slow down", retry_after=10), Deadline(5)) is None


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"attempts": 0}, id="no-attempts"),
        pytest.param({"backoff": -1}, id="negative-backoff"),
        pytest.param({"max_backoff": -1}, id="negative-cap"),
    ],
)
def test_retry_rejects_invalid_settings(options: dict[str, float]) -> None:
    """Nonsense schedules fail at construction."""
    with pytest.raises(ValueError):
        Retry(**options)  # type: ignore[arg-type]


# -- Deadline --------------------------------------------------------------------------------------


def test_deadline_counts_down() -> None:
    """remaining() is at most the timeout and decreases."""
    deadline = Deadline(10)
    first = deadline.remaining()
    second = deadline.remaining()
    assert 0 < second <= first <= 10
    assert not deadline.expired


def test_an_expired_deadline_has_nothing_left() -> None:
    """Past the deadline remaining() is zero, never negative."""
    deadline = Deadline(0)
    assert deadline.expired
    assert deadline.remaining() == 0


# -- CircuitBreaker --------------------------------------------------------------------------------


def open_breaker(cooldown: float = 60) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=cooldown)
    breaker.record_failure(TRANSIENT)
    return breaker


def test_a_new_breaker_is_closed_and_lets_calls_through() -> None:
    """Closed: before_call passes and is not a probe."""
    breaker = CircuitBreaker()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.before_call().probe is False


@pytest.mark.parametrize(
    ("failures", "state"),
    [
        pytest.param(2, BreakerState.CLOSED, id="below-threshold"),
        pytest.param(3, BreakerState.OPEN, id="at-threshold"),
        pytest.param(4, BreakerState.OPEN, id="above-threshold"),
    ],
)
def test_the_breaker_opens_at_the_failure_threshold(failures: int, state: BreakerState) -> None:
    """failure_threshold consecutive transient failures open the breaker; fewer do not."""
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60)
    for _ in range(failures):
        breaker.record_failure(TRANSIENT)
    assert breaker.state is state


def test_only_consecutive_failures_count() -> None:
    """A success in between starts the count again."""
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60)
    for _ in range(2):
        breaker.record_failure(TRANSIENT)
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure(TRANSIENT)
    assert breaker.state is BreakerState.CLOSED


def test_configuration_errors_do_not_count_as_failures() -> None:
    """The guard answered: a configuration error does not open the breaker and resets the count."""
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
    breaker.record_failure(TRANSIENT)
    breaker.record_failure(CONFIGURATION)
    breaker.record_failure(TRANSIENT)
    breaker.record_failure(CONFIGURATION)
    assert breaker.state is BreakerState.CLOSED


def test_an_open_breaker_fails_fast() -> None:
    """Open: before_call raises a transient GuardUnavailable with circuit_open set."""
    breaker = open_breaker()
    with pytest.raises(GuardUnavailable) as caught:
        breaker.before_call("trend")
    assert caught.value.circuit_open is True
    assert caught.value.transient is True
    assert caught.value.guard == "trend"


def test_the_breaker_half_opens_after_the_cooldown() -> None:
    """Once the cooldown has passed the state reads half-open."""
    assert open_breaker(cooldown=0).state is BreakerState.HALF_OPEN


def test_half_open_lets_exactly_one_probe_through() -> None:
    """The first call is the probe; the others fail fast while it is out."""
    breaker = open_breaker(cooldown=0)
    assert breaker.before_call().probe is True
    with pytest.raises(GuardUnavailable):
        breaker.before_call()


def test_a_successful_probe_closes_the_breaker() -> None:
    """Half-open + success = closed."""
    breaker = open_breaker(cooldown=0)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.before_call().probe is False


def test_a_failed_probe_opens_the_breaker_again() -> None:
    """Half-open + transient failure = open, for a new cooldown."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown=0.05)
    breaker.record_failure(TRANSIENT)
    time.sleep(0.06)  # the cooldown itself is the behaviour under test
    breaker.before_call()
    breaker.record_failure(TRANSIENT)
    assert breaker.state is BreakerState.OPEN


def test_a_probe_answered_with_a_configuration_error_closes_the_breaker() -> None:
    """The guard answered the probe: it is up."""
    breaker = open_breaker(cooldown=0)
    breaker.before_call()
    breaker.record_failure(CONFIGURATION)
    assert breaker.state is BreakerState.CLOSED


def test_a_released_probe_lets_the_next_call_probe() -> None:
    """release_probe frees the probe slot of a probe that learnt nothing."""
    breaker = open_breaker(cooldown=0)
    breaker.release(breaker.before_call())
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.before_call().probe is True


def test_reset_closes_the_breaker() -> None:
    """reset() closes an open breaker."""
    breaker = open_breaker()
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED


def test_a_zero_threshold_disables_the_breaker() -> None:
    """failure_threshold=0 never opens."""
    breaker = CircuitBreaker(failure_threshold=0)
    for _ in range(100):
        breaker.record_failure(TRANSIENT)
    assert breaker.before_call().probe is False
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"failure_threshold": -1}, id="negative-threshold"),
        pytest.param({"cooldown": -1.0}, id="negative-cooldown"),
    ],
)
def test_the_breaker_rejects_invalid_settings(options: dict[str, float]) -> None:
    """Negative settings fail at construction."""
    with pytest.raises(ValueError):
        CircuitBreaker(**options)  # type: ignore[arg-type]


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    # Switch threads as often as possible so that an unlocked check-then-set would interleave.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def race_for_the_probe(breaker: CircuitBreaker, threads: int) -> tuple[list[bool], int]:
    """Call before_call from `threads` threads at once: what they returned, and how many failed fast."""
    start = threading.Barrier(threads)
    returned: list[bool] = []
    failed_fast: list[GuardUnavailable] = []

    def call() -> None:
        start.wait()
        try:
            returned.append(breaker.before_call().probe)
        except GuardUnavailable as exc:
            failed_fast.append(exc)

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return returned, len(failed_fast)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_only_one_probe_gets_through_when_threads_race() -> None:
    """Many threads calling before_call at once on a half-open breaker: exactly one probe."""
    for _ in range(20):
        assert race_for_the_probe(open_breaker(cooldown=0), threads=16) == ([True], 15)
