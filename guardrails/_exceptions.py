"""Every exception guardrails raises.

The hierarchy::

    GuardrailsError                  root: `except GuardrailsError` catches everything below
    ├── Blocked                      the guard said Block (.verdict)
    ├── ExtractionError              the text to scan could not be extracted or parsed
    │   └── ContentTooLarge          more text than the guard will check (.limit)        client-caused
    └── GuardError                   the guard could not give a verdict (.transient, .guard, .status_code)
        ├── GuardTimeout             the overall deadline of the check ran out           transient
        ├── GuardUnavailable         connection error, 5xx, or the circuit breaker is open transient
        ├── GuardRateLimited         429 after the retries (.retry_after)                  transient
        ├── GuardAuthError           401/403: bad or missing credentials                   configuration
        ├── GuardConfigurationError  the guard is misconfigured (no key, no profile,    configuration
        │                            a bad region or URL), raised at construction; also a ValueError
        └── GuardResponseError       400 (configuration), or a malformed, empty,
                                     redirected or oversized response (transient)

An `ExtractionError` (and so `ContentTooLarge`) is caused by the input, never by the guard: it is
refused under every policy, ``fail_open="always"`` included, and never counts against the guard's
circuit breaker.

`transient` decides what a fail-open policy may do: transient errors may fail open; configuration
errors (`transient=False`) fail closed unless the user opted in with ``fail_open="always"``.

No message built here ever contains prompt text or a credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import Verdict

__all__ = [
    "Blocked",
    "ContentTooLarge",
    "ExtractionError",
    "GuardAuthError",
    "GuardConfigurationError",
    "GuardError",
    "GuardRateLimited",
    "GuardResponseError",
    "GuardTimeout",
    "GuardUnavailable",
    "GuardrailsError",
]


class GuardrailsError(Exception):
    """Root of every exception the library raises."""


class Blocked(GuardrailsError):
    """The guard blocked the content.

    The message carries the guard's reasons, never the scanned text.

    Attributes:
        verdict: the blocking `Verdict`.
    """

    def __init__(self, verdict: Verdict, message: str | None = None) -> None:
        self.verdict = verdict
        if message is None:
            reasons = "; ".join(verdict.reasons) or "no reason given"
            message = f"blocked by {verdict.guard}: {reasons}"
            if verdict.id:
                message += f" (verdict id {verdict.id})"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[Blocked], tuple[Verdict, str]]:
        return (type(self), (self.verdict, str(self)))


class ExtractionError(GuardrailsError):
    """The text to scan could not be extracted from the arguments or the request body."""


class ContentTooLarge(ExtractionError):
    """More text than the guard will check in one call (too long, too many windows).

    Caused by the input, so refused under every policy (a 413 from the middlewares).

    Attributes:
        limit: the limit exceeded, in the unit the message names (characters or windows), if known.
    """

    def __init__(self, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_too_large, (str(self), self.limit))


def _rebuild_too_large(message: str, limit: int | None) -> ContentTooLarge:
    return ContentTooLarge(message, limit=limit)


class GuardError(GuardrailsError):
    """The guard could not give a verdict.

    Attributes:
        guard: name of the guard that failed ("trend", "palo-alto", ...).
        transient: True for failures that may pass (timeouts, connection errors, 5xx, 429,
            malformed responses); False for configuration errors (400, 401, 403).
        status_code: the HTTP status the guard answered with, if it answered.
    """

    #: Default for `transient` when the constructor is not told.
    default_transient: bool = True

    def __init__(
        self,
        message: str,
        *,
        guard: str = "unknown",
        transient: bool | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.guard = guard
        self.transient = self.default_transient if transient is None else transient
        self.status_code = status_code

    @property
    def kind(self) -> str:
        """``"transient"`` or ``"configuration"``."""
        return "transient" if self.transient else "configuration"

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_guard_error,
            (type(self), str(self), self.guard, self.transient, self.status_code, dict(self.__dict__)),
        )


def _rebuild_guard_error(
    cls: type[GuardError],
    message: str,
    guard: str,
    transient: bool,
    status_code: int | None,
    state: dict[str, object],
) -> GuardError:
    exc = cls.__new__(cls)
    GuardError.__init__(exc, message, guard=guard, transient=transient, status_code=status_code)
    exc.__dict__.update(state)
    return exc


class GuardTimeout(GuardError):
    """The overall deadline of the check ran out (retries included)."""


class GuardUnavailable(GuardError):
    """The guard could not be reached, answered 5xx, or its circuit breaker is open.

    Attributes:
        circuit_open: True when no request was sent because the circuit breaker is open.
    """

    def __init__(
        self,
        message: str,
        *,
        guard: str = "unknown",
        transient: bool | None = None,
        status_code: int | None = None,
        circuit_open: bool = False,
    ) -> None:
        super().__init__(message, guard=guard, transient=transient, status_code=status_code)
        self.circuit_open = circuit_open


class GuardRateLimited(GuardError):
    """The guard answered 429 Too Many Requests and kept doing so through the retries.

    Attributes:
        retry_after: seconds the guard asked to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        guard: str = "unknown",
        transient: bool | None = None,
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, guard=guard, transient=transient, status_code=status_code)
        self.retry_after = retry_after


class GuardAuthError(GuardError):
    """The guard refused the credentials (401/403): a configuration error."""

    default_transient = False


class GuardConfigurationError(GuardError, ValueError):
    """The guard is misconfigured: raised by its constructor, with the setting to fix.

    A `ValueError` too, so code written when the constructors raised `ValueError` keeps working.
    The message names what to set (``"set PANW_AI_PROFILE_NAME or PANW_AI_PROFILE_ID"``) and never
    holds a secret.
    """

    default_transient = False


class GuardResponseError(GuardError):
    """The guard's answer was not usable.

    A 400 (the guard rejected the request as built: a configuration error, ``transient=False``) or a
    malformed, empty, redirected or oversized response (``transient=True``).
    """


# Tracebacks and reprs show the public path (``guardrails.Blocked``, not the private module), as
# httpx does. Pickle finds each class by that path too: `guardrails` exports every one of them.
for _public in (
    GuardrailsError,
    Blocked,
    ExtractionError,
    ContentTooLarge,
    GuardError,
    GuardTimeout,
    GuardUnavailable,
    GuardRateLimited,
    GuardAuthError,
    GuardConfigurationError,
    GuardResponseError,
):
    _public.__module__ = "guardrails"
del _public
