"""The exception tree: one root, transient vs configuration, messages without content, pickling."""

from __future__ import annotations

import pickle

import pytest

from guardrails._exceptions import (
    Blocked,
    ExtractionError,
    GuardAuthError,
    GuardError,
    GuardrailsError,
    GuardRateLimited,
    GuardResponseError,
    GuardTimeout,
    GuardUnavailable,
)
from guardrails._models import Action, Verdict

GUARD_ERRORS = [GuardTimeout, GuardUnavailable, GuardRateLimited, GuardAuthError, GuardResponseError]
BLOCK = Verdict(action=Action.BLOCK, reasons=["prompt_attack", "pii"], id="v-42", guard="trend")


@pytest.mark.parametrize("cls", [Blocked, ExtractionError, GuardError, *GUARD_ERRORS])
def test_every_exception_is_a_guardrails_error(cls: type[Exception]) -> None:
    """`except GuardrailsError` catches everything the library raises."""
    assert issubclass(cls, GuardrailsError)


@pytest.mark.parametrize("cls", GUARD_ERRORS)
def test_guard_failures_are_guard_errors(cls: type[Exception]) -> None:
    """Every way a guard can fail is a GuardError."""
    assert issubclass(cls, GuardError)


@pytest.mark.parametrize("cls", [Blocked, ExtractionError])
def test_a_block_and_an_extraction_error_are_not_guard_failures(cls: type[Exception]) -> None:
    """A fail-open policy catching GuardError never swallows a Block or a bad body."""
    assert not issubclass(cls, GuardError)


@pytest.mark.parametrize(
    ("cls", "transient"),
    [
        pytest.param(GuardError, True, id="GuardError"),
        pytest.param(GuardTimeout, True, id="GuardTimeout"),
        pytest.param(GuardUnavailable, True, id="GuardUnavailable"),
        pytest.param(GuardRateLimited, True, id="GuardRateLimited"),
        pytest.param(GuardResponseError, True, id="GuardResponseError"),
        pytest.param(GuardAuthError, False, id="GuardAuthError"),
    ],
)
def test_transient_defaults(cls: type[GuardError], transient: bool) -> None:
    """Only bad credentials are a configuration error by default."""
    error = cls("failed")
    assert error.transient is transient
    assert error.kind == ("transient" if transient else "configuration")


def test_transient_can_be_set_explicitly() -> None:
    """A 400 is a GuardResponseError that says it is a configuration error."""
    error = GuardResponseError("rejected (400)", guard="trend", transient=False, status_code=400)
    assert (error.transient, error.kind, error.guard, error.status_code) == (
        False,
        "configuration",
        "trend",
        400,
    )


def test_guard_error_defaults() -> None:
    """Unnamed guard, no status."""
    error = GuardError("failed")
    assert (error.guard, error.status_code, str(error)) == ("unknown", None, "failed")


def test_rate_limited_defaults_to_429() -> None:
    """GuardRateLimited carries 429 and the Retry-After, if any."""
    error = GuardRateLimited("slow down", retry_after=2.5)
    assert (error.status_code, error.retry_after) == (429, 2.5)


def test_unavailable_says_whether_the_circuit_is_open() -> None:
    """circuit_open is False unless the breaker refused the call."""
    assert GuardUnavailable("down").circuit_open is False
    assert GuardUnavailable("open", circuit_open=True).circuit_open is True


def test_blocked_carries_the_verdict() -> None:
    """Blocked.verdict is the blocking verdict."""
    assert Blocked(BLOCK).verdict is BLOCK


def test_blocked_message_names_the_guard_reasons_and_id() -> None:
    """The default message says who blocked, why, and the verdict id."""
    assert str(Blocked(BLOCK)) == "blocked by trend: prompt_attack; pii (verdict id v-42)"


def test_blocked_message_without_reasons_or_id() -> None:
    """A bare verdict still gives a readable message."""
    assert str(Blocked(Verdict(action=Action.BLOCK, guard="local"))) == "blocked by local: no reason given"


def test_blocked_message_can_be_given() -> None:
    """An explicit message replaces the default."""
    assert str(Blocked(BLOCK, "custom")) == "custom"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(GuardError("failed", guard="g", transient=False, status_code=418), id="GuardError"),
        pytest.param(GuardTimeout("slow", guard="trend"), id="GuardTimeout"),
        pytest.param(
            GuardUnavailable("open", guard="g", status_code=503, circuit_open=True), id="GuardUnavailable"
        ),
        pytest.param(GuardRateLimited("429", guard="g", retry_after=3.0), id="GuardRateLimited"),
        pytest.param(GuardAuthError("401", guard="g", status_code=401), id="GuardAuthError"),
        pytest.param(
            GuardResponseError("400", guard="g", transient=False, status_code=400), id="GuardResponseError"
        ),
    ],
)
def test_guard_errors_survive_pickling(error: GuardError) -> None:
    """Class, message and every attribute survive a pickle round-trip (multiprocessing, caches)."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_blocked_survives_pickling() -> None:
    """Blocked keeps its verdict and message through pickle."""
    copy = pickle.loads(pickle.dumps(Blocked(BLOCK, "custom")))
    assert (copy.verdict, str(copy)) == (BLOCK, "custom")


def test_extraction_error_survives_pickling() -> None:
    """ExtractionError is a plain exception with its message."""
    copy = pickle.loads(pickle.dumps(ExtractionError("body is not JSON")))
    assert (type(copy), str(copy)) == (ExtractionError, "body is not JSON")
